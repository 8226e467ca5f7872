//! [`HttpResponseDecoder`]: the client side's decoder — response heads,
//! then their bodies as slices of the received bytes.
//!
//! Contract:
//! - each response yields a [`HttpResponseIn::Head`] and, unless its body
//!   is [`BodyKind::Empty`], [`HttpResponseIn::Data`] slices (no copy) and
//!   one [`HttpResponseIn::End`] with the trailers of a chunked body;
//! - the body's framing follows RFC 9112 §6.3 for the request it answers
//!   (the codec tells the decoder each request's method, in order): none
//!   for HEAD, 1xx, 204, 304 and a successful CONNECT; `chunked`;
//!   `Content-Length`; otherwise until the connection ends;
//! - interim 1xx responses are skipped, except `101 Switching Protocols`,
//!   which is yielded and ends decoding (the connection speaks another
//!   protocol after it), as does a successful CONNECT (a tunnel);
//! - heads and framing are held to the server side's rules (line endings,
//!   field syntax, `Content-Length` and `Transfer-Encoding`); the first
//!   violation yields one [`HttpResponseIn::Invalid`] and nothing more is
//!   decoded; the end of the connection inside a head or a delimited body
//!   is an [`Incomplete`](super::HttpErrorKind::Incomplete) error;
//! - a response with `Connection: close` (or HTTP/1.0 without keep-alive)
//!   is the last decoded; bytes after the last response, or after an
//!   invalid one, are dropped as they come (a server that floods after
//!   its answer costs the client nothing), while bytes after a tunnel's
//!   head (101, a successful CONNECT) stay for the next protocol's
//!   handler.

use std::collections::VecDeque;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use weft_core::{Context, Error, Msg};

use super::body::{BodyDecoder, BodyItem};
use super::error::{HttpError, HttpErrorKind};
use super::framing::response_framing;
use super::head::parse_response_head;
use super::request::{BodyKind, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_HEADERS, DEFAULT_MAX_TRAILERS};
use super::response::persistent;
use crate::{Cumulation, Decoder};

/// Default largest response head: 64 KiB (servers send larger heads than
/// clients: cookies, policies).
pub const DEFAULT_MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// One piece of a response, as [`HttpResponseDecoder`] yields them.
#[derive(Debug)]
pub enum HttpResponseIn {
    /// A response head (never an interim 1xx other than 101).
    Head {
        /// Status, version and headers.
        response: Response<()>,
        /// Whether and how a body follows.
        body: BodyKind,
    },
    /// Bytes of the body: a slice of the received bytes.
    Data(Bytes),
    /// The body is over: its last bytes and a chunked body's trailers.
    End {
        /// The body's last bytes.
        data: Bytes,
        /// Trailer fields, kept apart from the head's.
        trailers: HeaderMap,
    },
    /// The response is malformed or cut short; nothing more is decoded.
    Invalid(HttpError),
}

#[derive(Debug)]
enum State {
    Head,
    Body(BodyDecoder),
    /// After the connection's last response, or an invalid one: what
    /// follows is discarded (never kept: a server flooding after its last
    /// answer must not grow the client).
    Stopped,
    /// After a tunnel's head (101, a successful CONNECT): the bytes are
    /// the other protocol's and stay for whoever replaces this decoder.
    Tunnel,
}

/// Whether the connection may carry another exchange after `response`,
/// the answer to a request with `method` whose body is `body` (RFC 9112
/// §9.3, §9.6): not after a body delimited by the connection, `101
/// Switching Protocols`, a successful CONNECT (a tunnel), `Connection:
/// close`, or an HTTP/1.0 answer without `Connection: keep-alive`.
pub fn response_keeps_alive(method: &Method, response: &Response<()>, body: BodyKind) -> bool {
    let status = response.status();
    let tunnel = status == StatusCode::SWITCHING_PROTOCOLS
        || (*method == Method::CONNECT && status.is_success());
    !tunnel && body != BodyKind::UntilClose && persistent(response.version(), response.headers())
}

