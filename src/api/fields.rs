//! Reading a JSON object field by field, collecting FastAPI-style errors with their `loc`.

use serde_json::{Map, Value};

use super::error::{FieldError, Loc};
use crate::registry::Patch;

/// A view of one JSON object at a location (`["body", "auth_methods", 0]`).
#[derive(Debug)]
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    base: Vec<Loc>,
    pub errors: &'a mut Vec<FieldError>,
}

impl<'a> Fields<'a> {
    pub fn new(
        obj: &'a Map<String, Value>,
        base: Vec<Loc>,
        errors: &'a mut Vec<FieldError>,
    ) -> Self {
        Self { obj, base, errors }
    }

    pub fn loc(&self, key: &str) -> Vec<Loc> {
        let mut loc = self.base.clone();
        loc.push(key.into());
        loc
    }

    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key)
    }

    pub fn error(
        &mut self,
        key: &str,
        kind: &'static str,
        msg: impl Into<String>,
        input: Option<&Value>,
    ) {
        let mut e = FieldError::new(self.loc(key), kind, msg);
        if let Some(v) = input {
            e = e.with_input(v);
        }
        self.errors.push(e);
    }

    fn missing(&mut self, key: &str) {
        self.error(key, "missing", "Field required", None);
    }

    /// A required string (null is an error).
    pub fn req_str(&mut self, key: &str) -> Option<String> {
        match self.obj.get(key) {
            None => {
                self.missing(key);
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                self.error(
                    key,
                    "string_type",
                    "Input should be a valid string",
                    Some(v),
                );
                None
            }
        }
    }

    /// An optional string: absent, null or a value.
    pub fn opt_str(&mut self, key: &str) -> Patch<String> {
        match self.obj.get(key) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::String(s)) => Patch::Value(s.clone()),
            Some(v) => {
                self.error(
                    key,
                    "string_type",
                    "Input should be a valid string",
                    Some(v),
                );
                Patch::Absent
            }
        }
    }

    /// An optional string that may not be null (null → error).
    pub fn non_null_str(&mut self, key: &str) -> Option<String> {
        match self.opt_str(key) {
            Patch::Value(s) => Some(s),
            Patch::Null => {
                self.error(
                    key,
                    "string_type",
                    "Input should be a valid string",
                    Some(&Value::Null),
                );
                None
            }
            Patch::Absent => None,
        }
    }

    pub fn opt_bool(&mut self, key: &str) -> Option<bool> {
        match self.obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(v) => {
                self.error(key, "bool_type", "Input should be a valid boolean", Some(v));
                None
            }
        }
    }

    /// An optional object: absent, null or a value.
    pub fn opt_object(&mut self, key: &str) -> Patch<&'a Map<String, Value>> {
        match self.obj.get(key) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::Object(m)) => Patch::Value(m),
            Some(v) => {
                self.error(
                    key,
                    "dict_type",
                    "Input should be a valid dictionary",
                    Some(v),
                );
                Patch::Absent
            }
        }
    }

    /// An optional array: absent, null or a value.
    pub fn opt_array(&mut self, key: &str) -> Patch<&'a Vec<Value>> {
        match self.obj.get(key) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::Array(a)) => Patch::Value(a),
            Some(v) => {
                self.error(key, "list_type", "Input should be a valid list", Some(v));
                Patch::Absent
            }
        }
    }

    /// An optional list of strings (null allowed).
    pub fn opt_str_list(&mut self, key: &str) -> Option<Vec<String>> {
        let Patch::Value(items) = self.opt_array(key) else {
            return None;
        };
        let mut out = Vec::new();
        for (i, v) in items.iter().enumerate() {
            match v {
                Value::String(s) => out.push(s.clone()),
                other => {
                    let mut loc = self.loc(key);
                    loc.push(Loc::Index(i));
                    self.errors.push(
                        FieldError::new(loc, "string_type", "Input should be a valid string")
                            .with_input(other),
                    );
                }
            }
        }
        Some(out)
    }

    /// A nested object view at `key` (or at `key[index]`).
    pub fn nested<'b>(&'b mut self, obj: &'b Map<String, Value>, path: &[Loc]) -> Fields<'b> {
        let mut base = self.base.clone();
        base.extend_from_slice(path);
        Fields {
            obj,
            base,
            errors: self.errors,
        }
    }
}
