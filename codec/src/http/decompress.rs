//! [`HttpContentDecompressor`]: bodies sent with a `Content-Encoding`
//! (gzip, deflate, br) inflated on the way in, under a bound (Netty's
//! `HttpContentDecompressor`).
//!
//! Contract:
//! - it works on either side: after [`HttpServerCodec`] on request parts,
//!   after [`HttpClientCodec`] on response parts;
//! - a coded body's head loses `Content-Encoding` and `Content-Length` and
//!   says its body is [`BodyKind::Chunked`] (the inflated length is known
//!   only at the end); the body's pieces come out inflated, as soon as
//!   they inflate to anything;
//! - the inflated size is bounded while inflating (default 64 MiB): a
//!   body that would pass it is refused before it is held;
//! - on the server side, a body over the bound is answered 413, an
//!   unsupported or stacked coding 415, corrupt coded bytes 400, each with
//!   `Connection: close`, and nothing after it reaches the application; on
//!   the client side the same cases end the response with an
//!   [`HttpResponseIn::Invalid`] ([`HttpErrorKind::ContentCoding`] or
//!   [`HttpErrorKind::BodyTooLarge`]);
//! - bodies without a coding (or `identity`) pass untouched.
//!
//! [`HttpServerCodec`]: super::HttpServerCodec
//! [`HttpClientCodec`]: super::HttpClientCodec
//! [`HttpErrorKind::ContentCoding`]: super::HttpErrorKind::ContentCoding
//! [`HttpErrorKind::BodyTooLarge`]: super::HttpErrorKind::BodyTooLarge

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH};
use http::{HeaderMap, StatusCode};
use weft_core::{Context, Handler, Msg};

use super::coding::{Decoder, TOO_LARGE};
use super::error::{HttpError, HttpErrorKind};
use super::expect::status_response;
use super::request::{BodyKind, HttpRequestPart};
use super::response_decoder::HttpResponseIn;

/// Default largest inflated body: 64 MiB.
pub const DEFAULT_MAX_INFLATED: u64 = 64 * 1024 * 1024;

/// Inflates coded bodies; see the module's contract.
///
/// ```
/// use weft_codec::http::{HttpContentDecompressor, HttpRequestPart, HttpServerCodec};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("http", HttpServerCodec::new())
///     .add_last("inflate", HttpContentDecompressor::new())
///     .build();
/// // An upload coded with an unknown coding is refused (415).
/// ch.write_inbound(&b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Encoding: lzma\r\nContent-Length: 1\r\n\r\nx"[..]);
/// assert!(ch.read_outbound_bytes().starts_with(b"HTTP/1.1 415 "));
/// ```
#[derive(Debug)]
pub struct HttpContentDecompressor {
    max: u64,
    decoder: Option<DecoderBox>,
    /// A body was refused: nothing more passes.
    refused: bool,
}

struct DecoderBox(Decoder);

impl std::fmt::Debug for DecoderBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decoder")
    }
}

impl Default for HttpContentDecompressor {
    fn default() -> Self {
        HttpContentDecompressor::new()
    }
}

/// What a head's `Content-Encoding` asks for.
enum Coded {
    Plain,
    With(Decoder),
    Unsupported(String),
}

fn coded(headers: &HeaderMap, max: u64) -> Coded {
    let mut tokens = Vec::new();
    for v in headers.get_all(CONTENT_ENCODING) {
        let Ok(v) = v.to_str() else {
            return Coded::Unsupported("a non-ASCII Content-Encoding".into());
        };
        tokens.extend(
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty() && t != "identity"),
        );
    }
    match tokens.as_slice() {
        [] => Coded::Plain,
        [one] => match Decoder::for_token(one, max) {
            Some(d) => Coded::With(d),
            None => Coded::Unsupported(format!("content coding `{one}` is not supported")),
        },
        _ => Coded::Unsupported("stacked content codings are not supported".into()),
    }
}

/// Why inflating failed, as the error to report.
fn inflate_error(e: &std::io::Error) -> HttpError {
    if e.to_string().contains(TOO_LARGE) {
        HttpError::new(HttpErrorKind::BodyTooLarge, TOO_LARGE)
    } else {
        HttpError::with_status(
            HttpErrorKind::ContentCoding,
            StatusCode::BAD_REQUEST,
            format!("corrupt coded body: {e}"),
        )
    }
}

impl HttpContentDecompressor {
    /// A decompressor with the default bound.
    pub fn new() -> HttpContentDecompressor {
        HttpContentDecompressor::with_max_inflated(DEFAULT_MAX_INFLATED)
    }

