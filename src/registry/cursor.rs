//! Opaque keyset cursors: base64url of `v1 \n created_at \n id`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A position in the (created_at, id) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: String,
    pub id: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1\n{}\n{}", self.created_at, self.id))
    }

    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.split('\n');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("v1"), Some(created_at), Some(id), None) if !id.is_empty() => Some(Self {
                created_at: created_at.to_owned(),
                id: id.to_owned(),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        let c = Cursor {
            created_at: "2026-01-01T00:00:00.000000Z".into(),
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("nope!"), None);
        assert_eq!(Cursor::decode(""), None);
    }
}
