//! [`HttpClientCodec`]: requests out, responses in (Netty's
//! `HttpClientCodec`).
//!
//! Contract:
//! - outbound, full requests (`http::Request<B>` with `B` one of `()`,
//!   `Bytes`, `CompositeBytes`, `FileRegion`) are encoded with their body
//!   by reference (a `FileRegion` leaves by `sendfile`); `Host` comes from
//!   the URI's authority when the request has none (a request with
//!   neither is refused), `Content-Length` is added when the body is not
//!   empty or the method is one that carries a body; the request target is
//!   the URI's origin form (its authority for CONNECT);
//! - it is one handler, a [`Combined`](weft_core::Combined): the encoding
//!   half tells the decoding half each request's method through the state
//!   they share, so the answer to a HEAD or a CONNECT is framed right;
//!   inbound, it is a [`DecoderHandler`] over [`HttpResponseDecoder`],
//!   yielding [`HttpResponseIn`] parts. The halves are called apart: a
//!   request written while a response is being read is encoded at once;
//! - other messages pass through untouched.
//!
//! [`HttpResponseIn`]: super::HttpResponseIn

use std::fmt;
use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderValue, Method, Request, Version};
use weft_core::{
    Combined, CompositeBytes, Context, Error, FileRegion, Halves, Handler, Msg, Promise,
};

use super::response::put_fields;
use super::response_decoder::{HttpResponseDecoder, Sent};
use crate::DecoderHandler;

/// The client side of HTTP/1.1 in one handler.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::http::{http, HttpClientCodec, HttpResponseIn};
/// use weft_core::{EmbeddedChannel, Msg};
///
/// let mut ch = EmbeddedChannel::with_handler(HttpClientCodec::new());
/// let req = http::Request::get("http://example.test/hello").body(()).unwrap();
/// ch.write_outbound(Msg::user(req));
/// assert_eq!(ch.read_outbound_bytes(), "GET /hello HTTP/1.1\r\nhost: example.test\r\n\r\n");
/// ch.write_inbound(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..]);
/// assert!(matches!(ch.read_inbound(), Some(HttpResponseIn::Head { .. })));
/// ```
pub struct HttpClientCodec {
    halves: Combined<Sent, DecoderHandler<HttpResponseDecoder>, RequestEncoder>,
}

/// The encoding half.
struct RequestEncoder;

impl Default for HttpClientCodec {
    fn default() -> Self {
        HttpClientCodec::new()
    }
}

impl HttpClientCodec {
    /// A codec with the default decoder limits.
    pub fn new() -> HttpClientCodec {
        HttpClientCodec::with_decoder(HttpResponseDecoder::new())
    }

    /// A codec over a decoder configured by the caller.
    pub fn with_decoder(mut decoder: HttpResponseDecoder) -> HttpClientCodec {
        decoder.in_codec = true;
        HttpClientCodec {
            halves: Combined::new(
                Sent::default(),
                DecoderHandler::new(decoder),
                RequestEncoder,
            ),
        }
    }
}

/// A full request's body.
enum Body {
    Empty,
    Bytes(Bytes),
    Composite(CompositeBytes),
    File(FileRegion),
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(b) => b.len() as u64,
            Body::Composite(c) => c.len() as u64,
            Body::File(f) => f.remaining(),
        }
    }

    fn from_msg(msg: Msg) -> Result<Request<Body>, Msg> {
        let msg = match msg.downcast::<Request<()>>() {
            Ok(r) => return Ok(r.map(|()| Body::Empty)),
            Err(m) => m,
        };
        let msg = match msg.downcast::<Request<Bytes>>() {
            Ok(r) => return Ok(r.map(Body::Bytes)),
            Err(m) => m,
        };
        let msg = match msg.downcast::<Request<CompositeBytes>>() {
            Ok(r) => return Ok(r.map(Body::Composite)),
            Err(m) => m,
        };
        msg.downcast::<Request<FileRegion>>()
            .map(|r| r.map(Body::File))
    }
}

/// Whether requests with `method` carry a body by convention (an empty
/// one is then sent as `Content-Length: 0`).
fn carries_body(method: &Method) -> bool {
    *method == Method::POST || *method == Method::PUT || *method == Method::PATCH
}

/// Encodes a full request: its messages, in order.
fn encode_request(req: Request<Body>) -> Result<(Method, Vec<Msg>), Error> {
    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key(HOST) {
        let Some(authority) = parts.uri.authority() else {
            return Err(Error::encode(
                "a request needs a Host header or an absolute URI",
            ));
        };
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|_| Error::encode("the URI's authority is not a valid Host"))?;
        parts.headers.insert(HOST, host);
    }
    let len = body.len();
    if !parts.headers.contains_key(CONTENT_LENGTH)
        && !parts.headers.contains_key(TRANSFER_ENCODING)
        && (len > 0 || carries_body(&parts.method))
    {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    }
    let target = if parts.method == Method::CONNECT {
        parts.uri.authority().map(|a| a.as_str()).unwrap_or("")
    } else {
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .filter(|p| !p.is_empty())
            .unwrap_or("/")
    };
    let version = if parts.version == Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut head = BytesMut::with_capacity(
        target
            .len()
            .saturating_add(parts.headers.len().saturating_mul(32))
            .saturating_add(64),
    );
    let _ = write!(head, "{} {target} {version}\r\n", parts.method);
    put_fields(&mut head, &parts.headers);
    head.put_slice(b"\r\n");
    let head = head.freeze();
    let msgs = match body {
        Body::Empty => vec![Msg::Bytes(head)],
        Body::Bytes(b) => {
            let mut c = CompositeBytes::from(head);
            c.push(b);
            vec![Msg::Composite(c)]
        }
        Body::Composite(mut c) => {
            c.push_front(head);
            vec![Msg::Composite(c)]
        }
        Body::File(f) => vec![Msg::Bytes(head), Msg::File(f)],
    };
    Ok((parts.method, msgs))
}

/// A pipeline links the two halves apart (`take_halves`); the codec's own
/// callbacks are reached only when it is wrapped in another handler, which
/// `handler_added` reports.
impl Handler for HttpClientCodec {
    fn take_halves(&mut self) -> Option<Halves> {
        self.halves.take_halves()
    }

    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        self.halves.handler_added(ctx);
    }
}

#[weft_core::handler]
impl Handler for RequestEncoder {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        let req = match Body::from_msg(msg) {
            Ok(r) => r,
            Err(other) => return ctx.write_with(other, promise),
        };
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        match encode_request(req) {
            Ok((method, msgs)) => {
                ctx.shared::<Sent>().0.push_back((method, upgrade));
                crate::encoder::write_parts(ctx, msgs, promise);
            }
            Err(e) => crate::encoder::fail_write(ctx, e, promise),
        }
    }
}

impl fmt::Debug for HttpClientCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClientCodec").finish_non_exhaustive()
    }
}
