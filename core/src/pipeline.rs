//! [`Pipeline`]: a channel's ordered list of named handlers.
//!
//! Contract:
//! - inbound events enter at the head and travel towards the tail; outbound
//!   operations enter at the tail (or at a handler's position, through its
//!   [`Context`]) and travel towards the head, where they reach the
//!   [`OutboundBuffer`] and the transport;
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
//!   twice at once; the queue keeps the order Netty users rely on;
//! - a handler that panics is dropped; the pipeline reports the panic as an
//!   `exception_caught` event and asks the transport to close the channel;
//! - writability changes are delivered after the event that caused them has
//!   finished, never in the middle of a handler's callback.
//!
//! Messages that reach the tail unhandled are dropped (logged at `debug`);
//! errors that reach it are logged at `warn`. An
//! [`EmbeddedChannel`](crate::EmbeddedChannel) collects them instead.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::channel::Command;
use crate::handler::UserEvent;
use crate::outbound::WriteBufferWaterMark;
use crate::promise::complete;
use crate::{Channel, Context, Error, Events, Handler, Msg, OutboundBuffer, Promise, WriteFuture};

pub(crate) const HEAD: usize = 0;
pub(crate) const TAIL: usize = 1;

/// Number of event kinds (bits of [`Events`]).
const KINDS: usize = 11;
/// Bits 0..7 are inbound, 7..11 outbound.
const INBOUND_KINDS: usize = 7;
const HOP_READ: usize = Events::READ.bits().trailing_zeros() as usize;
const HOP_WRITE: usize = Events::WRITE.bits().trailing_zeros() as usize;

pub(crate) enum Ev {
    Active,
    Read(Msg),
    ReadComplete,
    UserEvent(UserEvent),
    Writability(bool),
    Exception(Error),
    Inactive,
    Write(Msg, Option<Promise>),
    Flush,
    ReadRequest,
    Close(Option<Promise>),
    /// Only ever delivered to one handler, never forwarded.
    Added,
}

