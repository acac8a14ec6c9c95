//! `config`: `Config::from_sources` on arbitrary TOML text and environment.
//!
//! Input: the config file text, then (after a 0xff byte, if any) environment lines
//! `NAME=VALUE`; a `NAME` is taken as `SWITCHBOARD_NAME` unless it starts with `$` (then it
//! is used as is, without the `$`: a variable for `${VAR}` interpolation). An input that starts
//! with `@` uses the shipped `config/switchboard.toml` as the file and the rest after the `@`
//! as environment lines only.
//!
//! Checks: never panics (errors are expected), the error and the config format (`Display`,
//! `Debug`), and the same sources always give the same outcome.

use switchboard::Config;

use crate::input::Input;

/// The shipped sample config, a realistic base for environment overrides.
const SAMPLE: &str = include_str!("../../config/switchboard.toml");

fn env_pairs(lines: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(lines)
        .lines()
        .filter_map(|l| {
            let (name, value) = l.split_once('=')?;
            let name = match name.strip_prefix('$') {
                Some(raw) => raw.to_owned(),
                None => format!("SWITCHBOARD_{name}"),
            };
            Some((name, value.to_owned()))
        })
        .collect()
}

pub fn check(data: &[u8]) {
    let (text, env) = match data.strip_prefix(b"@") {
        Some(env) => (SAMPLE.to_owned(), env_pairs(env)),
        None => {
            let mut input = Input::new(data);
            let text = input.field();
            (text, env_pairs(input.rest()))
        }
    };
    let first = Config::from_sources(Some(("fuzz.toml", &text)), &env);
    let again = Config::from_sources(Some(("fuzz.toml", &text)), &env);
    match (&first, &again) {
        (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}")),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("the same sources gave different outcomes"),
    }
}
