//! `listen`: `gateway::listen::exchange` and its body decoder — the minimal HTTP/1.1 client of
//! listening streams — reading an upstream's answer.
//!
//! Input: `[split] answer…` — `answer` is what the upstream sends, byte for byte; `split` picks
//! how it arrives: in one read, or in reads of 1 to 16 bytes cycling from `split % 16 + 1`.
//!
//! Properties:
//! * never a panic, whatever the bytes;
//! * the outcome does not depend on how the bytes arrive: the same head (status, headers), the
//!   same body bytes, and an error in one way exactly when in the other (same error kind);
//! * a body framed by `Content-Length` that ends cleanly has exactly that many bytes; one read
//!   until the upstream closes is everything after the head.

use std::io;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};

use http::{HeaderMap, StatusCode};
use futures_util::StreamExt;
use switchboard::gateway::listen::exchange;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::runtime::Runtime;

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

/// `data` in reads of the given sizes (cycling), then the end of input.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    next: usize,
}

impl AsyncRead for Pieces<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = self.sizes[self.next % self.sizes.len()];
        self.next += 1;
        let n = size.min(self.data.len()).min(buf.remaining());
        buf.put_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Poll::Ready(Ok(()))
    }
}

/// What reading the answer came to.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    head: Result<(StatusCode, HeaderMap), io::ErrorKind>,
    body: Vec<u8>,
    body_error: Option<io::ErrorKind>,
}

fn read(answer: &[u8], sizes: Vec<usize>) -> Outcome {
    let pieces = Pieces {
        data: answer,
        sizes,
        next: 0,
    };
    let io = tokio::io::join(pieces, tokio::io::sink());
    runtime().block_on(async move {
        let (head, mut body) = match exchange(io, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await {
            Ok(x) => x,
            Err(e) => {
                return Outcome {
                    head: Err(e.kind()),
                    body: Vec::new(),
                    body_error: None,
                };
            }
        };
        let mut bytes = Vec::new();
        let mut body_error = None;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => bytes.extend_from_slice(&c),
                Err(e) => {
                    body_error = Some(e.kind());
                    break;
                }
            }
        }
        Outcome {
            head: Ok((head.status, head.headers)),
            body: bytes,
            body_error,
        }
    })
}

pub fn check(data: &[u8]) {
    let Some((&split, answer)) = data.split_first() else {
        return;
    };
    let whole = read(answer, vec![usize::MAX]);
    let first = usize::from(split % 16) + 1;
    let sizes: Vec<usize> = (0..16).map(|i| (first + i) % 16 + 1).collect();
    let split_up = read(answer, sizes);
    assert_eq!(whole, split_up, "the answer read in one go and in small reads differ");

    let Ok((status, headers)) = &whole.head else {
        return;
    };
    if whole.body_error.is_some() {
        return;
    }
    if headers.contains_key("transfer-encoding") {
        return;
    }
    let length = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next()?.trim().parse::<usize>().ok());
    match length {
        _ if *status == StatusCode::NO_CONTENT || *status == StatusCode::NOT_MODIFIED => {
            assert!(whole.body.is_empty(), "a {status} answer with a body");
        }
        Some(n) => assert_eq!(whole.body.len(), n, "Content-Length {n}"),
        None => {
            // Until close: the body is the answer's tail after its (last) head.
            assert!(
                answer.ends_with(&whole.body),
                "a body read until close is not the answer's tail"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn well_formed_answers_pass() {
        for answer in [
            &b"\x03HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nt: 1\r\n\r\n"[..],
            b"\x00HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 3\r\n\r\nno!",
            b"\x07HTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\n\r\ndata: x\n\n",
            b"\x01HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\ncut",
            b"\x02HTTP/1.1 204 No Content\r\n\r\n",
            b"\x05not http at all",
        ] {
            super::check(answer);
        }
    }
}
