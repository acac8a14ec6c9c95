//! The access line, formatted by hand.
//!
//! One line per request is the one log line on the hot path, and tracing's formatters are
//! generic: visiting the fields through `dyn Visit`, `Debug`-quoting each string through
//! `core::fmt`, styling (even with colours off) cost ~14k instructions a line, a sixth of a
//! relayed call. The line has fixed fields, so it is written here straight into the log
//! writer's queue, byte for byte as tracing's `json` and `pretty` (uncoloured) formats write it:
//! log consumers see no difference. Lines go through tracing as before when colours are on (a
//! terminal) or when the log writer is not ours (tests installing their own subscriber).

use std::cell::Cell;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use super::lines::Lines;

/// The target the line carries, as tracing would name it (filters select it by this name).
pub const TARGET: &str = "switchboard::access";

/// One answered request.
#[derive(Debug, Clone, Copy)]
pub struct AccessLine<'a> {
    pub plane: &'static str,
    pub route: &'static str,
    /// The `{ref}` of the path as sent (percent-encoded; empty without one).
    pub connector: &'a str,
    pub method: &'static str,
    pub status: u16,
    pub micros: u64,
    pub request_id: &'a str,
}

impl AccessLine<'_> {
    /// `duration_ms`, in whole microseconds.
    fn millis(&self) -> f64 {
        self.micros as f64 / 1000.0
    }
}

/// Where formatted access lines go, and in which format.
pub struct Sink {
    pub lines: Lines,
    pub json: bool,
}

impl Sink {
    pub fn write(&self, line: &AccessLine<'_>, now: SystemTime) {
        let mut buf = Vec::with_capacity(320);
        if self.json {
            json(&mut buf, line, now);
        } else {
            pretty(&mut buf, line, now);
        }
        self.lines.send_line(buf);
    }
}

/// `{"timestamp":"…","level":"INFO","fields":{"message":"request",…},"target":"…"}`, as
/// tracing-subscriber's `json` format writes an event outside any span.
pub fn json(buf: &mut Vec<u8>, l: &AccessLine<'_>, now: SystemTime) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\",\"plane\":");
    label(buf, l.plane);
    buf.extend_from_slice(b",\"route\":");
    label(buf, l.route);
    buf.extend_from_slice(b",\"connector\":");
    json_str(buf, l.connector);
    buf.extend_from_slice(b",\"method\":");
    label(buf, l.method);
    buf.extend_from_slice(b",\"status\":");
    decimal(buf, u64::from(l.status), 1);
    buf.extend_from_slice(b",\"duration_ms\":");
    let _ = serde_json::to_writer(&mut *buf, &l.millis());
    buf.extend_from_slice(b",\"request_id\":");
    json_str(buf, l.request_id);
    buf.extend_from_slice(b"},\"target\":\"");
    buf.extend_from_slice(TARGET.as_bytes());
    buf.extend_from_slice(b"\"}\n");
}

/// `… INFO switchboard::access: request plane="api" …`, as tracing-subscriber's default
/// (full) format writes an event outside any span without colours: strings `Debug`-quoted,
/// the connector (recorded with `%`) as it is.
pub fn pretty(buf: &mut Vec<u8>, l: &AccessLine<'_>, now: SystemTime) {
    timestamp(buf, now);
    buf.extend_from_slice(b"  INFO ");
    buf.extend_from_slice(TARGET.as_bytes());
    buf.extend_from_slice(b": request plane=");
    label(buf, l.plane);
    buf.extend_from_slice(b" route=");
    label(buf, l.route);
    buf.extend_from_slice(b" connector=");
    buf.extend_from_slice(l.connector.as_bytes());
    buf.extend_from_slice(b" method=");
    label(buf, l.method);
    buf.extend_from_slice(b" status=");
    decimal(buf, u64::from(l.status), 1);
    buf.extend_from_slice(b" duration_ms=");
    let _ = write!(buf, "{:?}", l.millis());
    buf.extend_from_slice(b" request_id=");
    debug_str(buf, l.request_id);
    buf.push(b'\n');
}

/// RFC 3339 in UTC with microseconds (`2026-12-07T14:33:46.962684Z`), as tracing's default
/// timer writes it. The date and time to the second are worked out once a second per thread.
fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    thread_local! {
        static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let prefix = SECOND.with(|c| match c.get() {
        (s, prefix) if s == secs => prefix,
        _ => {
            let prefix = to_the_second(secs);
            c.set((secs, prefix));
            prefix
        }
    });
    buf.extend_from_slice(&prefix);
    buf.push(b'.');
    decimal(buf, u64::from(since.subsec_micros()), 6);
    buf.push(b'Z');
}

/// `2026-12-07T14:33:46` for `secs` after the Unix epoch.
fn to_the_second(secs: u64) -> [u8; 19] {
    let t = i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut out = Vec::with_capacity(19);
    decimal(&mut out, u64::try_from(t.year()).unwrap_or(0), 4);
    out.push(b'-');
    decimal(&mut out, u64::from(u8::from(t.month())), 2);
    out.push(b'-');
    decimal(&mut out, u64::from(t.day()), 2);
    out.push(b'T');
    decimal(&mut out, u64::from(t.hour()), 2);
    out.push(b':');
    decimal(&mut out, u64::from(t.minute()), 2);
    out.push(b':');
    decimal(&mut out, u64::from(t.second()), 2);
    let mut prefix = [b'0'; 19];
    if let Some(head) = out.get(..19) {
        prefix.copy_from_slice(head);
    }
    prefix
}

