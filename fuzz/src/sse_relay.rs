//! `sse_relay`: `gateway::mcp_relay::with_keepalive` over a chunked upstream stream.
//!
//! Input: `[mode] chunk 0xff chunk 0xff ...` — the upstream body split at every 0xff byte (a
//! byte UTF-8, hence SSE, never contains; empty chunks included). Modes (`mode % 4`):
//!
//! * 0 — never drains, `every` = 1 h: the output is the input, chunk for chunk.
//! * 1 — draining turns true once the first chunk came out: the output is the chunks up to and
//!   including the first one that ends with `\n\n` or `\r\n\r\n` (the relay's notion of an
//!   event boundary; the first chunk itself counts), or all of them when none does. So the
//!   output is a prefix of the input that is the whole input or ends at an event boundary.
//! * 2 — keep-alives on a paused clock, `every` = 2 s: each chunk's first byte is a delay
//!   (`b % 9` = 0: none, else `(b % 9 - 1) s + 0.5 s`), then the chunk. The output is the input
//!   chunks with `floor(delay / 2 s)` `: keep-alive\n\n` comments before a chunk exactly when
//!   the relay is between events (at the start, or the previous chunk ended with a boundary),
//!   and none inside an event.
//! * 3 — the drain sender is dropped at once (no drain can come): same as mode 0.

use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use switchboard::gateway::mcp_relay::with_keepalive;
use tokio::runtime::Runtime;

use crate::input::SEP;

const KEEPALIVE: &[u8] = b": keep-alive\n\n";

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime")
    })
}

fn ends_event(chunk: &[u8]) -> bool {
    chunk.ends_with(b"\n\n") || chunk.ends_with(b"\r\n\r\n")
}

pub fn check(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let chunks: Vec<&[u8]> = if body.is_empty() {
        Vec::new()
    } else {
        body.split(|&b| b == SEP).collect()
    };
    match mode % 4 {
        0 => passthrough(&chunks, false),
        1 => drain_after_first(&chunks),
        2 => keepalives(&chunks),
        _ => passthrough(&chunks, true),
    }
}

fn upstream(
    chunks: &[&[u8]],
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + Unpin + 'static {
    let owned: Vec<Result<Bytes, io::Error>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(owned)
}

fn passthrough(chunks: &[&[u8]], drop_sender: bool) {
    let out: Vec<Bytes> = runtime().block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        if drop_sender {
            drop(tx);
            collect(with_keepalive(
                upstream(chunks),
                Duration::from_secs(3600),
                rx,
            ))
            .await
        } else {
            let out = collect(with_keepalive(
                upstream(chunks),
                Duration::from_secs(3600),
                rx,
            ))
            .await;
            drop(tx);
            out
        }
    });
    let got: Vec<&[u8]> = out.iter().map(|b| b.as_ref()).collect();
    assert_eq!(got, chunks, "the relay altered, dropped or added bytes");
}

fn drain_after_first(chunks: &[&[u8]]) {
    let out: Vec<Bytes> = runtime().block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut s = std::pin::pin!(with_keepalive(
            upstream(chunks),
            Duration::from_secs(3600),
            rx
        ));
        let mut out = Vec::new();
        while let Some(item) = s.next().await {
            out.push(item.expect("an upstream of Ok chunks gives no error"));
            tx.send_replace(true);
        }
        out
    });
    let expected_len = chunks
        .iter()
        .position(|c| ends_event(c))
        .map_or(chunks.len(), |i| i + 1);
    let got: Vec<&[u8]> = out.iter().map(|b| b.as_ref()).collect();
    assert_eq!(
        got,
        &chunks[..expected_len],
        "draining did not end the stream at the first event boundary"
    );
    // The byte-level statement of the same: a prefix, whole or ending an event.
    let all: Vec<u8> = chunks.concat();
    let relayed: Vec<u8> = got.concat();
    assert!(all.starts_with(&relayed));
    assert!(relayed.len() == all.len() || ends_event(&relayed));
}

fn keepalives(chunks: &[&[u8]]) {
    let every = Duration::from_secs(2);
    let timed: Vec<(Duration, Bytes)> = chunks
        .iter()
        .map(|c| {
            let (delay, body) = match c.split_first() {
                Some((&d, rest)) => (d % 9, rest),
                None => (0, &c[..]),
            };
            let delay = if delay == 0 {
                Duration::ZERO
            } else {
                Duration::from_millis(u64::from(delay - 1) * 1000 + 500)
            };
            (delay, Bytes::copy_from_slice(body))
        })
        .collect();
    let mut expected: Vec<Bytes> = Vec::new();
    let mut between_events = true;
    for (delay, body) in &timed {
        if between_events {
            let n = delay.as_millis() / every.as_millis();
            expected.extend((0..n).map(|_| Bytes::from_static(KEEPALIVE)));
        }
        between_events = ends_event(body);
        expected.push(body.clone());
    }
    let out: Vec<Bytes> = runtime().block_on(async {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let upstream = Box::pin(futures_util::stream::unfold(
            timed.into_iter(),
            |mut it| async move {
                let (delay, body) = it.next()?;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Some((Ok::<_, io::Error>(body), it))
            },
        ));
        let out = collect(with_keepalive(upstream, every, rx)).await;
        drop(tx);
        out
    });
    assert_eq!(
        out, expected,
        "keep-alives missing, extra, or placed inside an event"
    );
}

async fn collect(s: impl futures_util::Stream<Item = Result<Bytes, io::Error>>) -> Vec<Bytes> {
    let mut s = std::pin::pin!(s);
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item.expect("an upstream of Ok chunks gives no error"));
    }
    out
}
