//! [`HttpServerCodec`]: requests in, responses out, in order (Netty's
//! `HttpServerCodec` with its keep-alive handling).
//!
//! Contract:
//! - inbound, it is a [`DecoderHandler`] over [`HttpRequestDecoder`]: it
//!   yields [`HttpRequestPart`](super::HttpRequestPart)s;
//! - outbound, it encodes full responses (`http::Response<()>`,
//!   `Response<Bytes>`, `Response<CompositeBytes>`, `Response<FileRegion>`)
//!   and streamed ones ([`HttpResponsePart::Head`], body messages,
//!   [`HttpResponsePart::End`]), as `response.rs` says; a response answers
//!   the oldest request not yet answered, so handlers answer in request
//!   order (as HTTP/1.1 requires);
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
//! - an invalid request (an [`HttpRequestPart::Invalid`]) is answered by
//!   the codec in its turn — its status, `Connection: close` — and the
//!   part still goes to the application, for its logs; with
//!   [`answer_invalid(false)`](HttpServerCodec::answer_invalid) the
//!   application answers it. Nothing after it is decoded;
//! - an answer carrying `Connection: close` is the connection's last:
//!   nothing more is decoded, the output is shut down after it;
//! - a request asking to switch protocols (`Connection: upgrade` and
//!   `Upgrade`) is the last decoded until it is answered: a 101 answer is
//!   written, then the codec leaves the pipeline and passes the bytes that
//!   followed the request on to the next handler (they are the new
//!   protocol's); any other answer lets HTTP parsing go on. A 101 to a
//!   request that did not ask for it fails its write.

use std::fmt;

use http::StatusCode;
use weft_core::{Context, Events, Handler, Msg, Promise};

use super::request::HttpRequestDecoder;
use super::response::{
    encode_chunk, encode_end, encode_full, encode_stream_head, says_close, FullBody, HeadWriter,
    HttpResponsePart, RequestInfo, Streaming, PENDING_MAX,
};
use crate::encoder::write_parts;
use crate::DecoderHandler;

/// Default most requests decoded ahead of their answers.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 16;

