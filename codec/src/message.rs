//! Message-to-message decoders and encoders: typed transformations of
//! messages already framed (Netty's `MessageToMessageDecoder/Encoder`).
//!
//! Contract: a message of the declared input type is transformed into zero
//! or more messages; any other message passes through untouched. On the
//! outbound side the write's promise goes with the last output message
//! (and succeeds at once when there is none); an error fails the promise.

use std::any::Any;
use std::fmt;

use weft_core::{Context, Error, Handler, Msg, Promise};

/// Transforms inbound messages of one type.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{MessageDecoder, MessageDecoderHandler};
/// use weft_core::{EmbeddedChannel, Error, Msg};
///
/// struct ParseNumber;
/// impl MessageDecoder for ParseNumber {
///     type In = Bytes;
///     fn decode(&mut self, msg: Bytes, out: &mut Vec<Msg>) -> Result<(), Error> {
///         let text = std::str::from_utf8(&msg).map_err(|_| Error::decode("not UTF-8"))?;
///         let n: u64 = text.trim().parse().map_err(|_| Error::decode("not a number"))?;
///         out.push(Msg::user(n));
///         Ok(())
///     }
/// }
///
/// let mut ch = EmbeddedChannel::with_handler(MessageDecoderHandler::new(ParseNumber));
/// ch.write_inbound("42");
/// assert_eq!(ch.read_inbound::<u64>(), Some(42));
/// ```
pub trait MessageDecoder: Send + 'static {
    /// The input type.
    type In: Any + Send;
    /// Transforms `msg`, pushing results to `out`.
    fn decode(&mut self, msg: Self::In, out: &mut Vec<Msg>) -> Result<(), Error>;
}

/// Transforms outbound messages of one type.
pub trait MessageEncoder: Send + 'static {
    /// The input type.
    type In: Any + Send;
    /// Transforms `msg`, pushing results to `out`.
    fn encode(&mut self, msg: Self::In, out: &mut Vec<Msg>) -> Result<(), Error>;
}

/// Runs a [`MessageDecoder`] in a pipeline.
pub struct MessageDecoderHandler<D> {
    decoder: D,
    out: Vec<Msg>,
}

impl<D: MessageDecoder> MessageDecoderHandler<D> {
    /// Wraps `decoder`.
    pub fn new(decoder: D) -> Self {
        MessageDecoderHandler {
            decoder,
            out: Vec::new(),
        }
    }
}

#[weft_core::handler]
impl<D: MessageDecoder> Handler for MessageDecoderHandler<D> {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        match msg.downcast::<D::In>() {
            Ok(m) => {
                let r = self.decoder.decode(m, &mut self.out);
                for m in self.out.drain(..) {
                    ctx.fire_read(m);
                }
                if let Err(e) = r {
                    ctx.fire_exception(e);
                }
            }
            Err(other) => ctx.fire_read(other),
        }
    }
}

/// Runs a [`MessageEncoder`] in a pipeline.
pub struct MessageEncoderHandler<E> {
    encoder: E,
    out: Vec<Msg>,
}

impl<E: MessageEncoder> MessageEncoderHandler<E> {
    /// Wraps `encoder`.
    pub fn new(encoder: E) -> Self {
        MessageEncoderHandler {
            encoder,
            out: Vec::new(),
        }
    }
}

#[weft_core::handler]
impl<E: MessageEncoder> Handler for MessageEncoderHandler<E> {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        match msg.downcast::<E::In>() {
            Ok(m) => match self.encoder.encode(m, &mut self.out) {
                Ok(()) => {
                    let mut out = std::mem::take(&mut self.out);
                    let last = out.pop();
                    for m in out.drain(..) {
                        ctx.write(m);
                    }
                    self.out = out;
                    match last {
                        Some(m) => ctx.write_with(m, promise),
                        None => {
                            if let Some(p) = promise {
                                p.succeed();
                            }
                        }
                    }
                }
                Err(e) => {
                    self.out.clear();
                    crate::encoder::fail_write(ctx, e, promise);
                }
            },
            Err(other) => ctx.write_with(other, promise),
        }
    }
}

impl<D> fmt::Debug for MessageDecoderHandler<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageDecoderHandler")
            .field("decoder", &std::any::type_name::<D>())
            .finish()
    }
}

impl<E> fmt::Debug for MessageEncoderHandler<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageEncoderHandler")
            .field("encoder", &std::any::type_name::<E>())
            .finish()
    }
}
