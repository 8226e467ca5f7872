//! Typed inbound handlers: the downcast from [`Msg`] done for you.
//!
//! Contract: a [`TypedInbound`] declares the message type it takes
//! ([`TypedInbound::In`]); wrapped in [`Typed`] it becomes a [`Handler`].
//! A message of that type is downcast (free for `Bytes`, `CompositeBytes`
//! and `FileRegion`) and handed to [`TypedInbound::read`]; a message of any
//! other type is an error ([`ErrorKind::TypeMismatch`](crate::ErrorKind::TypeMismatch)) naming both types,
//! delivered to the handler's own `exception_caught`, and the message is
//! dropped. This is Netty's `SimpleChannelInboundHandler`, with the mismatch
//! made loud.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

use crate::handler::UserEvent;
use crate::{Context, Error, Events, Handler, Msg};

/// An inbound handler that takes one message type.
///
/// ```
/// use bytes::Bytes;
/// use weft_core::{Context, EmbeddedChannel, Typed, TypedInbound};
///
/// #[derive(Debug)]
/// struct Upper;
/// impl TypedInbound for Upper {
///     type In = Bytes;
///     fn read(&mut self, ctx: &mut Context<'_>, msg: Bytes) {
///         ctx.fire_read(msg.to_ascii_uppercase());
///     }
/// }
///
/// let mut ch = EmbeddedChannel::with_handler(Typed(Upper));
/// ch.write_inbound("abc");
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "ABC");
/// ```
#[allow(unused_variables)]
pub trait TypedInbound: Send + 'static {
    /// The message type this handler takes.
    type In: Any + Send;

    /// A message of type [`In`](Self::In) arrived.
    fn read(&mut self, ctx: &mut Context<'_>, msg: Self::In);

    /// The events this handler takes part in (all inbound ones by default).
    fn interest(&self) -> Events {
        Events::INBOUND
    }

    /// See [`Handler::handler_added`].
    fn handler_added(&mut self, ctx: &mut Context<'_>) {}

    /// See [`Handler::handler_removed`].
    fn handler_removed(&mut self, ctx: &mut Context<'_>) {}

    /// See [`Handler::channel_active`].
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        ctx.fire_active();
    }

    /// See [`Handler::channel_read_complete`].
    fn read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.fire_read_complete();
    }

    /// See [`Handler::user_event`].
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        ctx.fire_user_event(event);
    }

    /// See [`Handler::writability_changed`].
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        ctx.fire_writability_changed(writable);
    }

    /// See [`Handler::exception_caught`]; also receives type mismatches.
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        ctx.fire_exception(err);
    }

    /// See [`Handler::channel_inactive`].
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        ctx.fire_inactive();
    }
}

/// Wraps a [`TypedInbound`] into a [`Handler`].
#[derive(Debug, Clone, Default)]
pub struct Typed<H>(pub H);

impl<H: TypedInbound> Handler for Typed<H> {
    fn interest(&self) -> Events {
        self.0.interest() | Events::READ
    }
    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        self.0.handler_added(ctx)
    }
    fn handler_removed(&mut self, ctx: &mut Context<'_>) {
        self.0.handler_removed(ctx)
    }
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.0.channel_active(ctx)
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        match msg.downcast::<H::In>() {
            Ok(m) => self.0.read(ctx, m),
            Err(other) => {
                let err = Error::type_mismatch(std::any::type_name::<H::In>(), other.type_name());
                self.0.exception_caught(ctx, err)
            }
        }
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        self.0.read_complete(ctx)
    }
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        self.0.user_event(ctx, event)
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        self.0.writability_changed(ctx, writable)
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        self.0.exception_caught(ctx, err)
    }
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.0.channel_inactive(ctx)
    }
}

/// A typed inbound handler made from a closure; see [`from_fn`].
pub struct FnInbound<T, F> {
    f: F,
    _t: PhantomData<fn(T)>,
}

/// A handler from a closure that takes messages of type `T`.
///
/// ```
/// use bytes::Bytes;
/// use weft_core::{from_fn, Context, EmbeddedChannel};
///
/// let echo = from_fn(|ctx: &mut Context<'_>, msg: Bytes| ctx.write_and_flush(msg));
/// let mut ch = EmbeddedChannel::with_handler(echo);
/// ch.write_inbound("ping");
/// assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "ping");
/// ```
pub fn from_fn<T, F>(f: F) -> Typed<FnInbound<T, F>>
where
    T: Any + Send,
    F: FnMut(&mut Context<'_>, T) + Send + 'static,
{
    Typed(FnInbound { f, _t: PhantomData })
}

impl<T, F> TypedInbound for FnInbound<T, F>
where
    T: Any + Send,
    F: FnMut(&mut Context<'_>, T) + Send + 'static,
{
    type In = T;
    fn interest(&self) -> Events {
        Events::READ
    }
    fn read(&mut self, ctx: &mut Context<'_>, msg: T) {
        (self.f)(ctx, msg)
    }
}

impl<T, F> fmt::Debug for FnInbound<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnInbound")
            .field("in", &std::any::type_name::<T>())
            .finish()
    }
}
