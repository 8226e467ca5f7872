//! [`Encoder`] and [`EncoderHandler`]: turning messages into bytes.
//!
//! Contract:
//! - the handler takes outbound messages of the encoder's type and passes
//!   every other message through untouched;
//! - the encoder appends its output to a [`CompositeBytes`], so a header
//!   can go in front of a payload that is only referenced, never copied;
//!   output of one chunk is written as a plain `Bytes`;
//! - the write's promise travels with the encoded bytes; an encode error
//!   fails the promise (and is fired as `exception_caught`), nothing is
//!   written for that message, and the channel stays open.

use std::fmt;

use weft_core::{CompositeBytes, Context, Error, Handler, Msg, Promise};

/// Encodes messages of one type into bytes.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{Encoder, EncoderHandler};
/// use weft_core::{CompositeBytes, EmbeddedChannel, Error};
///
/// /// A one-byte length, then the payload, by reference.
/// struct Tiny;
/// impl Encoder for Tiny {
///     type Item = Bytes;
///     fn encode(&mut self, item: Bytes, out: &mut CompositeBytes) -> Result<(), Error> {
///         let len = u8::try_from(item.len()).map_err(|_| Error::encode("too long"))?;
///         out.push(Bytes::copy_from_slice(&[len]));
///         out.push(item);
///         Ok(())
///     }
/// }
///
/// let mut ch = EmbeddedChannel::with_handler(EncoderHandler::new(Tiny));
/// ch.write_outbound(Bytes::from_static(b"hi"));
/// assert_eq!(ch.read_outbound_bytes(), &b"\x02hi"[..]);
/// ```
pub trait Encoder: Send + 'static {
    /// The message type it encodes.
    type Item: Send + 'static;

    /// Appends the encoding of `item` to `out`.
    fn encode(&mut self, item: Self::Item, out: &mut CompositeBytes) -> Result<(), Error>;
}

/// Runs an [`Encoder`] in a pipeline (Netty's `MessageToByteEncoder`).
pub struct EncoderHandler<E> {
    encoder: E,
}

impl<E: Encoder> EncoderHandler<E> {
    /// Wraps `encoder`.
    pub fn new(encoder: E) -> EncoderHandler<E> {
        EncoderHandler { encoder }
    }
}

/// Writes encoded output: one chunk as `Bytes`, several as a composite.
pub(crate) fn write_encoded(ctx: &mut Context<'_>, out: CompositeBytes, promise: Option<Promise>) {
    let msg = if out.chunk_count() <= 1 {
        Msg::Bytes(out.into_bytes())
    } else {
        Msg::Composite(out)
    };
    ctx.write_with(msg, promise);
}

/// Writes what one message was encoded into; the promise completes with
/// the last piece (at once when there is none: a suppressed body piece,
/// a compressor that has nothing to send yet).
#[cfg(feature = "http")]
pub(crate) fn write_parts<I>(ctx: &mut Context<'_>, parts: I, promise: Option<Promise>)
where
    I: IntoIterator<Item = Msg>,
{
    let mut parts = parts.into_iter().peekable();
    let mut promise = promise;
    while let Some(m) = parts.next() {
        let p = if parts.peek().is_none() {
            promise.take()
        } else {
            None
        };
        ctx.write_with(m, p);
    }
    if let Some(p) = promise {
        p.succeed();
    }
}

/// Fails a write whose message could not be encoded.
pub(crate) fn fail_write(ctx: &mut Context<'_>, err: Error, promise: Option<Promise>) {
    if let Some(p) = promise {
        p.fail(err.clone());
    }
    ctx.fire_exception(err);
}

#[weft_core::handler]
impl<E: Encoder> Handler for EncoderHandler<E> {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        match msg.downcast::<E::Item>() {
            Ok(item) => {
                let mut out = CompositeBytes::new();
                match self.encoder.encode(item, &mut out) {
                    Ok(()) => write_encoded(ctx, out, promise),
                    Err(e) => fail_write(ctx, e, promise),
                }
            }
            Err(other) => ctx.write_with(other, promise),
        }
    }
}

impl<E> fmt::Debug for EncoderHandler<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncoderHandler")
            .field("encoder", &std::any::type_name::<E>())
            .finish()
    }
}
