//! [`Mailbox`]: the queue that carries commands from any task to one
//! consumer task, and the wake-up handshake that goes with it.
//!
//! Contract:
//! - any number of producers [`push`](Mailbox::push); one consumer (the
//!   connection task) [`poll`](Mailbox::poll)s, [`take`](Mailbox::take)s
//!   and finally [`close`](Mailbox::close)s;
//! - after a push succeeds, the consumer either finds the item on its next
//!   poll or take, or is woken: **no item is ever left without a wake-up**;
//! - once closed, pushes fail and hand the item back, and `close` returns
//!   what was still queued, so that every item is run, failed by the
//!   producer, or failed by the closer — exactly once.
//!
//! The handshake. `state` holds two bits, changed only by read-modify-write
//! operations (so they are totally ordered with each other):
//! - `PENDING`: the queue is not empty. Set by a push and cleared by a take,
//!   both under the queue's lock, so it mirrors the queue exactly;
//! - `ARMED`: a waker is stored and no push has consumed it yet. Only the
//!   consumer sets it, after storing its waker; only a push clears it, and
//!   the push that clears it is the one that wakes the stored waker.
//!
//! A push sets `PENDING`, clears `ARMED` in the same operation and wakes
//! only if `ARMED` was set, still holding the lock (a take, which clears
//! `PENDING`, needs it too, so no re-armed waker can be consumed by a wake
//! meant for an item already taken). A poll returns ready if `PENDING` is set;
//! returns pending at once if `ARMED` is set and the stored waker is the
//! current task's; otherwise stores the waker and sets `ARMED` — and if
//! that same operation finds `PENDING` already set, returns ready. Either
//! the push's operation comes first (the poll sees `PENDING`) or the poll's
//! does (the push sees `ARMED` and wakes): no interleaving loses the wake.
//!
//! The first version kept "a waker is stored" as a flag in the consumer,
//! cleared only when a poll reported a command. A command taken before the
//! next poll (the consumer drains its queue whenever it runs, whatever woke
//! it) consumed the waker without clearing the flag, and from then on the
//! task woke only for socket readiness. `ARMED` lives beside `PENDING` for
//! that reason: the producer that consumes the waker is the one that says so.

use std::task::{Context, Poll, Waker};

use crate::sync::{lock, register, AtomicUsize, AtomicWaker, Mutex, Ordering};

const PENDING: usize = 0b01;
const ARMED: usize = 0b10;

/// A multi-producer, single-consumer queue with a lossless wake-up.
pub(crate) struct Mailbox<T> {
    state: AtomicUsize,
    /// `None` once closed.
    queue: Mutex<Option<Vec<T>>>,
    waker: AtomicWaker,
}

/// What the consumer remembers between polls: the waker it stored, so that
/// a poll from the same task costs one atomic load.
#[derive(Debug, Default)]
pub struct CommandWaiter {
    stored: Option<Waker>,
}

impl CommandWaiter {
    /// A waiter that has stored nothing yet.
    pub fn new() -> CommandWaiter {
        CommandWaiter::default()
    }
}

