//! `Expect: 100-continue` (RFC 9110 §10.1.1): [`HttpExpectContinue`] for
//! pipelines that stream request bodies, and the rule the aggregator
//! shares.
//!
//! Contract:
//! - a request that expects `100-continue` and has a body gets an interim
//!   `100 Continue` when its head passes this handler, that is when the
//!   application is about to read the body; one whose declared length is
//!   over the handler's limit gets `413` instead;
//! - any other expectation is answered `417 Expectation Failed`;
//! - a refused request (head and body) never reaches the application, and
//!   the refusal carries `Connection: close`: the client may already be
//!   sending the body, and nothing after it is read;
//! - an HTTP/1.0 request's expectation is ignored, as the RFC requires.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, EXPECT};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use weft_core::{Context, Handler, Msg};

use super::request::{BodyKind, HttpRequestPart};

/// What a request expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expectation {
    /// Nothing (or an HTTP/1.0 request).
    None,
    /// `100-continue`.
    Continue,
    /// Anything else.
    Unknown,
}

/// Reads a request's `Expect`.
fn expectation(request: &Request<()>) -> Expectation {
    if request.version() != Version::HTTP_11 {
        return Expectation::None;
    }
    let mut values = request.headers().get_all(EXPECT).iter().peekable();
    if values.peek().is_none() {
        return Expectation::None;
    }
    let all_continue = values.all(|v| {
        v.to_str()
            .map(|s| s.trim().eq_ignore_ascii_case("100-continue"))
            .unwrap_or(false)
    });
    if all_continue {
        Expectation::Continue
    } else {
        Expectation::Unknown
    }
}

/// Answers a request's `Expect` (the rule both handlers follow): `100
/// Continue` is written for a body that will be read; the status to refuse
/// the request with is returned for an unknown expectation (417) or a
/// declared length over `max` when `100-continue` was asked (413).
pub(crate) fn answer_expect(
    ctx: &mut Context<'_>,
    request: &Request<()>,
    body: BodyKind,
    max: Option<u64>,
) -> Option<StatusCode> {
    let too_long = matches!((body, max), (BodyKind::Length(n), Some(m)) if n > m);
    match expectation(request) {
        Expectation::Unknown => Some(StatusCode::EXPECTATION_FAILED),
        Expectation::Continue if too_long => Some(StatusCode::PAYLOAD_TOO_LARGE),
        Expectation::Continue if body != BodyKind::Empty => {
            let cont = status_response(StatusCode::CONTINUE, false);
            ctx.write_and_flush(Msg::user(cont));
            None
        }
        _ => None,
    }
}

/// A response with `status` and a one-line text body (empty for 1xx).
pub(crate) fn status_response(status: StatusCode, close: bool) -> Response<Bytes> {
    let body = if status.is_informational() {
        Bytes::new()
    } else {
        Bytes::from(format!(
            "{} {}\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        ))
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if !status.is_informational() {
        r.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    if close {
        r.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// Answers `Expect` for a pipeline that streams request bodies (Netty's
/// `HttpServerExpectContinueHandler`); place it after the codec.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::http::{HttpExpectContinue, HttpServerCodec};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("http", HttpServerCodec::new())
///     .add_last("expect", HttpExpectContinue::new())
///     .build();
/// ch.write_inbound(&b"PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"[..]);
/// assert!(ch.read_outbound_bytes().starts_with(b"HTTP/1.1 100 Continue\r\n"));
/// ```
#[derive(Debug)]
pub struct HttpExpectContinue {
    max_content_length: Option<u64>,
    /// A request was refused and the connection ends: drop everything.
    refused: bool,
}

impl Default for HttpExpectContinue {
    fn default() -> Self {
        HttpExpectContinue::new()
    }
}

impl HttpExpectContinue {
    /// Continues every request that expects it.
    pub fn new() -> HttpExpectContinue {
        HttpExpectContinue {
            max_content_length: None,
            refused: false,
        }
    }

    /// Answers `413` rather than `100` to a request whose declared length
    /// is over `n`.
    pub fn max_content_length(mut self, n: u64) -> Self {
        self.max_content_length = Some(n);
        self
    }
}

#[weft_core::handler]
impl Handler for HttpExpectContinue {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let part = match msg.downcast::<HttpRequestPart>() {
            Ok(p) => p,
            Err(other) => return ctx.fire_read(other),
        };
        match part {
            _ if self.refused => {}
            HttpRequestPart::Head { request, body } => {
                let refuse = answer_expect(ctx, &request, body, self.max_content_length);
                match refuse {
                    Some(status) => {
                        // The client may be sending the body already: the
                        // refusal ends the connection (nothing more is read).
                        ctx.write_and_flush(Msg::user(status_response(status, true)));
                        self.refused = true;
                    }
                    None => ctx.fire_read(Msg::user(HttpRequestPart::Head { request, body })),
                }
            }
            other => ctx.fire_read(Msg::user(other)),
        }
    }
}
