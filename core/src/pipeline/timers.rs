//! Timers owned by the channel: what [`Context::schedule`] arms and the
//! channel's own task fires, with time as an input.
//!
//! Contract:
//! - a timer belongs to the handler that armed it and fires as that
//!   handler's [`Handler::timer`] callback, on the channel's task, never
//!   concurrently with its other callbacks (if it is busy further up the
//!   call stack, the firing queues behind that callback like any event);
//! - it fires once, no earlier than its deadline, in deadline order (ties
//!   in the order they were armed); [`Context::cancel_timer`] disarms it;
//!   removing the handler (or closing the channel, which drops the
//!   pipeline) disarms its timers;
//! - nothing here reads a clock: the transport says what time it is
//!   ([`Transport::run_timers`]) and asks for the next deadline
//!   ([`Transport::next_timer`]) to wait for; `EmbeddedChannel` keeps a
//!   virtual clock that only its `advance_time` moves, so handlers with
//!   timeouts are tested without sockets or sleeping;
//! - armed timers cost a heap entry each and nothing while none is armed
//!   (the store lives in the pipeline; its heap is allocated at the first
//!   timer, for one entry).
//!
//! [`Context::schedule`]: crate::Context::schedule
//! [`Context::cancel_timer`]: crate::Context::cancel_timer
//! [`Handler::timer`]: crate::Handler::timer
//! [`Transport::run_timers`]: crate::transport::Transport::run_timers
//! [`Transport::next_timer`]: crate::transport::Transport::next_timer

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use tokio::time::Instant;

/// Names one armed timer: what [`Context::schedule`](crate::Context::schedule)
/// returns and [`Handler::timer`](crate::Handler::timer) is called with.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(u64);

impl fmt::Debug for TimerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerId({})", self.0)
    }
}

/// Whose timer it is: a slot's handler, or one half of a
/// [`Combined`](crate::Combined) (each half hears its own timers).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Owner {
    pub(crate) slot: usize,
    /// The outbound half of a `Combined`.
    pub(crate) out: bool,
}

/// The armed timers of one pipeline: one heap of (deadline, id, owner),
/// earliest first, and the ids cancelled but still in it (rarely any). A
/// channel with one timer (an idle guard) holds one allocation of one
/// entry.
#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, TimerId, Owner)>>,
    cancelled: Vec<TimerId>,
    next: u64,
}

impl Timers {
    /// Arms a timer for `owner`.
    pub(crate) fn arm(&mut self, owner: Owner, deadline: Instant) -> TimerId {
        self.next = self.next.wrapping_add(1);
        let id = TimerId(self.next);
        if self.heap.capacity() == 0 {
            self.heap.reserve_exact(1); // most channels arm one timer at a time
        }
        self.heap.push(Reverse((deadline, id, owner)));
        id
    }

    /// Disarms `id`; whether it was armed (by the handler in `slot`, either
    /// half of a `Combined`).
    pub(crate) fn cancel(&mut self, slot: usize, id: TimerId) -> bool {
        let armed = self
            .heap
            .iter()
            .any(|Reverse((_, i, o))| *i == id && o.slot == slot);
        if !armed || self.cancelled.contains(&id) {
            return false;
        }
        self.cancelled.push(id);
        self.trim();
        true
    }

    /// Disarms every timer of the handler in `slot` (it was removed).
    pub(crate) fn forget_slot(&mut self, slot: usize) {
        if self.heap.is_empty() {
            return;
        }
        self.heap.retain(|Reverse((_, _, o))| o.slot != slot);
        let heap = &self.heap;
        self.cancelled
            .retain(|id| heap.iter().any(|Reverse((_, i, _))| i == id));
        self.trim();
    }

    /// The earliest deadline armed.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Takes the earliest timer due at `now`: its id and owner.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerId, Owner)> {
        let Reverse((at, id, owner)) = *self.heap.peek()?;
        if at > now {
            return None;
        }
        self.heap.pop();
        self.trim();
        Some((id, owner))
    }

    /// Drops cancelled entries from the top of the heap, so that the top
    /// (`next_deadline`, `pop_due`) is always an armed timer.
    fn trim(&mut self) {
        while let Some(Reverse((_, id, _))) = self.heap.peek() {
            let Some(i) = self.cancelled.iter().position(|c| c == id) else {
                return;
            };
            self.cancelled.swap_remove(i);
            self.heap.pop();
        }
        if self.heap.is_empty() {
            self.cancelled.clear();
        }
    }

    /// How many timers are armed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len() - self.cancelled.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn due_timers_come_in_deadline_order_and_cancelled_ones_never() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let w = |slot| Owner { slot, out: false };
        let a = t.arm(w(2), t0 + Duration::from_secs(3));
        let b = t.arm(w(3), t0 + Duration::from_secs(1));
        let c = t.arm(w(2), t0 + Duration::from_secs(1));
        let d = t.arm(w(4), t0 + Duration::from_secs(2));
        assert!(t.cancel(4, d));
        assert!(!t.cancel(2, d), "cancelled already");
        assert!(!t.cancel(3, a), "another handler's timer");
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.pop_due(t0), None);
        let due: Vec<_> = std::iter::from_fn(|| t.pop_due(t0 + Duration::from_secs(5))).collect();
        assert_eq!(due, [(b, w(3)), (c, w(2)), (a, w(2))]);
        assert_eq!(t.next_deadline(), None);
    }

    #[test]
    fn a_removed_handler_keeps_no_timer() {
        let t0 = Instant::now();
        let mut t = Timers::default();
        let w = |slot| Owner { slot, out: true };
        t.arm(w(5), t0);
        t.arm(w(6), t0 + Duration::from_secs(1));
        t.forget_slot(5);
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_secs(1)));
        t.forget_slot(6);
        assert_eq!(t.next_deadline(), None);
    }
}
