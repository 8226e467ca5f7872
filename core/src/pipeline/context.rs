//! [`Context`]: a handler's view of its pipeline, from its own position.
//!
//! Contract: `fire_*` methods pass an inbound event to the next interested
//! handler towards the tail; `write`, `flush`, `read` and `close` start an
//! outbound operation at the next interested handler towards the head (as
//! `ctx.write` in Netty), not at the tail. A handler may change the pipeline
//! through its context at any time, including removing or replacing itself;
//! after removal its context still forwards to its former neighbours.

use std::fmt;

use super::edit::{At, Target};
use super::{Ev, Inner};
use crate::handler::UserEvent;
use crate::{Channel, Error, Handler, Msg, Promise, WriteFuture};

/// A handler's handle on its pipeline during a callback.
pub struct Context<'a> {
    inner: &'a mut Inner,
    idx: usize,
    /// The context of the outbound half of a [`Combined`](crate::Combined).
    out: bool,
}

impl<'a> Context<'a> {
    pub(crate) fn new(inner: &'a mut Inner, idx: usize) -> Context<'a> {
        Context::of_half(inner, idx, false)
    }

    /// The context of the handler in slot `idx`, or of the outbound half
    /// of the `Combined` there when `out`.
    #[inline]
    pub(crate) fn of_half(inner: &'a mut Inner, idx: usize, out: bool) -> Context<'a> {
        Context { inner, idx, out }
    }

    /// The state the two halves of this [`Combined`](crate::Combined)
    /// share (the `state` given to [`Combined::new`](crate::Combined::new)).
    /// It borrows the context, so it cannot be held across a call that
    /// passes an event on: what a half changed is there for the other half
    /// before the event moves.
    ///
    /// # Panics
    ///
    /// When this handler is not a half of a `Combined` whose state is an
    /// `S` — a bug in the handler, found the first time it runs (the
    /// pipeline contains the panic: the channel closes with an error
    /// naming it).
    ///
    /// ```
    /// use weft_core::{Combined, Context, EmbeddedChannel, Handler, Msg, Promise};
    ///
    /// /// Counts messages read, and stamps each answer with the count.
    /// struct Reads;
    /// impl Handler for Reads {
    ///     fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
    ///         *ctx.shared::<u64>() += 1;
    ///         ctx.fire_read(msg);
    ///     }
    /// }
    /// struct Stamp;
    /// impl Handler for Stamp {
    ///     fn write(&mut self, ctx: &mut Context<'_>, _: Msg, p: Option<Promise>) {
    ///         let n = *ctx.shared::<u64>();
    ///         ctx.write_with(Msg::from(format!("{n}").into_bytes()), p);
    ///     }
    /// }
    ///
    /// let mut ch = EmbeddedChannel::with_handler(Combined::new(0u64, Reads, Stamp));
    /// ch.write_inbound("a");
    /// ch.write_inbound("b");
    /// ch.write_outbound("answer");
    /// assert_eq!(ch.read_outbound_bytes(), "2");
    /// ```
    #[track_caller]
    #[inline]
    pub fn shared<S: Send + 'static>(&mut self) -> &mut S {
        let slot = &mut self.inner.slots[self.idx];
        let (name, duplex) = (&slot.name, &mut slot.duplex);
        match duplex.as_mut() {
            Some(d) => match d.shared.downcast_mut::<S>() {
                Some(s) => s,
                None => not_shared(name, std::any::type_name::<S>(), true),
            },
            None => not_shared(name, std::any::type_name::<S>(), false),
        }
    }

    /// The pipeline's value of type `T`, created with `T::default()` the
    /// first time any handler asks: state the handlers of one channel
    /// share without passing it along (Netty's channel attributes, keyed
    /// by type; a private type keeps it to its module). Like
    /// [`shared`](Self::shared), it borrows the context.
    ///
    /// ```
    /// use weft_core::{from_fn, Context, EmbeddedChannel, Msg};
    ///
    /// #[derive(Default)]
    /// struct User(Option<String>);
    ///
    /// let login = from_fn(|ctx: &mut Context<'_>, name: bytes::Bytes| {
    ///     ctx.local::<User>().0 = Some(String::from_utf8_lossy(&name).into_owned());
    /// });
    /// let mut ch = EmbeddedChannel::builder().add_last("login", login).build();
    /// ch.write_inbound("ada");
    /// assert_eq!(ch.pipeline_mut().local::<User>().0.as_deref(), Some("ada"));
    /// ```
    pub fn local<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.inner.local::<T>()
    }