impl Ev {
    fn bit(&self) -> u16 {
        match self {
            Ev::Active => Events::ACTIVE.bits(),
            Ev::Read(_) => Events::READ.bits(),
            Ev::ReadComplete => Events::READ_COMPLETE.bits(),
            Ev::UserEvent(_) => Events::USER_EVENT.bits(),
            Ev::Writability(_) => Events::WRITABILITY.bits(),
            Ev::Exception(_) => Events::EXCEPTION.bits(),
            Ev::Inactive => Events::INACTIVE.bits(),
            Ev::Write(..) => Events::WRITE.bits(),
            Ev::Flush => Events::FLUSH.bits(),
            Ev::ReadRequest => Events::READ_REQUEST.bits(),
            Ev::Close(_) => Events::CLOSE.bits(),
            Ev::Added => 0,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Linked,
    Removed,
    Free,
}

struct Slot {
    name: Box<str>,
    handler: Option<Box<dyn Handler>>,
    interest: u16,
    /// For each event kind, the slot it goes to from here: the next
    /// interested slot towards the tail (inbound) or head (outbound).
    /// Recomputed whenever the pipeline's structure changes, so that
    /// skipping handlers costs nothing per event.
    hop: [u16; KINDS],
    prev: usize,
    next: usize,
    state: State,
    /// The handler was lost to a panic: the slot passes events through.
    /// (A slot whose handler is out while not dead is busy: its callback is
    /// running further up the stack.)
    dead: bool,
    /// Events that arrived while the handler's callback was running
    /// (boxed: rarely used, and a slot should stay small).
    #[allow(clippy::box_collection)] // deliberate: 8 bytes per slot instead of 32
    queued: Option<Box<VecDeque<Ev>>>,
}

impl Slot {
    fn sentinel(prev: usize, next: usize) -> Slot {
        Slot {
            // Sentinels are never looked up by name; an empty name allocates nothing.
            name: Box::default(),
            handler: None,
            interest: 0,
            hop: [TAIL as u16; KINDS],
            prev,
            next,
            state: State::Linked,
            dead: true,
            queued: None,
        }
    }
}

pub(crate) struct Head {
    pub(crate) outbound: OutboundBuffer,
    pub(crate) read_requested: bool,
    pub(crate) close_requested: bool,
    /// A pending output shutdown: done by the transport once the flushed
    /// writes before it are out.
    pub(crate) shutdown_output: Option<Option<Promise>>,
    pub(crate) close_promises: Vec<Promise>,
    pub(crate) closed: bool,
    notified_writable: bool,
    /// Why the channel is closing, when it is an error (a write past the
    /// cap): fired as `exception_caught` once the current event is done, and
    /// given to the writes that fail with the close.
    close_reason: Option<Error>,
    reason_pending: bool,
}

/// What an EmbeddedChannel collects at the end of its pipeline.
#[derive(Default)]
pub(crate) struct Tail {
    pub(crate) inbound: VecDeque<Msg>,
    pub(crate) events: VecDeque<UserEvent>,
    pub(crate) errors: VecDeque<Error>,
}

pub(crate) struct Inner {
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// Slots holding queued events. While any exists, every event checks
    /// whether its path crosses one and, if so, queues behind it, so that
    /// events keep their order even when some skip the busy handler.
    pending_queues: usize,
    pub(crate) channel: Channel,
    pub(crate) head: Head,
    /// Collected at the tail (EmbeddedChannel only; boxed so that a socket
    /// channel pays one pointer for it).
    pub(crate) tail: Option<Box<Tail>>,
}

/// A channel's pipeline of handlers.
///
/// ```
/// use weft_core::{Channel, Events, Handler, Pipeline};
///
/// #[derive(Debug)]
/// struct Noop;
/// impl Handler for Noop {
///     fn interest(&self) -> Events {
///         Events::NONE
///     }
/// }
///
/// let mut p = Pipeline::new(Channel::new(None, None));
/// p.add_last("b", Noop).unwrap();
/// p.add_first("a", Noop).unwrap();
/// p.add_after("b", "c", Noop).unwrap();
/// assert_eq!(p.names(), ["a", "b", "c"]);
/// assert!(p.add_last("a", Noop).unwrap_err().is_pipeline());
/// p.remove("b").unwrap();
/// assert_eq!(p.names(), ["a", "c"]);
/// ```
pub struct Pipeline {
    inner: Inner,
}

// ------------------------------------------------------------------
// Inner: the dispatch machinery shared by Pipeline and Context.
// ------------------------------------------------------------------

impl Inner {
    fn new(channel: Channel) -> Inner {
        let mut inner = Inner {
            slots: vec![Slot::sentinel(HEAD, TAIL), Slot::sentinel(HEAD, TAIL)],
            free: Vec::new(),
            pending_queues: 0,
            channel,
            head: Head {
                outbound: OutboundBuffer::default(),
                read_requested: false,
                close_requested: false,
                shutdown_output: None,
                close_promises: Vec::new(),
                closed: false,
                notified_writable: true,
                close_reason: None,
                reason_pending: false,
            },
            tail: None,
        };
        inner.rehop();
        inner
    }

    // ---- routing ----

    /// Sends `ev` on from slot `from`, in its direction.
    pub(crate) fn forward(&mut self, from: usize, ev: Ev) {
        let bit = ev.bit();
        if bit == 0 {
            return;
        }
        let to = self.slots[from].hop[bit.trailing_zeros() as usize] as usize;
        if self.pending_queues > 0 {
            if let Some(q) = self.queue_on_path(from, to, bit) {
                return self.enqueue(q, ev);
            }
        }
        match to {
            TAIL => self.at_tail(ev),
            HEAD => self.at_head(ev),
            _ => self.invoke(to, ev),
        }
    }

    /// The first slot strictly between `from` and `to`, on the event's way,
    /// that holds queued events.
    #[cold]
    fn queue_on_path(&self, from: usize, to: usize, bit: u16) -> Option<usize> {
        let inbound = bit & Events::INBOUND.bits() != 0;
        let step = |i: usize| {
            if inbound {
                self.slots[i].next
            } else {
                self.slots[i].prev
            }
        };
        let mut i = step(from);
        while i != to && i != HEAD && i != TAIL {
            if self.slots[i].queued.as_ref().is_some_and(|q| !q.is_empty()) {
                return Some(i);
            }
            i = step(i);
        }
        None
    }

    fn enqueue(&mut self, idx: usize, ev: Ev) {
        let q = self.slots[idx].queued.get_or_insert_with(Default::default);
        if q.is_empty() {
            self.pending_queues += 1;
        }
        q.push_back(ev);
    }

    fn dequeue(&mut self, idx: usize) -> Option<Ev> {
        let q = self.slots[idx].queued.as_mut()?;
        let ev = q.pop_front()?;
        if q.is_empty() {
            self.pending_queues -= 1;
        }
        Some(ev)
    }

    /// Drops a slot's queue (its events' promises fail as they drop).
    fn clear_queue(&mut self, idx: usize) {
        if let Some(q) = self.slots[idx].queued.take() {
            if !q.is_empty() {
                self.pending_queues -= 1;
            }
        }
    }

    /// Fast path for `channel_read`, the hottest event: no `Ev` is built
    /// unless the target is busy.
    #[inline]
    pub(crate) fn forward_read(&mut self, from: usize, msg: Msg) {
        if self.pending_queues > 0 {
            return self.forward(from, Ev::Read(msg));
        }
        let i = self.slots[from].hop[HOP_READ] as usize;
        if i == TAIL {
            return self.at_tail(Ev::Read(msg));
        }
        let s = &mut self.slots[i];
        let Some(mut h) = s.handler.take() else {
            return self.invoke(i, Ev::Read(msg));
        };
        h.channel_read(&mut Context::new(self, i), msg);
        self.finish_call(i, h);
    }

    /// Fast path for `write`, the hottest outbound operation.
    #[inline]
    pub(crate) fn forward_write(&mut self, from: usize, msg: Msg, promise: Option<Promise>) {
        if self.pending_queues > 0 {
            return self.forward(from, Ev::Write(msg, promise));
        }
        let i = self.slots[from].hop[HOP_WRITE] as usize;
        if i == HEAD {
            return self.at_head(Ev::Write(msg, promise));
        }
        let s = &mut self.slots[i];
        let Some(mut h) = s.handler.take() else {
            return self.invoke(i, Ev::Write(msg, promise));
        };
        h.write(&mut Context::new(self, i), msg, promise);
        self.finish_call(i, h);
    }

    fn invoke(&mut self, idx: usize, ev: Ev) {
        let slot = &mut self.slots[idx];
        let Some(mut h) = slot.handler.take() else {
            if !slot.dead {
                self.enqueue(idx, ev);
            } else {
                // A handler lost to a panic: pass everything through.
                self.forward(idx, ev);
            }
            return;
        };
        self.call(&mut *h, idx, ev);
        self.finish_call(idx, h);
    }

    /// After a callback: deliver what queued up meanwhile, then put the
    /// handler back, or finish removing it.
    #[inline]
    fn finish_call(&mut self, idx: usize, h: Box<dyn Handler>) {
        let slot = &mut self.slots[idx];
        if slot.queued.as_ref().is_none_or(|q| q.is_empty()) && slot.state == State::Linked {
            slot.handler = Some(h);
        } else {
            self.finish_call_slow(idx, h);
        }
    }

    #[cold]
    #[inline(never)]
    fn finish_call_slow(&mut self, idx: usize, mut h: Box<dyn Handler>) {
        while let Some(ev) = self.dequeue(idx) {
            let s = &self.slots[idx];
            if s.state == State::Linked && s.interest & ev.bit() != 0 {
                self.call(&mut *h, idx, ev);
            } else {
                // Queued only to keep its place behind earlier events.
                self.forward(idx, ev);
            }
        }
        let slot = &mut self.slots[idx];
        if slot.state == State::Linked {
            slot.handler = Some(h);
        } else {
            self.call_removed(idx, h);
        }
    }

    fn call(&mut self, h: &mut dyn Handler, idx: usize, ev: Ev) {
        let mut ctx = Context::new(self, idx);
        match ev {
            Ev::Active => h.channel_active(&mut ctx),
            Ev::Read(m) => h.channel_read(&mut ctx, m),
            Ev::ReadComplete => h.channel_read_complete(&mut ctx),
            Ev::UserEvent(e) => h.user_event(&mut ctx, e),
            Ev::Writability(w) => h.writability_changed(&mut ctx, w),
            Ev::Exception(e) => h.exception_caught(&mut ctx, e),
            Ev::Inactive => h.channel_inactive(&mut ctx),
            Ev::Write(m, p) => h.write(&mut ctx, m, p),
            Ev::Flush => h.flush(&mut ctx),
            Ev::ReadRequest => h.read(&mut ctx),
            Ev::Close(p) => h.close(&mut ctx, p),
            Ev::Added => h.handler_added(&mut ctx),
        }
    }

    fn call_removed(&mut self, idx: usize, mut h: Box<dyn Handler>) {
        h.handler_removed(&mut Context::new(self, idx));
        while let Some(ev) = self.dequeue(idx) {
            self.forward(idx, ev);
        }
        drop(h);
        self.free_slot(idx);
    }

    fn at_head(&mut self, ev: Ev) {
        match ev {
            Ev::Write(msg, promise) => {
                if self.head.closed {
                    complete(promise, Err(Error::closed()));
                } else {
                    self.head.outbound.push(msg, promise);
                    if let Some(err) = self.head.outbound.take_overflow() {
                        self.close_with_reason(err);
                    }
                }
            }
            Ev::Flush => self.head.outbound.flush(),
            Ev::ReadRequest => self.head.read_requested = true,
            Ev::Close(p) => {
                if self.head.closed {
                    complete(p, Ok(()));
                } else {
                    self.head.close_requested = true;
                    if let Some(p) = p {
                        self.head.close_promises.push(p);
                    }
                }
            }
            _ => {}
        }
    }

    fn at_tail(&mut self, ev: Ev) {
        match ev {
            Ev::Read(msg) => match &mut self.tail {
                Some(t) => t.inbound.push_back(msg),
                None => tracing::debug!(
                    channel = %self.channel.id(),
                    msg_type = msg.type_name(),
                    "a message reached the end of the pipeline and was dropped; \
                     add a handler that consumes it"
                ),
            },
            Ev::UserEvent(e) => {
                if let Some(t) = &mut self.tail {
                    t.events.push_back(e);
                }
            }
            Ev::Exception(e) => match &mut self.tail {
                Some(t) => t.errors.push_back(e),
                None => tracing::warn!(
                    channel = %self.channel.id(),
                    error = ?e,
                    "an error reached the end of the pipeline unhandled"
                ),
            },
            _ => {}
        }
    }

    // ---- structure ----

    fn linked(&self) -> impl Iterator<Item = usize> + '_ {
        let mut i = self.slots[HEAD].next;
        std::iter::from_fn(move || {
            if i == TAIL {
                None
            } else {
                let cur = i;
                i = self.slots[i].next;
                Some(cur)
            }
        })
    }

    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.linked().find(|&i| &*self.slots[i].name == name)
    }

