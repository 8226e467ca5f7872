//! [`HttpRequestDecoder`]: the server side's decoder — request heads, then
//! their bodies as slices of the received bytes.
//!
//! Contract:
//! - each request yields a [`HttpRequestPart::Head`] carrying the request
//!   (method, target, version, headers) and how its body is framed; a head
//!   whose body is [`BodyKind::Empty`] is the whole request. Otherwise the
//!   body follows as [`HttpRequestPart::Data`] slices (no copy) as the bytes
//!   arrive and ends with one [`HttpRequestPart::End`], which carries the
//!   last bytes of a `Content-Length` body and the trailers of a chunked
//!   one;
//! - requests are decoded one after the other (pipelining): the bytes of
//!   the next request wait in the cumulation until the current body is over;
//! - the first violation of the rules of `head.rs`, `framing.rs` and
//!   `chunked.rs` yields one [`HttpRequestPart::Invalid`] with the status to
//!   answer, after which the decoder decodes nothing more: no byte after an
//!   error is ever parsed as a request;
//! - a request that ends the connection (`Connection: close` in HTTP/1.1,
//!   HTTP/1.0 without `Connection: keep-alive`) is the last one decoded;
//! - end of input inside a head or a body is an error of the transport's
//!   making, not a request: it yields nothing (the partial request is
//!   dropped with the connection).

use bytes::Bytes;
use http::{HeaderMap, Request};
use weft_core::{Context, Error, Msg};

use super::body::{BodyDecoder, BodyItem};
use super::error::HttpError;
use super::framing::{request_framing, BodyFraming};
use super::head::{parse_request_head, HeadLimits};
use super::ledger::Ledger;
use super::response::{has_token, persistent, RequestInfo};
use crate::{Cumulation, Decoder};

/// Default longest request line (method, target and version): 8 KiB, as
/// nginx's default `large_client_header_buffers`.
pub const DEFAULT_MAX_REQUEST_LINE: usize = 8 * 1024;
/// Default largest request head: 16 KiB.
pub const DEFAULT_MAX_HEAD: usize = 16 * 1024;
/// Default most header fields: 100, as hyper.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default longest chunk-size line, extensions included: 4 KiB.
pub const DEFAULT_MAX_CHUNK_LINE: usize = 4 * 1024;
/// Default largest trailer section: 8 KiB.
pub const DEFAULT_MAX_TRAILERS: usize = 8 * 1024;

/// How a request's body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No body: the head is the whole request.
    Empty,
    /// `Content-Length` bytes.
    Length(u64),
    /// The chunked transfer coding (length unknown until the end).
    Chunked,
    /// Until the connection ends (responses only).
    UntilClose,
}

/// One piece of a request, as [`HttpRequestDecoder`] yields them.
#[derive(Debug)]
pub enum HttpRequestPart {
    /// A request head.
    Head {
        /// Method, target, version and headers.
        request: Request<()>,
        /// Whether and how a body follows.
        body: BodyKind,
    },
    /// Bytes of the body: a slice of the received bytes.
    Data(Bytes),
    /// The body is over (Netty's `LastHttpContent`): its last bytes (the
    /// end of a `Content-Length` body; empty for a chunked one) and its
    /// trailers (empty unless chunked with trailers).
    End {
        /// The body's last bytes, a slice of the received bytes.
        data: Bytes,
        /// Trailer fields, kept apart from the head's.
        trailers: HeaderMap,
    },
    /// The request is invalid; answer with its status and close. Nothing
    /// more is decoded.
    Invalid(HttpError),
}

#[derive(Debug)]
enum State {
    Head,
    Body(BodyDecoder),
    /// After an error, or after the last request of the connection.
    Stopped,
    /// The request asked to switch protocols: nothing more is parsed until
    /// its answer says whether the protocol switched (the bytes after it
    /// may not be HTTP).
    Upgrade,
}

/// Decodes HTTP/1.x requests (the decoding half of Netty's
/// `HttpServerCodec`).
///
/// ```
/// use weft_codec::http::{BodyKind, HttpRequestDecoder, HttpRequestPart};
/// use weft_codec::DecoderHandler;
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(HttpRequestDecoder::new()));
/// ch.write_inbound(&b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"[..]);
/// let Some(HttpRequestPart::Head { request, body }) = ch.read_inbound() else { panic!() };
/// assert_eq!(request.uri(), "/up");
/// assert_eq!(body, BodyKind::Length(5));
/// let Some(HttpRequestPart::End { data, .. }) = ch.read_inbound() else { panic!() };
/// assert_eq!(data, "hello");
/// ```
#[derive(Debug)]
pub struct HttpRequestDecoder {
    limits: HeadLimits,
    max_chunk_line: usize,
    max_trailers: usize,
    state: State,
    /// The current request is the connection's last.
    last: bool,
    /// The current request asked to switch protocols.
    upgrading: bool,
    /// Requests decoded so far.
    seq: u64,
    /// Under the server codec: the requests in flight are kept in the
    /// ledger its halves share (`ledger.rs`, `Context::shared`).
    pub(crate) in_codec: bool,
}