    /// This handler's name.
    pub fn name(&self) -> &str {
        self.inner.name_of(self.idx)
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.inner.channel
    }

    /// Whether the outbound buffer is below its high watermark right now.
    pub fn is_writable(&self) -> bool {
        self.inner.head.outbound.is_writable() && !self.inner.head.closed
    }

    /// Bytes queued in the outbound buffer.
    pub fn buffered_bytes(&self) -> usize {
        self.inner.head.outbound.buffered_bytes()
    }

    /// Changes the channel's cap on outbound bytes from now on (`None`: no
    /// cap); the bootstrap's `max_outbound_bytes` set the first one. A
    /// write past the cap fails and closes the channel, as when the
    /// bootstrap set it. For a connection whose role is known only after a
    /// handshake: a chat room's members get a smaller cap than an echo
    /// endpoint that must hold whole 16 MiB messages.
    pub fn set_max_outbound_bytes(&mut self, cap: Option<usize>) {
        self.inner.head.outbound.set_cap(cap);
    }

    /// The channel's time: tokio's clock on a socket, the virtual clock of
    /// an [`EmbeddedChannel`](crate::EmbeddedChannel).
    pub fn now(&self) -> tokio::time::Instant {
        self.inner.now()
    }

    /// Arms a timer that fires once, `after` from [`now`](Self::now), as
    /// this handler's [`Handler::timer`] callback on the channel's own task
    /// (see `pipeline/timers.rs` for the contract). Removing the handler
    /// disarms it.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::{Context, EmbeddedChannel, Events, Handler, TimerId};
    ///
    /// /// Closes the channel a second after it became active.
    /// struct CloseLater;
    /// #[weft_core::handler]
    /// impl Handler for CloseLater {
    ///     fn channel_active(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.schedule(Duration::from_secs(1));
    ///         ctx.fire_active();
    ///     }
    ///     fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
    ///         ctx.close();
    ///     }
    /// }
    ///
    /// let mut ch = EmbeddedChannel::with_handler(CloseLater);
    /// ch.advance_time(Duration::from_millis(999));
    /// assert!(ch.is_open());
    /// ch.advance_time(Duration::from_millis(1));
    /// assert!(!ch.is_open());
    /// ```
    ///
    /// # Panics
    ///
    /// When the handler does not take timers (its
    /// [`interest`](Handler::interest) lacks [`Events::TIMER`](crate::Events::TIMER)):
    /// the timer would fire into nothing, or into a `timer` the mask
    /// hides. Implement [`Handler::timer`] in a block marked
    /// [`#[handler]`](crate::handler), which derives the bit, or add it to
    /// a mask kept by hand. The pipeline contains the panic: the channel
    /// closes with an error that says this.
    #[track_caller]
    pub fn schedule(&mut self, after: std::time::Duration) -> super::TimerId {
        if !self.inner.takes_timers(self.idx) {
            panic!(
                "handler `{}` armed a timer but does not take timers: implement \
                 Handler::timer in an impl block marked #[weft_core::handler] (or add \
                 Events::TIMER to the interest it declares by hand)",
                self.name()
            );
        }
        let at = self.inner.now() + after;
        self.inner.arm_timer(self.idx, self.out, at)
    }

    /// Disarms a timer this handler armed; whether it was still armed.
    pub fn cancel_timer(&mut self, id: super::TimerId) -> bool {
        self.inner.cancel_timer(self.idx, id)
    }

    /// Whether this handler has been removed from the pipeline.
    pub fn is_removed(&self) -> bool {
        !self.inner.is_linked(self.idx)
    }

    // ---- inbound ----

    /// Passes `channel_active` on.
    pub fn fire_active(&mut self) {
        self.inner.forward(self.idx, Ev::Active);
    }

    /// Passes a message on.
    pub fn fire_read(&mut self, msg: impl Into<Msg>) {
        self.inner.forward_read(self.idx, msg.into());
    }

    /// Passes `channel_read_complete` on.
    pub fn fire_read_complete(&mut self) {
        self.inner.forward(self.idx, Ev::ReadComplete);
    }

