//! [`EmbeddedChannel`]: a pipeline driven by hand, with no socket — the test
//! harness for handlers and codecs.
//!
//! Contract:
//! - everything runs synchronously on the caller's thread; after every call
//!   the operations queued through [`Channel`] handles run too
//!   ([`run_pending_tasks`](EmbeddedChannel::run_pending_tasks));
//! - inbound messages that reach the tail are kept for
//!   [`read_inbound`](EmbeddedChannel::read_inbound); user events and errors
//!   that reach it are kept too;
//! - flushed outbound messages are moved out of the outbound buffer (their
//!   promises succeed and their bytes count in `Channel::bytes_written`, as
//!   if a socket had taken them) and kept for
//!   [`read_outbound`](EmbeddedChannel::read_outbound); unflushed ones stay
//!   in the buffer and count towards the watermarks;
//! - a close reaching the head closes the channel: unflushed writes fail,
//!   `channel_inactive` fires, and what was already readable stays readable;
//! - time is virtual: it starts when the channel is built and moves only
//!   with [`advance_time`](EmbeddedChannel::advance_time), which fires the
//!   handlers' timers that fall due on the way, in deadline order, each at
//!   its own deadline (Netty's `advanceTimeBy` and
//!   `runScheduledPendingTasks` in one); timers due at the current time
//!   fire with the pending tasks.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;

use bytes::{Bytes, BytesMut};

use crate::handler::UserEvent;
use crate::{
    Address, Channel, Error, Handler, Msg, Pipeline, Promise, WriteBufferWaterMark, WriteFuture,
};

/// Most rounds of timers one call fires (a handler that re-arms a timer
/// for the same instant from its own timer would otherwise never let the
/// call return).
const MAX_TIMER_ROUNDS: usize = 100_000;

/// A channel for tests: a real pipeline, driven by hand.
///
/// ```
/// use bytes::Bytes;
/// use weft_core::{from_fn, Context, EmbeddedChannel};
///
/// // A handler that answers every message with its length.
/// let mut ch = EmbeddedChannel::with_handler(from_fn(|ctx: &mut Context<'_>, msg: Bytes| {
///     ctx.write_and_flush(Bytes::from(msg.len().to_string()));
/// }));
/// ch.write_inbound("hello");
/// assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "5");
/// assert!(!ch.finish(), "nothing left over");
/// ```
pub struct EmbeddedChannel {
    pipeline: Pipeline,
    outbound: VecDeque<Msg>,
}

impl Default for EmbeddedChannel {
    fn default() -> Self {
        EmbeddedChannel::new()
    }
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

impl EmbeddedChannel {
    /// An active channel with an empty pipeline.
    pub fn new() -> EmbeddedChannel {
        EmbeddedChannel::builder().build()
    }

    /// An active channel with one handler, named after its type.
    pub fn with_handler<H: Handler>(handler: H) -> EmbeddedChannel {
        EmbeddedChannel::builder()
            .add_last(short_type_name::<H>(), handler)
            .build()
    }

    /// A builder, to add several handlers before `channel_active` fires.
    ///
    /// ```
    /// use weft_core::{EmbeddedChannel, Events, Handler};
    /// #[derive(Debug)]
    /// struct Noop;
    /// impl Handler for Noop {}
    ///
    /// let ch = EmbeddedChannel::builder()
    ///     .add_last("a", Noop)
    ///     .add_last("b", Noop)
    ///     .build();
    /// assert_eq!(ch.pipeline().names(), ["a", "b"]);
    /// ```
    pub fn builder() -> EmbeddedBuilder {
        EmbeddedBuilder {
            handlers: Vec::new(),
            active: true,
            watermark: None,
            cap: None,
        }
    }

    /// The pipeline, to add or remove handlers.
    pub fn pipeline_mut(&mut self) -> &mut Pipeline {
        &mut self.pipeline
    }

    /// The pipeline.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The channel handle.
    pub fn channel(&self) -> &Channel {
        self.pipeline.channel()
    }

    /// Whether the channel is open.
    pub fn is_open(&self) -> bool {
        !self.pipeline.inner().head.closed
    }

    /// Whether the outbound buffer is below its high watermark.
    pub fn is_writable(&self) -> bool {
        self.channel().is_writable()
    }

