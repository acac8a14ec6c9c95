//! A minimal HTTP/1.1 client: the request head written by hand, the answer's head parsed by
//! `httparse` (at most 64 KiB and 100 headers, 1xx answers skipped), the body framed as
//! RFC 9112 §6.3 says (chunked, `Content-Length`, or until the upstream closes).
//!
//! Listening streams (`GET` on an MCP endpoint, no idle timeout) use it over a connection of
//! their own ([`ListenClient`]). Such a stream may stay open for hours; through hyper's client
//! it held a connection task with an 8 KiB read buffer, an 8 KiB write buffer and a dispatch
//! channel (~17 KiB resident) for all that time. Here an open stream holds its socket, the
//! body's framing state and, between reads, no buffer at all: a read goes into the stack and
//! only what arrived is kept. Decision 017. Connecting — the outbound policy's resolver,
//! `TCP_NODELAY`, the connect timeout, rustls — is the pooled client's connector, offering
//! HTTP/1.1 only. The connection is closed when the stream ends.
//!
//! The relays' pooled HTTP/1.1 connections (`super::pool`, decision 020) use the same head
//! writer (`write_head`), head reader (`read_head`) and body decoder ([`ListenBody`], whose
//! connection `ListenBody::take_idle` takes back once the body has ended).

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;
/// The most headers an answer may have.
const MAX_HEADERS: usize = 100;
/// The longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;
/// One read (into the stack, not into the stream's state).
const READ: usize = 8192;

/// A connector as the pooled client's: `Service<Uri>` yielding a connected, maybe TLS, stream.
pub type Connector = hyper_rustls::HttpsConnector<
    hyper_util::client::legacy::connect::HttpConnector<crate::net::GuardedResolver>,
>;
/// What the connector yields, as a Tokio stream.
pub type Conn = hyper_util::rt::TokioIo<
    hyper_rustls::MaybeHttpsStream<hyper_util::rt::TokioIo<tokio::net::TcpStream>>,
>;
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client: a connector, cloned per stream.
#[derive(Clone, Debug)]
pub struct ListenClient {
    connector: Connector,
}

/// An answer's status and headers.
#[derive(Debug)]
pub struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
}

impl ListenClient {
    pub fn new(connector: Connector) -> Self {
        Self { connector }
    }

    /// Connects to `uri`'s host, sends `GET` with `headers` (plus `Host`; framing headers
    /// dropped: there is no body) and reads the answer's head.
    pub async fn get(
        &self,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(Head, ListenBody<Conn>), BoxError> {
        use tower::Service;
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx)).await?;
        let io = connector.call(uri.clone()).await?;
        let request = request_head(uri, headers);
        Ok(exchange(hyper_util::rt::TokioIo::new(io), &request).await?)
    }
}

