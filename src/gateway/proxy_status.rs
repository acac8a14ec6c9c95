//! The `Proxy-Status` header of gateway-authored errors (RFC 9209, contract §7.6):
//! `connectors-gateway; error=<token>[; status-code=<n>][; details="<sf-string>"]`.

/// Our member name: a bare token, as the SDK requires.
pub const MEMBER: &str = "connectors-gateway";

/// Formats one member. `error` must be an RFC 9209 error type (a token); `details` is written
/// as an RFC 8941 sf-string (printable ASCII; `"` and `\` escaped; anything else replaced).
pub fn member(error: &str, status_code: Option<u16>, details: Option<&str>) -> String {
    let mut out = format!("{MEMBER}; error={}", token(error));
    if let Some(code) = status_code {
        out.push_str(&format!("; status-code={code}"));
    }
    if let Some(d) = details {
        out.push_str("; details=");
        out.push_str(&sf_string(d));
    }
    out
}

/// An sf-token: keeps `[A-Za-z0-9_.:%*/!#$&'+^`|~-]`, first character a letter or `*`.
fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_-.:%*/!#$&'+^`|~".contains(*c))
        .collect();
    if t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '*') {
        t
    } else {
        format!("x{t}")
    }
}

fn sf_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        assert_eq!(
            member(
                "http_request_error",
                Some(400),
                Some("connector_protocol_mismatch")
            ),
            r#"connectors-gateway; error=http_request_error; status-code=400; details="connector_protocol_mismatch""#
        );
        assert_eq!(
            member(
                "destination_unavailable",
                None,
                Some("upstream_unavailable")
            ),
            r#"connectors-gateway; error=destination_unavailable; details="upstream_unavailable""#
        );
        assert_eq!(
            member("proxy_internal_error", None, None),
            "connectors-gateway; error=proxy_internal_error"
        );
        assert_eq!(
            member("http_request_error", None, Some("a \"b\" \\ c")),
            r#"connectors-gateway; error=http_request_error; details="a \"b\" \\ c""#
        );
        assert_eq!(
            member("bad token!", None, Some("é\n")),
            "connectors-gateway; error=badtoken!; details=\"??\""
        );
        assert!(member("1abc", None, None).ends_with("error=x1abc"));
    }
}