impl<T> Mailbox<T> {
    pub(crate) fn new() -> Mailbox<T> {
        Mailbox {
            state: AtomicUsize::new(0),
            queue: Mutex::new(Some(Vec::new())),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `item` and wakes the consumer if it waits. Gives the item back
    /// if the mailbox is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let mut q = lock(&self.queue);
        let Some(queue) = q.as_mut() else {
            return Err(item);
        };
        queue.push(item);
        // Under the lock, so that PENDING mirrors the queue, and so that the
        // wake below happens before any take can clear PENDING: otherwise a
        // late wake could consume a waker the consumer stored after taking
        // this item, while ARMED stays set.
        if self.state.swap(PENDING, Ordering::AcqRel) & ARMED != 0 {
            self.waker.wake();
        }
        drop(q);
        Ok(())
    }

    /// Ready when items wait; otherwise makes sure the current task is woken
    /// by the next push.
    pub(crate) fn poll(&self, cx: &mut Context<'_>, waiter: &mut CommandWaiter) -> Poll<()> {
        let s = self.state.load(Ordering::Acquire);
        if s & PENDING != 0 {
            return Poll::Ready(());
        }
        if s & ARMED != 0
            && waiter
                .stored
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        register(&self.waker, cx.waker());
        waiter.stored = Some(cx.waker().clone());
        if self.state.fetch_or(ARMED, Ordering::AcqRel) & PENDING != 0 {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Whether items wait.
    pub(crate) fn has_items(&self) -> bool {
        self.state.load(Ordering::Acquire) & PENDING != 0
    }

    /// Takes every queued item, in push order.
    pub(crate) fn take(&self) -> Vec<T> {
        if !self.has_items() {
            return Vec::new();
        }
        let mut q = lock(&self.queue);
        self.state.fetch_and(!PENDING, Ordering::AcqRel);
        q.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Closes the mailbox: later pushes fail. Returns what was still queued.
    pub(crate) fn close(&self) -> Vec<T> {
        let mut q = lock(&self.queue);
        self.state.fetch_and(!PENDING, Ordering::AcqRel);
        q.take().unwrap_or_default()
    }
}

#[cfg(all(test, not(weft_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as Count;
    use std::sync::Arc;
    use std::task::Wake;

    struct Counter(Count);
    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(Count::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn wakes(c: &Counter) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The first version's bug, step by step: a push while the consumer
    /// runs, a take before the next poll, then another push.
    #[test]
    fn a_take_between_polls_does_not_lose_the_next_wake() {
        let m = Mailbox::new();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut waiter = CommandWaiter::new();
        assert!(m.poll(&mut cx, &mut waiter).is_pending());
        m.push(1).unwrap(); // consumes the stored waker
        assert_eq!(wakes(&count), 1);
        assert_eq!(m.take(), vec![1]); // taken before any poll saw it
        assert!(m.poll(&mut cx, &mut waiter).is_pending()); // must store again
        m.push(2).unwrap();
        assert_eq!(wakes(&count), 2, "the second push must wake the consumer");
        assert!(m.poll(&mut cx, &mut waiter).is_ready());
        assert_eq!(m.take(), vec![2]);
    }

    #[test]
    fn polls_from_the_same_task_store_the_waker_once() {
        let m: Mailbox<u8> = Mailbox::new();
        let (count, w) = waker();
        let mut cx = Context::from_waker(&w);
        let mut waiter = CommandWaiter::new();
        for _ in 0..3 {
            assert!(m.poll(&mut cx, &mut waiter).is_pending());
        }
        m.push(0).unwrap();
        m.push(0).unwrap(); // the waker was consumed by the first push
        assert_eq!(wakes(&count), 1);
    }

    #[test]
    fn a_new_task_replaces_the_stored_waker() {
        let m = Mailbox::new();
        let (first, w1) = waker();
        let (second, w2) = waker();
        let mut waiter = CommandWaiter::new();
        assert!(m
            .poll(&mut Context::from_waker(&w1), &mut waiter)
            .is_pending());
        assert!(m
            .poll(&mut Context::from_waker(&w2), &mut waiter)
            .is_pending());
        m.push(1).unwrap();
        assert_eq!((wakes(&first), wakes(&second)), (0, 1));
    }

    #[test]
    fn closing_returns_what_is_queued_and_refuses_more() {
        let m = Mailbox::new();
        m.push(1).unwrap();
        m.push(2).unwrap();
        assert_eq!(m.close(), vec![1, 2]);
        assert_eq!(m.push(3), Err(3));
        assert!(!m.has_items());
        assert!(m.take().is_empty());
    }
}

/// Model checks: every interleaving of the handshake, up to the preemption
/// bound `LOOM_MAX_PREEMPTIONS` sets. A lost wake-up shows as a deadlock
/// (the consumer parked with nobody left to wake it).
#[cfg(all(test, weft_loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;
    use std::future::poll_fn;

    /// Waits for items the way the connection task does: take whatever is
    /// there first (the task drains its queue whenever it runs), then poll
    /// before parking.
    fn consume(m: &Mailbox<u32>, want: usize) -> Vec<u32> {
        let mut got = Vec::new();
        let mut waiter = CommandWaiter::new();
        crate::sync::model_block_on(async {
            loop {
                got.extend(m.take());
                if got.len() == want {
                    break;
                }
                poll_fn(|cx| m.poll(cx, &mut waiter)).await;
            }
        });
        got
    }

    #[test]
    fn loom_two_producers_one_consumer() {
        loom::model(|| {
            let m = Arc::new(Mailbox::new());
            let a = {
                let m = m.clone();
                thread::spawn(move || m.push(1).unwrap())
            };
            let b = {
                let m = m.clone();
                thread::spawn(move || {
                    m.push(2).unwrap();
                    m.push(3).unwrap();
                })
            };
            let mut got = consume(&m, 3);
            a.join().unwrap();
            b.join().unwrap();
            got.sort_unstable();
            assert_eq!(got, vec![1, 2, 3]);
        });
    }

    /// One producer pushing twice while the consumer takes, polls and
    /// re-polls: the shape of the first version's lost wake-up.
    #[test]
    fn loom_take_between_polls() {
        loom::model(|| {
            let m = Arc::new(Mailbox::new());
            let p = {
                let m = m.clone();
                thread::spawn(move || {
                    m.push(1).unwrap();
                    m.push(2).unwrap();
                })
            };
            let got = consume(&m, 2);
            p.join().unwrap();
            assert_eq!(got, vec![1, 2], "order is kept");
        });
    }

    /// Another wake-up source beside the mailbox, as socket readiness is for
    /// the connection task: a flag and its own waker.
    struct Readiness {
        ready: loom::sync::atomic::AtomicBool,
        waker: AtomicWaker,
    }

    impl Readiness {
        fn signal(&self) {
            // A swap, not a store: loom orders a plain store only partially
            // against the consumer's swaps and would let a swap that comes
            // after it (through the wake) read the older value.
            self.ready.swap(true, Ordering::Release);
            self.waker.wake();
        }
        fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
            register(&self.waker, cx.waker());
            if self.ready.swap(false, Ordering::AcqRel) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    /// The connection task's loop: drain the mailbox whenever it runs —
    /// also when the socket woke it — and wait for either source. The first
    /// version lost the second push here: woken by the socket, the task
    /// took the first command, so the push's wake was spent while the task
    /// still believed its waker stored.
    #[test]
    fn loom_commands_beside_socket_readiness() {
        loom::model(|| {
            let m = Arc::new(Mailbox::new());
            let socket = Arc::new(Readiness {
                ready: loom::sync::atomic::AtomicBool::new(false),
                waker: AtomicWaker::new(),
            });
            let producer = {
                let m = m.clone();
                thread::spawn(move || {
                    m.push(1).unwrap();
                    m.push(2).unwrap();
                })
            };
            let peer = {
                let socket = socket.clone();
                thread::spawn(move || socket.signal())
            };
            let mut got = Vec::new();
            let mut readable = false;
            let mut waiter = CommandWaiter::new();
            crate::sync::model_block_on(async {
                loop {
                    got.extend(m.take());
                    if got.len() == 2 && readable {
                        break;
                    }
                    poll_fn(|cx| {
                        let commands = m.poll(cx, &mut waiter);
                        if !readable && socket.poll(cx).is_ready() {
                            readable = true;
                            return Poll::Ready(());
                        }
                        commands
                    })
                    .await;
                }
            });
            producer.join().unwrap();
            peer.join().unwrap();
            assert_eq!(got, vec![1, 2]);
        });
    }

    /// A close racing with pushes: every item is taken, refused to its
    /// producer, or returned by the close — exactly once.
    #[test]
    fn loom_close_racing_with_pushes() {
        loom::model(|| {
            let m = Arc::new(Mailbox::new());
            let producers: Vec<_> = (0..2)
                .map(|i| {
                    let m = m.clone();
                    thread::spawn(move || usize::from(m.push(i).is_err()))
                })
                .collect();
            let taken = m.take().len();
            let left = m.close().len();
            let refused: usize = producers.into_iter().map(|p| p.join().unwrap()).sum();
            assert_eq!(taken + left + refused, 2);
            assert!(m.push(9).is_err());
        });
    }
}