    /// Fires `channel_active` (done by [`build`](EmbeddedBuilder::build)
    /// unless the builder was told otherwise).
    pub fn fire_active(&mut self) {
        self.pipeline.transport().fire_active();
        self.settle();
    }

    // ---- inbound ----

    /// Fires `channel_read` with `msg`, then `channel_read_complete`.
    /// Returns whether any message is waiting at the tail.
    pub fn write_inbound(&mut self, msg: impl Into<Msg>) -> bool {
        self.pipeline.transport().fire_read(msg.into());
        self.pipeline.transport().fire_read_complete();
        self.settle();
        self.inbound_len() > 0
    }

    /// Fires `channel_read` once per message, then one `channel_read_complete`.
    pub fn write_inbound_all<I>(&mut self, msgs: I) -> bool
    where
        I: IntoIterator,
        I::Item: Into<Msg>,
    {
        for m in msgs {
            self.pipeline.transport().fire_read(m.into());
        }
        self.pipeline.transport().fire_read_complete();
        self.settle();
        self.inbound_len() > 0
    }

    /// Fires `channel_read` alone (no `channel_read_complete`).
    pub fn fire_read(&mut self, msg: impl Into<Msg>) {
        self.pipeline.transport().fire_read(msg.into());
        self.settle();
    }

    /// Fires `channel_read_complete`.
    pub fn fire_read_complete(&mut self) {
        self.pipeline.transport().fire_read_complete();
        self.settle();
    }

    /// Fires a user event from the head.
    pub fn fire_user_event<E: Any + Send>(&mut self, event: E) {
        self.pipeline.fire_user_event(Box::new(event));
        self.settle();
    }

    /// Fires an error from the head.
    pub fn fire_exception(&mut self, err: Error) {
        self.pipeline.fire_exception(err);
        self.settle();
    }

    /// Takes the next message that reached the tail, as a `T`.
    ///
    /// # Panics
    ///
    /// If the message is of another type (with both type names): this is a
    /// test harness, and a wrong type is a failed test.
    pub fn read_inbound<T: Any + Send>(&mut self) -> Option<T> {
        let m = self.read_inbound_msg()?;
        match m.downcast::<T>() {
            Ok(t) => Some(t),
            Err(m) => panic!(
                "read_inbound::<{}>() found a message of type `{}`",
                std::any::type_name::<T>(),
                m.type_name()
            ),
        }
    }

    /// Takes the next message that reached the tail.
    pub fn read_inbound_msg(&mut self) -> Option<Msg> {
        self.pipeline.inner_mut().tail.as_mut()?.inbound.pop_front()
    }

    /// Number of messages waiting at the tail.
    pub fn inbound_len(&self) -> usize {
        self.pipeline
            .inner()
            .tail
            .as_ref()
            .map_or(0, |t| t.inbound.len())
    }

    /// Takes the next user event that reached the tail, as an `E`.
    ///
    /// # Panics
    ///
    /// If the event is of another type.
    pub fn read_user_event<E: Any>(&mut self) -> Option<E> {
        let e: UserEvent = self
            .pipeline
            .inner_mut()
            .tail
            .as_mut()?
            .events
            .pop_front()?;
        match e.downcast::<E>() {
            Ok(e) => Some(*e),
            Err(_) => panic!(
                "read_user_event::<{}>() found an event of another type",
                std::any::type_name::<E>()
            ),
        }
    }

