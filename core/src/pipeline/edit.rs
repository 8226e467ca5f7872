//! Structural edits: adding, removing and replacing handlers, served once
//! for both [`Pipeline`](super::Pipeline) and [`Context`](crate::Context).
//!
//! Contract:
//! - names are unique; `head` and `tail` are reserved;
//! - a new handler's `handler_added` runs as soon as it is linked, and it is
//!   busy until then (events that reach it queue up);
//! - removing a handler whose callback is running unlinks it at once and
//!   calls its `handler_removed` when the callback returns; events it
//!   forwards meanwhile go to its former neighbours;
//! - a [`Combined`](crate::Combined) is linked as one slot holding its two
//!   halves; each half's `handler_added` runs (inbound first), and removing
//!   it removes both, each half leaving when its own callback returns;
//! - replacing links the new handler right after the old one, then removes
//!   the old one, so `handler_added` of the new runs before
//!   `handler_removed` of the old;
//! - after every edit each slot's `hop` table is recomputed (pipelines are
//!   short and edits rare; dispatch is what must be cheap).

use super::dispatch::Inner;
use std::collections::VecDeque;

use super::slot::{Duplex, Ev, Link, Occupant, Slot, HEAD, INBOUND_KINDS, KINDS, TAIL};
use crate::combined::Halves;
use crate::{Error, Events, Handler};

/// A handler, by name or by slot (a context's own).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target<'n> {
    Named(&'n str),
    Slot(usize),
}