/// `n` in decimal, zero-padded to at least `width` digits.
fn decimal(buf: &mut Vec<u8>, mut n: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    while n > 0 || digits.len() - i < width {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Printable ASCII without quotes or backslashes reads the same escaped or not (JSON and
/// `Debug` alike): the common case, written as it is.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

/// A label of the gateway's own (plane, route template, method): plain by construction.
fn label(buf: &mut Vec<u8>, s: &'static str) {
    debug_assert!(plain(s), "{s}");
    quoted(buf, s);
}

fn quoted(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    buf.extend_from_slice(s.as_bytes());
    buf.push(b'"');
}

fn json_str(buf: &mut Vec<u8>, s: &str) {
    if plain(s) {
        quoted(buf, s);
    } else {
        let _ = serde_json::to_writer(&mut *buf, s);
    }
}

fn debug_str(buf: &mut Vec<u8>, s: &str) {
    if plain(s) {
        quoted(buf, s);
    } else {
        let _ = write!(buf, "{s:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::telemetry::lines::tests::{Collect, collected};

    /// What tracing-subscriber writes for the same event (without the timestamp, which the
    /// reference formatter is told to leave out).
    fn reference(l: &AccessLine<'_>, json: bool) -> String {
        let (tx, rx) = crossbeam_channel::unbounded();
        let make = move || Collect(tx.clone());
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .without_time()
            .with_writer(make);
        let subscriber: Box<dyn tracing::Subscriber + Send + Sync> = if json {
            Box::new(tracing_subscriber::registry().with(layer.json().flatten_event(false)))
        } else {
            Box::new(tracing_subscriber::registry().with(layer))
        };
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                target: "switchboard::access",
                plane = l.plane,
                route = l.route,
                connector = %l.connector,
                method = l.method,
                status = l.status,
                duration_ms = l.millis(),
                request_id = l.request_id,
                "request"
            );
        });
        collected(&rx)
    }

    fn samples() -> Vec<AccessLine<'static>> {
        let base = AccessLine {
            plane: "gateway",
            route: "/v1/connectors-gateway/:ref/mcp",
            connector: "github",
            method: "POST",
            status: 200,
            micros: 1_401,
            request_id: "e4c0ea8d-3846-45f9-ab67-bb3e0649f076",
        };
        vec![
            base,
            // Whole milliseconds (`2.0`), no connector, a 5xx.
            AccessLine {
                connector: "",
                status: 502,
                micros: 2_000,
                ..base
            },
            // Quotes, backslashes and non-ASCII where a caller chooses the text.
            AccessLine {
                connector: "a%22b",
                request_id: "abc\"d\\e",
                micros: 0,
                ..base
            },
            AccessLine {
                request_id: "reçu-1",
                micros: 123_456_789,
                ..base
            },
        ]
    }

    #[test]
    fn lines_are_tracings_own_byte_for_byte() {
        let now = SystemTime::now();
        for l in samples() {
            let mut mine = Vec::new();
            pretty(&mut mine, &l, now);
            let mine = String::from_utf8(mine).unwrap();
            // `<timestamp>  INFO …` here; ` INFO …` from the timeless reference.
            let (_, rest) = mine.split_once(' ').unwrap();
            assert_eq!(rest, reference(&l, false), "pretty");

            let mut mine = Vec::new();
            json(&mut mine, &l, now);
            let mine = String::from_utf8(mine).unwrap();
            let (head, rest) = mine.split_once("\"level\"").unwrap();
            assert!(head.starts_with("{\"timestamp\":\""), "{mine}");
            assert_eq!(format!("{{\"level\"{rest}"), reference(&l, true), "json");
        }
    }

    #[test]
    fn the_timestamp_is_rfc3339_utc_with_microseconds() {
        let at = time::macros::datetime!(2026-12-07 09:05:03.000042 UTC);
        let mut buf = Vec::new();
        timestamp(&mut buf, at.into());
        assert_eq!(buf, b"2026-12-07T09:05:03.000042Z");
        let mut buf = Vec::new();
        timestamp(&mut buf, SystemTime::UNIX_EPOCH);
        assert_eq!(buf, b"1970-01-01T00:00:00.000000Z");
        // The second is kept per thread: the next second, and back, are written afresh.
        let at = SystemTime::from(at);
        for (t, text) in [
            (at, "2026-12-07T09:05:03.000042Z"),
            (
                at + Duration::from_millis(999_950),
                "2026-12-07T09:21:42.950042Z",
            ),
            (at + Duration::from_micros(1), "2026-12-07T09:05:03.000043Z"),
            (
                at + Duration::from_secs(86_400 * 25),
                "2027-01-01T09:05:03.000042Z",
            ),
        ] {
            let mut buf = Vec::new();
            timestamp(&mut buf, t);
            assert_eq!(String::from_utf8(buf).unwrap(), text);
        }
    }
}