impl Default for HttpRequestDecoder {
    fn default() -> Self {
        HttpRequestDecoder::new()
    }
}

impl HttpRequestDecoder {
    /// A decoder with the default limits.
    pub fn new() -> HttpRequestDecoder {
        HttpRequestDecoder {
            limits: HeadLimits {
                max_request_line: DEFAULT_MAX_REQUEST_LINE,
                max_head: DEFAULT_MAX_HEAD,
                max_headers: DEFAULT_MAX_HEADERS,
            },
            max_chunk_line: DEFAULT_MAX_CHUNK_LINE,
            max_trailers: DEFAULT_MAX_TRAILERS,
            state: State::Head,
            last: false,
            upgrading: false,
            seq: 0,
            in_codec: false,
        }
    }

    /// Longest request line; longer is 414 (default 8 KiB).
    pub fn max_request_line(mut self, n: usize) -> Self {
        self.limits.max_request_line = n;
        self
    }

    /// Largest head; larger is 431 (default 16 KiB).
    pub fn max_head(mut self, n: usize) -> Self {
        self.limits.max_head = n;
        self
    }

    /// Most header fields; more is 431 (default 100).
    pub fn max_headers(mut self, n: usize) -> Self {
        self.limits.max_headers = n;
        self
    }

    /// Longest chunk-size line, extensions included (default 4 KiB).
    pub fn max_chunk_line(mut self, n: usize) -> Self {
        self.max_chunk_line = n;
        self
    }

    /// Largest trailer section; larger is 431 (default 8 KiB).
    pub fn max_trailers(mut self, n: usize) -> Self {
        self.max_trailers = n;
        self
    }

    fn fail(
        &mut self,
        ledger: Option<&mut Ledger>,
        src: &mut Cumulation,
        err: HttpError,
    ) -> Option<HttpRequestPart> {
        tracing::debug!(error = %err, "invalid HTTP request");
        let in_body = matches!(self.state, State::Body(_));
        self.state = State::Stopped;
        if let Some(ledger) = ledger {
            match ledger.unanswered.back_mut() {
                // The body of a request not yet answered broke: that request
                // is the invalid one.
                Some(current) if in_body && current.seq == self.seq => {
                    current.invalid = Some(err.status());
                    current.last = true;
                }
                // Answered in its turn, after the requests before it; if
                // its head was already answered, the connection just ends.
                _ => ledger.unanswered.push_back(RequestInfo {
                    invalid: Some(err.status()),
                    mute: in_body,
                    last: true,
                    seq: self.seq.wrapping_add(1),
                    ..RequestInfo::unknown()
                }),
            }
        }
        // Nothing after the error is ever parsed; consuming it also keeps
        // the decoder's contract (an item consumes input).
        src.advance(src.len());
        Some(HttpRequestPart::Invalid(err))
    }

    /// Whether it decodes nothing more (after an invalid request, or the
    /// connection's last one).
    pub(crate) fn stopped(&self) -> bool {
        matches!(self.state, State::Stopped)
    }

    /// The request that asked to switch protocols got another answer:
    /// parse HTTP again, now or once its body is over (the answer may come
    /// before the body).
    fn upgrade_refused(&mut self) {
        self.upgrading = false;
        if matches!(self.state, State::Upgrade) {
            self.end_of_request();
        }
    }

    /// The body is over: the next request, or none if this was the last.
    fn end_of_request(&mut self) {
        self.state = if self.upgrading {
            State::Upgrade
        } else if self.last {
            State::Stopped
        } else {
            State::Head
        };
    }

