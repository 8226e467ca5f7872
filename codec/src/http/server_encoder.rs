//! [`HttpServerEncoder`]: the outbound half of
//! [`HttpServerCodec`](super::HttpServerCodec) (a `Combined`).
//!
//! Contract:
//! - it encodes full responses (`http::Response<()>`, `Response<Bytes>`,
//!   `Response<CompositeBytes>`, `Response<FileRegion>`) and streamed ones
//!   ([`HttpResponsePart::Head`], body messages, [`HttpResponsePart::End`]),
//!   as `response.rs` says; a response answers the oldest request of the
//!   [`Ledger`](super::ledger::Ledger) not yet answered, and a complete
//!   answer takes it off;
//! - an answer with `Connection: close`, or one to a request that was the
//!   connection's last, ends the connection: the decoder is told to stop,
//!   the output is shut down at the next flush, later answers fail;
//! - an invalid request's answer (its status, `Connection: close`) is
//!   written here in its turn, when the decoder's
//!   [`AnswerInTurn`] says one waits or the answer before it completes;
//! - a 101 to a request that asked to switch protocols is written, then
//!   the codec leaves the pipeline (the decoding half hands the bytes
//!   behind the request on); another answer to such a request lets the
//!   decoder parse on;
//! - the encoder never calls the decoder: what an answer changes for it
//!   goes through the ledger (`Context::shared`), and a decoder waiting for
//!   an answer gets a [`LetIn`] event (`Context::fire_user_event_to_self`).

use std::fmt;

use bytes::Bytes;
use http::StatusCode;
use weft_core::{Context, Handler, Msg, Promise};

use super::ledger::{Ledger, LetIn};
use super::response::{
    encode_chunk, encode_end, encode_full, encode_stream_head, says_close, FullBody, HeadWriter,
    HttpResponsePart, RequestInfo, Streaming, PENDING_MAX,
};
use crate::encoder::{fail_write, write_parts};

/// The message the decoder writes to its encoding half
/// (`Context::write_to_self`) when an invalid request may be first in line:
/// the encoder answers it if its turn has come. It never passes the
/// encoder.
#[derive(Debug)]
pub(crate) struct AnswerInTurn;

/// See the module contract.
pub(crate) struct HttpServerEncoder {
    /// The request being answered by a streamed response, and its framing.
    streaming: Option<(RequestInfo, Streaming)>,
    /// The last answer is written: shut the output down at the next flush.
    shutdown_due: bool,
    /// Invalid requests are answered here (the default).
    pub(crate) answer_invalid: bool,
    /// The connection's last answer is written: later ones are refused.
    ended: bool,
    /// Where answers are encoded.
    heads: HeadWriter,
}

impl HttpServerEncoder {
    pub(crate) fn new() -> HttpServerEncoder {
        HttpServerEncoder {
            streaming: None,
            shutdown_due: false,
            answer_invalid: true,
            ended: false,
            heads: HeadWriter::default(),
        }
    }

    /// The request the next answer is for; a default when an answer comes
    /// with no request (it is still encoded, as HTTP/1.1).
    fn oldest(ctx: &mut Context<'_>) -> RequestInfo {
        ctx.shared::<Ledger>()
            .unanswered
            .front()
            .copied()
            .unwrap_or_else(RequestInfo::unknown)
    }

    /// Takes the oldest request off the ledger: its answer is being
    /// written whole. What the decoder must hear is noted on the way.
    fn take_oldest(ctx: &mut Context<'_>) -> (RequestInfo, After) {
        let l = ctx.shared::<Ledger>();
        let req = l
            .unanswered
            .pop_front()
            .unwrap_or_else(RequestInfo::unknown);
        if req.upgrade {
            l.upgrade_refused = true;
        }
        let after = After {
            let_in: std::mem::take(&mut l.stalled),
            invalid_next: l.invalid_first(),
        };
        (req, after)
    }

    /// An answer is complete: the next request's turn.
    fn answered(&mut self, ctx: &mut Context<'_>, req: &RequestInfo) {
        let (_, after) = Self::take_oldest(ctx);
        self.after_answer(ctx, req, after);
    }

    fn after_answer(&mut self, ctx: &mut Context<'_>, req: &RequestInfo, after: After) {
        if req.last {
            self.shutdown_due = true;
            self.ended = true;
        }
        if after.let_in {
            ctx.fire_user_event_to_self(Box::new(LetIn));
        }
        if after.invalid_next {
            self.answer_invalid_in_turn(ctx);
        }
    }

