//! [`HttpObjectAggregator`]: a request's parts joined into one
//! `http::Request<Bytes>` (Netty's `HttpObjectAggregator`).
//!
//! Contract:
//! - each request comes out once, whole, as `Request<Bytes>`; trailers of
//!   a chunked body are in its extensions as [`Trailers`], never merged
//!   into the head's fields;
//! - a body that arrives in one read stays a slice of that read (no copy);
//!   otherwise the pieces are copied once into one buffer, so a trickling
//!   client cannot pin a read buffer per byte;
//! - a body longer than `max_content_length` is refused with `413` and
//!   `Connection: close` — at the head when `Content-Length` says so,
//!   otherwise as soon as the limit is passed — and never held: memory
//!   stays under the limit plus one read; nothing after a refused request
//!   reaches the application;
//! - the bodies being gathered also count in a budget of all connections
//!   together ([`memory_budget`](HttpObjectAggregator::memory_budget),
//!   default one of [`DEFAULT_AGGREGATION_BUDGET`] for the process): a
//!   piece that would pass it is refused with `503`, `Retry-After` and
//!   `Connection: close`, never held (a thousand clients each sending a
//!   body just under the limit cannot hold a thousand times it);
//! - `Expect: 100-continue` is answered as [`HttpExpectContinue`] does:
//!   `100` only for a body that will be read (within the limit), `413`
//!   for one over it, `417` for another expectation;
//! - invalid requests ([`HttpRequestPart::Invalid`]) pass on unchanged
//!   (the codec answers them); other messages pass on untouched.
//!
//! [`HttpExpectContinue`]: super::HttpExpectContinue

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use weft_core::{BudgetShare, Context, Handler, MemoryBudget, Msg};

use super::expect::{answer_expect, status_response};
use super::request::{BodyKind, HttpRequestPart};

/// Default largest aggregated body: 1 MiB.
pub const DEFAULT_MAX_CONTENT_LENGTH: usize = 1024 * 1024;
/// Default bound on the bodies being aggregated, all connections of the
/// process together: 512 MiB.
pub const DEFAULT_AGGREGATION_BUDGET: usize = 512 << 20;

/// The budget of every aggregator not given one.
static GATHERING: MemoryBudget =
    MemoryBudget::new("HTTP bodies being aggregated", DEFAULT_AGGREGATION_BUDGET);

/// The trailer fields of an aggregated chunked request, in its extensions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trailers(pub HeaderMap);

/// A body being gathered.
#[derive(Debug)]
enum Body {
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl Body {
    fn len(&self) -> usize {
        match self {
            Body::Empty => 0,
            Body::One(b) => b.len(),
            Body::Many(b) => b.len(),
        }
    }

    fn push(&mut self, data: Bytes, hint: usize) {
        if data.is_empty() {
            return;
        }
        *self = match std::mem::replace(self, Body::Empty) {
            Body::Empty => Body::One(data),
            Body::One(first) => {
                let mut all =
                    BytesMut::with_capacity(hint.max(first.len().saturating_add(data.len())));
                all.extend_from_slice(&first);
                all.extend_from_slice(&data);
                Body::Many(all)
            }
            Body::Many(mut all) => {
                all.extend_from_slice(&data);
                Body::Many(all)
            }
        };
    }

    fn into_bytes(self) -> Bytes {
        match self {
            Body::Empty => Bytes::new(),
            Body::One(b) => b,
            Body::Many(b) => b.freeze(),
        }
    }
}

#[derive(Debug)]
enum State {
    /// Between requests.
    Idle,
    /// Gathering a request's body.
    Gathering {
        head: Box<Request<()>>,
        body: Body,
        /// The declared length, for one allocation.
        hint: usize,
    },
    /// A request was refused and the connection ends: every part after
    /// it (already decoded, pipelined behind it) is dropped.
    Refused,
}

/// Joins each request into one `Request<Bytes>`; place it after
/// [`HttpServerCodec`](super::HttpServerCodec).
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::http::{http, HttpObjectAggregator, HttpServerCodec};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("http", HttpServerCodec::new())
///     .add_last("whole", HttpObjectAggregator::new(64 * 1024))
///     .build();
/// ch.write_inbound(&b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
/// ch.write_inbound(&b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"[..]);
/// let req: http::Request<Bytes> = ch.read_inbound().unwrap();
/// assert_eq!(req.body(), "hello world");
/// ```
#[derive(Debug)]
pub struct HttpObjectAggregator {
    max_content_length: usize,
    state: State,
    /// What the body being gathered holds, in the budget.
    held: BudgetShare,
}

impl Default for HttpObjectAggregator {
    fn default() -> Self {
        HttpObjectAggregator::new(DEFAULT_MAX_CONTENT_LENGTH)
    }
}

impl HttpObjectAggregator {
    /// An aggregator refusing bodies over `max_content_length` bytes.
    pub fn new(max_content_length: usize) -> HttpObjectAggregator {
        HttpObjectAggregator {
            max_content_length,
            state: State::Idle,
            held: MemoryBudget::share_static(&GATHERING),
        }
    }

