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
use std::fmt::Write as _;
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

/// Writes the status line and the headers, then `tail` (a small body).
fn head_bytes(
    status: StatusCode,
    headers: &HeaderMap,
    extra: &[(&str, &[u8])],
    tail: &[u8],
) -> Bytes {
    let mut b = BytesMut::with_capacity(128 + headers.len() * 40 + tail.len());
    let reason = status.canonical_reason().unwrap_or("");
    let _ = write!(b, "HTTP/1.1 {} {reason}\r\n", status.as_str());
    put_fields(&mut b, headers);
    for (name, value) in extra {
        b.put_slice(name.as_bytes());
        b.put_slice(b": ");
        b.put_slice(value);
        b.put_slice(b"\r\n");
    }
    b.put_slice(b"\r\n");
    b.put_slice(tail);
    b.freeze()
}

/// Writes `name: value` lines (a header section or a trailer section).
pub(crate) fn put_fields(b: &mut BytesMut, fields: &HeaderMap) {
    for (name, value) in fields {
        b.put_slice(name.as_str().as_bytes());
        b.put_slice(b": ");
        b.put_slice(value.as_bytes());
        b.put_slice(b"\r\n");
    }
}

/// Fills in `Date` and `Connection: close` as needed.
fn complete_headers(headers: &mut HeaderMap, req: &RequestInfo) {
    if !headers.contains_key(DATE) {
        headers.insert(DATE, date_now());
    }
    if req.last && !headers.contains_key(CONNECTION) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    } else if !req.last && req.version == Version::HTTP_10 {
        headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
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

/// Encodes a full response; the messages to write, in order.
pub(crate) fn encode_full(resp: Response<FullBody>, req: &RequestInfo) -> Vec<Msg> {
    let (mut parts, body) = resp.into_parts();
    complete_headers(&mut parts.headers, req);
    let allowed = body_allowed(req, parts.status);
    let len_value;
    let mut extra: Vec<(&str, &[u8])> = Vec::new();
    if !parts.headers.contains_key(CONTENT_LENGTH)
        && parts.status != StatusCode::NO_CONTENT
        && !parts.status.is_informational()
        && (allowed || parts.status != StatusCode::NOT_MODIFIED)
    {
        len_value = body.len().to_string();
        extra.push(("content-length", len_value.as_bytes()));
    }
    if !allowed {
        return vec![Msg::Bytes(head_bytes(
            parts.status,
            &parts.headers,
            &extra,
            &[],
        ))];
    }
    if let FullBody::Bytes(b) = &body {
        if b.len() <= COPY_BODY_MAX {
            return vec![Msg::Bytes(head_bytes(
                parts.status,
                &parts.headers,
                &extra,
                b,
            ))];
        }
    }
    let head = head_bytes(parts.status, &parts.headers, &extra, &[]);
    match body {
        FullBody::Empty => vec![Msg::Bytes(head)],
        FullBody::Bytes(b) => {
            let mut c = CompositeBytes::from(head);
            c.push(b);
            vec![Msg::Composite(c)]
        }
        FullBody::Composite(mut c) => {
            c.push_front(head);
            vec![Msg::Composite(c)]
        }
        FullBody::File(f) => vec![Msg::Bytes(head), Msg::File(f)],
    }
}

/// Encodes a streamed response's head; the framing of what follows.
pub(crate) fn encode_stream_head(resp: Response<()>, req: &mut RequestInfo) -> (Bytes, Streaming) {
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
    complete_headers(&mut parts.headers, req);
    (
        head_bytes(parts.status, &parts.headers, &[], &[]),
        streaming,
    )
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
