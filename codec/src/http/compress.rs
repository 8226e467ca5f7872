//! [`HttpContentCompressor`]: response bodies compressed with gzip or
//! brotli as the request's `Accept-Encoding` allows (Netty's
//! `HttpContentCompressor`).
//!
//! Contract:
//! - placed after [`HttpServerCodec`](super::HttpServerCodec), it notes
//!   each request's `Accept-Encoding` (in order: answers follow requests)
//!   and compresses the answer's body when the client accepts brotli or
//!   gzip (brotli preferred), the body is at least `threshold` bytes (a
//!   streamed one of unknown length always qualifies), its type is not an
//!   already-compressed one (images, audio, video, archives), it has no
//!   `Content-Encoding` yet, and the status is not 1xx, 204, 206 or 304;
//! - a compressed answer gets `Content-Encoding`, `Vary: accept-encoding`,
//!   no `Content-Length` (the codec sets the new one, or uses the chunked
//!   coding for a stream), and a weak `ETag`; streamed pieces are
//!   compressed and flushed one by one;
//! - `FileRegion` bodies leave uncompressed by `sendfile` unless
//!   [`compress_files`](HttpContentCompressor::compress_files) allows files
//!   up to a size: those are then read and compressed;
//! - HEAD requests and answers the client did not ask to compress pass
//!   untouched.

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};
use weft_core::{Context, Events, Handler, Msg, Promise};

use super::coding::{choose, compress, Coding, Encoder};
use super::request::HttpRequestPart;
use super::response::{FullBody, HttpResponsePart};

/// Default smallest body worth compressing: 1 KiB (below it the coding's
/// overhead eats the gain).
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 1024;

/// Compresses answers; see the module's contract.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::http::{http, HttpContentCompressor, HttpServerCodec};
/// use weft_core::{EmbeddedChannel, Msg};
///
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("http", HttpServerCodec::new())
///     .add_last("gzip", HttpContentCompressor::new())
///     .build();
/// ch.write_inbound(&b"GET / HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\n\r\n"[..]);
/// let body = Bytes::from("hello ".repeat(1000));
/// ch.write_outbound(Msg::user(http::Response::new(body)));
/// let out = ch.read_outbound_bytes();
/// let head = String::from_utf8_lossy(&out[..out.len().min(300)]).to_string();
/// assert!(head.contains("content-encoding: gzip\r\n"), "{head}");
/// ```
#[derive(Debug)]
pub struct HttpContentCompressor {
    threshold: usize,
    max_file: u64,
    /// Each unanswered request's chosen coding.
    pending: VecDeque<Option<Coding>>,
    /// The streamed answer being written: its encoder, if compressed.
    streaming: Option<Option<EncoderBox>>,
}

/// An encoder, with a manual `Debug`.
struct EncoderBox(Encoder);

impl std::fmt::Debug for EncoderBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Encoder")
    }
}

impl Default for HttpContentCompressor {
    fn default() -> Self {
        HttpContentCompressor::new()
    }
}

/// Whether a `Content-Type` names an already-compressed format.
fn precompressed(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let ct = ct.trim().to_ascii_lowercase();
    ["image/", "audio/", "video/", "font/woff"]
        .iter()
        .any(|p| ct.starts_with(p))
        && !ct.starts_with("image/svg")
        || [
            "application/zip",
            "application/gzip",
            "application/x-gzip",
            "application/zstd",
            "application/x-bzip2",
            "application/x-xz",
            "application/pdf",
            "application/wasm",
        ]
        .iter()
        .any(|p| ct.starts_with(p))
}

/// Whether an answer with `status` and `headers` may be compressed at all.
fn compressible(status: StatusCode, headers: &HeaderMap) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || headers.contains_key(CONTENT_ENCODING)
        || precompressed(headers))
}

/// Marks the headers of a compressed answer.
fn mark(headers: &mut HeaderMap, coding: Coding) {
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    headers.remove(CONTENT_LENGTH);
    headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    if let Some(tag) = headers.get(ETAG).and_then(|v| v.to_str().ok()) {
        if !tag.starts_with("W/") {
            if let Ok(weak) = HeaderValue::from_str(&format!("W/{tag}")) {
                headers.insert(ETAG, weak);
            }
        }
    }
}

impl HttpContentCompressor {
    /// A compressor with the default threshold that leaves files alone.
    pub fn new() -> HttpContentCompressor {
        HttpContentCompressor {
            threshold: DEFAULT_COMPRESSION_THRESHOLD,
            max_file: 0,
            pending: VecDeque::new(),
            streaming: None,
        }
    }

    /// Smallest body compressed (default 1 KiB).
    pub fn threshold(mut self, bytes: usize) -> Self {
        self.threshold = bytes;
        self
    }

    /// Compresses `FileRegion` bodies up to `max` bytes (read from the
    /// file, so they no longer leave by `sendfile`); default 0: never.
    pub fn compress_files(mut self, max: u64) -> Self {
        self.max_file = max;
        self
    }

