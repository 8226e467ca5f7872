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

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
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
#[derive(Clone, Debug)]
pub(crate) struct RequestInfo {
    pub(crate) method: Method,
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
            method: Method::GET,
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
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
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
    !(req.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

thread_local! {
    static DATE_CACHE: RefCell<(u64, HeaderValue)> =
        const { RefCell::new((0, HeaderValue::from_static(""))) };
}

/// The `Date` header's value, formatted once per second per thread.
pub(crate) fn date_now() -> HeaderValue {
    let now = SystemTime::now();
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE_CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != secs || c.1.is_empty() {
            let text = httpdate::fmt_http_date(now);
            c.1 = HeaderValue::from_str(&text).expect("an HTTP date is a valid header value");
            c.0 = secs;
        }
        c.1.clone()
    })
}

/// Bodies up to this size are copied after their head into one buffer: one
/// small copy costs less than joining two pieces (Netty's small-write
/// combining); larger bodies are joined by reference.
const COPY_BODY_MAX: usize = 1024;

/// The least a fresh encode buffer holds: room for a batch of small answers.
const ENCODE_CHUNK: usize = 4096;

/// Where a connection's answers are encoded.
///
/// Heads (and small bodies) are appended to one buffer and each answer is
/// split off it as a `Bytes`, so answers written in a row lie side by side
/// in memory and the transport sends a pipelined batch as one segment,
/// without copying. The buffer is let go at each flush (the answers keep it
/// alive until they are written), so an idle connection holds none. The
/// `Date` value is looked up once per batch (a read or a flush begins one),
/// not once per answer.
#[derive(Debug, Default)]
pub(crate) struct HeadWriter {
    buf: BytesMut,
    date: Option<HeaderValue>,
}

/// Fields the encoder adds after the application's.
#[derive(Default)]
struct Added {
    date: bool,
    connection: Option<&'static [u8]>,
    length: Option<u64>,
}

impl HeadWriter {
    /// A read begins a batch of answers: look at the clock again.
    pub(crate) fn new_batch(&mut self) {
        self.date = None;
    }

    /// A flush ends a batch: let the buffer go, look at the clock again.
    pub(crate) fn end_batch(&mut self) {
        self.buf = BytesMut::new();
        self.date = None;
    }

    /// The fields the encoder adds to `headers` for `req`: `Date` unless
    /// present, `Connection` when the connection ends after this answer (or
    /// stays open for an HTTP/1.0 client).
    fn added(headers: &HeaderMap, req: &RequestInfo) -> Added {
        let connection = if req.last && !headers.contains_key(CONNECTION) {
            Some(&b"close"[..])
        } else if !req.last && req.version == Version::HTTP_10 {
            Some(&b"keep-alive"[..])
        } else {
            None
        };
        Added {
            date: !headers.contains_key(DATE),
            connection,
            length: None,
        }
    }

    /// Writes the status line, the headers, the added fields and the blank
    /// line, then `tail` (a small body), and splits it all off.
    fn head(
        &mut self,
        status: StatusCode,
        headers: &HeaderMap,
        added: Added,
        tail: &[u8],
    ) -> Bytes {
        let date = match (&self.date, added.date) {
            (_, false) => None,
            (Some(d), true) => Some(d.clone()),
            (None, true) => {
                let d = date_now();
                self.date = Some(d.clone());
                Some(d)
            }
        };
        let reason = status.canonical_reason().unwrap_or("");
        let need = 64
            + reason.len()
            + headers
                .iter()
                .map(|(n, v)| n.as_str().len() + v.len() + 4)
                .sum::<usize>()
            + tail.len();
        if self.buf.capacity() < need {
            self.buf.reserve(need.max(ENCODE_CHUNK));
        }
        let b = &mut self.buf;
        b.put_slice(b"HTTP/1.1 ");
        b.put_slice(status.as_str().as_bytes());
        b.put_u8(b' ');
        b.put_slice(reason.as_bytes());
        b.put_slice(b"\r\n");
        put_fields(b, headers);
        if let Some(d) = date {
            put_field(b, b"date", d.as_bytes());
        }
        if let Some(c) = added.connection {
            put_field(b, b"connection", c);
        }
        if let Some(n) = added.length {
            put_field(
                b,
                b"content-length",
                itoa::Buffer::new().format(n).as_bytes(),
            );
        }
        b.put_slice(b"\r\n");
        b.put_slice(tail);
        b.split().freeze()
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

/// Encodes a full response; the messages to write, in order (the head,
/// then a file body apart).
pub(crate) fn encode_full(
    w: &mut HeadWriter,
    resp: Response<FullBody>,
    req: &RequestInfo,
) -> (Msg, Option<Msg>) {
    let (parts, body) = resp.into_parts();
    let mut added = HeadWriter::added(&parts.headers, req);
    let allowed = body_allowed(req, parts.status);
    if !parts.headers.contains_key(CONTENT_LENGTH)
        && parts.status != StatusCode::NO_CONTENT
        && !parts.status.is_informational()
        && (allowed || parts.status != StatusCode::NOT_MODIFIED)
    {
        added.length = Some(body.len());
    }
    if !allowed {
        return (
            Msg::Bytes(w.head(parts.status, &parts.headers, added, &[])),
            None,
        );
    }
    if let FullBody::Bytes(b) = &body {
        if b.len() <= COPY_BODY_MAX {
            return (
                Msg::Bytes(w.head(parts.status, &parts.headers, added, b)),
                None,
            );
        }
    }
    let head = w.head(parts.status, &parts.headers, added, &[]);
    match body {
        FullBody::Empty => (Msg::Bytes(head), None),
        FullBody::Bytes(b) => {
            let mut c = CompositeBytes::from(head);
            c.push(b);
            (Msg::Composite(c), None)
        }
        FullBody::Composite(mut c) => {
            c.push_front(head);
            (Msg::Composite(c), None)
        }
        FullBody::File(f) => (Msg::Bytes(head), Some(Msg::File(f))),
    }
}

/// Encodes a streamed response's head; the framing of what follows.
pub(crate) fn encode_stream_head(
    w: &mut HeadWriter,
    resp: Response<()>,
    req: &mut RequestInfo,
) -> (Bytes, Streaming) {
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
    let added = HeadWriter::added(&parts.headers, req);
    (w.head(parts.status, &parts.headers, added, &[]), streaming)
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