/// Decodes HTTP/1.x responses (the decoding half of Netty's
/// `HttpClientCodec`).
///
/// ```
/// use weft_codec::http::{http::Method, BodyKind, HttpResponseDecoder, HttpResponseIn};
/// use weft_codec::DecoderHandler;
/// use weft_core::EmbeddedChannel;
///
/// let mut decoder = HttpResponseDecoder::new();
/// decoder.expect_response_to(Method::GET);
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(decoder));
/// ch.write_inbound(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..]);
/// let Some(HttpResponseIn::Head { response, body }) = ch.read_inbound() else { panic!() };
/// assert_eq!(response.status(), 200);
/// assert_eq!(body, BodyKind::Length(2));
/// let Some(HttpResponseIn::End { data, .. }) = ch.read_inbound() else { panic!() };
/// assert_eq!(data, "hi");
/// ```
#[derive(Debug)]
pub struct HttpResponseDecoder {
    max_head: usize,
    max_headers: usize,
    state: State,
    /// The requests sent and not yet answered: method, and whether it
    /// asked to switch protocols.
    pending: VecDeque<(Method, bool)>,
    last: bool,
    /// Under the client codec: the requests its encoding half sent since
    /// the last decode wait in the state the halves share ([`Sent`]).
    pub(crate) in_codec: bool,
}

/// The requests the client codec's encoding half sent, not yet seen by its
/// decoding half: the state of the codec's `Combined`.
#[derive(Debug, Default)]
pub(crate) struct Sent(pub(crate) VecDeque<(Method, bool)>);

impl Default for HttpResponseDecoder {
    fn default() -> Self {
        HttpResponseDecoder::new()
    }
}

impl HttpResponseDecoder {
    /// A decoder with the default limits.
    pub fn new() -> HttpResponseDecoder {
        HttpResponseDecoder {
            max_head: DEFAULT_MAX_RESPONSE_HEAD,
            max_headers: DEFAULT_MAX_HEADERS,
            state: State::Head,
            pending: VecDeque::new(),
            last: false,
            in_codec: false,
        }
    }

    /// Largest response head (default 64 KiB).
    pub fn max_head(mut self, n: usize) -> Self {
        self.max_head = n;
        self
    }

    /// Most header fields (default 100).
    pub fn max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    /// A request with `method` was sent: the next unanswered response
    /// answers it (the client codec calls this for every request).
    pub fn expect_response_to(&mut self, method: Method) {
        self.pending.push_back((method, false));
    }

    /// A request with `method` that asked to switch protocols (an
    /// `Upgrade` field) was sent: its answer may be `101 Switching
    /// Protocols`. A 101 to any other request is invalid (a `StatusLine`
    /// error): taking it as an answer would drop the bytes behind it.
    pub fn expect_upgrade_response_to(&mut self, method: Method) {
        self.pending.push_back((method, true));
    }

    fn fail(&mut self, src: &mut Cumulation, err: HttpError) -> Option<HttpResponseIn> {
        tracing::debug!(error = %err, "invalid HTTP response");
        self.state = State::Stopped;
        src.advance(src.len());
        Some(HttpResponseIn::Invalid(err))
    }

    fn end_of_response(&mut self) {
        self.state = if self.last {
            State::Stopped
        } else {
            State::Head
        };
    }

    fn decode_head(&mut self, src: &mut Cumulation) -> Result<Option<HttpResponseIn>, HttpError> {
        loop {
            let Some(response) = parse_response_head(src, self.max_head, self.max_headers)? else {
                return Ok(None);
            };
            let status = response.status();
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                // An interim answer: the final one follows.
                if src.is_empty() {
                    return Ok(None);
                }
                continue;
            }
            let (method, upgrade) = self.pending.pop_front().unwrap_or((Method::GET, false));
            if status == StatusCode::SWITCHING_PROTOCOLS && !upgrade {
                return Err(HttpError::new(
                    HttpErrorKind::StatusLine,
                    "101 Switching Protocols to a request that asked for no upgrade",
                ));
            }
            let framing =
                response_framing(&method, status, response.version(), response.headers())?;
            let (decoder, body) =
                BodyDecoder::new(framing, DEFAULT_MAX_CHUNK_LINE, DEFAULT_MAX_TRAILERS);
            self.last = !response_keeps_alive(&method, &response, body);
            let tunnel = status == StatusCode::SWITCHING_PROTOCOLS
                || (method == Method::CONNECT && status.is_success());
            match decoder {
                Some(d) => self.state = State::Body(d),
                None if tunnel => self.state = State::Tunnel,
                None => self.end_of_response(),
            }
            return Ok(Some(HttpResponseIn::Head { response, body }));
        }
    }
}

