//! Dispatch: how an event finds its way from one slot to the next.
//!
//! Contract:
//! - an event goes from a slot to `hop[kind]`: the next handler that
//!   declared the event, in the event's direction; the head and the tail
//!   end the way (see `ends.rs`);
//! - a handler is taken out of its slot for the length of its callback; an
//!   event that reaches it meanwhile (re-entrancy) queues in the slot and is
//!   delivered, in order, when the callback returns; the two halves of a
//!   `Combined` are taken out apart, each with its own queue, so one
//!   direction never waits for the other; while any slot holds
//!   queued events, every event checks whether its path crosses one and
//!   queues behind it, so that events keep their order even when some skip
//!   the busy handler;
//! - a handler that panics is marked dead (it passes everything through)
//!   and the channel is asked to close; [`Inner::recover`] builds the error
//!   the caller then fires.

use std::collections::VecDeque;

use tokio::time::Instant;

use super::ends::{Head, Tail};
use super::slot::{Ev, Link, Occupant, Slot, HEAD, HOP_READ, HOP_WRITE, TAIL};
use super::timers::{Owner, Timers};
use crate::{Channel, Context, Error, Handler, Msg, Promise};

/// The dispatch machinery shared by [`Pipeline`](super::Pipeline) and
/// [`Context`].
pub(crate) struct Inner {
    pub(super) slots: Vec<Slot>,
    pub(super) free: Vec<usize>,
    /// Slots holding queued events.
    pub(super) pending_queues: usize,
    pub(crate) channel: Channel,
    pub(crate) head: Head,
    /// Collected at the tail (EmbeddedChannel only; boxed so that a socket
    /// channel pays one pointer for it).
    pub(crate) tail: Option<Box<Tail>>,
    /// Armed timers.
    pub(super) timers: Timers,
    /// The time as an `EmbeddedChannel` keeps it; `None`: the clock's.
    pub(crate) virtual_now: Option<Instant>,
    /// Writes a handler watches ([`Context::watch_write`]); boxed, and only
    /// once one is watched.
    #[allow(clippy::box_collection)] // deliberate: 8 bytes per channel instead of 24
    pub(super) watched: Option<Box<Vec<WatchedWrite>>>,
    /// Values the handlers share by type (`Context::local`).
    pub(super) locals: super::locals::Locals,
}

/// What a handler watching a write is told: its outcome.
pub(super) type OnDone = Box<dyn FnOnce(&Result<(), Error>) + Send>;

/// A write a handler watches: its own promise's future, the writer's
/// promise to complete after it, and what to tell the handler.
pub(super) struct WatchedWrite {
    pub(super) done: crate::WriteFuture,
    pub(super) next: Option<Promise>,
    pub(super) on_done: OnDone,
}

impl Inner {
    pub(super) fn new(channel: Channel) -> Inner {
        let head = Head::new(&channel);
        let mut inner = Inner {
            slots: vec![Slot::sentinel(HEAD, TAIL), Slot::sentinel(HEAD, TAIL)],
            free: Vec::new(),
            pending_queues: 0,
            channel,
            head,
            tail: None,
            timers: Timers::default(),
            virtual_now: None,
            watched: None,
            locals: Default::default(),
        };
        inner.rehop();
        inner
    }