    /// Returns the first error that reached the tail, if any, and forgets it.
    pub fn check_exception(&mut self) -> Result<(), Error> {
        match self
            .pipeline
            .inner_mut()
            .tail
            .as_mut()
            .and_then(|t| t.errors.pop_front())
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    // ---- outbound ----

    /// Writes `msg` from the tail and flushes. Returns whether any message is
    /// waiting to be read with [`read_outbound`](Self::read_outbound).
    pub fn write_outbound(&mut self, msg: impl Into<Msg>) -> bool {
        self.pipeline.write(msg.into());
        self.pipeline.flush();
        self.settle();
        !self.outbound.is_empty()
    }

    /// Writes `msg` from the tail without flushing; the future resolves when
    /// it is flushed (or fails on close).
    pub fn write_one_outbound(&mut self, msg: impl Into<Msg>) -> WriteFuture {
        let (p, f) = Promise::new();
        self.pipeline.write_with(msg.into(), Some(p));
        self.settle();
        f
    }

    /// Flushes from the tail.
    pub fn flush_outbound(&mut self) {
        self.pipeline.flush();
        self.settle();
    }

    /// Requests a read from the tail (an outbound `read`).
    pub fn read(&mut self) {
        self.pipeline.read();
        self.settle();
    }

    /// Whether a `read` reached the head since the last call; clears it.
    pub fn take_read_request(&mut self) -> bool {
        self.pipeline.transport().take_read_request()
    }

    /// Takes the next flushed message, as a `T`.
    ///
    /// # Panics
    ///
    /// If the message is of another type.
    pub fn read_outbound<T: Any + Send>(&mut self) -> Option<T> {
        let m = self.outbound.pop_front()?;
        match m.downcast::<T>() {
            Ok(t) => Some(t),
            Err(m) => panic!(
                "read_outbound::<{}>() found a message of type `{}`",
                std::any::type_name::<T>(),
                m.type_name()
            ),
        }
    }

    /// Takes the next flushed message.
    pub fn read_outbound_msg(&mut self) -> Option<Msg> {
        self.outbound.pop_front()
    }

    /// Number of flushed messages waiting.
    pub fn outbound_len(&self) -> usize {
        self.outbound.len()
    }

    /// Takes every flushed byte message (`Bytes`, `CompositeBytes`, and
    /// `FileRegion`, read back from its file) and joins their bytes.
    ///
    /// # Panics
    ///
    /// On a user message, or a file that cannot be read.
    pub fn read_outbound_bytes(&mut self) -> Bytes {
        let mut out = BytesMut::new();
        while let Some(m) = self.outbound.pop_front() {
            match m {
                Msg::Bytes(b) => out.extend_from_slice(&b),
                Msg::Composite(c) => {
                    for ch in c.chunks() {
                        out.extend_from_slice(ch);
                    }
                }
                Msg::File(mut f) => loop {
                    let c = f.read_chunk(64 * 1024).expect("reading a FileRegion back");
                    if c.is_empty() {
                        break;
                    }
                    out.extend_from_slice(&c);
                },
                Msg::User(u) => panic!(
                    "read_outbound_bytes() found a message of type `{}`",
                    (*u).type_name()
                ),
            }
        }
        out.freeze()
    }

    // ---- lifecycle ----

    /// Runs the operations queued through [`Channel`] handles, and the
    /// timers due at the current (virtual) time.
    pub fn run_pending_tasks(&mut self) {
        self.settle();
    }

    /// The channel's virtual time.
    pub fn now(&self) -> tokio::time::Instant {
        self.pipeline.inner().now()
    }

    /// Moves the virtual clock `by` forward, firing every timer that falls
    /// due on the way at its own deadline, in order, with what it causes
    /// (writes moved out, a close performed) settled after each.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_core::{Context, EmbeddedChannel, Events, Handler, TimerId};
    ///
    /// /// Writes a tick every second.
    /// struct Ticker;
    /// #[weft_core::handler]
    /// impl Handler for Ticker {
    ///     fn channel_active(&mut self, ctx: &mut Context<'_>) {
    ///         ctx.schedule(Duration::from_secs(1));
    ///     }
    ///     fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
    ///         ctx.write_and_flush("tick");
    ///         ctx.schedule(Duration::from_secs(1));
    ///     }
    /// }
    ///
    /// let mut ch = EmbeddedChannel::with_handler(Ticker);
    /// ch.advance_time(Duration::from_millis(3500));
    /// assert_eq!(ch.outbound_len(), 3);
    /// ```
    pub fn advance_time(&mut self, by: std::time::Duration) {
        let until = self.now() + by;
        // Bounded, for a handler that re-arms for the same instant for ever.
        for _ in 0..MAX_TIMER_ROUNDS {
            let next = self.pipeline.transport().next_timer();
            match next {
                Some(at) if at <= until => {
                    self.pipeline.inner_mut().virtual_now = Some(at.max(self.now()));
                    self.settle();
                }
                _ => break,
            }
        }
        self.pipeline.inner_mut().virtual_now = Some(until);
        self.settle();
    }

    /// Closes the channel from the tail.
    pub fn close(&mut self) {
        self.pipeline.close();
        self.settle();
    }

    /// Closes the channel and tells whether any inbound or outbound message
    /// is still waiting to be read (a leftover a test usually wants to see).
    pub fn finish(&mut self) -> bool {
        self.close();
        self.inbound_len() > 0 || !self.outbound.is_empty()
    }

    /// Delivers queued commands, moves flushed writes out, performs a
    /// requested close; repeats until nothing changes.
    fn settle(&mut self) {
        let mut timer_rounds = MAX_TIMER_ROUNDS;
        loop {
            let now = self.now();
            let mut t = self.pipeline.transport();
            let mut progressed = t.run_commands() > 0;
            if timer_rounds > 0 {
                timer_rounds -= 1;
                progressed |= t.run_timers(now) > 0;
            }
            let ob = t.outbound();
            if !ob.flushed_is_empty() {
                let mut written = 0usize;
                while let Some(e) = ob.pop_front() {
                    written = written.saturating_add(e.msg.buffered_len());
                    if let Some(p) = e.promise {
                        p.succeed();
                    }
                    self.outbound.push_back(e.msg);
                }
                // As a socket's transport counts them (Channel::bytes_written).
                t.record_written(written);
                t.sync_writability();
                progressed = true;
            }
            if t.close_requested() {
                t.finish_close();
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }
}

impl fmt::Debug for EmbeddedChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedChannel")
            .field("pipeline", &self.pipeline)
            .field("inbound", &self.inbound_len())
            .field("outbound", &self.outbound.len())
            .finish()
    }
}

/// Builds an [`EmbeddedChannel`]; see [`EmbeddedChannel::builder`].
pub struct EmbeddedBuilder {
    handlers: Vec<(String, Box<dyn Handler>)>,
    active: bool,
    watermark: Option<WriteBufferWaterMark>,
    cap: Option<Option<usize>>,
}

impl EmbeddedBuilder {
    /// Adds a handler at the tail end.
    pub fn add_last(mut self, name: impl Into<String>, handler: impl Handler) -> Self {
        self.handlers.push((name.into(), Box::new(handler)));
        self
    }