impl Decoder for HttpResponseDecoder {
    type Item = HttpResponseIn;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<HttpResponseIn>, Error> {
        let r = match &mut self.state {
            State::Tunnel => return Ok(None),
            State::Stopped => {
                if !src.is_empty() {
                    tracing::debug!(bytes = src.len(), "bytes after the last response dropped");
                    src.advance(src.len());
                }
                return Ok(None);
            }
            State::Head if src.is_empty() => return Ok(None),
            State::Head => self.decode_head(src),
            State::Body(b) => match b.decode(src) {
                Ok(Some(BodyItem::Data(data))) => Ok(Some(HttpResponseIn::Data(data))),
                Ok(Some(BodyItem::End { data, trailers })) => {
                    self.end_of_response();
                    Ok(Some(HttpResponseIn::End { data, trailers }))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            },
        };
        match r {
            Ok(item) => Ok(item),
            Err(e) => Ok(self.fail(src, e)),
        }
    }

    /// Under the client codec, the requests sent since the last call are
    /// taken from the state its halves share first.
    fn decode_with(
        &mut self,
        ctx: &mut Context<'_>,
        src: &mut Cumulation,
        eof: bool,
    ) -> Result<Option<Msg>, Error> {
        if self.in_codec {
            self.pending.extend(ctx.shared::<Sent>().0.drain(..));
        }
        self.decode_msg(src, eof)
    }

    fn decode_eof(&mut self, src: &mut Cumulation) -> Result<Option<HttpResponseIn>, Error> {
        if let Some(item) = self.decode(src)? {
            return Ok(Some(item));
        }
        match self.state {
            State::Body(BodyDecoder::UntilClose) => {
                self.state = State::Stopped;
                Ok(Some(HttpResponseIn::End {
                    data: Bytes::new(),
                    trailers: HeaderMap::new(),
                }))
            }
            State::Body(_) => Ok(self.fail(
                src,
                HttpError::new(
                    HttpErrorKind::Incomplete,
                    "the connection ended inside a response body",
                ),
            )),
            State::Head if !src.is_empty() => Ok(self.fail(
                src,
                HttpError::new(
                    HttpErrorKind::Incomplete,
                    "the connection ended inside a response head",
                ),
            )),
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(d: &mut HttpResponseDecoder, src: &mut Cumulation, bytes: &[u8]) -> Vec<String> {
        src.push(Bytes::copy_from_slice(bytes));
        let mut out = Vec::new();
        while let Some(item) = d.decode(src).unwrap() {
            out.push(format!("{item:?}").chars().take(12).collect());
        }
        out
    }

    /// Bytes after an invalid or a last response are dropped as they come
    /// (issue 34: a server flooding after its answer grew http-get by
    /// ~18 MB per 20 ms until it exited); after a tunnel's head they stay.
    #[test]
    fn what_follows_the_end_is_dropped_unless_it_is_a_tunnel() {
        for (method, head, kept) in [
            (
                Method::GET,
                &b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"[..],
                false,
            ),
            (Method::GET, b"HTTP/1.1 2000 OK\r\n\r\n", false),
            (Method::CONNECT, b"HTTP/1.1 200 OK\r\n\r\n", true),
            (
                Method::GET,
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
                true,
            ),
        ] {
            let mut d = HttpResponseDecoder::new();
            if head.starts_with(b"HTTP/1.1 101") {
                d.expect_upgrade_response_to(method);
            } else {
                d.expect_response_to(method);
            }
            let mut src = Cumulation::new();
            assert!(!feed(&mut d, &mut src, head).is_empty());
            for _ in 0..16 {
                assert!(feed(&mut d, &mut src, &[b'z'; 65536]).is_empty());
            }
            let want = if kept { 16 * 65536 } else { 0 };
            assert_eq!(src.len(), want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    /// A 101 to a request that asked for no upgrade is invalid (issue 34,
    /// D9: http-get took it as success, exit 0, empty output, the bytes
    /// behind it dropped).
    #[test]
    fn an_unasked_101_is_invalid() {
        let mut d = HttpResponseDecoder::new();
        d.expect_response_to(Method::GET);
        let mut src = Cumulation::new();
        src.push(Bytes::from_static(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
        ));
        let item = d.decode(&mut src).unwrap();
        assert!(
            matches!(&item, Some(HttpResponseIn::Invalid(e)) if e.detail().contains("no upgrade")),
            "{item:?}"
        );
    }
}
