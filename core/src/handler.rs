//! The [`Handler`] trait: one stage of a pipeline.
//!
//! Contract:
//! - inbound events (`channel_active`, `channel_read`, `channel_read_complete`,
//!   `user_event`, `writability_changed`, `exception_caught`,
//!   `channel_inactive`) travel head → tail; outbound operations (`write`,
//!   `flush`, `read`, `close`) travel tail → head;
//! - every method has a default that passes the event on unchanged, so a
//!   handler implements only what it cares about;
//! - methods take `&mut self` and are never called concurrently for one
//!   channel, so handlers need no locks;
//! - a handler's [`Handler::interest`] says which events it takes part in;
//!   the pipeline jumps over it for the others. Mark the `impl Handler`
//!   block [`#[handler]`](crate::handler) and the mask is derived from the
//!   methods the block defines, so the events a handler receives are the
//!   ones it implements; without it the default is [`Events::ALL`], always
//!   correct and a few nanoseconds slower per skipped event. A mask kept by
//!   hand (for one computed at run time) that leaves out an implemented
//!   method silently loses it, which is why the attribute exists.

use std::any::Any;
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

use crate::{Context, Error, Msg, Promise};

/// A user event: any value a handler wants to send along the pipeline
/// (Netty's `userEventTriggered` object), such as an idle-state event.
pub type UserEvent = Box<dyn Any + Send>;

/// The user event a transport fires when the peer shut its output down
/// (end of input) and the channel allows half-closure: the channel stays
/// open for writing. Decoders run their end-of-input decoding on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputShutdown;

/// The set of events a handler takes part in.
///
/// ```
/// use weft_core::Events;
///
/// let e = Events::READ | Events::WRITE;
/// assert!(e.contains(Events::READ));
/// assert!(!e.contains(Events::FLUSH));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Events(u16);

impl Events {
    /// No events: a handler that only watches being added and removed.
    pub const NONE: Events = Events(0);
    /// `channel_active`.
    pub const ACTIVE: Events = Events(1 << 0);
    /// `channel_read`.
    pub const READ: Events = Events(1 << 1);
    /// `channel_read_complete`.
    pub const READ_COMPLETE: Events = Events(1 << 2);
    /// `user_event`.
    pub const USER_EVENT: Events = Events(1 << 3);
    /// `writability_changed`.
    pub const WRITABILITY: Events = Events(1 << 4);
    /// `exception_caught`.
    pub const EXCEPTION: Events = Events(1 << 5);
    /// `channel_inactive`.
    pub const INACTIVE: Events = Events(1 << 6);
    /// `write`.
    pub const WRITE: Events = Events(1 << 7);
    /// `flush`.
    pub const FLUSH: Events = Events(1 << 8);
    /// `read` (the outbound read request).
    pub const READ_REQUEST: Events = Events(1 << 9);
    /// `close`.
    pub const CLOSE: Events = Events(1 << 10);
    /// `timer`: the handler arms timers ([`Context::schedule`]) and takes
    /// them. Not an event that travels: a timer goes to the handler that
    /// armed it only.
    pub const TIMER: Events = Events(1 << 11);
    /// Every inbound event.
    pub const INBOUND: Events = Events(0x7f);
    /// Every outbound operation.
    pub const OUTBOUND: Events = Events(0x780);
    /// Everything.
    pub const ALL: Events = Events(0xfff);

    /// Whether every event of `other` is in `self`.
    pub const fn contains(self, other: Events) -> bool {
        self.0 & other.0 == other.0
    }

    /// The events of `self` and of `other` (`|` in a `const`; what
    /// [`#[handler]`](crate::handler) generates).
    pub const fn union(self, other: Events) -> Events {
        Events(self.0 | other.0)
    }

    /// Whether `self` and `other` share an event.
    pub const fn intersects(self, other: Events) -> bool {
        self.0 & other.0 != 0
    }

    /// The events whose bits are set in `bits` (unknown bits are dropped).
    pub(crate) const fn from_raw(bits: u16) -> Events {
        Events(bits & Events::ALL.bits())
    }

    pub(crate) const fn bits(self) -> u16 {
        self.0
    }
}

impl BitOr for Events {
    type Output = Events;
    fn bitor(self, rhs: Events) -> Events {
        Events(self.0 | rhs.0)
    }
}

impl BitOrAssign for Events {
    fn bitor_assign(&mut self, rhs: Events) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [&str; 12] = [
            "ACTIVE",
            "READ",
            "READ_COMPLETE",
            "USER_EVENT",
            "WRITABILITY",
            "EXCEPTION",
            "INACTIVE",
            "WRITE",
            "FLUSH",
            "READ_REQUEST",
            "CLOSE",
            "TIMER",
        ];
        let mut set = f.debug_set();
        for (i, n) in NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                set.entry(&format_args!("{n}"));
            }
        }
        set.finish()
    }
}