    /// Passes a user event on.
    pub fn fire_user_event(&mut self, event: UserEvent) {
        self.inner.forward(self.idx, Ev::UserEvent(event));
    }

    /// Delivers a user event to this slot's own inbound handler: the
    /// inbound half of a [`Combined`](crate::Combined) (how its outbound
    /// half wakes its partner), or this handler itself. It runs now if that
    /// handler is idle, else as soon as its current callback returns; it is
    /// dropped once the handler was removed. It does not travel on unless
    /// that handler passes it on.
    pub fn fire_user_event_to_self(&mut self, event: UserEvent) {
        if self.inner.is_linked(self.idx) {
            self.inner.invoke(self.idx, Ev::UserEvent(event));
        }
    }

    /// Writes `msg` to this slot's own outbound handler: the outbound half
    /// of a [`Combined`](crate::Combined) (how its inbound half tells its
    /// partner something in turn with the answers), or this handler itself,
    /// at once if it is idle, else after its current callback; dropped once
    /// the handler was removed.
    pub fn write_to_self(&mut self, msg: impl Into<Msg>) {
        if self.inner.is_linked(self.idx) {
            self.inner.invoke(self.idx, Ev::Write(msg.into(), None));
        }
    }

    /// Passes a writability change on.
    pub fn fire_writability_changed(&mut self, writable: bool) {
        self.inner.forward(self.idx, Ev::Writability(writable));
    }

    /// Passes an error on.
    pub fn fire_exception(&mut self, err: Error) {
        self.inner.forward(self.idx, Ev::Exception(err));
    }

    /// Passes `channel_inactive` on.
    pub fn fire_inactive(&mut self) {
        self.inner.forward(self.idx, Ev::Inactive);
    }

    // ---- outbound ----

    /// Writes towards the head, without a promise.
    pub fn write(&mut self, msg: impl Into<Msg>) {
        self.inner.forward_write(self.idx, msg.into(), None);
    }

    /// Writes towards the head with an optional promise.
    pub fn write_with(&mut self, msg: Msg, promise: Option<Promise>) {
        self.inner.forward_write(self.idx, msg, promise);
    }

    /// Writes towards the head; the future tells the outcome.
    pub fn write_future(&mut self, msg: impl Into<Msg>) -> WriteFuture {
        let (p, f) = Promise::new();
        self.write_with(msg.into(), Some(p));
        f
    }

    /// Writes, then flushes.
    pub fn write_and_flush(&mut self, msg: impl Into<Msg>) {
        self.write(msg);
        self.flush();
    }

    /// Writes with a promise, then flushes.
    pub fn write_and_flush_with(&mut self, msg: Msg, promise: Option<Promise>) {
        self.write_with(msg, promise);
        self.flush();
    }

    /// Flushes towards the head.
    pub fn flush(&mut self) {
        self.inner.forward(self.idx, Ev::Flush);
    }

    /// Requests a read towards the head.
    pub fn read(&mut self) {
        self.inner.forward(self.idx, Ev::ReadRequest);
    }

    /// Closes towards the head.
    pub fn close(&mut self) {
        self.inner.forward(self.idx, Ev::Close(None));
    }

    /// Closes towards the head with an optional promise.
    pub fn close_with(&mut self, promise: Option<Promise>) {
        self.inner.forward(self.idx, Ev::Close(promise));
    }

    /// Closes towards the head because of `err`: it is fired (once, from
    /// the head, after this callback) as `exception_caught`, and every
    /// write still pending fails with it rather than with a plain
    /// closed-channel error, so a writer learns why (a write timeout).
    pub fn close_with_error(&mut self, err: Error) {
        self.inner.set_close_reason(err);
        self.close();
    }