    fn decode_head(
        &mut self,
        ledger: Option<&mut Ledger>,
        src: &mut Cumulation,
    ) -> Result<Option<Box<HttpRequestPart>>, HttpError> {
        let Some((mut part, scan)) = parse_request_head(src, &self.limits)? else {
            return Ok(None);
        };
        let HttpRequestPart::Head { request, body } = &mut *part else {
            unreachable!("parse_request_head builds a head");
        };
        let version = request.version();
        let framing = if scan.transfer_encoding || scan.content_length {
            request_framing(version, request.headers())?
        } else {
            BodyFraming::Empty
        };
        // A sequence number: 2^64 requests on one connection never come,
        // and it is only compared for equality.
        self.seq = self.seq.wrapping_add(1);
        self.last = if scan.connection {
            !persistent(version, request.headers())
        } else {
            version == http::Version::HTTP_10
        };
        // Only under the server codec, which tells the decoder how the
        // request was answered.
        self.upgrading = ledger.is_some()
            && scan.upgrade
            && scan.connection
            && has_token(request.headers(), http::header::CONNECTION, "upgrade");
        if let Some(ledger) = ledger {
            ledger.unanswered.push_back(RequestInfo {
                head: request.method() == http::Method::HEAD,
                version,
                last: self.last,
                invalid: None,
                mute: false,
                seq: self.seq,
                upgrade: self.upgrading,
            });
        }
        // (request_framing never reads a request to the end of the
        // connection.)
        let (decoder, kind) = BodyDecoder::new(framing, self.max_chunk_line, self.max_trailers);
        *body = kind;
        match decoder {
            Some(d) => self.state = State::Body(d),
            None => self.end_of_request(),
        }
        Ok(Some(part))
    }

    /// The next part, boxed (a head is built in its box).
    fn decode_boxed(
        &mut self,
        mut ledger: Option<&mut Ledger>,
        src: &mut Cumulation,
        eof: bool,
    ) -> Result<Option<Box<HttpRequestPart>>, Error> {
        if let Some(word) = ledger.as_deref_mut() {
            // The encoder's word, left since the last call.
            if std::mem::take(&mut word.upgrade_refused) {
                self.upgrade_refused();
            }
            if std::mem::take(&mut word.stop) {
                self.state = State::Stopped;
            }
        }
        let item = match self.decode_state(ledger.as_deref_mut(), src) {
            Ok(item) => item,
            Err(e) => self.fail(ledger, src, e).map(Box::new),
        };
        if eof && item.is_none() && !src.is_empty() {
            tracing::debug!(bytes = src.len(), "the connection ended inside a request");
        }
        Ok(item)
    }

    /// One item in the current state.
    fn decode_state(
        &mut self,
        mut ledger: Option<&mut Ledger>,
        src: &mut Cumulation,
    ) -> Result<Option<Box<HttpRequestPart>>, HttpError> {
        match &mut self.state {
            State::Upgrade => {
                if let Some(l) = ledger.as_deref_mut() {
                    // The answer to the upgrade decides what these are.
                    l.stalled |= !src.is_empty();
                }
                Ok(None)
            }
            State::Stopped => {
                // Nothing more is parsed; what arrives is dropped.
                src.advance(src.len());
                Ok(None)
            }
            State::Head => {
                if src.is_empty() {
                    return Ok(None);
                }
                if let Some(l) = ledger.as_deref_mut() {
                    if l.unanswered.len() >= l.max_in_flight {
                        l.stalled = true;
                        return Ok(None);
                    }
                }
                self.decode_head(ledger, src)
            }
            State::Body(b) => match b.decode(src)? {
                Some(BodyItem::Data(data)) => Ok(Some(Box::new(HttpRequestPart::Data(data)))),
                Some(BodyItem::End { data, trailers }) => {
                    self.end_of_request();
                    Ok(Some(Box::new(HttpRequestPart::End { data, trailers })))
                }
                None => Ok(None),
            },
        }
    }
}

impl Decoder for HttpRequestDecoder {
    type Item = HttpRequestPart;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<HttpRequestPart>, Error> {
        Ok(self.decode_boxed(None, src, false)?.map(|b| *b))
    }

    fn decode_eof(&mut self, src: &mut Cumulation) -> Result<Option<HttpRequestPart>, Error> {
        Ok(self.decode_boxed(None, src, true)?.map(|b| *b))
    }

    /// Heads are built in their box and handed on in it.
    fn decode_msg(&mut self, src: &mut Cumulation, eof: bool) -> Result<Option<Msg>, Error> {
        Ok(self.decode_boxed(None, src, eof)?.map(Msg::from_box))
    }

    /// Under the server codec, the ledger comes from the state its halves
    /// share.
    #[inline]
    fn decode_with(
        &mut self,
        ctx: &mut Context<'_>,
        src: &mut Cumulation,
        eof: bool,
    ) -> Result<Option<Msg>, Error> {
        let ledger = if self.in_codec {
            Some(ctx.shared::<Ledger>())
        } else {
            None
        };
        Ok(self.decode_boxed(ledger, src, eof)?.map(Msg::from_box))
    }
}