    fn find_or_err(&self, name: &str) -> Result<usize, Error> {
        self.find(name)
            .ok_or_else(|| Error::pipeline(format!("no handler named `{name}` in the pipeline")))
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.linked().map(|i| &*self.slots[i].name).collect()
    }

    pub(crate) fn name_of(&self, idx: usize) -> &str {
        &self.slots[idx].name
    }

    pub(crate) fn is_linked(&self, idx: usize) -> bool {
        self.slots[idx].state == State::Linked
    }

    fn check_name_free(&self, name: &str) -> Result<(), Error> {
        if self.find(name).is_some() || name == "head" || name == "tail" {
            return Err(Error::pipeline(format!(
                "a handler named `{name}` is already in the pipeline"
            )));
        }
        Ok(())
    }

    /// Links a new handler after slot `prev` and calls its `handler_added`.
    pub(crate) fn insert_after(
        &mut self,
        prev: usize,
        name: &str,
        handler: Box<dyn Handler>,
    ) -> Result<(), Error> {
        self.check_name_free(name)?;
        self.link_new(prev, name, handler);
        Ok(())
    }

    fn link_new(&mut self, prev: usize, name: &str, mut handler: Box<dyn Handler>) {
        let next = self.slots[prev].next;
        let slot = Slot {
            name: name.into(),
            handler: None,
            interest: handler.interest().bits(),
            hop: [TAIL as u16; KINDS],
            prev,
            next,
            state: State::Linked,
            dead: false,
            queued: None,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i] = slot;
                i
            }
            None => {
                // Pipelines are short and long-lived: grow one slot at a time.
                self.slots.reserve_exact(1);
                self.slots.push(slot);
                self.slots.len() - 1
            }
        };
        self.slots[prev].next = idx;
        self.slots[next].prev = idx;
        self.rehop();
        self.call(&mut *handler, idx, Ev::Added);
        self.finish_call(idx, handler);
    }

    pub(crate) fn insert_before(
        &mut self,
        next: usize,
        name: &str,
        handler: Box<dyn Handler>,
    ) -> Result<(), Error> {
        let prev = self.slots[next].prev;
        self.insert_after(prev, name, handler)
    }

    fn unlink(&mut self, idx: usize) {
        let (prev, next) = (self.slots[idx].prev, self.slots[idx].next);
        self.slots[prev].next = next;
        self.slots[next].prev = prev;
        self.slots[idx].state = State::Removed;
        // Removed slots whose callbacks are still running keep forwarding
        // from their old position; keep their links pointing at live slots.
        for s in self.slots.iter_mut() {
            if s.state == State::Removed {
                if s.next == idx {
                    s.next = next;
                }
                if s.prev == idx {
                    s.prev = prev;
                }
            }
        }
        self.rehop();
    }

    /// Recomputes every slot's `hop` table after a structural change.
    fn rehop(&mut self) {
        // Inbound kinds: walk tail → head; `acc` holds, for the slot being
        // visited, the nearest interested slot after it.
        let mut acc = [TAIL as u16; KINDS];
        let mut i = TAIL;
        loop {
            let s = &mut self.slots[i];
            s.hop[..INBOUND_KINDS].copy_from_slice(&acc[..INBOUND_KINDS]);
            if i == HEAD {
                break;
            }
            for (b, a) in acc.iter_mut().enumerate().take(INBOUND_KINDS) {
                if s.interest & (1 << b) != 0 {
                    *a = i as u16;
                }
            }
            i = s.prev;
        }
        // Outbound kinds: walk head → tail.
        let mut acc = [HEAD as u16; KINDS];
        let mut i = HEAD;
        loop {
            let s = &mut self.slots[i];
            s.hop[INBOUND_KINDS..].copy_from_slice(&acc[INBOUND_KINDS..]);
            if i == TAIL {
                break;
            }
            for (b, a) in acc.iter_mut().enumerate().skip(INBOUND_KINDS) {
                if s.interest & (1 << b) != 0 {
                    *a = i as u16;
                }
            }
            i = s.next;
        }
        // Removed slots whose callback is still running forward from their
        // old position: their neighbours are live slots (see `unlink`).
        for r in 0..self.slots.len() {
            if self.slots[r].state != State::Removed {
                continue;
            }
            let (prev, next) = (self.slots[r].prev, self.slots[r].next);
            let mut hop = [0u16; KINDS];
            for (b, h) in hop.iter_mut().enumerate() {
                let n = if b < INBOUND_KINDS { next } else { prev };
                *h = if self.slots[n].interest & (1 << b) != 0 {
                    n as u16
                } else {
                    self.slots[n].hop[b]
                };
            }
            self.slots[r].hop = hop;
        }
    }

    pub(crate) fn remove_at(&mut self, idx: usize) {
        if self.slots[idx].state != State::Linked || idx == HEAD || idx == TAIL {
            return;
        }
        self.unlink(idx);
        if self.slots[idx].handler.is_none() && !self.slots[idx].dead {
            return; // busy: finished when its callback returns
        }
        match self.slots[idx].handler.take() {
            Some(h) => self.call_removed(idx, h),
            None => self.free_slot(idx),
        }
    }

    pub(crate) fn remove(&mut self, name: &str) -> Result<(), Error> {
        let idx = self.find_or_err(name)?;
        self.remove_at(idx);
        Ok(())
    }

    /// Puts `handler` where slot `idx` is: the new handler is added right
    /// after the old one, then the old one is removed (so the new one's
    /// `handler_added` runs before the old one's `handler_removed`).
    pub(crate) fn replace_at(
        &mut self,
        idx: usize,
        new_name: &str,
        handler: Box<dyn Handler>,
    ) -> Result<(), Error> {
        if &*self.slots[idx].name != new_name {
            self.check_name_free(new_name)?;
        }
        self.link_new(idx, new_name, handler);
        self.remove_at(idx);
        Ok(())
    }

    fn free_slot(&mut self, idx: usize) {
        self.clear_queue(idx);
        let s = &mut self.slots[idx];
        s.state = State::Free;
        s.handler = None;
        s.dead = false;
        s.name = "".into();
        self.free.push(idx);
    }

    // ---- after a dispatch ----

    /// Delivers a writability change caused by the last event, once it is over.
    /// Asks the transport to close because of `err`, which is fired as
    /// `exception_caught` once the current event is done.
    pub(crate) fn close_with_reason(&mut self, err: Error) {
        if self.head.close_reason.is_none() && !self.head.closed {
            tracing::debug!(channel = %self.channel.id(), error = ?err, "closing the channel");
            self.head.close_reason = Some(err);
            self.head.reason_pending = true;
        }
        self.head.close_requested = true;
    }

    /// Whether a writability change is due: the buffer changed state, or a
    /// write from another task turned the handle unwritable.
    fn writability_due(&self) -> bool {
        let w = self.head.outbound.is_writable();
        w != self.head.notified_writable
            || (w && (!self.channel.is_writable() || self.over_high_with_queued()))
    }

    /// Whether the outbound bytes, with the writes other tasks submitted
    /// and the task has not taken yet, are above the high watermark.
    fn over_high_with_queued(&self) -> bool {
        let ob = &self.head.outbound;
        ob.buffered_bytes() + self.channel.queued_bytes() > ob.watermark().high()
    }

    fn sync_writability(&mut self) {
        self.channel
            .publish_outbound(self.head.outbound.buffered_bytes());
        if self.head.notified_writable
            && (!self.channel.is_writable() || self.over_high_with_queued())
            && !self.head.closed
        {
            // Writes submitted from other tasks passed the high watermark:
            // a real change, delivered now; writable again below the low one.
            self.head.outbound.force_unwritable();
        }
        for _ in 0..4 {
            let w = self.head.outbound.is_writable() && !self.over_high_with_queued();
            if w == self.head.notified_writable {
                return;
            }
            self.head.notified_writable = w;
            self.channel.set_writable(w);
            self.forward(HEAD, Ev::Writability(w));
        }
    }

    /// Cleans up after a handler panicked somewhere in the call stack.
    fn recover(&mut self, payload: Box<dyn std::any::Any + Send>) -> Error {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        let busy: Vec<usize> = (0..self.slots.len())
            .filter(|&i| {
                let s = &self.slots[i];
                i != HEAD && i != TAIL && s.handler.is_none() && !s.dead && s.state != State::Free
            })
            .collect();
        for i in busy {
            self.clear_queue(i);
            self.slots[i].dead = true;
            if self.slots[i].state == State::Removed {
                self.free_slot(i);
            }
        }
        tracing::error!(channel = %self.channel.id(), panic = %msg, "a handler panicked; closing the channel");
        self.head.close_requested = true;
        Error::panic(msg)
    }
}