    /// A promise to pass on with a write instead of `next` (the writer's,
    /// if any), so that this handler learns the write's outcome without a
    /// task: once the write completes or fails, on the channel's task,
    /// `on_done` is called with the outcome, then `next` completes with it
    /// (in the same turn of the task, right after the write's system
    /// call). What a write timeout needs; a channel that watches nothing
    /// pays nothing for it.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use std::sync::Arc;
    /// use weft_core::{Context, EmbeddedChannel, Events, Handler, Msg, Promise};
    ///
    /// struct Watch(Arc<AtomicBool>);
    /// #[weft_core::handler]
    /// impl Handler for Watch {
    ///     fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
    ///         let seen = self.0.clone();
    ///         let p = ctx.watch_write(promise, move |r| seen.store(r.is_ok(), Ordering::Relaxed));
    ///         ctx.write_with(msg, Some(p));
    ///     }
    /// }
    ///
    /// let seen = Arc::new(AtomicBool::new(false));
    /// let mut ch = EmbeddedChannel::with_handler(Watch(seen.clone()));
    /// let mut done = ch.pipeline_mut().write_and_flush("x");
    /// ch.run_pending_tasks();
    /// assert!(seen.load(Ordering::Relaxed));
    /// assert!(done.try_result().unwrap().is_ok());
    /// ```
    pub fn watch_write(
        &mut self,
        next: Option<Promise>,
        on_done: impl FnOnce(&Result<(), Error>) + Send + 'static,
    ) -> Promise {
        let (p, done) = Promise::new();
        self.inner
            .watched
            .get_or_insert_with(Box::default)
            .push(super::dispatch::WatchedWrite {
                done,
                next,
                on_done: Box::new(on_done),
            });
        p
    }

    /// Shuts the channel's output down once what was flushed before is
    /// written (TCP FIN); the channel stays open for reading.
    pub fn shutdown_output(&self) -> WriteFuture {
        self.inner.channel.shutdown_output()
    }

    // ---- pipeline changes ----

    /// Adds a handler at the head end of the pipeline.
    pub fn add_first(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.inner.add(At::First, name, Box::new(handler))
    }

    /// Adds a handler at the tail end of the pipeline.
    pub fn add_last(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.inner.add(At::Last, name, Box::new(handler))
    }

    /// Adds a handler right after this one (it sees this handler's next
    /// `fire_*` call).
    pub fn add_after_self(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.inner
            .add(At::After(Target::Slot(self.idx)), name, Box::new(handler))
    }

    /// Adds a handler right before this one.
    pub fn add_before_self(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.inner
            .add(At::Before(Target::Slot(self.idx)), name, Box::new(handler))
    }

    /// Adds a handler after the handler named `base`.
    pub fn add_after(
        &mut self,
        base: &str,
        name: &str,
        handler: impl Handler,
    ) -> Result<(), Error> {
        self.inner
            .add(At::After(Target::Named(base)), name, Box::new(handler))
    }

    /// Adds a handler before the handler named `base`.
    pub fn add_before(
        &mut self,
        base: &str,
        name: &str,
        handler: impl Handler,
    ) -> Result<(), Error> {
        self.inner
            .add(At::Before(Target::Named(base)), name, Box::new(handler))
    }

    /// Removes the handler named `name`.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        self.inner.remove(Target::Named(name))
    }

    /// Removes this handler. Its `handler_removed` runs once the current
    /// callback returns; until then this context still forwards events.
    pub fn remove_self(&mut self) {
        let _ = self.inner.remove(Target::Slot(self.idx));
    }

    /// Replaces this handler with `handler` named `name`.
    pub fn replace_self(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.inner
            .replace(Target::Slot(self.idx), name, Box::new(handler))
    }

    /// Replaces the handler named `old`.
    pub fn replace(&mut self, old: &str, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.inner
            .replace(Target::Named(old), name, Box::new(handler))
    }

    /// Whether a handler named `name` is in the pipeline.
    pub fn contains(&self, name: &str) -> bool {
        self.inner.find(name).is_some()
    }

    /// The handlers' names, head to tail.
    pub fn names(&self) -> Vec<&str> {
        self.inner.names()
    }
}

/// The panic of [`Context::shared`] asked for a state that is not there.
#[cold]
#[inline(never)]
#[track_caller]
fn not_shared(handler: &str, ty: &str, wrong_type: bool) -> ! {
    if wrong_type {
        panic!(
            "ctx.shared::<{ty}>() in handler `{handler}`: the state of its Combined is another \
             type; ask for the type given to Combined::new"
        )
    }
    panic!(
        "ctx.shared::<{ty}>() in handler `{handler}`, which is not a half of a Combined: install \
         the two halves with Combined::new(state, inbound, outbound)"
    )
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("handler", &self.name())
            .field("channel", &self.inner.channel.id())
            .finish()
    }
}
