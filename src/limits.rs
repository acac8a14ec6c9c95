//! Size limits on what crosses the gateway, beyond the request body: upstream answers read into
//! memory, SSE lines and events, JSON nesting, header count and size. The upstream limits are
//! process-wide (set once at start from `[limits]`); the others are checked where requests
//! arrive.

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

static MAX_UPSTREAM_RESPONSE: AtomicUsize = AtomicUsize::new(16 * 1024 * 1024);
static MAX_SSE_LINE: AtomicUsize = AtomicUsize::new(1024 * 1024);

/// Sets the upstream limits (at start).
pub fn set_upstream(max_response: usize, max_sse_line: usize) {
    MAX_UPSTREAM_RESPONSE.store(max_response, Ordering::Relaxed);
    MAX_SSE_LINE.store(max_sse_line, Ordering::Relaxed);
}

/// The largest upstream answer (or SSE event) read into memory.
pub fn max_upstream_response() -> usize {
    MAX_UPSTREAM_RESPONSE.load(Ordering::Relaxed)
}

/// The longest SSE line accepted from an upstream.
pub fn max_sse_line() -> usize {
    MAX_SSE_LINE.load(Ordering::Relaxed)
}

/// A limit was exceeded (the message names it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct TooLarge(pub String);

/// Reads a whole upstream answer, refusing more than [`max_upstream_response`] bytes.
pub async fn read_body(resp: reqwest::Response) -> Result<Result<Bytes, TooLarge>, reqwest::Error> {
    read_capped(resp.content_length(), resp.bytes_stream()).await
}

/// Reads a whole body (declared length, if any, and its chunks), refusing more than
/// [`max_upstream_response`] bytes.
pub async fn read_capped<E>(
    declared: Option<u64>,
    stream: impl Stream<Item = Result<Bytes, E>>,
) -> Result<Result<Bytes, TooLarge>, E> {
    let max = max_upstream_response();
    let too_large = || TooLarge(format!("upstream answer larger than {max} bytes"));
    if declared.is_some_and(|n| n > max as u64) {
        return Ok(Err(too_large()));
    }
    let mut out = bytes::BytesMut::new();
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > max {
            return Ok(Err(too_large()));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Ok(out.freeze()))
}

/// An upstream answer as text for an error message (capped; unreadable → empty).
pub async fn error_text(resp: reqwest::Response) -> String {
    lossy_text(read_body(resp).await)
}

/// What [`read_capped`] read, as text (too large or unreadable → empty).
pub fn lossy_text<E>(read: Result<Result<Bytes, TooLarge>, E>) -> String {
    match read {
        Ok(Ok(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    }
}

/// Passes an SSE byte stream through, failing it (with [`TooLarge`] as the error's source) as
/// soon as a line exceeds `max_line` bytes or an event exceeds `max_event` bytes, so neither is
/// ever accumulated in memory.
pub fn sse_capped<S, E>(
    inner: S,
    max_line: usize,
    max_event: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut line = 0usize;
    let mut event = 0usize;
    let mut last = 0u8;
    let mut failed = false;
    inner
        .map(move |chunk| {
            if failed {
                return None;
            }
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Some(Err(std::io::Error::other(e))),
            };
            for &b in chunk.iter() {
                if b == b'\n' {
                    // An empty line (`\n\n` or `\r\n\r\n`) ends the event.
                    if line == 0 || (line == 1 && last == b'\r') {
                        event = 0;
                    }
                    line = 0;
                } else {
                    line += 1;
                    event += 1;
                }
                last = b;
                if line > max_line || event > max_event {
                    failed = true;
                    let what = if line > max_line {
                        format!("upstream SSE line longer than {max_line} bytes")
                    } else {
                        format!("upstream SSE event larger than {max_event} bytes")
                    };
                    return Some(Err(std::io::Error::other(TooLarge(what))));
                }
            }
            Some(Ok(chunk))
        })
        .take_while(|item| std::future::ready(item.is_some()))
        .filter_map(std::future::ready)
}

/// Passes a request body stream through, failing it (a [`TooLarge`] source) once more than
/// `max` bytes went by.
pub fn body_capped<S, E>(
    inner: S,
    max: usize,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut seen = 0usize;
    inner.map(move |chunk| {
        let chunk = chunk.map_err(std::io::Error::other)?;
        seen += chunk.len();
        if seen > max {
            return Err(std::io::Error::other(TooLarge(format!(
                "request body larger than {max} bytes"
            ))));
        }
        Ok(chunk)
    })
}

/// Whether an error was caused by a limit of ours.
pub fn too_large_in(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<TooLarge>().is_some() {
            return true;
        }
        // `io::Error::source` skips the error it wraps: look inside.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<TooLarge>().is_some())
            {
                return true;
            }
        }
        cur = e.source();
    }
    false
}

/// The deepest nesting of arrays and objects in JSON text (strings skipped), counted without
/// parsing, stopping early once past `limit`.
pub fn json_depth_exceeds(bytes: &[u8], limit: usize) -> bool {
    json_scan(bytes, limit).too_deep
}

/// What one pass over JSON text tells, without parsing it: whether its nesting goes past a
/// limit, and the value of its top-level `"method"` member when it is an object and the value
/// a string without escapes (a JSON-RPC request's method, for a metrics label). The text is not
/// validated: the `method` of malformed text is a guess, and whoever parses it judges it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct JsonScan<'a> {
    pub too_deep: bool,
    pub method: Option<&'a str>,
    /// The text starts with `[` (a JSON-RPC batch).
    pub array: bool,
}