    /// Counts the bodies it gathers in `budget` (shared with whoever else
    /// is given it) instead of the process's default one.
    pub fn memory_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.held = MemoryBudget::share(&budget);
        self
    }

    fn refuse(&mut self, ctx: &mut Context<'_>, status: StatusCode) {
        tracing::debug!(%status, "request refused by the aggregator");
        let mut answer = status_response(status, true);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            answer
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        ctx.write_and_flush(Msg::user(answer));
        self.state = State::Refused;
        self.held.resize(0);
    }

    fn head(&mut self, ctx: &mut Context<'_>, head: Request<()>, body: BodyKind) {
        let max = self.max_content_length as u64;
        if let Some(status) = answer_expect(ctx, &head, body, Some(max)) {
            return self.refuse(ctx, status);
        }
        if matches!(body, BodyKind::Length(n) if n > max) {
            return self.refuse(ctx, StatusCode::PAYLOAD_TOO_LARGE);
        }
        match body {
            BodyKind::Empty => {
                ctx.fire_read(Msg::user(head.map(|()| Bytes::new())));
            }
            BodyKind::Length(n) => {
                self.state = State::Gathering {
                    head: Box::new(head),
                    body: Body::Empty,
                    hint: n as usize,
                }
            }
            BodyKind::Chunked | BodyKind::UntilClose => {
                self.state = State::Gathering {
                    head: Box::new(head),
                    body: Body::Empty,
                    hint: 0,
                }
            }
        }
    }

    /// Adds body bytes; false if the limit is passed (the request is
    /// refused).
    fn gather(&mut self, ctx: &mut Context<'_>, data: Bytes) -> bool {
        let State::Gathering { body, hint, .. } = &mut self.state else {
            return false;
        };
        let len = body.len().saturating_add(data.len());
        if len > self.max_content_length {
            self.refuse(ctx, StatusCode::PAYLOAD_TOO_LARGE);
            return false;
        }
        if !self.held.resize(len) {
            self.refuse(ctx, StatusCode::SERVICE_UNAVAILABLE);
            return false;
        }
        body.push(data, *hint);
        true
    }
}

#[weft_core::handler]
impl Handler for HttpObjectAggregator {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let part = match msg.downcast::<HttpRequestPart>() {
            Ok(p) => p,
            Err(other) => return ctx.fire_read(other),
        };
        match part {
            _ if matches!(self.state, State::Refused) => {}
            HttpRequestPart::Head { request, body } => {
                self.head(ctx, request, body);
            }
            HttpRequestPart::Data(data) => {
                self.gather(ctx, data);
            }
            HttpRequestPart::End { data, trailers } => {
                if !self.gather(ctx, data) {
                    return;
                }
                let State::Gathering { head, body, .. } =
                    std::mem::replace(&mut self.state, State::Idle)
                else {
                    return;
                };
                self.held.resize(0);
                let mut req = (*head).map(|()| body.into_bytes());
                if !trailers.is_empty() {
                    req.extensions_mut().insert(Trailers(trailers));
                }
                ctx.fire_read(Msg::user(req));
            }
            invalid @ HttpRequestPart::Invalid(_) => {
                self.state = State::Idle;
                self.held.resize(0);
                ctx.fire_read(Msg::user(invalid));
            }
        }
    }
}
