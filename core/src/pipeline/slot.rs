//! A pipeline's slots and the events that travel between them.
//!
//! Contract:
//! - slot 0 is the head and slot 1 the tail; they hold no handler and are
//!   never removed;
//! - a slot's [`Link`] says where it stands in the list and its
//!   [`Occupant`] what its handler is doing; the two are independent: a
//!   handler can be removed while its callback is still running (it is
//!   `Removed` and `Busy`), and finishes leaving when the callback returns;
//! - a slot holds one handler, or the two halves of a
//!   [`Combined`](crate::Combined): then inbound events go to the inbound
//!   half and outbound operations to the outbound half, each half has its
//!   own [`Occupant`] and its own queue, so an answer written while the
//!   inbound half is busy with a read reaches the outbound half at once;
//!   what the halves share lives in the slot ([`Duplex::shared`]);
//! - `hop[k]` is the slot that event kind `k` goes to from here; it is kept
//!   up to date by the structural edits, so skipping the handlers that did
//!   not declare an event costs nothing per event.

use std::any::Any;
use std::collections::VecDeque;
use std::mem;

use crate::handler::UserEvent;
use crate::{Error, Events, Handler, Msg, Promise};

pub(crate) const HEAD: usize = 0;
pub(crate) const TAIL: usize = 1;

/// Number of event kinds (bits of [`Events`]).
pub(super) const KINDS: usize = 11;
/// Bits 0..7 are inbound, 7..11 outbound.
pub(super) const INBOUND_KINDS: usize = 7;
pub(super) const HOP_READ: usize = Events::READ.bits().trailing_zeros() as usize;
pub(super) const HOP_WRITE: usize = Events::WRITE.bits().trailing_zeros() as usize;

/// One event or operation on its way through the pipeline.
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
    /// A timer the handler armed is due; only ever delivered to it (to
    /// the outbound half of a `Combined` when `true`).
    Timer(super::TimerId, bool),
}

impl Ev {
    /// The event's kind as a bit of [`Events`]; 0 for `Added`.
    pub(super) fn bit(&self) -> u16 {
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
            Ev::Added | Ev::Timer(..) => 0,
        }
    }

    /// Whether it goes to the outbound half of a `Combined` (`Added` is
    /// delivered to each half by itself).
    #[inline]
    pub(super) fn outbound(&self) -> bool {
        match self {
            Ev::Timer(_, out) => *out,
            ev => ev.bit() & Events::OUTBOUND.bits() != 0,
        }
    }
}

/// Where a slot stands in the list.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Link {
    /// In the list: events reach it.
    Linked,
    /// Out of the list while its callback still runs; its links point at
    /// live slots, so what it forwards meanwhile goes to its old neighbours.
    Removed,
    /// Unused, waiting on the free list.
    Free,
}

/// What a slot's handler is doing.
pub(super) enum Occupant {
    /// Waiting for an event.
    Idle(Box<dyn Handler>),
    /// Taken out: its callback is running further up the call stack, and
    /// events that reach it meanwhile queue up.
    Busy,
    /// Lost to a panic (or a sentinel): events pass straight through.
    Dead,
}

pub(super) struct Slot {
    pub(super) name: Box<str>,
    pub(super) occupant: Occupant,
    pub(super) interest: u16,
    /// For each event kind, the slot it goes to from here: the next
    /// interested slot towards the tail (inbound) or head (outbound).
    pub(super) hop: [u16; KINDS],
    pub(super) prev: usize,
    pub(super) next: usize,
    pub(super) link: Link,
    /// Events that arrived while the handler's callback was running
    /// (boxed: rarely used, and a slot should stay small).
    #[allow(clippy::box_collection)] // deliberate: 8 bytes per slot instead of 32
    pub(super) queued: Option<Box<VecDeque<Ev>>>,
    /// The outbound half of a `Combined` and what the halves share; `None`
    /// for a handler in one piece (boxed: 8 bytes for the others).
    pub(super) duplex: Option<Box<Duplex>>,
}

/// What a slot holding a `Combined` adds: the outbound half, its queue,
/// and the state both halves reach through `Context::shared`.
pub(super) struct Duplex {
    /// The outbound half (the inbound half is the slot's `occupant`).
    pub(super) out: Occupant,
    /// Outbound operations that arrived while the outbound half was busy.
    pub(super) queued: VecDeque<Ev>,
    /// The halves' shared state.
    pub(super) shared: Box<dyn Any + Send>,
}

impl Slot {
    pub(super) fn sentinel(prev: usize, next: usize) -> Slot {
        Slot {
            // Sentinels are never looked up by name; an empty name allocates nothing.
            name: Box::default(),
            occupant: Occupant::Dead,
            interest: 0,
            hop: [TAIL as u16; KINDS],
            prev,
            next,
            link: Link::Linked,
            queued: None,
            duplex: None,
        }
    }

    pub(super) fn new(name: &str, interest: u16, prev: usize, next: usize) -> Slot {
        Slot {
            name: name.into(),
            // Busy until its `handler_added` returns.
            occupant: Occupant::Busy,
            interest,
            hop: [TAIL as u16; KINDS],
            prev,
            next,
            link: Link::Linked,
            queued: None,
            duplex: None,
        }
    }

    /// The occupant that events of direction `out` reach (always inlined:
    /// on the hot paths `out` is a constant and the choice folds away).
    #[inline(always)]
    pub(super) fn occupant_mut(&mut self, out: bool) -> &mut Occupant {
        match &mut self.duplex {
            Some(d) if out => &mut d.out,
            _ => &mut self.occupant,
        }
    }

    #[inline(always)]
    fn occupant(&self, out: bool) -> &Occupant {
        match &self.duplex {
            Some(d) if out => &d.out,
            _ => &self.occupant,
        }
    }

    /// Takes the handler (or the half) that events of direction `out`
    /// reach out to call it, leaving it busy; `None` when it is busy
    /// already or dead.
    #[inline(always)]
    pub(super) fn take(&mut self, out: bool) -> Option<Box<dyn Handler>> {
        let occ = self.occupant_mut(out);
        if !matches!(occ, Occupant::Idle(_)) {
            return None;
        }
        match mem::replace(occ, Occupant::Busy) {
            Occupant::Idle(h) => Some(h),
            _ => None,
        }
    }

    /// Whether the handler (half) of direction `out` is busy.
    pub(super) fn is_busy(&self, out: bool) -> bool {
        matches!(self.occupant(out), Occupant::Busy)
    }

    /// Whether either half is busy.
    pub(super) fn any_busy(&self) -> bool {
        self.is_busy(false) || self.is_busy(true)
    }

    /// Whether no handler (half) is left in it: a removed slot is freed
    /// once this holds.
    pub(super) fn is_vacant(&self) -> bool {
        matches!(self.occupant, Occupant::Dead)
            && self
                .duplex
                .as_ref()
                .is_none_or(|d| matches!(d.out, Occupant::Dead))
    }

    /// Whether events of direction `out` are queued here.
    #[inline(always)]
    pub(super) fn has_queued(&self, out: bool) -> bool {
        match &self.duplex {
            Some(d) if out => !d.queued.is_empty(),
            _ => self.queued.as_ref().is_some_and(|q| !q.is_empty()),
        }
    }
}
