//! [`HttpServerCodec`]: requests in, responses out, in order (Netty's
//! `HttpServerCodec` with its keep-alive handling).
//!
//! Contract:
//! - it is one handler, a [`Combined`](weft_core::Combined) of two halves:
//!   the decoding half (a [`DecoderHandler`] over [`HttpRequestDecoder`],
//!   yielding [`HttpRequestPart`](super::HttpRequestPart)s) and the
//!   encoding half (`server_encoder.rs`). The pipeline calls them apart, so
//!   an answer written while the decoder is busy with a read is encoded at
//!   once, not queued behind the read; a handler that must see the encoded
//!   bytes goes before the codec;
//! - outbound, it encodes full responses (`http::Response<()>`,
//!   `Response<Bytes>`, `Response<CompositeBytes>`, `Response<FileRegion>`)
//!   and streamed ones ([`HttpResponsePart::Head`](super::HttpResponsePart),
//!   body messages, [`HttpResponsePart::End`](super::HttpResponsePart)), as
//!   `response.rs` says; a response answers the oldest request not yet
//!   answered, so handlers answer in request order (as HTTP/1.1 requires);
//! - at most `max_in_flight` requests (default 16) are decoded ahead of
//!   their answers: past it the codec stops decoding, and once bytes wait
//!   undecoded behind the bound it switches the channel's auto-read off
//!   (so at most one read's worth waits), and it resumes when an answer
//!   completes, so a client pipelining thousands of requests is held to
//!   that many; a batch of exactly the bound (a client pipelining that
//!   deep) holds no reads;
//! - after the answer to a connection's last request (`Connection: close`,
//!   HTTP/1.0 without keep-alive, a close-delimited body) is flushed, the
//!   output is shut down: the client reads the whole answer, then closes;
//! - an invalid request (an [`HttpRequestPart::Invalid`](super::HttpRequestPart))
//!   is answered by the codec in its turn — its status, `Connection:
//!   close` — and the part still goes to the application, for its logs;
//!   with [`answer_invalid(false)`](HttpServerCodec::answer_invalid) the
//!   application answers it. Nothing after it is decoded;
//! - an answer carrying `Connection: close` is the connection's last:
//!   nothing more is decoded, the output is shut down after it;
//! - a request asking to switch protocols (`Connection: upgrade` and
//!   `Upgrade`) is the last decoded until it is answered: a 101 answer is
//!   written, then the codec leaves the pipeline and passes the bytes that
//!   followed the request on to the next handler (they are the new
//!   protocol's); any other answer lets HTTP parsing go on. A 101 to a
//!   request that did not ask for it fails its write;
//! - the halves share a [`Ledger`](super::ledger::Ledger) of the requests
//!   in flight, a plain value (`Context::shared`); the encoder never calls
//!   the decoder (`ledger.rs`).

use std::fmt;

use weft_core::{Combined, Context, Halves, Handler, Msg, UserEvent};

use super::ledger::{Ledger, LetIn};
use super::request::HttpRequestDecoder;
use super::server_encoder::{AnswerInTurn, HttpServerEncoder};
use crate::DecoderHandler;

/// Default most requests decoded ahead of their answers.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// The server side of HTTP/1.1: requests in, answers out, one handler
/// (see the module contract).
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::http::{http, HttpRequestPart, HttpServerCodec};
/// use weft_core::{from_fn, Context, EmbeddedChannel, Msg};
///
/// let hello = from_fn(|ctx: &mut Context<'_>, part: HttpRequestPart| {
///     if let HttpRequestPart::Head { .. } = part {
///         let answer = http::Response::new(Bytes::from_static(b"Hello, World!"));
///         ctx.write_and_flush(Msg::user(answer));
///     }
/// });
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("http", HttpServerCodec::new())
///     .add_last("hello", hello)
///     .build();
/// assert_eq!(ch.pipeline().names(), ["http", "hello"]);
/// ch.write_inbound(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
/// let out = ch.read_outbound_bytes();
/// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
/// assert!(out.ends_with(b"content-length: 13\r\n\r\nHello, World!"));
/// ```
pub struct HttpServerCodec {
    halves: Combined<Ledger, ServerDecoding, HttpServerEncoder>,
}

