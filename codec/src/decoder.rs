//! [`Decoder`] and [`DecoderHandler`]: turning received bytes into messages.
//!
//! Contract:
//! - the handler accumulates inbound `Bytes` (and the chunks of
//!   `CompositeBytes`) in a [`Cumulation`] and calls
//!   [`Decoder::decode`] until it returns `Ok(None)` without having consumed
//!   anything; every message it returns is fired on. Other messages pass
//!   through untouched;
//! - a decoder that returns a message without consuming anything is a bug
//!   that would loop forever: it is reported as an error instead and
//!   decoding stops;
//! - an error is fired as `exception_caught`; then, by default, the channel
//!   is closed ([`DecoderHandler::close_on_error`] turns that off, and
//!   decoding resumes with whatever the decoder left);
//! - while the channel is unwritable (its answers have passed the high
//!   watermark) the handler decodes nothing more: the bytes wait in the
//!   cumulation, and decoding resumes when the channel turns writable again,
//!   followed by a `channel_read_complete`. One read can carry thousands of
//!   pipelined requests; this keeps a peer that sends them without reading
//!   the answers to one high watermark of answers (the transport, which
//!   stops reading meanwhile, bounds the waiting bytes).
//!   [`DecoderHandler::pause_when_unwritable`] turns it off;
//! - at end of input (`channel_inactive`, or the
//!   [`InputShutdown`](weft_core::InputShutdown) event)
//!   [`Decoder::decode_eof`] runs until it yields nothing (after the paused
//!   bytes, once writable, for `InputShutdown`);
//! - when the handler is removed (protocol switching), the bytes it has not
//!   decoded are handed to the next handler, so nothing is lost.

use std::fmt;

use weft_core::{Context, Error, Handler, InputShutdown, Msg, UserEvent};

use crate::Cumulation;

/// Decodes messages from a stream of bytes.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{Cumulation, Decoder, DecoderHandler};
/// use weft_core::{EmbeddedChannel, Error};
///
/// /// Frames of one length byte followed by that many bytes.
/// struct Tiny;
/// impl Decoder for Tiny {
///     type Item = Bytes;
///     fn decode(&mut self, src: &mut Cumulation) -> Result<Option<Bytes>, Error> {
///         let Some(&n) = src.first() else { return Ok(None) };
///         if src.len() < 1 + n as usize {
///             return Ok(None);
///         }
///         src.advance(1);
///         Ok(Some(src.split_to(n as usize)))
///     }
/// }
///
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(Tiny));
/// ch.write_inbound(&b"\x02hi\x03yo"[..]);
/// ch.write_inbound(&b"u"[..]);
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "hi");
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "you");
/// ```
pub trait Decoder: Send + 'static {
    /// The message type it produces.
    type Item: Send + 'static;

    /// Decodes one message from the front of `src`, consuming its bytes, or
    /// returns `Ok(None)` when more bytes are needed.
    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<Self::Item>, Error>;

    /// Decodes at end of input. The default calls [`decode`](Self::decode);
    /// bytes left after it are dropped. Here, and only here, one message
    /// may come without consuming input (what the end itself means: the
    /// end of a body delimited by the connection); a second in a row is an
    /// error, as in `decode`.
    fn decode_eof(&mut self, src: &mut Cumulation) -> Result<Option<Self::Item>, Error> {
        self.decode(src)
    }

    /// What [`DecoderHandler`] calls: [`decode`](Self::decode), or
    /// [`decode_eof`](Self::decode_eof) when `eof`, with the message as the
    /// [`Msg`] passed on ([`Msg::user`]). A decoder whose messages are large
    /// may build them in a box and override this to hand the box on as it
    /// is ([`Msg::from_box`]), saving their moves on the way out.
    fn decode_msg(&mut self, src: &mut Cumulation, eof: bool) -> Result<Option<Msg>, Error> {
        let item = if eof {
            self.decode_eof(src)?
        } else {
            self.decode(src)?
        };
        Ok(item.map(Msg::user))
    }

    /// What [`DecoderHandler`] calls, with its handler's context (Netty's
    /// `decode(ctx, in, out)`): the default calls
    /// [`decode_msg`](Self::decode_msg). A decoder that runs as the inbound
    /// half of a [`Combined`](weft_core::Combined) overrides it to reach the
    /// state the halves share ([`Context::shared`]), as the HTTP server
    /// codec's request decoder does.
    fn decode_with(
        &mut self,
        ctx: &mut Context<'_>,
        src: &mut Cumulation,
        eof: bool,
    ) -> Result<Option<Msg>, Error> {
        let _ = ctx;
        self.decode_msg(src, eof)
    }
}

/// Runs a [`Decoder`] in a pipeline (Netty's `ByteToMessageDecoder`).
pub struct DecoderHandler<D> {
    decoder: D,
    cum: Cumulation,
    close_on_error: bool,
    failed: bool,
    pause_when_unwritable: bool,
    /// Decoding stopped because the channel was unwritable.
    paused: bool,
    /// End of input arrived while paused.
    eof_pending: bool,
}

