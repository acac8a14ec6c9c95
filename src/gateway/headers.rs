//! Which headers cross the gateway. Hop-by-hop headers never do; the caller's gateway
//! credentials (`Authorization`, `x-credentials-name`) never go upstream; an upstream's
//! `Proxy-Status` never comes back (it could impersonate the gateway).

use axum::http::{HeaderMap, HeaderName, header};

/// RFC 9110 §7.6.1 hop-by-hop headers, plus `host` (set by the client library). A match on
/// the name's text: the compiler sorts it by length first, so most names fail at once.
fn hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "proxy-connection"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
    )
}

/// Headers of the caller that belong to the gateway, not the upstream.
fn gateway_only(name: &str) -> bool {
    matches!(
        name,
        "authorization" | "x-credentials-name" | "proxy-status" | "cookie2"
    )
}

/// An upstream's headers that never reach the caller (it could impersonate the gateway).
fn upstream_only(name: &str) -> bool {
    name == "proxy-status"
}

/// The header names listed in `Connection` (hop-by-hop by declaration), lowercased.
fn connection_tokens(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect()
}

/// What does not cross: hop-by-hop names, the direction's own (`drop`), the caller's
/// (`also_drop`), and the names the map's `Connection` header lists.
struct Filter<'a> {
    drop: fn(&str) -> bool,
    also_drop: &'a [HeaderName],
    /// Built only when there is a `Connection` header.
    declared: Vec<String>,
}

impl<'a> Filter<'a> {
    fn new(headers: &HeaderMap, drop: fn(&str) -> bool, also_drop: &'a [HeaderName]) -> Self {
        let declared = if headers.contains_key(header::CONNECTION) {
            connection_tokens(headers)
        } else {
            Vec::new()
        };
        Self {
            drop,
            also_drop,
            declared,
        }
    }

    fn goes(&self, name: &HeaderName) -> bool {
        let n = name.as_str();
        hop_by_hop(n)
            || (self.drop)(n)
            || self.also_drop.contains(name)
            || (!self.declared.is_empty() && self.declared.iter().any(|t| t == n))
    }
}

/// `from` without what `drop`, `also_drop` and the hop-by-hop rules take out.
fn copy_except(from: &HeaderMap, drop: fn(&str) -> bool, also_drop: &[HeaderName]) -> HeaderMap {
    let filter = Filter::new(from, drop, also_drop);
    let mut out = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if !filter.goes(name) {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// [`copy_except`] in place, for a map the relay owns: no copy, and nothing allocated unless
/// something goes.
fn strip(headers: &mut HeaderMap, drop: fn(&str) -> bool, also_drop: &[HeaderName]) {
    let filter = Filter::new(headers, drop, also_drop);
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| filter.goes(name))
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

/// [`request_headers`], in place.
pub fn strip_request(headers: &mut HeaderMap, also_drop: &[HeaderName]) {
    strip(headers, gateway_only, also_drop);
}

/// The upstream's headers to return (in place), in order, repeated ones kept separate.
pub fn strip_response(headers: &mut HeaderMap, also_drop: &[HeaderName]) {
    strip(headers, upstream_only, also_drop);
}

/// The caller's headers to send upstream (injected credentials are added by the caller of this).
pub fn request_headers(caller: &HeaderMap, also_drop: &[HeaderName]) -> HeaderMap {
    copy_except(caller, gateway_only, also_drop)
}

/// Adds `injected` over `headers` (injected values win).
pub fn inject(headers: &mut HeaderMap, injected: &HeaderMap) {
    for name in injected.keys() {
        headers.remove(name);
        for v in injected.get_all(name) {
            headers.append(name.clone(), v.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn filters_both_ways() {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_static("Bearer gateway-key"),
        );
        h.insert("x-credentials-name", HeaderValue::from_static("mine"));
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("mcp-method", HeaderValue::from_static("tools/call"));
        h.append("x-multi", HeaderValue::from_static("a"));
        h.append("x-multi", HeaderValue::from_static("b"));
        let up = request_headers(&h, &[]);
        assert!(up.get("authorization").is_none() && up.get("x-credentials-name").is_none());
        assert!(up.get("x-secret-hop").is_none() && up.get("connection").is_none());
        assert_eq!(up["mcp-method"], "tools/call");
        assert_eq!(up.get_all("x-multi").iter().count(), 2);

        let mut r = HeaderMap::new();
        r.append("set-cookie", HeaderValue::from_static("a=1"));
        r.append("set-cookie", HeaderValue::from_static("b=2"));
        r.insert(
            "proxy-status",
            HeaderValue::from_static("connectors-gateway; error=x"),
        );
        r.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        let mut down = r.clone();
        strip_response(&mut down, &[]);
        let cookies: Vec<_> = down.get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert!(down.get("proxy-status").is_none() && down.get("transfer-encoding").is_none());

        let mut stripped = h.clone();
        strip_request(&mut stripped, &[]);
        assert_eq!(stripped, up, "in place, the same headers go");

        let mut base = HeaderMap::new();
        base.insert("authorization", HeaderValue::from_static("from caller"));
        let mut inj = HeaderMap::new();
        inj.insert("authorization", HeaderValue::from_static("Bearer stored"));
        inject(&mut base, &inj);
        assert_eq!(base["authorization"], "Bearer stored");
    }
}