// ------------------------------------------------------------------
// Pipeline: the public face.
// ------------------------------------------------------------------

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

    /// Runs `f` with the dispatch machinery, catching a handler panic, then
    /// delivers any writability change the event caused.
    fn enter(&mut self, f: impl FnOnce(&mut Inner)) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&mut self.inner))) {
            let err = self.inner.recover(payload);
            let inner = &mut self.inner;
            if catch_unwind(AssertUnwindSafe(|| inner.forward(HEAD, Ev::Exception(err)))).is_err() {
                let _ = self
                    .inner
                    .recover(Box::new("a handler panicked in exception_caught"));
            }
        }
        if std::mem::take(&mut self.inner.head.reason_pending) {
            if let Some(err) = self.inner.head.close_reason.clone() {
                let inner = &mut self.inner;
                if let Err(payload) =
                    catch_unwind(AssertUnwindSafe(|| inner.forward(HEAD, Ev::Exception(err))))
                {
                    let _ = self.inner.recover(payload);
                }
            }
        }
        if self.inner.writability_due() {
            let inner = &mut self.inner;
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| inner.sync_writability())) {
                let _ = self.inner.recover(payload);
            }
        }
    }

    // ---- structure ----

    /// Adds a handler at the head end.
    pub fn add_first(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.add_first_boxed(name, Box::new(handler))
    }

    /// Adds a boxed handler at the head end.
    pub fn add_first_boxed(&mut self, name: &str, handler: Box<dyn Handler>) -> Result<(), Error> {
        let mut r = Ok(());
        self.enter(|p| r = p.insert_after(HEAD, name, handler));
        r
    }

    /// Adds a handler at the tail end.
    pub fn add_last(&mut self, name: &str, handler: impl Handler) -> Result<(), Error> {
        self.add_last_boxed(name, Box::new(handler))
    }

    /// Adds a boxed handler at the tail end.
    pub fn add_last_boxed(&mut self, name: &str, handler: Box<dyn Handler>) -> Result<(), Error> {
        let mut r = Ok(());
        self.enter(|p| r = p.insert_before(TAIL, name, handler));
        r
    }

    /// Adds a handler just before (head side of) the handler named `base`.
    pub fn add_before(
        &mut self,
        base: &str,
        name: &str,
        handler: impl Handler,
    ) -> Result<(), Error> {
        let at = self.inner.find_or_err(base)?;
        let mut r = Ok(());
        self.enter(|p| r = p.insert_before(at, name, Box::new(handler)));
        r
    }

    /// Adds a handler just after (tail side of) the handler named `base`.
    pub fn add_after(
        &mut self,
        base: &str,
        name: &str,
        handler: impl Handler,
    ) -> Result<(), Error> {
        let at = self.inner.find_or_err(base)?;
        let mut r = Ok(());
        self.enter(|p| r = p.insert_after(at, name, Box::new(handler)));
        r
    }

    /// Removes the handler named `name`, calling its `handler_removed`.
    pub fn remove(&mut self, name: &str) -> Result<(), Error> {
        let mut r = Ok(());
        self.enter(|p| r = p.remove(name));
        r
    }

    /// Replaces the handler named `old` with `handler` named `new_name`, at
    /// the same position.
    pub fn replace(
        &mut self,
        old: &str,
        new_name: &str,
        handler: impl Handler,
    ) -> Result<(), Error> {
        let at = self.inner.find_or_err(old)?;
        let mut r = Ok(());
        self.enter(|p| r = p.replace_at(at, new_name, Box::new(handler)));
        r
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
        self.inner.slots[HEAD].next == TAIL
    }

    // ---- inbound events, entering at the head (for transports) ----

    /// Fires `channel_active`.
    pub fn fire_active(&mut self) {
        self.enter(|p| p.forward(HEAD, Ev::Active));
    }

    /// Fires `channel_read`.
    pub fn fire_read(&mut self, msg: impl Into<Msg>) {
        let msg = msg.into();
        self.enter(|p| p.forward_read(HEAD, msg));
    }

    /// Fires `channel_read_complete`.
    pub fn fire_read_complete(&mut self) {
        self.enter(|p| p.forward(HEAD, Ev::ReadComplete));
    }

    /// Fires `user_event`.
    pub fn fire_user_event(&mut self, event: UserEvent) {
        self.enter(|p| p.forward(HEAD, Ev::UserEvent(event)));
    }

    /// Fires `exception_caught`.
    pub fn fire_exception(&mut self, err: Error) {
        self.enter(|p| p.forward(HEAD, Ev::Exception(err)));
    }

    /// Fires `channel_inactive`.
    pub fn fire_inactive(&mut self) {
        self.enter(|p| p.forward(HEAD, Ev::Inactive));
    }

    // ---- outbound operations, entering at the tail ----

    /// Writes a message from the tail, without a promise.
    pub fn write(&mut self, msg: impl Into<Msg>) {
        self.write_with(msg.into(), None);
    }

    /// Writes a message from the tail with an optional promise.
    pub fn write_with(&mut self, msg: Msg, promise: Option<Promise>) {
        self.enter(|p| p.forward_write(TAIL, msg, promise));
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
        self.enter(|p| p.forward(TAIL, Ev::Flush));
    }

    /// Requests a read from the tail.
    pub fn read(&mut self) {
        self.enter(|p| p.forward(TAIL, Ev::ReadRequest));
    }

    /// Closes from the tail.
    pub fn close(&mut self) {
        self.close_with(None);
    }

    /// Closes from the tail with an optional promise.
    pub fn close_with(&mut self, promise: Option<Promise>) {
        self.enter(|p| p.forward(TAIL, Ev::Close(promise)));
    }

    // ---- for transports ----

    /// Runs the operations queued through [`Channel`] handles from other
    /// tasks, in order. Returns how many ran.
    pub fn run_commands(&mut self) -> usize {
        let cmds = self.inner.channel.take_commands();
        let n = cmds.len();
        for cmd in cmds {
            if self.inner.head.closed {
                cmd.fail();
                continue;
            }
            match cmd {
                Command::Write(m, p, flush) => {
                    self.write_with(m, p);
                    if flush {
                        self.flush();
                    }
                }
                Command::Flush => self.flush(),
                Command::Read => self.read(),
                Command::Close(p) => self.close_with(p),
                Command::ShutdownOutput(p) => self.shutdown_output(p),
                Command::Exec(f) => {
                    let r = catch_unwind(AssertUnwindSafe(|| f(&mut *self)));
                    if let Err(payload) = r {
                        let err = self.inner.recover(payload);
                        self.fire_exception(err);
                    }
                }
                Command::Overflow(err) => self.enter(|p| p.close_with_reason(err)),
            }
        }
        // The taken writes now count in the outbound buffer.
        if n > 0 {
            self.publish_outbound();
        }
        self.enter(|_| {});
        n
    }

    /// The outbound buffer the head writes into; transports drain its
    /// flushed part to the socket.
    pub fn outbound(&mut self) -> &mut OutboundBuffer {
        &mut self.inner.head.outbound
    }

    /// Sets the write-buffer watermarks.
    pub fn set_watermark(&mut self, wm: WriteBufferWaterMark) {
        self.inner.head.outbound.set_watermark(wm);
        self.publish_limits();
        self.enter(|_| {});
    }

    /// Sets the cap on the outbound bytes (`None`: no cap; the default is
    /// [`DEFAULT_OUTBOUND_CAP`](crate::outbound::DEFAULT_OUTBOUND_CAP)). A
    /// write past it fails with a closed-channel error naming the cap, and
    /// the channel closes.
    pub fn set_outbound_cap(&mut self, cap: Option<usize>) {
        self.inner.head.outbound.set_cap(cap);
        self.publish_limits();
    }

    fn publish_limits(&self) {
        let ob = &self.inner.head.outbound;
        self.inner
            .channel
            .publish_limits(ob.watermark().high(), ob.cap());
    }

    /// Delivers a writability change caused by the transport draining the
    /// outbound buffer.
    pub fn sync_writability(&mut self) {
        self.publish_outbound();
        self.enter(|_| {});
    }

    /// Publishes the outbound buffer's size for the checks that writes from
    /// other tasks make (one store): after a flush drained it, after
    /// commands filled it, even when its writability did not change.
    fn publish_outbound(&self) {
        self.inner
            .channel
            .publish_outbound(self.inner.head.outbound.buffered_bytes());
    }

    /// Asks the transport to shut the output down once what is flushed now
    /// is written (Netty's `shutdownOutput`); `promise` completes then.
    pub fn shutdown_output(&mut self, promise: Option<Promise>) {
        self.flush();
        if self.inner.head.closed {
            complete(promise, Err(Error::closed()));
            return;
        }
        if let Some(Some(old)) = self.inner.head.shutdown_output.replace(promise) {
            old.succeed();
        }
    }

    /// A pending output shutdown, for the transport: taken once the flushed
    /// writes are out.
    pub fn take_shutdown_output(&mut self) -> Option<Option<Promise>> {
        self.inner.head.shutdown_output.take()
    }

    /// Whether an output shutdown is pending.
    pub fn shutdown_output_pending(&self) -> bool {
        self.inner.head.shutdown_output.is_some()
    }

    /// Whether a handler asked for a read since the last call; clears it.
    pub fn take_read_request(&mut self) -> bool {
        std::mem::take(&mut self.inner.head.read_requested)
    }

    /// Whether a close reached the head (or a handler panicked).
    pub fn close_requested(&self) -> bool {
        self.inner.head.close_requested && !self.inner.head.closed
    }

    /// Whether [`finish_close`](Self::finish_close) ran.
    pub fn is_closed(&self) -> bool {
        self.inner.head.closed
    }

    /// Completes a close once the transport has closed its socket: marks the
    /// channel closed, fails every pending write and queued command with a
    /// closed-channel error, fires `channel_inactive`, and completes the
    /// close promises. Idempotent.
    pub fn finish_close(&mut self) {
        if self.inner.head.closed {
            return;
        }
        self.inner.head.closed = true;
        self.inner.head.close_requested = false;
        for cmd in self.inner.channel.mark_closed() {
            cmd.fail();
        }
        let closed = self
            .inner
            .head
            .close_reason
            .clone()
            .unwrap_or_else(Error::closed);
        self.inner.head.outbound.fail_all(&closed);
        self.inner.channel.set_writable(false);
        self.inner.head.notified_writable = false;
        self.fire_inactive();
        for p in std::mem::take(&mut self.inner.head.close_promises) {
            p.succeed();
        }
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