    /// A decompressor refusing bodies that inflate past `max` bytes.
    pub fn with_max_inflated(max: u64) -> HttpContentDecompressor {
        HttpContentDecompressor {
            max,
            decoder: None,
            refused: false,
        }
    }

    /// Prepares for a head: `Ok(new body kind)` or the error refusing it.
    fn head(&mut self, headers: &mut HeaderMap, body: BodyKind) -> Result<BodyKind, HttpError> {
        self.decoder = None;
        if body == BodyKind::Empty {
            return Ok(body);
        }
        match coded(headers, self.max) {
            Coded::Plain => Ok(body),
            Coded::With(d) => {
                headers.remove(CONTENT_ENCODING);
                headers.remove(CONTENT_LENGTH);
                self.decoder = Some(DecoderBox(d));
                Ok(BodyKind::Chunked)
            }
            Coded::Unsupported(why) => Err(HttpError::with_status(
                HttpErrorKind::ContentCoding,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                why,
            )),
        }
    }

    fn inflate(&mut self, data: &[u8]) -> Result<Bytes, HttpError> {
        match &mut self.decoder {
            Some(DecoderBox(d)) => d.push(data).map_err(|e| inflate_error(&e)),
            None => Ok(Bytes::copy_from_slice(data)),
        }
    }

    fn end(&mut self, data: Bytes) -> Result<Bytes, HttpError> {
        let Some(DecoderBox(mut d)) = self.decoder.take() else {
            return Ok(data);
        };
        let mut out = d.push(&data).map_err(|e| inflate_error(&e))?.to_vec();
        out.extend_from_slice(&d.finish().map_err(|e| inflate_error(&e))?);
        Ok(Bytes::from(out))
    }

    /// The server side: refuse with the error's status and end.
    fn refuse(&mut self, ctx: &mut Context<'_>, err: &HttpError) {
        tracing::debug!(error = %err, "coded request body refused");
        self.refused = true;
        self.decoder = None;
        ctx.write_and_flush(Msg::user(status_response(err.status(), true)));
    }

    fn request(&mut self, ctx: &mut Context<'_>, part: HttpRequestPart) {
        match part {
            HttpRequestPart::Head { mut request, body } => {
                match self.head(request.headers_mut(), body) {
                    Ok(body) => ctx.fire_read(Msg::user(HttpRequestPart::Head { request, body })),
                    Err(e) => self.refuse(ctx, &e),
                }
            }
            HttpRequestPart::Data(b) if self.decoder.is_some() => match self.inflate(&b) {
                Ok(out) if out.is_empty() => {}
                Ok(out) => ctx.fire_read(Msg::user(HttpRequestPart::Data(out))),
                Err(e) => self.refuse(ctx, &e),
            },
            HttpRequestPart::End { data, trailers } => match self.end(data) {
                Ok(data) => ctx.fire_read(Msg::user(HttpRequestPart::End { data, trailers })),
                Err(e) => self.refuse(ctx, &e),
            },
            other => ctx.fire_read(Msg::user(other)),
        }
    }

    fn response(&mut self, ctx: &mut Context<'_>, part: HttpResponseIn) {
        let result = match part {
            HttpResponseIn::Head { mut response, body } => self
                .head(response.headers_mut(), body)
                .map(|body| HttpResponseIn::Head { response, body }),
            HttpResponseIn::Data(b) if self.decoder.is_some() => match self.inflate(&b) {
                Ok(out) if out.is_empty() => return,
                r => r.map(HttpResponseIn::Data),
            },
            HttpResponseIn::End { data, trailers } => self
                .end(data)
                .map(|data| HttpResponseIn::End { data, trailers }),
            other => Ok(other),
        };
        match result {
            Ok(p) => ctx.fire_read(Msg::user(p)),
            Err(e) => {
                self.refused = true;
                self.decoder = None;
                ctx.fire_read(Msg::user(HttpResponseIn::Invalid(e)));
            }
        }
    }
}

#[weft_core::handler]
impl Handler for HttpContentDecompressor {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if self.refused {
            return;
        }
        let msg = match msg.downcast::<HttpRequestPart>() {
            Ok(part) => return self.request(ctx, part),
            Err(m) => m,
        };
        match msg.downcast::<HttpResponseIn>() {
            Ok(part) => self.response(ctx, part),
            Err(other) => ctx.fire_read(other),
        }
    }
}
