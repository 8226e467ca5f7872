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
//! - every other answer whose body could have been compressed for another
//!   `Accept-Encoding` — identity, 206, 304 — still gets `Vary:
//!   accept-encoding` (RFC 9110 §12.5.5), so caches keep the variants
//!   apart;
//! - a `HEAD` request gets the header fields its `GET` would (RFC 9110
//!   §9.3.2): the same coding, and the compressed length;
//! - `FileRegion` bodies leave uncompressed by `sendfile` unless
//!   [`compress_files`](HttpContentCompressor::compress_files) allows files
//!   up to a size: those are then read and compressed, once — the result
//!   is cached for the process (`compress_budget.rs`, keyed by the file's
//!   identity, size and modification time);
//! - compressing costs the event loop: a full body not in the cache is
//!   compressed only while the connection's and the process's budgets of
//!   bytes per second allow it ([`budget`](HttpContentCompressor::budget)),
//!   and leaves uncompressed otherwise; a body of at most 16 KiB always
//!   may be;
//! - answers the client did not ask to compress pass untouched (with
//!   `Vary` as above).

use std::collections::VecDeque;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use weft_core::{Context, Handler, Msg, Promise};

use super::coding::{choose, compress, Coding, Encoder};
use super::compress_budget::{self, Bucket, FileKey};
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
    file_cache: usize,
    /// This connection's budget.
    bucket: Bucket,
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

/// Whether the resource an answer carries could be compressed for some
/// `Accept-Encoding`: then every answer for it varies on that field.
fn negotiable(status: StatusCode, headers: &HeaderMap) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || headers.contains_key(CONTENT_ENCODING)
        || precompressed(headers))
}

/// Whether an answer with `status` and `headers` may be compressed itself.
fn compressible(status: StatusCode, headers: &HeaderMap) -> bool {
    negotiable(status, headers)
        && status != StatusCode::PARTIAL_CONTENT
        && status != StatusCode::NOT_MODIFIED
}

/// Adds `Vary: accept-encoding` unless a `Vary` field already names it
/// (or is `*`).
fn vary(headers: &mut HeaderMap) {
    let named = headers.get_all(VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !named {
        headers.append(VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// Marks the headers of a compressed answer.
fn mark(headers: &mut HeaderMap, coding: Coding) {
    headers.insert(CONTENT_ENCODING, HeaderValue::from_static(coding.token()));
    headers.remove(CONTENT_LENGTH);
    vary(headers);
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
            file_cache: compress_budget::DEFAULT_FILE_CACHE_BYTES,
            bucket: Bucket::new(compress_budget::DEFAULT_CONNECTION_RATE),
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

    /// How much compressing may cost: at most `connection` bytes of input
    /// per second for this connection and `process` for the whole process
    /// (the last compressor built sets the process's; defaults
    /// [`DEFAULT_COMPRESSION_CONNECTION_RATE`](super::DEFAULT_COMPRESSION_CONNECTION_RATE),
    /// 2 MiB, and
    /// [`DEFAULT_COMPRESSION_PROCESS_RATE`](super::DEFAULT_COMPRESSION_PROCESS_RATE),
    /// 16 MiB), each with a burst of one second's worth. Past either a
    /// body leaves uncompressed; cached files and bodies of at most
    /// 16 KiB cost nothing.
    pub fn budget(mut self, connection: u64, process: u64) -> Self {
        self.bucket = Bucket::new(connection);
        compress_budget::set_process_rate(process);
        self
    }

    /// Most bytes of compressed files the process keeps (default
    /// [`DEFAULT_COMPRESSION_FILE_CACHE`](super::DEFAULT_COMPRESSION_FILE_CACHE),
    /// 32 MiB; 0: none).
    pub fn file_cache(mut self, bytes: usize) -> Self {
        self.file_cache = bytes;
        self
    }

    /// A full answer: compressed if it qualifies.
    fn full(&mut self, resp: Response<FullBody>, coding: Option<Coding>) -> Msg {
        let len = resp.body().len();
        let qualifies = coding.is_some()
            && compressible(resp.status(), resp.headers())
            && len >= self.threshold as u64
            && !matches!(resp.body(), FullBody::File(_) if len > self.max_file);
        let (mut parts, body) = resp.into_parts();
        if negotiable(parts.status, &parts.headers) {
            vary(&mut parts.headers);
        }
        let Some(coding) = coding.filter(|_| qualifies) else {
            return FullBody::into_msg(Response::from_parts(parts, body));
        };
        let key = match &body {
            FullBody::File(f) => FileKey::of(f.file(), f.position(), len, coding),
            _ => None,
        };
        if let Some(hit) = key.as_ref().and_then(compress_budget::cached) {
            mark(&mut parts.headers, coding);
            return Msg::user(Response::from_parts(parts, hit));
        }
        if !compress_budget::spend(&mut self.bucket, len) {
            tracing::debug!(bytes = len, "compression budget spent; sending as it is");
            return FullBody::into_msg(Response::from_parts(parts, body));
        }
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
        if let (Some(key), Ok(packed)) = (key, &packed) {
            compress_budget::keep(key, packed.clone(), self.file_cache);
        }
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

#[weft_core::handler]
impl Handler for HttpContentCompressor {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if let Some(HttpRequestPart::Head { request, .. }) = msg.downcast_ref::<HttpRequestPart>() {
            // A HEAD gets what its GET would: the codec leaves the body out.
            self.pending.push_back(choose(request.headers()));
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
                    match coding {
                        Some(c) => mark(head.headers_mut(), c),
                        None if negotiable(head.status(), head.headers()) => {
                            vary(head.headers_mut())
                        }
                        None => {}
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