/// One stage of a [`Pipeline`](crate::Pipeline).
///
/// ```
/// use weft_core::{Context, EmbeddedChannel, Events, Handler, Msg};
///
/// /// Counts messages and passes them on.
/// #[derive(Debug, Default)]
/// struct Counter(usize);
///
/// #[weft_core::handler]
/// impl Handler for Counter {
///     fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
///         self.0 += 1;
///         ctx.fire_read(msg);
///     }
/// }
///
/// let mut ch = EmbeddedChannel::with_handler(Counter::default());
/// ch.write_inbound("a");
/// assert_eq!(ch.read_inbound::<bytes::Bytes>().unwrap(), "a");
/// ```
#[allow(unused_variables)]
pub trait Handler: Send + 'static {
    /// The events this handler takes part in; the pipeline skips it for the
    /// others. Called once, when the handler is added.
    ///
    /// # Let `#[handler]` write it
    ///
    /// The pipeline does not call a method whose event is missing here.
    /// Mark the impl block [`#[weft_core::handler]`](crate::handler): it
    /// generates this method from the methods the block defines
    /// (`channel_read` → [`Events::READ`], `write` → [`Events::WRITE`],
    /// `timer` → [`Events::TIMER`], ...), so the mask cannot disagree with
    /// them, and it refuses a block that also writes `interest` by hand.
    /// Write it by hand only for a mask decided at run time, and then
    /// include the bit of every method you implement; the default,
    /// [`Events::ALL`], is always correct.
    ///
    /// ```compile_fail
    /// use weft_core::{Context, Events, Handler, Msg};
    ///
    /// struct Twice;
    /// #[weft_core::handler] // error: remove the hand-written `interest`
    /// impl Handler for Twice {
    ///     fn interest(&self) -> Events {
    ///         Events::READ
    ///     }
    ///     fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
    ///         ctx.fire_read(msg);
    ///     }
    /// }
    /// ```
    fn interest(&self) -> Events {
        Events::ALL
    }

    /// Called after the handler was added to a pipeline.
    fn handler_added(&mut self, ctx: &mut Context<'_>) {}

    /// Called after the handler was removed from its pipeline; `ctx` still
    /// forwards to the handlers that were its neighbours, so a decoder can
    /// hand its leftover bytes on.
    fn handler_removed(&mut self, ctx: &mut Context<'_>) {}

    /// The channel is connected.
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        ctx.fire_active();
    }

    /// A message arrived.
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.fire_read(msg);
    }

    /// The current burst of reads is over: a good moment to flush.
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.fire_read_complete();
    }

    /// A user event (idle state, TLS handshake done, input shut down, ...).
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        ctx.fire_user_event(event);
    }

    /// The channel's writability changed; see
    /// [`Channel::is_writable`](crate::Channel::is_writable).
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        ctx.fire_writability_changed(writable);
    }

    /// An error happened in an earlier stage or in the transport.
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        ctx.fire_exception(err);
    }

    /// The channel is closed.
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        ctx.fire_inactive();
    }

    /// Write a message towards the transport.
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        ctx.write_with(msg, promise);
    }

    /// Move the written messages to the socket.
    fn flush(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }

    /// Ask the transport for one more read (when auto-read is off).
    fn read(&mut self, ctx: &mut Context<'_>) {
        ctx.read();
    }

    /// Close the channel.
    fn close(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        ctx.close_with(promise);
    }

    /// A timer this handler armed with
    /// [`Context::schedule`](crate::Context::schedule) is due. Delivered to
    /// this handler only, whatever [`interest`](Self::interest) says (a
    /// handler that arms timers implements this).
    fn timer(&mut self, ctx: &mut Context<'_>, id: crate::TimerId) {}

    /// How the pipeline takes a [`Combined`](crate::Combined) apart as it
    /// links it; no other handler implements it.
    #[doc(hidden)]
    fn take_halves(&mut self) -> Option<crate::Halves> {
        None
    }
}

/// Any handler can be passed where a boxed one is expected, so that
/// [`Pipeline::add_last`](crate::Pipeline::add_last) and its kin take both
/// a concrete handler and a `Box<dyn Handler>` built elsewhere.
impl<H: Handler> From<H> for Box<dyn Handler> {
    fn from(handler: H) -> Box<dyn Handler> {
        Box::new(handler)
    }
}
