//! [`Pipeline`]: a channel's ordered list of named handlers.
//!
//! Contract:
//! - inbound events enter at the head and travel towards the tail; outbound
//!   operations enter at the tail (or at a handler's position, through its
//!   [`Context`]) and travel towards the head, where they reach the
//!   outbound buffer and the transport;
//! - handlers are named; names are unique within a pipeline; handlers can
//!   be added, removed and replaced at any time, also from inside one of
//!   their own callbacks, and the event in flight keeps flowing to the
//!   handlers that are linked when it moves on;
//! - a handler is skipped for the events it did not declare in
//!   [`Handler::interest`];
//! - an event that reaches a handler whose callback is already running
//!   further up the call stack (re-entrancy: a handler writes while an outer
//!   handler is in its `channel_read`) is queued and delivered, in order, as
//!   soon as that callback returns. Rust's `&mut self` forbids calling it
//!   twice at once; the queue keeps the order Netty users rely on. The two
//!   halves of a [`Combined`](crate::Combined) are called apart, so an
//!   event of one direction never waits for a callback of the other;
//! - a handler that panics is dropped; the pipeline reports the panic as an
//!   `exception_caught` event and asks the transport to close the channel;
//! - writability changes are delivered after the event that caused them has
//!   finished, never in the middle of a handler's callback.
//!
//! This is the handler author's surface; what only a transport needs (the
//! outbound buffer, the queued commands, close bookkeeping) is behind
//! [`Pipeline::transport`], documented in [`crate::transport`].
//!
//! Layout: `slot.rs` (slots and events), `dispatch.rs` (how an event moves),
//! `edit.rs` (structural edits), `ends.rs` (head and tail), `context.rs`
//! (a handler's view), `timers.rs` (timers owned by the channel),
//! `transport.rs` (the transport's view).

mod context;
mod dispatch;
mod edit;
mod ends;
mod locals;
mod slot;
mod timers;
mod transport;

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub use context::Context;
pub(crate) use dispatch::Inner;
pub use ends::OutputShutdown;
pub(crate) use slot::Ev;
pub use timers::TimerId;
pub use transport::{Transport, WrittenCounter};

use edit::{At, Target};
use slot::{HEAD, TAIL};

use crate::handler::UserEvent;
use crate::{Channel, Error, Handler, Msg, Promise, WriteFuture};

/// A channel's pipeline of handlers.
///
/// ```
/// use weft_core::{Channel, Events, Handler, Pipeline};
///
/// #[derive(Debug)]
/// struct Noop;
/// #[weft_core::handler]
/// impl Handler for Noop {
/// }
///
/// let mut p = Pipeline::new(Channel::new(None, None));
/// p.add_last("b", Noop).unwrap();
/// p.add_first("a", Noop).unwrap();
/// p.add_after("b", "c", Noop).unwrap();
/// assert_eq!(p.names(), ["a", "b", "c"]);
/// assert_eq!(p.add_last("a", Noop).unwrap_err().kind(), weft_core::ErrorKind::Pipeline);
/// p.remove("b").unwrap();
/// assert_eq!(p.names(), ["a", "c"]);
/// ```
pub struct Pipeline {
    inner: Inner,
}

impl Pipeline {
    /// An empty pipeline for `channel`, with the default watermarks.
    pub fn new(channel: Channel) -> Pipeline {
        Pipeline {
            inner: Inner::new(channel),
        }
    }