impl<D: Decoder> DecoderHandler<D> {
    /// Wraps `decoder`; errors close the channel.
    pub fn new(decoder: D) -> DecoderHandler<D> {
        DecoderHandler {
            decoder,
            cum: Cumulation::new(),
            close_on_error: true,
            failed: false,
            pause_when_unwritable: true,
            paused: false,
            eof_pending: false,
        }
    }

    /// Whether decoding stops while the channel is unwritable (default:
    /// yes; see the module docs).
    pub fn pause_when_unwritable(mut self, on: bool) -> Self {
        self.pause_when_unwritable = on;
        self
    }

    /// Whether a decode error closes the channel after the error event
    /// (default: yes). When not, decoding goes on with what the decoder
    /// left in the buffer (frame decoders skip the bad frame).
    pub fn close_on_error(mut self, close: bool) -> Self {
        self.close_on_error = close;
        self
    }

    /// The decoder.
    pub fn decoder(&self) -> &D {
        &self.decoder
    }

    /// The decoder, mutably (for a codec that shares state with it).
    pub fn decoder_mut(&mut self) -> &mut D {
        &mut self.decoder
    }

    /// Decodes what is buffered, as after a read, and ends with
    /// `channel_read_complete` if anything was decoded: for a handler that
    /// wraps this one and held its decoder back (HTTP's bounded pipelining).
    pub fn resume(&mut self, ctx: &mut Context<'_>) {
        if self.failed || self.paused || self.cum.is_empty() {
            return;
        }
        let before = self.cum.len();
        self.run(ctx, false);
        if self.cum.len() < before && !ctx.is_removed() {
            ctx.fire_read_complete();
        }
    }

    /// Bytes received and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.cum.len()
    }

    fn run(&mut self, ctx: &mut Context<'_>, eof: bool) {
        // At end of input, one message may come from the end alone.
        let mut free_at_eof = eof;
        while !self.failed {
            if self.pause_when_unwritable && !ctx.is_writable() && ctx.channel().is_open() {
                // The answers wait: decode the rest once they have drained.
                self.paused = !self.cum.is_empty();
                self.eof_pending |= eof && self.paused;
                return;
            }
            let before = self.cum.len();
            let r = self.decoder.decode_with(ctx, &mut self.cum, eof);
            // Decoding only takes bytes away.
            let consumed = before.saturating_sub(self.cum.len());
            match r {
                Ok(Some(item)) => {
                    if consumed == 0 && std::mem::take(&mut free_at_eof) {
                        ctx.fire_read(item);
                        if ctx.is_removed() {
                            return;
                        }
                        continue;
                    }
                    if consumed == 0 {
                        self.fail(
                            ctx,
                            Error::decode(format!(
                                "{} returned a message without consuming any input",
                                std::any::type_name::<D>()
                            )),
                        );
                        return;
                    }
                    ctx.fire_read(item);
                    if ctx.is_removed() {
                        return;
                    }
                }
                // As in Netty: a decoder that consumed input without
                // producing a message (skipping, discarding) gets another go.
                Ok(None) if consumed > 0 && !self.cum.is_empty() => continue,
                Ok(None) => return,
                Err(e) => {
                    self.fail(ctx, e);
                    if consumed == 0 || self.cum.is_empty() {
                        return;
                    }
                }
            }
        }
    }

    fn fail(&mut self, ctx: &mut Context<'_>, err: Error) {
        ctx.fire_exception(err);
        if self.close_on_error {
            self.failed = true;
            self.cum = Cumulation::new();
            ctx.close();
        }
    }
}

#[weft_core::handler]
impl<D: Decoder> Handler for DecoderHandler<D> {
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        ctx.fire_writability_changed(writable);
        if writable && self.paused && !ctx.is_removed() {
            self.paused = false;
            self.run(ctx, false);
            if !self.paused && std::mem::take(&mut self.eof_pending) {
                self.run(ctx, true);
            }
            ctx.fire_read_complete();
        }
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if self.failed {
            return;
        }
        match msg {
            Msg::Bytes(b) => self.cum.push(b),
            Msg::Composite(c) => {
                for chunk in c {
                    self.cum.push(chunk);
                }
            }
            other => return ctx.fire_read(other),
        }
        self.run(ctx, false);
    }

    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        if event.is::<InputShutdown>() {
            self.run(ctx, true);
        }
        ctx.fire_user_event(event);
    }

    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        // Closed: nothing can be answered any more, but the last messages
        // are still handed on, as at any end of input.
        self.pause_when_unwritable = false;
        self.run(ctx, true);
        ctx.fire_inactive();
    }

    fn handler_removed(&mut self, ctx: &mut Context<'_>) {
        let rest = self.cum.take_all();
        if !rest.is_empty() {
            ctx.fire_read(rest);
            ctx.fire_read_complete();
        }
    }
}

impl<D> fmt::Debug for DecoderHandler<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecoderHandler")
            .field("decoder", &std::any::type_name::<D>())
            .field("buffered", &self.cum.len())
            .finish()
    }
}