/// How a request's body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Length {
    /// No body, and no framing header.
    None,
    /// `Content-Length`.
    Known(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// `GET` of `uri` as an HTTP/1.1 request head.
fn request_head(uri: &Uri, headers: &HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_head(&mut out, &Method::GET, uri, headers, Length::None);
    out
}

/// A request's head as it goes on the wire, appended to `out`: the target in origin form,
/// `Host` (unless `headers` has one; the scheme's default port left out), `headers` but their
/// own framing headers, and the framing `length` says.
pub(super) fn write_head(
    out: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    length: Length,
) {
    use std::io::Write as _;
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    let target = uri.path_and_query().map_or("/", |p| p.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if !headers.contains_key(header::HOST) {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(uri.host().unwrap_or_default().as_bytes());
        if let Some(port) = named_port(uri) {
            let _ = write!(out, ":{port}");
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        Length::None => {}
        Length::Known(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Length::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The port a `Host` header names: `uri`'s, unless it is its scheme's default.
pub(super) fn named_port(uri: &Uri) -> Option<u16> {
    let default = if uri.scheme_str() == Some("https") {
        443
    } else {
        80
    };
    uri.port_u16().filter(|p| *p != default)
}

fn bad(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Sends `request` on `io` and reads the answer's head (1xx answers skipped).
pub async fn exchange<IO>(mut io: IO, request: &[u8]) -> io::Result<(Head, ListenBody<IO>)>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    io.write_all(request).await?;
    io.flush().await?;
    let answer = read_head(&mut io, false).await?;
    // Keep only what came after the head, in an allocation of its own size: the stream may
    // stay open for hours.
    let rest = BytesMut::from(&answer.rest[..]);
    Ok((answer.head, ListenBody::new(io, rest, answer.framing)))
}

/// An answer's head as read off a connection.
#[derive(Debug)]
pub(super) struct Answered {
    pub head: Head,
    pub framing: Framing,
    /// Whether the connection may carry another request once the body has been read:
    /// HTTP/1.1, no `Connection: close`, a body that does not end with the connection.
    pub reusable: bool,
    /// What arrived after the head (the body's start), in the buffer the head was read into.
    pub rest: BytesMut,
}

/// Reads an answer's head from `io` (1xx answers skipped). `to_head`: the request was `HEAD`
/// (the answer has no body, whatever its headers say). An upstream that closes or resets the
/// connection before a byte of answer is an [`io::ErrorKind::UnexpectedEof`] error saying
/// [`NO_ANSWER`].
pub(super) async fn read_head<IO>(io: &mut IO, to_head: bool) -> io::Result<Answered>
where
    IO: AsyncRead + Unpin,
{
    let mut buf = BytesMut::new();
    let mut any = false;
    loop {
        if !buf.is_empty() {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut answer = httparse::Response::new(&mut slots);
            let parsed = answer
                .parse(&buf)
                .map_err(|e| bad(format!("upstream answer head: {e}")))?;
            if let httparse::Status::Complete(len) = parsed {
                // However the head arrived (one read or many), the same limit.
                if len > MAX_HEAD {
                    return Err(bad("upstream answer head over 64 KiB"));
                }
                let code = answer.code.unwrap_or_default();
                let status = StatusCode::from_u16(code)
                    .map_err(|_| bad(format!("upstream answer status {code}")))?;
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    return Err(bad("upstream switched protocols unasked"));
                }
                if status.is_informational() {
                    buf.advance(len);
                    continue;
                }
                let mut headers = HeaderMap::with_capacity(answer.headers.len());
                let mut close = answer.version != Some(1);
                for h in answer.headers.iter() {
                    let name = HeaderName::from_bytes(h.name.as_bytes())
                        .map_err(|_| bad(format!("upstream header name {:?}", h.name)))?;
                    let value = HeaderValue::from_bytes(h.value)
                        .map_err(|_| bad(format!("upstream header {name} value")))?;
                    if name == header::CONNECTION {
                        close |= value
                            .as_bytes()
                            .split(|&b| b == b',')
                            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"));
                    }
                    headers.append(name, value);
                }
                let framing = if to_head {
                    Framing::Empty
                } else {
                    framing(status, &headers)?
                };
                buf.advance(len);
                return Ok(Answered {
                    head: Head { status, headers },
                    framing,
                    reusable: !close && framing != Framing::Close,
                    rest: buf,
                });
            }
        }
        if buf.len() >= MAX_HEAD {
            return Err(bad("upstream answer head over 64 KiB"));
        }
        buf.reserve(READ.min(MAX_HEAD - buf.len()));
        let got = match io.read_buf(&mut buf).await {
            Err(e) if !any && e.kind() == io::ErrorKind::ConnectionReset => 0,
            got => got?,
        };
        if got == 0 {
            let what = if any {
                "upstream closed the connection inside the answer's head"
            } else {
                NO_ANSWER
            };
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, what));
        }
        any = true;
    }
}

/// What [`read_head`] says when the upstream closed the connection without answering.
pub(super) const NO_ANSWER: &str = "upstream closed the connection before answering";

/// How the body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    Empty,
    Length(u64),
    Chunked,
    Close,
}

fn framing(status: StatusCode, headers: &HeaderMap) -> io::Result<Framing> {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Ok(Framing::Empty);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim);
        return Ok(match last {
            Some(c) if c.eq_ignore_ascii_case("chunked") => Framing::Chunked,
            _ => Framing::Close,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.to_str().unwrap_or("x").split(',') {
            let n: u64 = part
                .trim()
                .parse()
                .map_err(|_| bad("upstream Content-Length invalid"))?;
            if length.is_some_and(|l| l != n) {
                return Err(bad("upstream Content-Length values differ"));
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Empty,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// Where the body's decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `Content-Length` bytes still to come.
    Length(u64),
    /// Everything until the upstream closes.
    Close,
    /// Expecting a chunk-size line.
    Size,
    /// Inside a chunk: bytes still to come.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
    Done,
}

/// An answer's body as it arrives, as byte chunks; dropping it closes the connection (or,
/// once it has ended, `take_idle` takes it for another request).
#[derive(Debug)]
pub struct ListenBody<IO> {
    /// `None` once taken by [`ListenBody::take_idle`].
    io: Option<IO>,
    /// Received, not yet decoded; empty (and unallocated) between reads in the usual case.
    pending: BytesMut,
    state: State,
}

impl<IO: AsyncRead + Unpin> ListenBody<IO> {
    pub(super) fn new(io: IO, pending: BytesMut, framing: Framing) -> Self {
        let state = match framing {
            Framing::Empty => State::Done,
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Size,
            Framing::Close => State::Close,
        };
        Self {
            io: Some(io),
            pending,
            state,
        }
    }

    /// Whether the body has been read to its end (or broke).
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The connection, if the body ended cleanly with nothing after it: it may carry another
    /// request (if the answer's head said it could).
    pub(super) fn take_idle(&mut self) -> Option<IO> {
        if self.state == State::Done && self.pending.is_empty() {
            self.io.take()
        } else {
            None
        }
    }

    /// Reads once (into the stack) and appends what came; `Ok(0)` at the end of the input.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [MaybeUninit::<u8>::uninit(); READ];
        let mut into = ReadBuf::uninit(&mut chunk);
        let Some(io) = self.io.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let polled = Pin::new(io).poll_read(cx, &mut into);
        if polled.is_pending() {
            // A partial line waits for the rest: do not let it pin a larger allocation.
            if self.pending.capacity() > 2 * self.pending.len() + 64 {
                self.pending = BytesMut::from(&self.pending[..]);
            }
            return Poll::Pending;
        }
        ready!(polled)?;
        let got = into.filled();
        if self.pending.is_empty() {
            self.pending = BytesMut::from(got);
        } else {
            self.pending.extend_from_slice(got);
        }
        Poll::Ready(Ok(got.len()))
    }

    /// A whole line from `pending` (without its line end), or `None` until one is there.
    fn line(&mut self) -> io::Result<Option<BytesMut>> {
        match self.pending.iter().position(|&b| b == b'\n') {
            Some(end) => {
                let mut line = self.pending.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                Ok(Some(line))
            }
            None if self.pending.len() > MAX_LINE => Err(bad("upstream chunk line too long")),
            None => Ok(None),
        }
    }

    /// Up to `left` bytes of `pending`.
    fn take(&mut self, left: u64) -> Bytes {
        let n = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(self.pending.len());
        self.pending.split_to(n).freeze()
    }

    /// One step of decoding: `Some` output, or `None` when more input is needed.
    fn step(&mut self) -> io::Result<Option<Option<Bytes>>> {
        loop {
            match self.state {
                State::Done => return Ok(Some(None)),
                State::Close if !self.pending.is_empty() => {
                    return Ok(Some(Some(self.pending.split().freeze())));
                }
                State::Length(left) | State::Data(left) if !self.pending.is_empty() => {
                    let out = self.take(left);
                    let left = left - out.len() as u64;
                    self.state = match (self.state, left) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), n) => State::Length(n),
                        (_, 0) => State::DataEnd,
                        (_, n) => State::Data(n),
                    };
                    return Ok(Some(Some(out)));
                }
                State::Size => match self.line()? {
                    None => return Ok(None),
                    Some(line) => {
                        let size = chunk_size(&line)?;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    }
                },
                State::DataEnd => match self.line()? {
                    None => return Ok(None),
                    Some(line) if line.is_empty() => self.state = State::Size,
                    Some(_) => return Err(bad("upstream chunk longer than its size")),
                },
                State::Trailers => match self.line()? {
                    None => return Ok(None),
                    Some(line) if line.is_empty() => self.state = State::Done,
                    Some(_) => {}
                },
                State::Close | State::Length(_) | State::Data(_) => return Ok(None),
            }
        }
    }
}

/// A chunk-size line's size (extensions ignored).
fn chunk_size(line: &[u8]) -> io::Result<u64> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 15 {
        return Err(bad("upstream chunk size invalid"));
    }
    let text = std::str::from_utf8(digits).map_err(|_| bad("upstream chunk size invalid"))?;
    u64::from_str_radix(text, 16).map_err(|_| bad("upstream chunk size invalid"))
}