    /// The oldest request was invalid and its turn has come: answer it.
    fn answer_invalid_in_turn(&mut self, ctx: &mut Context<'_>) {
        if self.streaming.is_some() {
            return;
        }
        let req = Self::oldest(ctx);
        let Some(status) = req.invalid else { return };
        if req.mute {
            // Its head was answered already: only the end is left.
            self.answered(ctx, &req);
            return self.flush(ctx);
        }
        if !self.answer_invalid {
            return;
        }
        let mut resp = http::Response::new(FullBody::Bytes(Bytes::from(format!(
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

    /// A 101 answers the request that asked to switch protocols: it is
    /// written, then the codec leaves the pipeline.
    fn switch_protocols(
        &mut self,
        ctx: &mut Context<'_>,
        resp: http::Response<FullBody>,
        promise: Option<Promise>,
    ) {
        let req = Self::oldest(ctx);
        if !req.upgrade {
            let err = weft_core::Error::encode(
                "a 101 answer to a request that did not ask to switch protocols",
            );
            return fail_write(ctx, err, promise);
        }
        // Written now, whatever it is: the next bytes are the new protocol's.
        let (rest, _) = encode_full(&mut self.heads, resp, &req);
        let head = self.heads.take().map(Msg::Bytes);
        write_parts(ctx, head.into_iter().chain(rest), promise);
        ctx.shared::<Ledger>().unanswered.pop_front();
        self.ended = true;
        tracing::debug!("protocol switched: the HTTP codec leaves the pipeline");
        // The decoding half hands the bytes that followed the request on as
        // it leaves.
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

    /// The application's answer says `Connection: close`: it is the last,
    /// and the decoder decodes nothing more.
    fn closing(ctx: &mut Context<'_>, req: &mut RequestInfo) {
        if !req.last {
            req.last = true;
            ctx.shared::<Ledger>().stop = true;
        }
    }

    /// A body part, or the end, of the streamed answer to `req`.
    fn write_streamed(
        &mut self,
        ctx: &mut Context<'_>,
        (req, streaming): (RequestInfo, Streaming),
        msg: Msg,
        promise: Option<Promise>,
    ) {
        if msg.is::<AnswerInTurn>() {
            // Its turn comes after this answer's end.
            return;
        }
        let msg = match msg.downcast::<HttpResponsePart>() {
            Ok(HttpResponsePart::End(trailers)) => {
                self.streaming = None;
                self.write_pending(ctx);
                let end = encode_end(&trailers, streaming).map(Msg::Bytes);
                write_parts(ctx, end, promise);
                return self.answered(ctx, &req);
            }
            Ok(HttpResponsePart::Head(_)) => {
                let err = weft_core::Error::encode(
                    "a response head was written before the previous response's End",
                );
                return fail_write(ctx, err, promise);
            }
            Err(m) => m,
        };
        self.write_pending(ctx);
        if matches!(msg, Msg::User(_)) {
            return ctx.write_with(msg, promise);
        }
        write_parts(ctx, encode_chunk(msg, streaming), promise)
    }
}

/// What the decoder must hear after an answer.
struct After {
    /// It waits for an answer to let more requests in.
    let_in: bool,
    /// The next request in line is an invalid one.
    invalid_next: bool,
}

#[weft_core::handler]
impl Handler for HttpServerEncoder {
    fn handler_removed(&mut self, ctx: &mut Context<'_>) {
        self.write_pending(ctx);
    }

    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        if let Some(current) = self.streaming {
            return self.write_streamed(ctx, current, msg, promise);
        }
        if self.ended && (msg.is::<HttpResponsePart>() || FullBody::is_full(&msg)) {
            let err = weft_core::Error::closed();
            tracing::debug!("an answer after the connection's last one is dropped");
            return fail_write(ctx, err, promise);
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
                let mut req = Self::oldest(ctx);
                if !interim && says_close(head.headers()) {
                    Self::closing(ctx, &mut req);
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
                return fail_write(ctx, err, promise);
            }
            Err(m) => m,
        };
        match FullBody::from_msg(msg) {
            Ok(resp) if resp.status() == StatusCode::SWITCHING_PROTOCOLS => {
                self.switch_protocols(ctx, resp, promise)
            }
            Ok(resp) if resp.status().is_informational() => {
                // It answers nothing yet: the request stays in line.
                let req = Self::oldest(ctx);
                let (rest, _) = encode_full(&mut self.heads, resp, &req);
                self.write_encoded(ctx, rest, promise);
            }
            Ok(resp) => {
                let (mut req, after) = Self::take_oldest(ctx);
                let (rest, close) = encode_full(&mut self.heads, resp, &req);
                if close {
                    Self::closing(ctx, &mut req);
                }
                self.write_encoded(ctx, rest, promise);
                self.after_answer(ctx, &req, after);
            }
            Err(other) if other.is::<AnswerInTurn>() => self.answer_invalid_in_turn(ctx),
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

impl fmt::Debug for HttpServerEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpServerEncoder")
            .field("streaming", &self.streaming.as_ref().map(|s| s.1))
            .field("ended", &self.ended)
            .finish()
    }
}