    /// Sends `ev` on from slot `from`, in its direction.
    pub(crate) fn forward(&mut self, from: usize, ev: Ev) {
        let bit = ev.bit();
        if bit == 0 {
            return;
        }
        let to = self.slots[from].hop[bit.trailing_zeros() as usize] as usize;
        if self.pending_queues > 0 {
            if let Some(q) = self.queue_on_path(from, to, ev.outbound()) {
                return self.enqueue(q, ev);
            }
        }
        match to {
            TAIL => self.at_tail(ev),
            HEAD => self.at_head(ev),
            _ => self.invoke(to, ev),
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
        let Some(mut h) = self.slots[i].take(false) else {
            return self.invoke(i, Ev::Read(msg));
        };
        h.channel_read(&mut Context::new(self, i), msg);
        self.finish_call(i, false, h);
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
        let Some(mut h) = self.slots[i].take(true) else {
            return self.invoke(i, Ev::Write(msg, promise));
        };
        h.write(&mut Context::of_half(self, i, true), msg, promise);
        self.finish_call(i, true, h);
    }

    /// The first slot strictly between `from` and `to`, on the event's way,
    /// that holds queued events.
    #[cold]
    fn queue_on_path(&self, from: usize, to: usize, out: bool) -> Option<usize> {
        let step = |i: usize| {
            if out {
                self.slots[i].prev
            } else {
                self.slots[i].next
            }
        };
        let mut i = step(from);
        while i != to && i != HEAD && i != TAIL {
            if self.slots[i].has_queued(out) {
                return Some(i);
            }
            i = step(i);
        }
        None
    }

    /// The queue of slot `idx` for events of direction `out`.
    fn queue(&mut self, idx: usize, out: bool) -> &mut VecDeque<Ev> {
        let slot = &mut self.slots[idx];
        match &mut slot.duplex {
            Some(d) if out => &mut d.queued,
            _ => slot.queued.get_or_insert_with(|| Box::new(VecDeque::new())),
        }
    }

    fn enqueue(&mut self, idx: usize, ev: Ev) {
        let q = self.queue(idx, ev.outbound());
        let was_empty = q.is_empty();
        q.push_back(ev);
        if was_empty {
            self.pending_queues += 1;
        }
    }

    fn dequeue(&mut self, idx: usize, out: bool) -> Option<Ev> {
        if !self.slots[idx].has_queued(out) {
            return None;
        }
        let q = self.queue(idx, out);
        let ev = q.pop_front();
        if q.is_empty() {
            self.pending_queues -= 1;
        }
        ev
    }

    /// Drops a slot's queues (their events' promises fail as they drop).
    pub(super) fn clear_queue(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        if let Some(q) = slot.queued.take() {
            if !q.is_empty() {
                self.pending_queues -= 1;
            }
        }
        if let Some(d) = &mut slot.duplex {
            if !d.queued.is_empty() {
                d.queued.clear();
                self.pending_queues -= 1;
            }
        }
    }

    pub(super) fn invoke(&mut self, idx: usize, ev: Ev) {
        let out = ev.outbound();
        let Some(mut h) = self.slots[idx].take(out) else {
            if self.slots[idx].is_busy(out) {
                self.enqueue(idx, ev);
            } else {
                // A handler lost to a panic: pass everything through.
                self.forward(idx, ev);
            }
            return;
        };
        self.call(&mut *h, idx, out, ev);
        self.finish_call(idx, out, h);
    }

    /// After a callback of the handler (half) of direction `out`: deliver
    /// what queued up meanwhile, then put it back, or finish removing it.
    #[inline(always)]
    pub(super) fn finish_call(&mut self, idx: usize, out: bool, h: Box<dyn Handler>) {
        let slot = &mut self.slots[idx];
        if !slot.has_queued(out) && slot.link == Link::Linked {
            *slot.occupant_mut(out) = Occupant::Idle(h);
        } else {
            self.finish_call_slow(idx, out, h);
        }
    }

    #[cold]
    #[inline(never)]
    fn finish_call_slow(&mut self, idx: usize, out: bool, mut h: Box<dyn Handler>) {
        while let Some(ev) = self.dequeue(idx, out) {
            let s = &self.slots[idx];
            let mine = s.interest & ev.bit() != 0 || matches!(ev, Ev::Timer(..));
            if s.link == Link::Linked && mine {
                self.call(&mut *h, idx, out, ev);
            } else {
                // Queued only to keep its place behind earlier events.
                self.forward(idx, ev);
            }
        }
        let slot = &mut self.slots[idx];
        if slot.link == Link::Linked {
            *slot.occupant_mut(out) = Occupant::Idle(h);
        } else {
            self.call_removed(idx, out, h);
        }
    }

    /// Calls `h` — the handler in slot `idx`, or its half of direction
    /// `out` — with `ev`.
    pub(super) fn call(&mut self, h: &mut dyn Handler, idx: usize, out: bool, ev: Ev) {
        let mut ctx = Context::of_half(self, idx, out);
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
            Ev::Timer(id, _) => h.timer(&mut ctx, id),
        }
    }