/// The decoding half: the request decoder and the in-flight bound.
struct ServerDecoding {
    inbound: DecoderHandler<HttpRequestDecoder>,
    /// Auto-read was switched off by the in-flight bound.
    holding_reads: bool,
}

impl Default for HttpServerCodec {
    fn default() -> Self {
        HttpServerCodec::new()
    }
}

impl HttpServerCodec {
    /// A codec with the default decoder limits and in-flight bound.
    pub fn new() -> HttpServerCodec {
        HttpServerCodec::with_decoder(HttpRequestDecoder::new())
    }

    /// A codec over a decoder configured by the caller.
    pub fn with_decoder(mut decoder: HttpRequestDecoder) -> HttpServerCodec {
        decoder.in_codec = true;
        let decoding = ServerDecoding {
            inbound: DecoderHandler::new(decoder),
            holding_reads: false,
        };
        HttpServerCodec {
            halves: Combined::new(
                Ledger::new(DEFAULT_MAX_IN_FLIGHT),
                decoding,
                HttpServerEncoder::new(),
            ),
        }
    }

    /// Whether the codec answers an invalid request itself (the default:
    /// its status, a one-line body and `Connection: close`, in its turn
    /// after the requests before it). With `false` the application answers
    /// the [`HttpRequestPart::Invalid`](super::HttpRequestPart::Invalid)
    /// part it receives, and the connection still ends after that answer.
    pub fn answer_invalid(mut self, on: bool) -> Self {
        if let Some(e) = self.halves.outbound_mut() {
            e.answer_invalid = on;
        }
        self
    }

    /// Most requests decoded ahead of their answers (default 16; at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        if let Some(l) = self.halves.state_mut() {
            l.max_in_flight = n.max(1);
        }
        self
    }
}

impl ServerDecoding {
    /// After decoding: hold reads if bytes wait behind the bound, and tell
    /// the encoder if an invalid request may be first in line.
    fn after_decoding(&mut self, ctx: &mut Context<'_>) {
        let waiting = self.inbound.buffered() > 0;
        let stopped = self.inbound.decoder().stopped();
        if !waiting && !stopped {
            return;
        }
        let (full, invalid_first) = {
            let l = ctx.shared::<Ledger>();
            (l.unanswered.len() >= l.max_in_flight, l.invalid_first())
        };
        // Not merely at the bound: that would cost two auto-read changes
        // per batch to a client pipelining exactly that deep.
        if full && waiting && !self.holding_reads && ctx.channel().is_auto_read() {
            self.holding_reads = true;
            ctx.channel().set_auto_read(false);
        }
        if invalid_first {
            ctx.write_to_self(Msg::user(AnswerInTurn));
        }
    }
}

#[weft_core::handler]
impl Handler for ServerDecoding {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.inbound.channel_read(ctx, msg);
        self.after_decoding(ctx);
    }

    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        if event.is::<LetIn>() {
            // An answer let more requests in.
            if self.holding_reads {
                self.holding_reads = false;
                ctx.channel().set_auto_read(true);
            }
            self.inbound.resume(ctx);
            return self.after_decoding(ctx);
        }
        self.inbound.user_event(ctx, event);
    }

    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.inbound.channel_inactive(ctx);
    }

    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        self.inbound.writability_changed(ctx, writable);
    }

    fn handler_removed(&mut self, ctx: &mut Context<'_>) {
        if self.holding_reads {
            ctx.channel().set_auto_read(true);
        }
        self.inbound.handler_removed(ctx);
    }
}

/// A pipeline links the two halves apart (`take_halves`); the codec's own
/// callbacks are reached only when it is wrapped in another handler, which
/// `handler_added` reports.
impl Handler for HttpServerCodec {
    fn take_halves(&mut self) -> Option<Halves> {
        self.halves.take_halves()
    }

    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        self.halves.handler_added(ctx);
    }
}

impl fmt::Debug for HttpServerCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerCodec").finish_non_exhaustive()
    }
}