    /// The channel this pipeline belongs to.
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// The pipeline's value of type `T`, created with `T::default()` the
    /// first time (see [`Context::local`]).
    pub fn local<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.inner.local::<T>()
    }

    /// The transport's view of this pipeline: only transports (and
    /// harnesses such as [`EmbeddedChannel`](crate::EmbeddedChannel)) need
    /// it.
    pub fn transport(&mut self) -> Transport<'_> {
        Transport::new(self)
    }

    /// Runs `f` with the dispatch machinery, catching a handler panic, then
    /// delivers what the event left due: the error that closes the channel,
    /// a writability change. Returns `f`'s value, or the panic as an error.
    fn enter<R>(&mut self, f: impl FnOnce(&mut Inner) -> R) -> Result<R, Error> {
        let r = match catch_unwind(AssertUnwindSafe(|| f(&mut self.inner))) {
            Ok(r) => Ok(r),
            Err(payload) => {
                let err = self.inner.recover(payload);
                self.guarded(|p| p.forward(HEAD, Ev::Exception(err.clone())));
                Err(err)
            }
        };
        if let Some(err) = self.inner.take_pending_reason() {
            self.guarded(|p| p.forward(HEAD, Ev::Exception(err)));
        }
        if !self.inner.head.batching && self.inner.writability_due() {
            self.guarded(Inner::sync_writability);
        }
        if self.inner.watched.is_some() {
            // A watched write may have failed on its way (before the
            // transport): its writer hears of it now.
            self.guarded(Inner::poll_watched);
        }
        r
    }

    /// Runs `f`; a panic in it loses the handlers it unwound through.
    fn guarded(&mut self, f: impl FnOnce(&mut Inner)) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&mut self.inner))) {
            let _ = self.inner.recover(payload);
        }
    }

    fn edit(&mut self, f: impl FnOnce(&mut Inner) -> Result<(), Error>) -> Result<(), Error> {
        self.enter(f).and_then(|r| r)
    }

    fn add_at(&mut self, at: At<'_>, name: &str, h: Box<dyn Handler>) -> Result<(), Error> {
        self.edit(|p| p.add(at, name, h))
    }

    // ---- structure ----

    /// Adds a handler at the head end.
    ///
    /// A handler is anything that implements [`Handler`], or a
    /// `Box<dyn Handler>` built elsewhere.
    pub fn add_first(
        &mut self,
        name: &str,
        handler: impl Into<Box<dyn Handler>>,
    ) -> Result<(), Error> {
        self.add_at(At::First, name, handler.into())
    }

    /// Adds a handler at the tail end.
    pub fn add_last(
        &mut self,
        name: &str,
        handler: impl Into<Box<dyn Handler>>,
    ) -> Result<(), Error> {
        self.add_at(At::Last, name, handler.into())
    }

    /// Adds a handler just before (head side of) the handler named `base`.
    pub fn add_before(
        &mut self,
        base: &str,
        name: &str,
        handler: impl Into<Box<dyn Handler>>,
    ) -> Result<(), Error> {
        self.add_at(At::Before(Target::Named(base)), name, handler.into())
    }

    /// Adds a handler just after (tail side of) the handler named `base`.
    pub fn add_after(
        &mut self,
        base: &str,
        name: &str,
        handler: impl Into<Box<dyn Handler>>,
    ) -> Result<(), Error> {
        self.add_at(At::After(Target::Named(base)), name, handler.into())
    }

    /// Removes the handler named `name`, calling its `handler_removed`.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        self.edit(|p| p.remove(Target::Named(name)))
    }

    /// Replaces the handler named `old` with `handler` named `new_name`, at
    /// the same position.
    pub fn replace(
        &mut self,
        old: &str,
        new_name: &str,
        handler: impl Into<Box<dyn Handler>>,
    ) -> Result<(), Error> {
        let h = handler.into();
        self.edit(|p| p.replace(Target::Named(old), new_name, h))
    }

    /// The handlers' names, head to tail.
    pub fn names(&self) -> Vec<&str> {
        self.inner.names()
    }

    /// Whether a handler named `name` is in the pipeline.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.find(name).is_some()
    }

    /// Number of handlers.
    pub fn len(&self) -> usize {
        self.inner.linked().count()
    }

    /// Whether there are no handlers.
    pub fn is_empty(&self) -> bool {
        self.inner.linked().next().is_none()
    }

    // ---- inbound events from outside a callback ----

    /// Fires `user_event` from the head (from a timer task, through
    /// [`Channel::execute`], for instance).
    pub fn fire_user_event(&mut self, event: UserEvent) {
        let _ = self.enter(|p| p.forward(HEAD, Ev::UserEvent(event)));
    }

    /// Fires `exception_caught` from the head.
    pub fn fire_exception(&mut self, err: Error) {
        let _ = self.enter(|p| p.forward(HEAD, Ev::Exception(err)));
    }

    // ---- outbound operations, entering at the tail ----

    /// Writes a message from the tail, without a promise.
    pub fn write(&mut self, msg: impl Into<Msg>) {
        self.write_with(msg.into(), None);
    }

    /// Writes a message from the tail with an optional promise.
    pub fn write_with(&mut self, msg: Msg, promise: Option<Promise>) {
        let _ = self.enter(|p| p.forward_write(TAIL, msg, promise));
    }

    /// Writes and flushes from the tail; the future tells the outcome.
    pub fn write_and_flush(&mut self, msg: impl Into<Msg>) -> WriteFuture {
        let (p, f) = Promise::new();
        self.write_with(msg.into(), Some(p));
        self.flush();
        f
    }

    /// Flushes from the tail.
    pub fn flush(&mut self) {
        let _ = self.enter(|p| p.forward(TAIL, Ev::Flush));
    }

    /// Requests a read from the tail.
    pub fn read(&mut self) {
        let _ = self.enter(|p| p.forward(TAIL, Ev::ReadRequest));
    }

    /// Closes from the tail.
    pub fn close(&mut self) {
        self.close_with(None);
    }

    /// Closes from the tail with an optional promise.
    pub fn close_with(&mut self, promise: Option<Promise>) {
        let _ = self.enter(|p| p.forward(TAIL, Ev::Close(promise)));
    }

    /// Asks the transport to shut the output down once what is flushed now
    /// is written (Netty's `shutdownOutput`); `promise` completes then.
    pub fn shutdown_output(&mut self, promise: Option<Promise>) {
        self.flush();
        self.inner.request_shutdown(promise);
    }

    pub(crate) fn inner_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("channel", &self.inner.channel.id())
            .field("handlers", &self.inner.names())
            .finish()
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // Whatever is still queued can never be written.
        if !self.inner.head.closed {
            for cmd in self.inner.channel.mark_closed() {
                cmd.fail();
            }
            self.inner.head.outbound.fail_all(&Error::closed());
        }
    }
}
