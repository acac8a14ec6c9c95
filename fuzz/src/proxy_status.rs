//! `proxy_status`: `gateway::proxy_status::member`, checked against an independent RFC 8941
//! parser (the `sfv` crate, RFC 8941 mode).
//!
//! Input: `[flags][status-code: u16 BE]` then the text fields `error` and `details`, each ended
//! by 0xff (`flags` bit 0: a status code is given; bit 1: details are given).
//!
//! Checks: the output parses as an RFC 8941 List of exactly one member: the bare token
//! `connectors-gateway` with the parameters `error` (a token), then `status-code` (the
//! integer given) and `details` (a string) exactly when given, and no others; an `error`
//! that already is a token is kept as is; `details` keeps every printable ASCII character and
//! replaces each other character with exactly one `?`.

use sfv::{BareItem, List, ListEntry, Parser, Version};
use switchboard::gateway::proxy_status::{MEMBER, member};

use crate::input::Input;

/// RFC 8941 §3.3.4: `sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )`.
fn is_sf_token(s: &str) -> bool {
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '*')
        && chars.all(|c| tchar(c) || c == ':' || c == '/')
}

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let code = input.u16();
    let error = input.field();
    let details = input.field();
    let status_code = (flags & 1 == 1).then_some(code);
    let details = (flags & 2 == 2).then_some(details);

    let header = member(&error, status_code, details.as_deref());
    let list: List = match Parser::new(header.as_bytes())
        .with_version(Version::Rfc8941)
        .parse()
    {
        Ok(l) => l,
        Err(e) => panic!(
            "Proxy-Status member is not an RFC 8941 List ({e}): {header:?} \
             from error={error:?} status_code={status_code:?} details={details:?}"
        ),
    };
    assert_eq!(list.len(), 1, "more than one member: {header:?}");
    let ListEntry::Item(item) = &list[0] else {
        panic!("the member is an inner list: {header:?}");
    };
    assert_eq!(
        item.bare_item.as_token().map(|t| t.as_str()),
        Some(MEMBER),
        "the member is not the bare token {MEMBER}: {header:?}"
    );

    let mut expected_keys = vec!["error"];
    status_code
        .is_some()
        .then(|| expected_keys.push("status-code"));
    details.is_some().then(|| expected_keys.push("details"));
    let keys: Vec<&str> = item.params.keys().map(|k| k.as_str()).collect();
    assert_eq!(keys, expected_keys, "wrong parameters: {header:?}");

    let Some(BareItem::Token(written)) = item.params.get("error") else {
        panic!("`error` is not a token: {header:?}");
    };
    if is_sf_token(&error) {
        assert_eq!(written.as_str(), error, "a valid token was rewritten");
    }
    if let Some(code) = status_code {
        let got = item
            .params
            .get("status-code")
            .and_then(BareItem::as_integer);
        assert_eq!(got.map(i64::from), Some(i64::from(code)), "{header:?}");
    }
    if let Some(d) = &details {
        let Some(BareItem::String(got)) = item.params.get("details") else {
            panic!("`details` is not a string: {header:?}");
        };
        let want: String = d
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect();
        assert_eq!(
            got.as_str(),
            want,
            "details changed beyond the documented replacement"
        );
    }
}