    /// Passes on the outcomes of the watched writes that completed: their
    /// watchers first, then the writers' promises. Run after the transport
    /// completed writes (with the writability check) and at the close.
    pub(super) fn poll_watched(&mut self) {
        let Some(list) = self.watched.as_mut() else {
            return;
        };
        let mut i = 0;
        while i < list.len() {
            match list[i].done.try_result() {
                None => i += 1,
                Some(r) => {
                    let w = list.swap_remove(i);
                    (w.on_done)(&r);
                    crate::promise::complete(w.next, r);
                }
            }
        }
    }

    /// The pipeline's value of type `T` (`Context::local`).
    pub(crate) fn local<T: Default + Send + 'static>(&mut self) -> &mut T {
        self.locals.get::<T>()
    }

    /// The time: the virtual clock's, or tokio's.
    pub(crate) fn now(&self) -> Instant {
        self.virtual_now.unwrap_or_else(Instant::now)
    }

    /// Arms a timer for the handler in `slot` (its outbound half when
    /// `out`).
    pub(super) fn arm_timer(
        &mut self,
        slot: usize,
        out: bool,
        deadline: Instant,
    ) -> super::TimerId {
        self.timers.arm(Owner { slot, out }, deadline)
    }

    /// Whether the handler in `slot` declared [`Events::TIMER`].
    pub(super) fn takes_timers(&self, slot: usize) -> bool {
        self.slots[slot].interest & crate::Events::TIMER.bits() != 0
    }

    /// Disarms the timer `id` of the handler in `slot`.
    pub(super) fn cancel_timer(&mut self, slot: usize, id: super::TimerId) -> bool {
        self.timers.cancel(slot, id)
    }

    /// The earliest armed deadline.
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.timers.next_deadline()
    }

    /// Fires the next timer due at `now`; whether there was one.
    pub(super) fn fire_due_timer(&mut self, now: Instant) -> bool {
        let Some((id, owner)) = self.timers.pop_due(now) else {
            return false;
        };
        if self.slots[owner.slot].link == Link::Linked {
            // Queued if the handler is busy; dropped if it is dead (a timer
            // is never forwarded).
            self.invoke(owner.slot, Ev::Timer(id, owner.out));
        }
        true
    }

    /// Calls `handler_removed` on a removed handler (or one half of it),
    /// passes on what queued behind it, and frees the slot once no half is
    /// left in it.
    pub(super) fn call_removed(&mut self, idx: usize, out: bool, mut h: Box<dyn Handler>) {
        *self.slots[idx].occupant_mut(out) = Occupant::Busy;
        let mut ctx = Context::of_half(self, idx, out);
        h.handler_removed(&mut ctx);
        while let Some(ev) = self.dequeue(idx, out) {
            self.forward(idx, ev);
        }
        drop(h);
        *self.slots[idx].occupant_mut(out) = Occupant::Dead;
        if self.slots[idx].is_vacant() {
            self.free_slot(idx);
        }
    }

    /// Cleans up after a handler panicked somewhere in the call stack: every
    /// busy handler was unwound through and is lost.
    pub(super) fn recover(&mut self, payload: Box<dyn std::any::Any + Send>) -> Error {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".to_string());
        let busy: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].any_busy() && self.slots[i].link != Link::Free)
            .collect();
        for i in busy {
            self.clear_queue(i);
            for out in [false, true] {
                if self.slots[i].is_busy(out) {
                    *self.slots[i].occupant_mut(out) = Occupant::Dead;
                }
            }
            if self.slots[i].link == Link::Removed && self.slots[i].is_vacant() {
                self.free_slot(i);
            }
        }
        tracing::error!(channel = %self.channel.id(), panic = %msg, "a handler panicked; closing the channel");
        self.head.close_requested = true;
        Error::panic(msg)
    }
}
