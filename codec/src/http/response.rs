//! Encoding responses: the head, and the body framed as the request and
//! the status allow (RFC 9112 §6, RFC 9110 §6.4.1).
//!
//! Contract:
//! - a full response (`http::Response<B>` with `B` one of `()`, `Bytes`,
//!   `CompositeBytes`, `FileRegion`) gets `Content-Length` unless it has
//!   one; its body is written by reference (a `FileRegion` still leaves by
//!   `sendfile`), except a body of at most 1 KiB, copied after the head
//!   into one buffer (cheaper than joining two pieces);
//! - a streamed response ([`HttpResponsePart::Head`], then `Bytes`,
//!   `CompositeBytes` or `FileRegion` messages, then
//!   [`HttpResponsePart::End`]) without `Content-Length` uses the chunked
//!   coding for an HTTP/1.1 request and ends the connection after the body
//!   for an HTTP/1.0 one;
//! - no body is written for HEAD requests, 1xx, 204 and 304 (the headers
//!   still describe the body a GET would have);
//! - every response carries a `Date` (formatted once per second per
//!   thread) and, when the connection ends after it, `Connection: close`.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Response, StatusCode, Version};
use weft_core::{CompositeBytes, FileRegion, Msg};

/// Parts of a streamed response, as a handler writes them.
#[derive(Debug)]
pub enum HttpResponsePart {
    /// The head; the body follows as `Bytes`, `CompositeBytes` or
    /// `FileRegion` messages.
    Head(Response<()>),
    /// The body is over; trailers are sent with the chunked coding only.
    End(HeaderMap),
}

/// What the encoder knows of the request a response answers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestInfo {
    /// It is a HEAD request: the answer has no body.
    pub(crate) head: bool,
    pub(crate) version: Version,
    /// The connection ends after this exchange.
    pub(crate) last: bool,
    /// The request was invalid: the status to answer with.
    pub(crate) invalid: Option<StatusCode>,
    /// The request's body broke after the request was answered: end the
    /// connection in its turn, answer nothing more.
    pub(crate) mute: bool,
    /// The request's number on the connection.
    pub(crate) seq: u64,
    /// The request asked to switch protocols (`Connection: upgrade` with
    /// `Upgrade`): a 101 may answer it.
    pub(crate) upgrade: bool,
}

impl RequestInfo {
    /// What an answer that comes with no request answers.
    pub(crate) fn unknown() -> RequestInfo {
        RequestInfo {
            head: false,
            version: Version::HTTP_11,
            last: false,
            invalid: None,
            mute: false,
            seq: 0,
            upgrade: false,
        }
    }
}

/// Whether `headers` carry the `close` connection option.
pub(crate) fn says_close(headers: &HeaderMap) -> bool {
    has_token(headers, CONNECTION, "close")
}

/// Whether a message of `version` with `headers` leaves the connection
/// open (RFC 9112 §9.3): HTTP/1.1 unless `Connection: close`, HTTP/1.0 only
/// with `Connection: keep-alive`.
pub(crate) fn persistent(version: Version, headers: &HeaderMap) -> bool {
    let has = |token| has_token(headers, CONNECTION, token);
    match version {
        Version::HTTP_10 => has("keep-alive"),
        _ => !has("close"),
    }
}

/// Whether a comma-separated field has `token` (case-insensitive).
pub(crate) fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .any(|v| value_has_token(v, token))
}

/// Whether a comma-separated value has `token` (case-insensitive).
fn value_has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        .unwrap_or(false)
}

/// How the body being streamed is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Streaming {
    /// Written as it comes (a known length, or close-delimited).
    Raw,
    /// With the chunked coding.
    Chunked,
    /// Dropped (HEAD, 204, 304).
    Suppressed,
}