/// See [`JsonScan`].
pub fn json_scan(bytes: &[u8], limit: usize) -> JsonScan<'_> {
    let mut scan = JsonScan {
        array: bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'['),
        ..JsonScan::default()
    };
    let mut depth = 0usize;
    // Strings at the top level of an object: the last one seen, and whether the next one is
    // the value of `"method"`.
    let mut last_key: &[u8] = &[];
    let mut method_next = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        match b {
            b'"' => {
                // To the closing quote, a jump at a time (strings are most of the text).
                let started = i;
                let mut had_escape = false;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                        None => return scan,
                        Some(at) if bytes[i + at] == b'\\' => {
                            had_escape = true;
                            // The escaped byte is skipped (a trailing `\\` ends the text).
                            i = (i + at + 2).min(bytes.len());
                        }
                        Some(at) => {
                            i += at + 1;
                            break;
                        }
                    }
                }
                if depth == 1 && !scan.array {
                    let text = &bytes[started..i - 1];
                    // The last `method` member counts, as with serde_json (and most parsers).
                    if method_next && !had_escape {
                        scan.method = std::str::from_utf8(text).ok();
                    }
                    last_key = text;
                }
                method_next = false;
            }
            b':' if depth == 1 => method_next = last_key == b"method",
            b'[' | b'{' => {
                method_next = false;
                depth += 1;
                if depth > limit {
                    scan.too_deep = true;
                    return scan;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b if b.is_ascii_whitespace() => {}
            _ => method_next = false,
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth() {
        assert!(!json_depth_exceeds(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(json_depth_exceeds(br#"{"a":[1,{"b":[2]}]}"#, 3));
        assert!(!json_depth_exceeds(br#"{"a":"[[[[[[[[\"]]]"}"#, 1));
        assert!(json_depth_exceeds(&b"[".repeat(100), 64));
    }

    #[test]
    fn the_top_level_method_is_found_in_one_pass() {
        let method = |text: &str| json_scan(text.as_bytes(), 64).method.map(str::to_owned);
        assert_eq!(
            method(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#).as_deref(),
            Some("tools/call")
        );
        // Nested `method` members, a `method` string value, whitespace, order.
        assert_eq!(
            method(r#"{"params":{"method":"x","a":["method"]}, "id" : 2 , "method" : "ping"}"#)
                .as_deref(),
            Some("ping")
        );
        assert_eq!(method(r#"{"id":"method","result":{}}"#), None);
        assert_eq!(method(r#"{"method":{"name":"x"}}"#), None);
        assert_eq!(method(r#"{"method":7,"x":"y"}"#), None);
        assert_eq!(method(r#"{"method":"a\"b"}"#), None, "escaped: not guessed");
        assert_eq!(method(r#"{"me\u0074hod":"x"}"#), None);
        assert_eq!(method(r#"[{"method":"ping"}]"#), None);
        let batch = json_scan(br#" [{"method":"ping"}]"#, 64);
        assert!(batch.array && !batch.too_deep);
        assert!(json_scan(br#"{"method":"x","a":[[[]]]}"#, 3).too_deep);
        // The text's nesting counts, not the parsed value's: a repeated member keeps its last,
        // shallower value, but a parser still goes through the deeper first one.
        assert!(json_scan(br#"{"a":[[[]]],"a":1}"#, 3).too_deep);
        assert!(!json_scan(br#"{"a":[[]],"a":1}"#, 3).too_deep);
        // Cut short anywhere: no panic, no guess past the end.
        let whole = br#"{"method":"tools/call","params":{"a":"b\"c\\"}}"#;
        for end in 0..whole.len() {
            let _ = json_scan(&whole[..end], 64);
        }
        assert_eq!(method(r#"{"method":"x\"#), None);
        // The last `method` member counts, as when the text is parsed.
        assert_eq!(
            method(r#"{"method":"a","method":"b"}"#).as_deref(),
            Some("b")
        );
    }

    async fn run(
        chunks: Vec<&'static [u8]>,
        line: usize,
        event: usize,
    ) -> (Vec<u8>, Option<String>) {
        let inner = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, std::io::Error>(Bytes::from_static(c))),
        );
        let mut s = Box::pin(sse_capped(inner, line, event));
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            match item {
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => return (out, Some(e.to_string())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn sse_lines_and_events_are_capped() {
        let (out, err) = run(vec![b"data: abc\n\n", b"data: de", b"f\r\n\r\n"], 16, 64).await;
        assert_eq!(out, b"data: abc\n\ndata: def\r\n\r\n");
        assert!(err.is_none());
        let (_, err) = run(vec![b"data: ", b"0123456789abcdef"], 16, 64).await;
        assert!(err.unwrap().contains("line longer than 16"));
        let (_, err) = run(vec![b"data: 0123\ndata: 4567\ndata: 89ab\n"], 16, 20).await;
        assert!(err.unwrap().contains("event larger than 20"));
        // Events reset the event budget.
        let (_, err) = run(vec![b"data: 0123\n\ndata: 4567\n\ndata: 89ab\n\n"], 16, 12).await;
        assert!(err.is_none());
    }
}