impl<IO: AsyncRead + Unpin> Stream for ListenBody<IO> {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            match this.step() {
                Ok(Some(out)) => return Poll::Ready(out.map(Ok)),
                Ok(None) => {}
                Err(e) => {
                    this.state = State::Done;
                    this.io = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
            match ready!(this.poll_fill(cx)) {
                Ok(0) => {
                    let ended = this.state == State::Close;
                    this.state = State::Done;
                    this.io = None;
                    if ended {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "upstream closed the connection inside the answer",
                    ))));
                }
                Ok(_) => {}
                Err(e) => {
                    this.state = State::Done;
                    this.io = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    /// A loopback server for one connection: reads the request head, then writes `pieces`
    /// with a pause between them, then keeps the connection open (`hold`) or closes it.
    /// Returns the address and the request head it read.
    async fn serve(
        pieces: Vec<Vec<u8>>,
        hold: bool,
    ) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut b = [0u8; 1];
                if s.read(&mut b).await.unwrap() == 0 {
                    break;
                }
                head.push(b[0]);
            }
            for p in pieces {
                s.write_all(&p).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if hold {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            String::from_utf8(head).unwrap()
        });
        (addr, task)
    }

    async fn get(
        pieces: Vec<Vec<u8>>,
        hold: bool,
    ) -> io::Result<(Head, ListenBody<TcpStream>, tokio::task::JoinHandle<String>)> {
        let (addr, task) = serve(pieces, hold).await;
        let io = TcpStream::connect(addr).await?;
        let uri: Uri = format!("http://{addr}/mcp?x=1").parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("accept", HeaderValue::from_static("text/event-stream"));
        headers.insert("content-length", HeaderValue::from_static("5"));
        let (head, body) = exchange(io, &request_head(&uri, &headers)).await?;
        Ok((head, body, task))
    }

    /// Every chunk until the end, or the first error.
    async fn drain(body: &mut ListenBody<TcpStream>) -> io::Result<Vec<u8>> {
        let mut all = Vec::new();
        while let Some(chunk) = body.next().await {
            all.extend_from_slice(&chunk?);
        }
        Ok(all)
    }

    const CHUNKED: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
        transfer-encoding: chunked\r\nx-two: a\r\nx-two: b\r\n\r\n\
        f;name=value\r\ndata: {\"a\":1}\n\n\r\n\
        10\r\n: keep-alive\r\n\n\n\r\n\
        0\r\nx-trailer: yes\r\n\r\n";
    const CHUNKED_BODY: &[u8] = b"data: {\"a\":1}\n\n: keep-alive\r\n\n\n";

    #[tokio::test]
    async fn a_chunked_answer_split_anywhere_decodes_the_same() {
        for at in 1..CHUNKED.len() {
            let pieces = vec![CHUNKED[..at].to_vec(), CHUNKED[at..].to_vec()];
            let (head, mut body, task) = get(pieces, true).await.unwrap();
            assert_eq!(head.status, StatusCode::OK, "split at {at}");
            let two: Vec<_> = head.headers.get_all("x-two").iter().collect();
            assert_eq!(two, ["a", "b"], "split at {at}");
            // Ends at the last chunk although the upstream keeps the connection open.
            assert_eq!(drain(&mut body).await.unwrap(), CHUNKED_BODY, "at {at}");
            task.abort();
        }
    }

    #[tokio::test]
    async fn the_request_names_the_host_and_target_and_carries_no_body_framing() {
        let (_, mut body, task) = get(vec![CHUNKED.to_vec()], false).await.unwrap();
        drain(&mut body).await.unwrap();
        let head = task.await.unwrap();
        assert!(
            head.starts_with("GET /mcp?x=1 HTTP/1.1\r\nhost: 127.0.0.1:"),
            "{head}"
        );
        assert!(head.contains("\r\naccept: text/event-stream\r\n"), "{head}");
        assert!(!head.contains("content-length"), "{head}");
    }

    #[test]
    fn a_request_head_names_the_host_as_the_uri_does() {
        let mut out = Vec::new();
        let uri: Uri = "http://example.test:8080/p?q=1".parse().unwrap();
        write_head(
            &mut out,
            &Method::POST,
            &uri,
            &HeaderMap::new(),
            Length::Known(7),
        );
        assert_eq!(
            out,
            b"POST /p?q=1 HTTP/1.1\r\nhost: example.test:8080\r\ncontent-length: 7\r\n\r\n"
        );
        out.clear();
        let uri: Uri = "https://example.test:443".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("transfer-encoding", HeaderValue::from_static("gzip"));
        headers.insert("x-a", HeaderValue::from_static("1"));
        write_head(&mut out, &Method::PUT, &uri, &headers, Length::Chunked);
        assert_eq!(
            out,
            b"PUT / HTTP/1.1\r\nhost: example.test\r\nx-a: 1\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        // A Host the caller set is kept, not doubled.
        out.clear();
        headers.insert(header::HOST, HeaderValue::from_static("other.test"));
        write_head(&mut out, &Method::GET, &uri, &headers, Length::None);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("host:").count(), 1, "{text}");
        assert!(text.contains("host: other.test\r\n"), "{text}");
    }

    #[tokio::test]
    async fn between_events_an_open_stream_holds_no_buffer() {
        let pieces = vec![CHUNKED[..CHUNKED.len() - 21].to_vec()];
        let (_, mut body, task) = get(pieces, true).await.unwrap();
        assert_eq!(
            &body.next().await.unwrap().unwrap()[..],
            b"data: {\"a\":1}\n\n"
        );
        assert_eq!(
            &body.next().await.unwrap().unwrap()[..],
            b": keep-alive\r\n\n\n"
        );
        // Waiting for the next chunk (the upstream is quiet): nothing buffered.
        let quiet = tokio::time::timeout(Duration::from_millis(50), body.next()).await;
        assert!(quiet.is_err(), "the stream should still be open");
        assert_eq!(body.pending.capacity(), 0);
        task.abort();
    }

    #[tokio::test]
    async fn content_length_and_close_delimited_bodies() {
        let sized =
            b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 12\r\n\r\nnot allowed!".to_vec();
        let (head, mut body, task) = get(vec![sized[..50].to_vec(), sized[50..].to_vec()], true)
            .await
            .unwrap();
        assert_eq!(head.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(drain(&mut body).await.unwrap(), b"not allowed!");
        task.abort();

        let until_close =
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n".to_vec();
        let (_, mut body, task) = get(vec![until_close], false).await.unwrap();
        assert_eq!(drain(&mut body).await.unwrap(), b"data: 1\n\n");
        task.await.unwrap();

        let empty = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
        let (head, mut body, task) = get(vec![empty], true).await.unwrap();
        assert_eq!(head.status, StatusCode::NO_CONTENT);
        assert!(drain(&mut body).await.unwrap().is_empty());
        task.abort();
    }

    #[tokio::test]
    async fn informational_answers_are_skipped() {
        let answer = b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n\
            HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
            .to_vec();
        let (head, mut body, task) = get(vec![answer], true).await.unwrap();
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.headers.get("link").is_none());
        assert_eq!(drain(&mut body).await.unwrap(), b"ok");
        task.abort();
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error_not_an_end() {
        let cut = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n10\r\nonly part".to_vec();
        let (_, mut body, task) = get(vec![cut], false).await.unwrap();
        let e = drain(&mut body).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        task.await.unwrap();

        let short = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc".to_vec();
        let (_, mut body, task) = get(vec![short], false).await.unwrap();
        assert_eq!(
            drain(&mut body).await.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        task.await.unwrap();

        let (addr, task) = serve(Vec::new(), false).await;
        let io = TcpStream::connect(addr).await.unwrap();
        let e = exchange(io, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn malformed_answers_are_clear_errors() {
        let cases: [(&[u8], &str); 6] = [
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
                "chunk size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n",
                "longer than its size",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
                "values differ",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
                "Content-Length invalid",
            ),
            (
                b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
                "switched protocols",
            ),
            (b"HTTP/9 ok\r\n\r\n", "answer head"),
        ];
        for (answer, says) in cases {
            let got = match get(vec![answer.to_vec()], true).await {
                Err(e) => e,
                Ok((_, mut body, task)) => {
                    task.abort();
                    drain(&mut body).await.unwrap_err()
                }
            };
            assert!(got.to_string().contains(says), "{got} should say {says}");
        }
        let mut long = b"HTTP/1.1 200 OK\r\nx-big: ".to_vec();
        long.resize(MAX_HEAD + 10, b'a');
        let e = get(vec![long], true).await.unwrap_err();
        assert!(e.to_string().contains("over 64 KiB"), "{e}");
    }
}