/// Where a new handler goes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum At<'n> {
    First,
    Last,
    Before(Target<'n>),
    After(Target<'n>),
}

impl Inner {
    /// The linked slots, head to tail.
    pub(super) fn linked(&self) -> impl Iterator<Item = usize> + '_ {
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

    fn resolve(&self, target: Target<'_>) -> Result<usize, Error> {
        match target {
            Target::Slot(i) => Ok(i),
            Target::Named(name) => self.find(name).ok_or_else(|| {
                Error::pipeline(format!("no handler named `{name}` in the pipeline"))
            }),
        }
    }

    pub(crate) fn names(&self) -> Vec<&str> {
        self.linked().map(|i| &*self.slots[i].name).collect()
    }

    pub(crate) fn name_of(&self, idx: usize) -> &str {
        &self.slots[idx].name
    }

    pub(crate) fn is_linked(&self, idx: usize) -> bool {
        self.slots[idx].link == Link::Linked
    }

    fn check_name_free(&self, name: &str) -> Result<(), Error> {
        if self.find(name).is_some() || name == "head" || name == "tail" {
            return Err(Error::pipeline(format!(
                "a handler named `{name}` is already in the pipeline"
            )));
        }
        Ok(())
    }

    /// Links `handler` at `at` and calls its `handler_added`.
    pub(crate) fn add(
        &mut self,
        at: At<'_>,
        name: &str,
        handler: Box<dyn Handler>,
    ) -> Result<(), Error> {
        let prev = match at {
            At::First => HEAD,
            At::Last => self.slots[TAIL].prev,
            At::After(t) => self.resolve(t)?,
            At::Before(t) => self.slots[self.resolve(t)?].prev,
        };
        self.check_name_free(name)?;
        self.link_new(prev, name, handler)
    }

    /// Links `handler` after `prev`; refuses a `Combined` whose halves
    /// implement events of the other half's direction (see
    /// [`crossed_halves`]).
    fn link_new(
        &mut self,
        prev: usize,
        name: &str,
        mut handler: Box<dyn Handler>,
    ) -> Result<(), Error> {
        let next = self.slots[prev].next;
        let (interest, halves) = match handler.take_halves() {
            Some(Halves {
                inbound,
                outbound,
                shared,
            }) => {
                let (i, o) = (inbound.interest().bits(), outbound.interest().bits());
                crossed_halves(name, i, o)?;
                let interest = (i & Events::INBOUND.bits())
                    | (o & Events::OUTBOUND.bits())
                    | ((i | o) & Events::TIMER.bits());
                (interest, Some((inbound, outbound, shared)))
            }
            None => (handler.interest().bits(), None),
        };
        let mut slot = Slot::new(name, interest, prev, next);
        let halves = halves.map(|(inbound, outbound, shared)| {
            slot.duplex = Some(Box::new(Duplex {
                out: Occupant::Busy, // until its `handler_added` returns
                queued: VecDeque::new(),
                shared,
            }));
            (inbound, outbound)
        });
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
        let Some((mut inbound, mut outbound)) = halves else {
            self.call(&mut *handler, idx, false, Ev::Added);
            self.finish_call(idx, false, handler);
            return Ok(());
        };
        drop(handler);
        // Each half is told it was added, the inbound half first; the
        // outbound half stays busy meanwhile, so what reaches it queues.
        self.call(&mut *inbound, idx, false, Ev::Added);
        self.finish_call(idx, false, inbound);
        self.call(&mut *outbound, idx, true, Ev::Added);
        self.finish_call(idx, true, outbound);
        Ok(())
    }

    /// Removes a handler (see the contract for a busy one).
    pub(crate) fn remove(&mut self, target: Target<'_>) -> Result<(), Error> {
        let idx = self.resolve(target)?;
        if self.slots[idx].link != Link::Linked || idx == HEAD || idx == TAIL {
            return Ok(());
        }
        self.unlink(idx);
        // Each half (or the one handler) finishes leaving now if it is idle,
        // else when its callback returns; the slot is freed after the last.
        for out in [false, true] {
            let occ = self.slots[idx].occupant_mut(out);
            if let Occupant::Idle(_) = occ {
                if let Occupant::Idle(h) = std::mem::replace(occ, Occupant::Busy) {
                    self.call_removed(idx, out, h);
                }
            }
            if self.slots[idx].link == Link::Free || self.slots[idx].duplex.is_none() {
                break;
            }
        }
        if self.slots[idx].link == Link::Removed && self.slots[idx].is_vacant() {
            self.free_slot(idx); // dead halves only
        }
        Ok(())
    }

    /// Puts `handler`, named `new_name`, where `target` is.
    pub(crate) fn replace(
        &mut self,
        target: Target<'_>,
        new_name: &str,
        handler: Box<dyn Handler>,
    ) -> Result<(), Error> {
        let idx = self.resolve(target)?;
        if &*self.slots[idx].name != new_name {
            self.check_name_free(new_name)?;
        }
        self.link_new(idx, new_name, handler)?;
        self.remove(Target::Slot(idx))
    }

    fn unlink(&mut self, idx: usize) {
        let (prev, next) = (self.slots[idx].prev, self.slots[idx].next);
        self.slots[prev].next = next;
        self.slots[next].prev = prev;
        self.slots[idx].link = Link::Removed;
        // Removed slots whose callbacks are still running keep forwarding
        // from their old position; keep their links pointing at live slots.
        for s in self.slots.iter_mut() {
            if s.link == Link::Removed {
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

    pub(super) fn free_slot(&mut self, idx: usize) {
        self.clear_queue(idx);
        self.timers.forget_slot(idx);
        let s = &mut self.slots[idx];
        s.link = Link::Free;
        s.occupant = Occupant::Dead;
        s.duplex = None;
        s.name = "".into();
        self.free.push(idx);
    }

    /// Recomputes every slot's `hop` table after a structural change.
    pub(super) fn rehop(&mut self) {
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
            if self.slots[r].link != Link::Removed {
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
}

/// A `Combined` whose inbound half takes outbound operations, or whose
/// outbound half takes inbound events, by a mask that says so (a mask
/// derived by `#[handler]`, or kept by hand; not the default
/// [`Events::ALL`], which claims everything): those methods would never be
/// called, since each half hears its own direction only. Refused with an
/// error that names them.
fn crossed_halves(name: &str, inbound: u16, outbound: u16) -> Result<(), Error> {
    let all = Events::ALL.bits();
    let stray_out = if inbound == all {
        0
    } else {
        inbound & Events::OUTBOUND.bits()
    };
    let stray_in = if outbound == all {
        0
    } else {
        outbound & Events::INBOUND.bits()
    };
    if stray_out == 0 && stray_in == 0 {
        return Ok(());
    }
    let (half, other, bits) = if stray_out != 0 {
        ("inbound", "outbound", stray_out)
    } else {
        ("outbound", "inbound", stray_in)
    };
    Err(Error::pipeline(format!(
        "the {half} half of Combined `{name}` implements {:?}, which only its {other} half \
         receives: move those methods to the {other} half",
        Events::from_raw(bits)
    )))
}

#[cfg(test)]
mod tests {
    //! The skip tables against a naive walk of the list, over random
    //! sequences of edits of one-piece and `Combined` handlers.

    use proptest::prelude::*;

    use super::*;
    use crate::{Channel, Events};

    #[derive(Debug)]
    struct Declares(Events);

    impl Handler for Declares {
        fn interest(&self) -> Events {
            self.0
        }
    }

    /// Where kind `b` goes from `from` by walking the links one by one.
    fn naive_hop(p: &Inner, from: usize, b: usize) -> usize {
        let mut i = from;
        loop {
            i = if b < INBOUND_KINDS {
                p.slots[i].next
            } else {
                p.slots[i].prev
            };
            if i == HEAD || i == TAIL || p.slots[i].interest & (1 << b) != 0 {
                return i;
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Add { at: u8, pos: usize, interest: u16 },
        Remove(usize),
        Replace { pos: usize, interest: u16 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0usize..8, 0u16..0x800).prop_map(|(at, pos, interest)| Op::Add {
                at,
                pos,
                interest
            }),
            (0usize..8).prop_map(Op::Remove),
            (0usize..8, 0u16..0x800).prop_map(|(pos, interest)| Op::Replace { pos, interest }),
        ]
    }

    proptest! {
        #[test]
        fn hops_match_a_naive_walk(ops in proptest::collection::vec(op(), 1..40)) {
            let mut p = Inner::new(Channel::new(None, None));
            let mut next_name = 0;
            for op in ops {
                let names: Vec<String> = p.names().iter().map(|s| s.to_string()).collect();
                let pick = |pos: usize| names.get(pos % names.len().max(1)).cloned();
                next_name += 1;
                let name = format!("h{next_name}");
                match op {
                    Op::Add { at, pos, interest } => {
                        // Odd interests make a Combined whose halves share
                        // the bits out, each its own direction's.
                        let h: Box<dyn Handler> = if interest % 2 == 1 {
                            Box::new(crate::Combined::new(
                                (),
                                Declares(Events::from_raw(interest & Events::INBOUND.bits())),
                                Declares(Events::from_raw(interest & Events::OUTBOUND.bits())),
                            ))
                        } else {
                            Box::new(Declares(Events::from_raw(interest)))
                        };
                        let base = pick(pos);
                        let at = match (at, base.as_deref()) {
                            (0, _) | (_, None) => At::First,
                            (1, _) => At::Last,
                            (2, Some(b)) => At::Before(Target::Named(b)),
                            (_, Some(b)) => At::After(Target::Named(b)),
                        };
                        p.add(at, &name, h).unwrap();
                    }
                    Op::Remove(pos) => {
                        if let Some(b) = pick(pos) {
                            p.remove(Target::Named(&b)).unwrap();
                        }
                    }
                    Op::Replace { pos, interest } => {
                        if let Some(b) = pick(pos) {
                            let h = Box::new(Declares(Events::from_raw(interest)));
                            p.replace(Target::Named(&b), &name, h).unwrap();
                        }
                    }
                }
                let mut slots: Vec<usize> = p.linked().collect();
                slots.push(HEAD);
                slots.push(TAIL);
                for &s in &slots {
                    for b in 0..KINDS {
                        if (s == TAIL && b < INBOUND_KINDS) || (s == HEAD && b >= INBOUND_KINDS) {
                            continue; // nothing leaves an end in its own direction
                        }
                        prop_assert_eq!(p.slots[s].hop[b] as usize, naive_hop(&p, s, b),
                            "slot {} kind {}", s, b);
                    }
                }
                // Every free slot is really out of the list.
                for &f in &p.free {
                    prop_assert_eq!(p.slots[f].link, Link::Free);
                    prop_assert!(!slots.contains(&f));
                }
            }
        }
    }
}