    /// A full answer: compressed if it qualifies.
    fn full(&mut self, resp: Response<FullBody>, coding: Option<Coding>) -> Msg {
        let len = resp.body().len();
        let qualifies = coding.is_some()
            && compressible(resp.status(), resp.headers())
            && len >= self.threshold as u64
            && !matches!(resp.body(), FullBody::File(_) if len > self.max_file);
        let Some(coding) = coding.filter(|_| qualifies) else {
            return FullBody::into_msg(resp);
        };
        let (mut parts, body) = resp.into_parts();
        let packed = match body {
            FullBody::Empty => {
                return FullBody::into_msg(Response::from_parts(parts, FullBody::Empty))
            }
            FullBody::Bytes(b) => compress(coding, &[&b]),
            FullBody::Composite(c) => {
                let chunks: Vec<&[u8]> = c.chunks().map(|b| &b[..]).collect();
                compress(coding, &chunks)
            }
            FullBody::File(mut f) => match f.read_chunk(len as usize) {
                Ok(data) => compress(coding, &[&data]),
                Err(e) => Err(std::io::Error::other(e)),
            },
        };
        match packed {
            Ok(packed) => {
                mark(&mut parts.headers, coding);
                Msg::user(Response::from_parts(parts, packed))
            }
            Err(e) => {
                // Nothing to send as it was (the body was consumed): an
                // honest error answer rather than a broken body.
                tracing::warn!(error = %e, "compression failed");
                let mut r = Response::new(Bytes::from_static(b"compression failed\n"));
                *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                Msg::user(r)
            }
        }
    }

    /// A piece of a streamed body while compressing: the compressed
    /// bytes, or the message back if it is not body bytes.
    fn piece(enc: &mut Encoder, msg: Msg) -> Result<std::io::Result<Bytes>, Msg> {
        let mut out = Vec::new();
        let mut push = |data: &[u8]| -> std::io::Result<()> {
            out.extend_from_slice(&enc.push(data)?);
            Ok(())
        };
        let r = match msg {
            Msg::Bytes(b) => push(&b),
            Msg::Composite(c) => c.chunks().try_for_each(|b| push(b)),
            Msg::File(mut f) => loop {
                match f.read_chunk(64 * 1024) {
                    Ok(c) if c.is_empty() => break Ok(()),
                    Ok(c) => {
                        if let Err(e) = push(&c) {
                            break Err(e);
                        }
                    }
                    Err(e) => break Err(std::io::Error::other(e)),
                }
            },
            user @ Msg::User(_) => return Err(user),
        };
        Ok(r.map(|()| Bytes::from(out)))
    }
}

/// Writes compressed bytes, if there are any yet.
fn write_maybe(ctx: &mut Context<'_>, bytes: Bytes, promise: Option<Promise>) {
    let piece = (!bytes.is_empty()).then_some(Msg::Bytes(bytes));
    crate::encoder::write_parts(ctx, piece, promise);
}

impl Handler for HttpContentCompressor {
    fn interest(&self) -> Events {
        Events::READ | Events::WRITE
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if let Some(HttpRequestPart::Head { request, .. }) = msg.downcast_ref::<HttpRequestPart>() {
            let coding = if request.method() == Method::HEAD {
                None
            } else {
                choose(request.headers())
            };
            self.pending.push_back(coding);
        }
        ctx.fire_read(msg);
    }

    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        if let Some(enc) = &mut self.streaming {
            let msg = match msg.downcast::<HttpResponsePart>() {
                Ok(HttpResponsePart::End(trailers)) => {
                    if let Some(EncoderBox(e)) = self.streaming.take().flatten() {
                        match e.finish() {
                            Ok(rest) => write_maybe(ctx, rest, None),
                            Err(err) => tracing::warn!(error = %err, "compression failed"),
                        }
                    }
                    return ctx.write_with(Msg::user(HttpResponsePart::End(trailers)), promise);
                }
                Ok(other) => return ctx.write_with(Msg::user(other), promise),
                Err(m) => m,
            };
            let Some(EncoderBox(e)) = enc else {
                return ctx.write_with(msg, promise);
            };
            match Self::piece(e, msg) {
                Ok(Ok(bytes)) => return write_maybe(ctx, bytes, promise),
                Ok(Err(why)) => {
                    let err = weft_core::Error::encode(format!("compression failed: {why}"));
                    return crate::encoder::fail_write(ctx, err, promise);
                }
                Err(m) => return ctx.write_with(m, promise),
            }
        }
        let msg = match msg.downcast::<HttpResponsePart>() {
            Ok(HttpResponsePart::Head(mut head)) => {
                if !head.status().is_informational() {
                    let coding = self.pending.pop_front().flatten();
                    let known_small = head
                        .headers()
                        .get(CONTENT_LENGTH)
                        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                        .is_some_and(|n| n < self.threshold as u64);
                    let coding = coding
                        .filter(|_| compressible(head.status(), head.headers()) && !known_small);
                    if let Some(c) = coding {
                        mark(head.headers_mut(), c);
                    }
                    self.streaming = Some(coding.map(|c| EncoderBox(Encoder::new(c))));
                }
                return ctx.write_with(Msg::user(HttpResponsePart::Head(head)), promise);
            }
            Ok(other) => return ctx.write_with(Msg::user(other), promise),
            Err(m) => m,
        };
        match FullBody::from_msg(msg) {
            Ok(resp) if resp.status().is_informational() => {
                ctx.write_with(FullBody::into_msg(resp), promise)
            }
            Ok(resp) => {
                let coding = self.pending.pop_front().flatten();
                let out = self.full(resp, coding);
                ctx.write_with(out, promise);
            }
            Err(other) => ctx.write_with(other, promise),
        }
    }
}