    /// Whether `build` fires `channel_active` (default: yes).
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }

    /// Sets the write-buffer watermarks (default: 32/64 KiB), as a socket
    /// channel's options would.
    pub fn watermark(mut self, wm: WriteBufferWaterMark) -> Self {
        self.watermark = Some(wm);
        self
    }

    /// Sets the cap on outbound bytes (`None`: no cap; default:
    /// [`DEFAULT_OUTBOUND_CAP`](crate::transport::DEFAULT_OUTBOUND_CAP)).
    pub fn outbound_cap(mut self, cap: Option<usize>) -> Self {
        self.cap = Some(cap);
        self
    }

    /// Builds the channel.
    ///
    /// # Panics
    ///
    /// If two handlers have the same name.
    pub fn build(self) -> EmbeddedChannel {
        let channel = Channel::new(Some(Address::Embedded), Some(Address::Embedded));
        let mut pipeline = Pipeline::new(channel);
        pipeline.inner_mut().tail = Some(Box::default());
        pipeline.inner_mut().virtual_now = Some(tokio::time::Instant::now());
        if let Some(wm) = self.watermark {
            pipeline.transport().set_watermark(wm);
        }
        if let Some(cap) = self.cap {
            pipeline.transport().set_outbound_cap(cap);
        }
        for (name, h) in self.handlers {
            if let Err(e) = pipeline.add_last(&name, h) {
                panic!("EmbeddedChannel: {e}");
            }
        }
        let mut ch = EmbeddedChannel {
            pipeline,
            outbound: VecDeque::new(),
        };
        if self.active {
            ch.fire_active();
        }
        ch.settle();
        ch
    }
}

impl fmt::Debug for EmbeddedBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedBuilder")
            .field("watermark", &self.watermark)
            .field("cap", &self.cap)
            .field(
                "handlers",
                &self
                    .handlers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