/// Whether a response to `req` with `status` may have a body.
fn body_allowed(req: &RequestInfo, status: StatusCode) -> bool {
    !(req.head
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

/// Length of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
const DATE_LEN: usize = 29;

/// The whole `Date` field line: `date: `, the date, CRLF.
const DATE_LINE_LEN: usize = 6 + DATE_LEN + 2;

thread_local! {
    static DATE_CACHE: Cell<(u64, [u8; DATE_LINE_LEN])> =
        const { Cell::new((0, [0; DATE_LINE_LEN])) };
}

/// The `Date` field line, formatted once per second per thread.
fn date_now() -> [u8; DATE_LINE_LEN] {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE_CACHE.with(|c| {
        let (at, text) = c.get();
        if at == secs && text[0] != 0 {
            return text;
        }
        let mut fresh = [b' '; DATE_LINE_LEN];
        fresh[..6].copy_from_slice(b"date: ");
        let formatted = httpdate::fmt_http_date(now);
        let n = formatted.len().min(DATE_LEN);
        fresh[6..][..n].copy_from_slice(&formatted.as_bytes()[..n]);
        fresh[DATE_LINE_LEN - 2..].copy_from_slice(b"\r\n");
        c.set((secs, fresh));
        fresh
    })
}

/// Bodies up to this size are copied after their head into one buffer: one
/// small copy costs less than joining two pieces (Netty's small-write
/// combining); larger bodies are joined by reference.
const COPY_BODY_MAX: usize = 1024;

/// The least room an encode buffer is given when it runs short: a
/// pipelined batch of small answers.
const ENCODE_CHUNK: usize = 4096;

/// Most encoded bytes held back before they are handed on unflushed: what
/// the codec holds is not counted by the channel's watermarks, so it is
/// kept to a few pages.
pub(crate) const PENDING_MAX: usize = 16 * 1024;

/// Where a connection's answers are encoded.
///
/// Heads (and small bodies) are appended to one buffer, and answers
/// written in a row stay there until a flush, a write with a promise, a
/// body written by reference, or [`PENDING_MAX`] bytes: then the buffer
/// goes on as one `Bytes`, so a pipelined batch is one message and one
/// segment. The buffer comes from the per-thread pool (`buffers.rs`), and
/// when the bytes leave, the room after them goes back there: an idle
/// connection holds none, and in the steady state an answer allocates
/// nothing (the memory is reused once the bytes are sent). The `Date` line
/// is looked up once per batch (a flush begins one), not once per answer.
#[derive(Debug, Default)]
pub(crate) struct HeadWriter {
    buf: BytesMut,
    date: Option<[u8; DATE_LINE_LEN]>,
}

/// What the encoder adds after the application's fields, unless they
/// carry it already.
struct Added {
    /// `Connection: close` (the last answer of the connection).
    close: bool,
    /// `Connection: keep-alive` (an HTTP/1.0 client that stays).
    keep_alive: bool,
    /// `Content-Length`, for a full response's body.
    length: Option<u64>,
}

impl Added {
    fn for_request(req: &RequestInfo) -> Added {
        Added {
            close: req.last,
            keep_alive: !req.last && req.version == Version::HTTP_10,
            length: None,
        }
    }
}

impl HeadWriter {
    /// A read or a flush begins a batch of answers: look at the clock
    /// again.
    pub(crate) fn new_batch(&mut self) {
        self.date = None;
    }

    /// Bytes encoded and not yet handed on.
    pub(crate) fn pending(&self) -> usize {
        self.buf.len()
    }

    /// The encoded bytes not yet handed on, if any; the buffer is let go.
    pub(crate) fn take(&mut self) -> Option<Bytes> {
        if self.buf.is_empty() {
            return None;
        }
        // The bytes leave; the room after them goes back to the pool.
        let bytes = self.buf.split().freeze();
        super::buffers::give(std::mem::take(&mut self.buf));
        Some(bytes)
    }

    /// Appends the status line, the headers, the fields the encoder adds
    /// (`Date`, `Connection`, `Content-Length`, each unless present) and
    /// the blank line, then `tail` (a small body). One pass over `headers`;
    /// returns whether they carry the `close` connection option.
    fn head(&mut self, status: StatusCode, headers: &HeaderMap, added: Added, tail: &[u8]) -> bool {
        if self.buf.capacity() == 0 {
            self.buf = super::buffers::take();
        }
        let want = tail.len().saturating_add(512);
        if self.buf.capacity().saturating_sub(self.buf.len()) < want {
            self.buf.reserve(ENCODE_CHUNK.max(want));
        }
        let b = &mut self.buf;
        if status == StatusCode::OK {
            // Most answers: one copy.
            b.put_slice(b"HTTP/1.1 200 OK\r\n");
        } else {
            b.put_slice(b"HTTP/1.1 ");
            b.put_slice(status.as_str().as_bytes());
            b.put_u8(b' ');
            b.put_slice(status.canonical_reason().unwrap_or("").as_bytes());
            b.put_slice(b"\r\n");
        }
        let (mut has_date, mut has_connection, mut has_length) = (false, false, false);
        let mut close = false;
        for (name, value) in headers {
            if *name == DATE {
                has_date = true;
            } else if *name == CONNECTION {
                has_connection = true;
                close |= value_has_token(value, "close");
            } else if *name == CONTENT_LENGTH {
                has_length = true;
            }
            put_field(b, name.as_str().as_bytes(), value.as_bytes());
        }
        if !has_date {
            let line = self.date.get_or_insert_with(date_now);
            self.buf.put_slice(&line[..]);
        }
        let b = &mut self.buf;
        if added.close && !has_connection {
            put_field(b, b"connection", b"close");
        } else if added.keep_alive && !has_connection {
            put_field(b, b"connection", b"keep-alive");
        }
        if let (Some(n), false) = (added.length, has_length) {
            put_field(
                b,
                b"content-length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        b.put_slice(b"\r\n");
        b.put_slice(tail);
        close
    }
}

fn put_field(b: &mut BytesMut, name: &[u8], value: &[u8]) {
    b.put_slice(name);
    b.put_slice(b": ");
    b.put_slice(value);
    b.put_slice(b"\r\n");
}

/// Writes `name: value` lines (a header section or a trailer section).
pub(crate) fn put_fields(b: &mut BytesMut, fields: &HeaderMap) {
    for (name, value) in fields {
        put_field(b, name.as_str().as_bytes(), value.as_bytes());
    }
}

/// A full response's body.
pub(crate) enum FullBody {
    Empty,
    Bytes(Bytes),
    Composite(CompositeBytes),
    File(FileRegion),
}

impl FullBody {
    pub(crate) fn len(&self) -> u64 {
        match self {
            FullBody::Empty => 0,
            FullBody::Bytes(b) => b.len() as u64,
            FullBody::Composite(c) => c.len() as u64,
            FullBody::File(f) => f.remaining(),
        }
    }

    /// The message a full response travels as (the inverse of
    /// [`from_msg`](FullBody::from_msg)).
    pub(crate) fn into_msg(resp: Response<FullBody>) -> Msg {
        let (parts, body) = resp.into_parts();
        match body {
            FullBody::Empty => Msg::user(Response::from_parts(parts, ())),
            FullBody::Bytes(b) => Msg::user(Response::from_parts(parts, b)),
            FullBody::Composite(c) => Msg::user(Response::from_parts(parts, c)),
            FullBody::File(f) => Msg::user(Response::from_parts(parts, f)),
        }
    }

    /// Whether a message is a full response ([`from_msg`](FullBody::from_msg)
    /// would take it).
    pub(crate) fn is_full(msg: &Msg) -> bool {
        msg.is::<Response<()>>()
            || msg.is::<Response<Bytes>>()
            || msg.is::<Response<CompositeBytes>>()
            || msg.is::<Response<FileRegion>>()
    }

    /// Takes a full response out of a message, or gives the message back.
    pub(crate) fn from_msg(msg: Msg) -> Result<Response<FullBody>, Msg> {
        let msg = match msg.downcast::<Response<()>>() {
            Ok(r) => return Ok(r.map(|_| FullBody::Empty)),
            Err(m) => m,
        };
        let msg = match msg.downcast::<Response<Bytes>>() {
            Ok(r) => return Ok(r.map(FullBody::Bytes)),
            Err(m) => m,
        };
        let msg = match msg.downcast::<Response<CompositeBytes>>() {
            Ok(r) => return Ok(r.map(FullBody::Composite)),
            Err(m) => m,
        };
        match msg.downcast::<Response<FileRegion>>() {
            Ok(r) => Ok(r.map(FullBody::File)),
            Err(m) => Err(m),
        }
    }
}

/// Encodes a full response: its head (and a small body) is appended to
/// `w`; returns what must follow it by reference (a larger body, a file),
/// and whether the response says `Connection: close`. The response's map
/// goes back to the pool of maps that request heads are parsed into.
pub(crate) fn encode_full(
    w: &mut HeadWriter,
    resp: Response<FullBody>,
    req: &RequestInfo,
) -> (Option<Msg>, bool) {
    let (parts, body) = resp.into_parts();
    let mut added = Added::for_request(req);
    let allowed = body_allowed(req, parts.status);
    if parts.status != StatusCode::NO_CONTENT
        && !parts.status.is_informational()
        && (allowed || parts.status != StatusCode::NOT_MODIFIED)
    {
        added.length = Some(body.len());
    }
    let tail: &[u8] = match &body {
        FullBody::Bytes(b) if allowed && b.len() <= COPY_BODY_MAX => b,
        _ => &[],
    };
    let close = w.head(parts.status, &parts.headers, added, tail);
    super::maps::give(parts.headers);
    let rest = match body {
        _ if !allowed => None,
        FullBody::Empty => None,
        FullBody::Bytes(b) if b.len() <= COPY_BODY_MAX => None,
        FullBody::Bytes(b) => Some(Msg::Bytes(b)),
        FullBody::Composite(c) => Some(Msg::Composite(c)),
        FullBody::File(f) => Some(Msg::File(f)),
    };
    (rest, close)
}

/// Encodes a streamed response's head into `w`; the framing of what
/// follows.
pub(crate) fn encode_stream_head(
    w: &mut HeadWriter,
    resp: Response<()>,
    req: &mut RequestInfo,
) -> Streaming {
    let (mut parts, ()) = resp.into_parts();
    let allowed = body_allowed(req, parts.status);
    let known = parts.headers.contains_key(CONTENT_LENGTH);
    let streaming = if !allowed {
        Streaming::Suppressed
    } else if known {
        Streaming::Raw
    } else if req.version == Version::HTTP_11 {
        parts.headers.remove(TRANSFER_ENCODING);
        parts
            .headers
            .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
        Streaming::Chunked
    } else {
        // HTTP/1.0 without a length: the end of the connection ends the body.
        req.last = true;
        Streaming::Raw
    };
    w.head(parts.status, &parts.headers, Added::for_request(req), &[]);
    super::maps::give(parts.headers);
    streaming
}

/// Frames one piece of a streamed body.
pub(crate) fn encode_chunk(msg: Msg, streaming: Streaming) -> Vec<Msg> {
    let len = match &msg {
        Msg::Bytes(b) => b.len() as u64,
        Msg::Composite(c) => c.len() as u64,
        Msg::File(f) => f.remaining(),
        Msg::User(_) => 0,
    };
    match streaming {
        Streaming::Suppressed => Vec::new(),
        Streaming::Raw => vec![msg],
        Streaming::Chunked if len == 0 => Vec::new(),
        Streaming::Chunked => vec![
            Msg::Bytes(Bytes::from(format!("{len:x}\r\n"))),
            msg,
            Msg::Bytes(Bytes::from_static(b"\r\n")),
        ],
    }
}

/// Ends a streamed body.
pub(crate) fn encode_end(trailers: &HeaderMap, streaming: Streaming) -> Option<Bytes> {
    if streaming != Streaming::Chunked {
        return None;
    }
    let mut b = BytesMut::from(&b"0\r\n"[..]);
    put_fields(&mut b, trailers);
    b.put_slice(b"\r\n");
    Some(b.freeze())
}