/// The server side of HTTP/1.1 in one handler.
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
/// ch.write_inbound(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
/// let out = ch.read_outbound_bytes();
/// assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"));
/// assert!(out.ends_with(b"content-length: 13\r\n\r\nHello, World!"));
/// ```
pub struct HttpServerCodec {
    inbound: DecoderHandler<HttpRequestDecoder>,
    /// The request being answered by a streamed response, and its framing.
    streaming: Option<(RequestInfo, Streaming)>,
    /// Auto-read was switched off by the in-flight bound.
    holding_reads: bool,
    /// The last answer is written: shut the output down at the next flush.
    shutdown_due: bool,
    /// Invalid requests are answered by the codec (the default).
    answer_invalid: bool,
    /// The connection's last answer is written: later ones are refused.
    ended: bool,
    /// Where answers are encoded.
    heads: HeadWriter,
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
        decoder.max_in_flight = Some(DEFAULT_MAX_IN_FLIGHT);
        HttpServerCodec {
            inbound: DecoderHandler::new(decoder),
            streaming: None,
            holding_reads: false,
            shutdown_due: false,
            answer_invalid: true,
            ended: false,
            heads: HeadWriter::default(),
        }
    }

    /// Whether the codec answers an invalid request itself (the default:
    /// its status, a one-line body and `Connection: close`, in its turn
    /// after the requests before it). With `false` the application answers
    /// the [`HttpRequestPart::Invalid`](super::HttpRequestPart::Invalid)
    /// part it receives, and the connection still ends after that answer.
    pub fn answer_invalid(mut self, on: bool) -> Self {
        self.answer_invalid = on;
        self
    }

    /// Most requests decoded ahead of their answers (default 16; at least 1).
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.inbound.decoder_mut().max_in_flight = Some(n.max(1));
        self
    }

    /// The request the next answer is for; a default when an answer comes
    /// with no request (it is still encoded, as HTTP/1.1).
    fn oldest(&mut self) -> RequestInfo {
        self.inbound
            .decoder_mut()
            .unanswered
            .front()
            .cloned()
            .unwrap_or_else(RequestInfo::unknown)
    }

    /// The oldest request was invalid and its turn has come: answer it.
    fn answer_invalid_in_turn(&mut self, ctx: &mut Context<'_>) {
        let unanswered = &self.inbound.decoder().unanswered;
        if self.streaming.is_some() || unanswered.front().is_none_or(|r| r.invalid.is_none()) {
            return;
        }
        let req = self.oldest();
        let Some(status) = req.invalid else { return };
        if req.mute {
            // Its head was answered already: only the end is left.
            self.answered(ctx, &req);
            return self.flush(ctx);
        }
        if !self.answer_invalid {
            return;
        }
        let mut resp = http::Response::new(FullBody::Bytes(bytes::Bytes::from(format!(
            "{} {}\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        ))));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let (rest, _) = encode_full(&mut self.heads, resp, &req);
        self.write_encoded(ctx, rest, None);
        self.answered(ctx, &req);
        self.flush(ctx);
    }

    /// An answer is complete: let the next request in.
    fn answered(&mut self, ctx: &mut Context<'_>, req: &RequestInfo) {
        let d = self.inbound.decoder_mut();
        d.unanswered.pop_front();
        if req.upgrade {
            d.upgrade_refused();
        }
        if req.last {
            self.shutdown_due = true;
            self.ended = true;
        }
        if self.holding_reads {
            self.holding_reads = false;
            ctx.channel().set_auto_read(true);
        }
        self.inbound.resume(ctx);
        self.hold_reads_if_full(ctx);
        self.answer_invalid_in_turn(ctx);
    }

    /// A 101 answers the request that asked to switch protocols: it is
    /// written, then the codec leaves the pipeline, passing on the bytes
    /// that followed the request (they belong to the new protocol).
    fn switch_protocols(
        &mut self,
        ctx: &mut Context<'_>,
        resp: http::Response<FullBody>,
        promise: Option<Promise>,
    ) {
        let req = self.oldest();
        if !req.upgrade {
            let err = weft_core::Error::encode(
                "a 101 answer to a request that did not ask to switch protocols",
            );
            return crate::encoder::fail_write(ctx, err, promise);
        }
        // Written now, whatever it is: the next bytes are the new protocol's.
        let (rest, _) = encode_full(&mut self.heads, resp, &req);
        let head = self.heads.take().map(Msg::Bytes);
        write_parts(ctx, head.into_iter().chain(rest), promise);
        self.inbound.decoder_mut().unanswered.pop_front();
        self.ended = true;
        tracing::debug!("protocol switched: the HTTP codec leaves the pipeline");
        ctx.remove_self();
    }

    /// Hands on what was encoded and not yet written, then `rest` (a body
    /// by reference); the promise goes with the last part. Answers with
    /// nothing after their head and no promise stay in the encode buffer
    /// (up to [`PENDING_MAX`]): a pipelined batch leaves as one message.
    fn write_encoded(
        &mut self,
        ctx: &mut Context<'_>,
        rest: Option<Msg>,
        promise: Option<Promise>,
    ) {
        if rest.is_none() && promise.is_none() && self.heads.pending() <= PENDING_MAX {
            return;
        }
        let head = self.heads.take().map(Msg::Bytes);
        write_parts(ctx, head.into_iter().chain(rest), promise);
    }

    /// Hands on what was encoded and not yet written (before anything else
    /// is written, flushed or closed).
    fn write_pending(&mut self, ctx: &mut Context<'_>) {
        if let Some(b) = self.heads.take() {
            ctx.write(Msg::Bytes(b));
        }
    }

    /// The application's answer says `Connection: close`: it is the last.
    fn closing(&mut self, req: &mut RequestInfo) {
        if !req.last {
            req.last = true;
            self.inbound.decoder_mut().stop();
        }
    }

    /// Switches reads off while bytes wait behind the in-flight bound (not
    /// merely at the bound: that would cost two auto-read changes per
    /// batch to a client pipelining exactly that deep).
    fn hold_reads_if_full(&mut self, ctx: &mut Context<'_>) {
        let waiting = self.inbound.buffered() > 0;
        let d = self.inbound.decoder_mut();
        let full = d.max_in_flight.is_some_and(|m| d.unanswered.len() >= m);
        if full && waiting && !self.holding_reads && ctx.channel().is_auto_read() {
            self.holding_reads = true;
            ctx.channel().set_auto_read(false);
        }
    }
}

impl Handler for HttpServerCodec {
    fn interest(&self) -> Events {
        Events::READ
            | Events::USER_EVENT
            | Events::INACTIVE
            | Events::WRITABILITY
            | Events::WRITE
            | Events::FLUSH
            | Events::CLOSE
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.heads.new_batch();
        self.inbound.channel_read(ctx, msg);
        self.hold_reads_if_full(ctx);
        self.answer_invalid_in_turn(ctx);
    }

    fn user_event(&mut self, ctx: &mut Context<'_>, event: weft_core::UserEvent) {
        self.inbound.user_event(ctx, event);
    }

    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.inbound.channel_inactive(ctx);
    }

    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        self.inbound.writability_changed(ctx, writable);
    }

    fn handler_removed(&mut self, ctx: &mut Context<'_>) {
        self.write_pending(ctx);
        if self.holding_reads {
            ctx.channel().set_auto_read(true);
        }
        self.inbound.handler_removed(ctx);
    }

    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        if let Some((req, streaming)) = self.streaming.clone() {
            let msg = match msg.downcast::<HttpResponsePart>() {
                Ok(HttpResponsePart::End(trailers)) => {
                    self.streaming = None;
                    self.write_pending(ctx);
                    let end = encode_end(&trailers, streaming).map(Msg::Bytes);
                    write_parts(ctx, end, promise);
                    self.answered(ctx, &req);
                    return;
                }
                Ok(HttpResponsePart::Head(_)) => {
                    let err = weft_core::Error::encode(
                        "a response head was written before the previous response's End",
                    );
                    return crate::encoder::fail_write(ctx, err, promise);
                }
                Err(m) => m,
            };
            self.write_pending(ctx);
            if matches!(msg, Msg::User(_)) {
                return ctx.write_with(msg, promise);
            }
            return write_parts(ctx, encode_chunk(msg, streaming), promise);
        }
        if self.ended && (msg.is::<HttpResponsePart>() || FullBody::is_full(&msg)) {
            let err = weft_core::Error::closed();
            tracing::debug!("an answer after the connection's last one is dropped");
            return crate::encoder::fail_write(ctx, err, promise);
        }
        let msg = match msg.downcast::<HttpResponsePart>() {
            Ok(HttpResponsePart::Head(head))
                if head.status() == StatusCode::SWITCHING_PROTOCOLS =>
            {
                return self.switch_protocols(ctx, head.map(|()| FullBody::Empty), promise);
            }
            Ok(HttpResponsePart::Head(head)) => {
                // A 1xx head answers nothing yet: no body follows it.
                let interim = head.status().is_informational();
                let mut req = self.oldest();
                if !interim && says_close(head.headers()) {
                    self.closing(&mut req);
                }
                let streaming = encode_stream_head(&mut self.heads, head, &mut req);
                if !interim {
                    self.streaming = Some((req, streaming));
                }
                let bytes = self.heads.take().map(Msg::Bytes);
                return write_parts(ctx, bytes, promise);
            }
            Ok(HttpResponsePart::End(_)) => {
                let err = weft_core::Error::encode("a response End without its head");
                return crate::encoder::fail_write(ctx, err, promise);
            }
            Err(m) => m,
        };
        match FullBody::from_msg(msg) {
            Ok(resp) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                self.switch_protocols(ctx, resp, promise)
            }
            Ok(resp) => {
                let interim = resp.status().is_informational();
                let mut req = self.oldest();
                let (rest, close) = encode_full(&mut self.heads, resp, &req);
                if !interim && close {
                    self.closing(&mut req);
                }
                self.write_encoded(ctx, rest, promise);
                if !interim {
                    self.answered(ctx, &req);
                }
            }
            Err(other) => {
                self.write_pending(ctx);
                ctx.write_with(other, promise)
            }
        }
    }

    fn close(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        self.write_pending(ctx);
        ctx.close_with(promise);
    }

    fn flush(&mut self, ctx: &mut Context<'_>) {
        self.heads.new_batch();
        self.write_pending(ctx);
        ctx.flush();
        if std::mem::take(&mut self.shutdown_due) {
            // Completes when the flushed answer is written; nobody waits.
            drop(ctx.shutdown_output());
        }
    }
}

impl fmt::Debug for HttpServerCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerCodec")
            .field("streaming", &self.streaming.as_ref().map(|s| s.1))
            .field("holding_reads", &self.holding_reads)
            .finish()
    }
}
