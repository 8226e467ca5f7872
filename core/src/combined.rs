//! [`Combined`]: one handler made of an inbound half and an outbound half
//! (Netty's `CombinedChannelDuplexHandler`, SwiftNIO's separate inbound and
//! outbound handlers), installed under one name.
//!
//! Contract:
//! - the pipeline links a `Combined` as one slot: inbound events reach the
//!   inbound half, outbound operations the outbound half; each half's
//!   `interest` counts only for its own direction;
//! - the halves are called apart: an answer written while the inbound half
//!   is inside its `channel_read` reaches the outbound half at once, never
//!   queued behind the read (a one-piece handler is busy both ways for the
//!   length of a callback, because `&mut self` cannot be lent twice);
//! - what the halves share is one plain value, `state`, that each reaches
//!   through [`Context::shared`] — no `Arc`, no lock: the borrow of the
//!   context keeps it from being held while an event moves on;
//! - each half hears its own `handler_added`, `handler_removed` and timers;
//!   removing the handler removes both.

use std::any::Any;

use crate::{Context, Handler};

/// Two halves and their shared state, installed as one handler.
///
/// ```
/// use weft_core::{Combined, Context, EmbeddedChannel, Events, Handler, Msg, Promise};
///
/// /// Remembers the last message read...
/// struct Remember;
/// #[weft_core::handler]
/// impl Handler for Remember {
///     fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
///         if let Msg::Bytes(b) = &msg {
///             *ctx.shared::<Vec<u8>>() = b.to_vec();
///         }
///         ctx.fire_read(msg);
///     }
/// }
/// /// ...and answers every write with it.
/// struct Answer;
/// #[weft_core::handler]
/// impl Handler for Answer {
///     fn write(&mut self, ctx: &mut Context<'_>, _: Msg, p: Option<Promise>) {
///         let last = ctx.shared::<Vec<u8>>().clone();
///         ctx.write_with(Msg::from(last), p);
///     }
/// }
///
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("echo-last", Combined::new(Vec::<u8>::new(), Remember, Answer))
///     .build();
/// assert_eq!(ch.pipeline().names(), ["echo-last"]);
/// ch.write_inbound("hello");
/// ch.write_outbound("anything");
/// assert_eq!(ch.read_outbound_bytes(), "hello");
/// ```
pub struct Combined<S, I, O> {
    parts: Option<(S, I, O)>,
}

impl<S, I, O> Combined<S, I, O>
where
    S: Send + 'static,
    I: Handler,
    O: Handler,
{
    /// A handler whose inbound events go to `inbound`, whose outbound
    /// operations go to `outbound`, both reaching `state` through
    /// [`Context::shared`].
    pub fn new(state: S, inbound: I, outbound: O) -> Combined<S, I, O> {
        Combined {
            parts: Some((state, inbound, outbound)),
        }
    }

    /// The state, until the handler is added.
    pub fn state_mut(&mut self) -> Option<&mut S> {
        self.parts.as_mut().map(|(s, _, _)| s)
    }

    /// The inbound half, until the handler is added.
    pub fn inbound_mut(&mut self) -> Option<&mut I> {
        self.parts.as_mut().map(|(_, i, _)| i)
    }

    /// The outbound half, until the handler is added.
    pub fn outbound_mut(&mut self) -> Option<&mut O> {
        self.parts.as_mut().map(|(_, _, o)| o)
    }
}

/// The parts the pipeline takes out of a [`Combined`] as it links it.
#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Halves {
    pub(crate) inbound: Box<dyn Handler>,
    pub(crate) outbound: Box<dyn Handler>,
    pub(crate) shared: Box<dyn Any + Send>,
}

impl<S, I, O> Handler for Combined<S, I, O>
where
    S: Send + 'static,
    I: Handler,
    O: Handler,
{
    fn take_halves(&mut self) -> Option<Halves> {
        let (state, inbound, outbound) = self.parts.take()?;
        Some(Halves {
            inbound: Box::new(inbound),
            outbound: Box::new(outbound),
            shared: Box::new(state),
        })
    }

    /// Only reached when a `Combined` is wrapped in another handler instead
    /// of added to a pipeline: its halves would never be called apart, nor
    /// find their state. Said loudly, once.
    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        let err = crate::Error::pipeline(format!(
            "handler `{}` wraps a Combined: add the Combined to the pipeline itself \
             (its halves are installed apart there)",
            ctx.name()
        ));
        tracing::error!(error = %err, "misplaced Combined");
        ctx.fire_exception(err);
    }
}

impl<S, I, O> std::fmt::Debug for Combined<S, I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Combined")
            .field("state", &std::any::type_name::<S>())
            .field("inbound", &std::any::type_name::<I>())
            .field("outbound", &std::any::type_name::<O>())
            .finish()
    }
}
