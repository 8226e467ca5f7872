//! One io_uring instance shared by the connections of a server (or owned by
//! one client connection), with its receive buffers and the task that reaps
//! its completions.
//!
//! Contract:
//! - the ring's descriptor is registered with the caller's tokio runtime;
//!   one reaper task waits on it, drains the completion queue and hands each
//!   completion to the [`Sink`] of the connection whose operation it ends,
//!   waking that connection's task;
//! - an operation in flight owns a reference to its connection's sink, taken
//!   when the operation is pushed and given back with its last completion
//!   (the one without `IORING_CQE_F_MORE`), so every piece of memory the
//!   kernel may still read or write (iovecs, the messages they point into, a
//!   zero-copy send's buffer) lives in the sink until the kernel is done with
//!   it, even when the connection's task is gone;
//! - receive buffers are one allocation of `count` buffers of
//!   [`BUF_SIZE`] bytes, provided through a buffer ring shared with the
//!   kernel (one provided-buffer group); a buffer a completion names belongs
//!   to the connection that got it until it gives it back
//!   ([`Ring::provide`]), or lends it out as `Bytes` ([`RingRef::take`]),
//!   which gives it back when the last slice drops, from any thread;
//! - the reaper ends once no connection or bootstrap holds the ring and no
//!   operation is in flight; if the runtime drops it earlier, memory an
//!   operation still names is leaked, never freed under the kernel.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use io_uring::{cqueue, opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use weft_core::Msg;

/// Size of one receive buffer: room for a 16 KiB message and its framing
/// (a WebSocket frame of 16 KiB is 16 392 bytes), which a 16 KiB buffer
/// split over two receives and the codec then copied back together
/// (measured by hand, alternating pairs: 200 x 16 KiB WebSocket echoes
/// 1.13x with 32 KiB buffers against 16 KiB ones).
pub(crate) const BUF_SIZE: usize = 32 * 1024;
/// The provided-buffer group of every ring.
const GROUP: u16 = 1;
/// Submission queue entries; the completion queue has four times as many.
const ENTRIES: u32 = 512;

/// What an operation is, in the top byte of its `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    Recv = 1,
    Send = 2,
    SendZc = 3,
    SpliceIn = 4,
    SpliceOut = 5,
    /// Operations no connection waits for (cancels, buffer provisions).
    Quiet = 6,
    /// A one-shot poll for writability (before a `sendfile`).
    Poll = 7,
}

impl Kind {
    fn from_u8(k: u8) -> Option<Kind> {
        Some(match k {
            1 => Kind::Recv,
            2 => Kind::Send,
            3 => Kind::SendZc,
            4 => Kind::SpliceIn,
            5 => Kind::SpliceOut,
            6 => Kind::Quiet,
            7 => Kind::Poll,
            _ => return None,
        })
    }
}

/// A completion, as a connection sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cqe {
    pub(crate) kind: Kind,
    /// The operation's sequence number (zero-copy sends).
    pub(crate) seq: u8,
    pub(crate) res: i32,
    pub(crate) flags: u32,
}

const PTR_MASK: u64 = (1 << 48) - 1;

fn encode(sink: *const Sink, kind: Kind, seq: u8) -> u64 {
    (sink as u64 & PTR_MASK) | (u64::from(seq) << 48) | ((kind as u64) << 56)
}

/// The user-space memory an operation in flight names. Only the
/// connection that owns the sink changes it, and only for an operation
/// that is not in flight.
#[derive(Default)]
pub(crate) struct Keep {
    /// The iovecs of the send in flight, and its message header.
    pub(crate) iov: Vec<libc::iovec>,
    pub(crate) msg: Option<Box<libc::msghdr>>,
    /// Messages a send in flight points into, kept when the channel closed
    /// under it.
    pub(crate) msgs: Vec<Msg>,
    /// Buffers of zero-copy sends, until their notification.
    pub(crate) zc: VecDeque<(u8, Bytes)>,
}

// SAFETY: the raw pointers in `iov` and `msg` point into `msgs`, into
// messages of the connection's outbound buffer, or into `iov` itself; they
// are only handed to the kernel, never dereferenced by this crate, and the
// memory they name is owned by `Send` values (`Bytes`, `Msg`).
unsafe impl Send for Keep {}

struct SinkState {
    cqes: Vec<Cqe>,
    waker: Option<Waker>,
    /// The connection is gone: completions are not kept, and the receive
    /// buffers they name go back to the kernel at once.
    closed: bool,
}

/// Where the completions of one connection's operations land.
pub(crate) struct Sink {
    state: Mutex<SinkState>,
    /// Memory in flight; see [`Keep`].
    pub(crate) keep: Mutex<Keep>,
}

impl Sink {
    pub(crate) fn new() -> Arc<Sink> {
        Arc::new(Sink {
            state: Mutex::new(SinkState {
                cqes: Vec::new(),
                waker: None,
                closed: false,
            }),
            keep: Mutex::new(Keep::default()),
        })
    }

    /// The memory in flight, to change it while no operation names it.
    pub(crate) fn keep(&self) -> MutexGuard<'_, Keep> {
        lock(&self.keep)
    }

    /// Takes the completions that arrived, or registers the task's waker.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>, into: &mut Vec<Cqe>) -> Poll<()> {
        let mut s = lock(&self.state);
        if s.cqes.is_empty() {
            if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                s.waker = Some(cx.waker().clone());
            }
            return Poll::Pending;
        }
        std::mem::swap(&mut s.cqes, into);
        Poll::Ready(())
    }

    /// Hands `cqe` to the connection; `None` if it is gone, with the
    /// receive buffer the completion names, to give back.
    fn deliver(&self, cqe: Cqe) -> Option<u16> {
        let waker = {
            let mut s = lock(&self.state);
            if s.closed {
                return buffer_of(&cqe);
            }
            s.cqes.push(cqe);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        None
    }

    /// Marks the connection gone; returns the receive buffers named by the
    /// completions it had not taken yet, to give back. Later completions
    /// give theirs back as they arrive.
    pub(crate) fn close(&self) -> Vec<u16> {
        let mut s = lock(&self.state);
        s.closed = true;
        s.waker = None;
        s.cqes.drain(..).filter_map(|c| buffer_of(&c)).collect()
    }
}

/// The receive buffer a completion hands over, if any.
pub(crate) fn buffer_of(c: &Cqe) -> Option<u16> {
    if c.kind == Kind::Recv {
        cqueue::buffer_select(c.flags)
    } else {
        None
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receive buffers, one allocation, and the buffer ring (shared with
/// the kernel) through which they are provided: providing one is two
/// stores and a tail update, no submission.
struct Bufs {
    mem: *mut u8,
    ring: *mut types::BufRingEntry,
    count: u16,
    /// The next tail to publish.
    tail: u16,
}

// SAFETY: both allocations are owned by the ring and only reached through
// it, under its lock, or through the slices of buffers lent out (`Lent`),
// which the kernel no longer touches until they come back.
unsafe impl Send for Bufs {}

impl Bufs {
    fn layouts(count: u16) -> (std::alloc::Layout, std::alloc::Layout) {
        let n = usize::from(count);
        (
            std::alloc::Layout::from_size_align(n * BUF_SIZE, 64).expect("a small layout"),
            // The kernel wants the ring page-aligned.
            std::alloc::Layout::from_size_align(
                n * std::mem::size_of::<types::BufRingEntry>(),
                4096,
            )
            .expect("a small layout"),
        )
    }

    /// `count` buffers (a power of two), none provided yet.
    fn new(count: u16) -> io::Result<Bufs> {
        assert!(count.is_power_of_two());
        let (mem_l, ring_l) = Bufs::layouts(count);
        // SAFETY: both layouts have a non-zero size.
        let (mem, ring) = unsafe { (std::alloc::alloc(mem_l), std::alloc::alloc_zeroed(ring_l)) };
        if mem.is_null() || ring.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        Ok(Bufs {
            mem,
            ring: ring.cast(),
            count,
            tail: 0,
        })
    }

    /// Puts buffer `bid` in the ring (seen by the kernel once published).
    fn give(&mut self, bid: u16) {
        assert!(bid < self.count, "a buffer id the kernel gave");
        let slot = usize::from(self.tail & (self.count - 1));
        // SAFETY: `slot < count`, so the entry is inside the ring's
        // allocation; the kernel reads only entries before the published
        // tail, and this one is at or after it.
        let e = unsafe { &mut *self.ring.add(slot) };
        // SAFETY: `bid < count`: inside the buffers' allocation.
        e.set_addr(unsafe { self.mem.add(usize::from(bid) * BUF_SIZE) } as u64);
        e.set_len(BUF_SIZE as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes the buffers given so far visible to the kernel.
    fn publish(&self) {
        // SAFETY: the tail lives in the first entry of the ring, which is
        // initialised (zeroed) and aligned for a u16; the kernel reads it
        // atomically, so it is written atomically, after the entries.
        unsafe {
            let tail = types::BufRingEntry::tail(self.ring).cast_mut();
            std::sync::atomic::AtomicU16::from_ptr(tail).store(self.tail, Ordering::Release);
        }
    }
}

struct Inner {
    /// Closed by hand in `Ring`'s drop, before the buffers are freed.
    uring: std::mem::ManuallyDrop<IoUring>,
    bufs: Bufs,
    /// Entries pushed since the last submit.
    unsubmitted: bool,
}

/// A shared io_uring instance; see the module's contract.
pub(crate) struct Ring {
    inner: Mutex<Inner>,
    fd: RawFd,
    /// Receive buffers lent out as `Bytes` (see [`RingRef::take`]).
    lent: AtomicUsize,
    /// Buffers in the ring.
    count: u16,
    /// Where the buffers' allocation starts (fixed for the ring's life).
    mem: usize,
    /// Sink references held by operations in flight.
    inflight: AtomicUsize,
    /// Live [`RingRef`]s.
    holders: AtomicUsize,
    /// Wakes the reaper: a holder let go (it may end), or entries wait to
    /// be submitted (`submit_wanted`).
    wake: tokio::sync::Notify,
    /// Entries were pushed for the reaper to submit.
    submit_wanted: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Ring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ring")
            .field("fd", &self.fd)
            .field("inflight", &self.inflight.load(Ordering::Relaxed))
            .finish()
    }
}

/// A connection's or a bootstrap's hold on a ring: the reaper runs while
/// one exists.
#[derive(Debug)]
pub(crate) struct RingRef(Arc<Ring>);

impl RingRef {
    fn new(ring: Arc<Ring>) -> RingRef {
        ring.holders.fetch_add(1, Ordering::AcqRel);
        RingRef(ring)
    }
}

impl RingRef {
    /// The `len` bytes a completion received into buffer `bid`, as `Bytes`.
    /// Lent (no copy: the buffer returns to the kernel when the last slice
    /// of it drops) when `lend` and fewer than three quarters of the
    /// buffers are lent out; copied, and the buffer returned at once,
    /// otherwise. So peers whose bytes sit in handlers (partial frames,
    /// paused reads) can never take the whole pool: receives always have a
    /// quarter of it.
    ///
    /// # Safety
    ///
    /// A completion gave this caller `bid` with `len` bytes received, and
    /// the caller has not provided it again.
    pub(crate) unsafe fn take(&self, bid: u16, len: usize, lend: bool) -> Bytes {
        let ring = &self.0;
        assert!(bid < ring.count && len <= BUF_SIZE);
        let limit = usize::from(ring.count) / 4 * 3;
        if lend && ring.lent.fetch_add(1, Ordering::AcqRel) < limit {
            return Bytes::from_owner(Lent {
                ring: ring.clone(),
                bid,
                len,
            });
        }
        if lend {
            ring.lent.fetch_sub(1, Ordering::AcqRel);
        }
        // SAFETY: the caller holds `bid`, into which the kernel wrote `len`
        // bytes; it does not touch it again before `provide` below.
        let b = Bytes::copy_from_slice(unsafe { std::slice::from_raw_parts(ring.buf(bid), len) });
        ring.provide(bid);
        b
    }
}

/// A receive buffer lent out as `Bytes`: back to the kernel on drop.
struct Lent {
    ring: Arc<Ring>,
    bid: u16,
    len: usize,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the buffer is this value's until it drops: the kernel got
        // it through a completion and gets it back only in `drop`; `len`
        // bytes were received into it.
        unsafe { std::slice::from_raw_parts(self.ring.buf(self.bid), self.len) }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.ring.provide(self.bid);
        self.ring.lent.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Clone for RingRef {
    fn clone(&self) -> Self {
        RingRef::new(self.0.clone())
    }
}

impl std::ops::Deref for RingRef {
    type Target = Ring;
    fn deref(&self) -> &Ring {
        &self.0
    }
}

impl Drop for RingRef {
    fn drop(&mut self) {
        self.0.holders.fetch_sub(1, Ordering::AcqRel);
        self.0.wake.notify_one();
    }
}

/// The ring as the reactor sees it: holding the ring keeps its descriptor
/// open for as long as it is registered.
struct RingFd(Arc<Ring>);

impl AsRawFd for RingFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.fd
    }
}

/// How every ring is set up: task work is cooperative (run when the
/// submitting thread next enters the kernel, no interrupt per completion)
/// and flagged in the submission queue, so the reaper knows when an enter
/// would bring completions.
///
/// Not `DEFER_TASKRUN`: with it, the kernel wakes nobody when a receive's
/// task work is queued except through an eventfd, and on Linux 6.18 that
/// eventfd is signalled from the network stack's softirq through an RCU
/// callback, a grace period (~16 ms) later. A current-thread runtime that
/// used it answered one message in flight every ~16 ms (62 echoes/s, and
/// 4,017 JSON requests/s against 113,961 without it); under pipelined load
/// it gave nothing measurable either (plaintext c256: 0.77–0.96 M req/s
/// with it, 0.97–1.13 M without, by hand, alternating).
pub(crate) fn builder() -> io_uring::Builder {
    let mut builder = IoUring::builder();
    builder
        .setup_cqsize(ENTRIES * 4)
        .setup_coop_taskrun()
        .setup_taskrun_flag();
    builder
}

impl Ring {
    /// A ring with `count` receive buffers, its descriptor registered with
    /// the current tokio runtime and its reaper spawned there.
    pub(crate) fn start(count: u16) -> io::Result<RingRef> {
        super::probe::completions_reach_the_reactor()?;
        let uring = builder().build(ENTRIES)?;
        let fd = uring.as_raw_fd();
        let mut bufs = Bufs::new(count)?;
        // SAFETY: the ring's memory is valid for `count` entries and stays
        // so until the ring is closed (freed in `Drop` only when nothing is
        // in flight, after the io_uring instance is gone).
        let registered = unsafe {
            uring
                .submitter()
                .register_buf_ring_with_flags(bufs.ring as u64, count, GROUP, 0)
        };
        if let Err(e) = registered {
            let (mem_l, ring_l) = Bufs::layouts(count);
            // SAFETY: allocated just above with these layouts, never shared.
            unsafe {
                std::alloc::dealloc(bufs.mem, mem_l);
                std::alloc::dealloc(bufs.ring.cast(), ring_l);
            }
            return Err(e);
        }
        for bid in 0..count {
            bufs.give(bid);
        }
        bufs.publish();
        let mem = bufs.mem as usize;
        let ring = Arc::new(Ring {
            inner: Mutex::new(Inner {
                uring: std::mem::ManuallyDrop::new(uring),
                bufs,
                unsubmitted: false,
            }),
            fd,
            lent: AtomicUsize::new(0),
            count,
            mem,
            inflight: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            submit_wanted: std::sync::atomic::AtomicBool::new(false),
        });
        // SAFETY: `RingFd` holds the ring, whose descriptor stays open and
        // unchanged until the ring drops, which is after the registration.
        let afd =
            unsafe { AsyncFd::register_with_interest(RingFd(ring.clone()), Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?;
        // Held before the reaper starts, which ends when nobody holds it.
        let held = RingRef::new(ring);
        tokio::spawn(reap(afd));
        Ok(held)
    }

    /// Pushes an operation of `sink`'s connection; the entry's `user_data`
    /// is set here. The caller submits (see [`submit`](Self::submit)).
    ///
    /// # Safety
    ///
    /// Every memory the entry names must stay valid and unchanged until the
    /// operation's last completion: in `sink`'s [`Keep`], in the ring's
    /// receive buffers, or owned by the kernel (descriptors).
    pub(crate) unsafe fn push(
        &self,
        sink: &Arc<Sink>,
        kind: Kind,
        seq: u8,
        entry: squeue::Entry,
    ) -> io::Result<u64> {
        let ptr = Arc::into_raw(sink.clone());
        let ud = encode(ptr, kind, seq);
        self.inflight.fetch_add(1, Ordering::AcqRel);
        let r = lock(&self.inner).push(&entry.user_data(ud));
        if r.is_err() {
            // SAFETY: the entry was not queued, so the reference taken above
            // is not held by the kernel: give it back.
            drop(unsafe { Arc::from_raw(ptr) });
            self.inflight.fetch_sub(1, Ordering::AcqRel);
        }
        r.map(|()| ud)
    }

    /// Pushes a cancel of the operation `ud`.
    pub(crate) fn cancel(&self, ud: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel::new(ud).build().user_data(encode(
            std::ptr::null(),
            Kind::Quiet,
            0,
        ));
        lock(&self.inner).push(&e)
    }

    /// Gives receive buffer `bid` back to the kernel.
    pub(crate) fn provide(&self, bid: u16) {
        let mut inner = lock(&self.inner);
        inner.bufs.give(bid);
        inner.bufs.publish();
    }

    /// Where buffer `bid` starts.
    fn buf(&self, bid: u16) -> *const u8 {
        assert!(bid < self.count);
        (self.mem + usize::from(bid) * BUF_SIZE) as *const u8
    }

    /// The provided-buffer group receives select from.
    pub(crate) fn group(&self) -> u16 {
        GROUP
    }

    /// Asks the reaper to submit what was pushed. It runs after the tasks
    /// already woken (the connections its last completions woke), so one
    /// `io_uring_enter` carries the entries of many connections.
    pub(crate) fn submit_soon(&self) {
        if !self.submit_wanted.swap(true, Ordering::AcqRel) {
            self.wake.notify_one();
        }
    }

    /// Submits what was pushed, now.
    pub(crate) fn submit(&self) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        if inner.unsubmitted {
            inner.submit()?;
        }
        Ok(())
    }

    /// Moves the completion queue's entries into `out`.
    fn drain(&self, out: &mut Vec<(u64, i32, u32)>) {
        let mut inner = lock(&self.inner);
        // A few rounds at most: each enter brings what waited in the kernel.
        for _ in 0..4 {
            out.extend(
                inner
                    .uring
                    .completion()
                    .map(|c| (c.user_data(), c.result(), c.flags())),
            );
            let waiting = {
                let sq = inner.uring.submission();
                sq.cq_overflow() || sq.taskrun()
            };
            if !waiting {
                break;
            }
            // Completions wait in the kernel (an overflow, or task work to
            // run): an enter with GETEVENTS brings them.
            if let Err(e) = inner.submit() {
                tracing::warn!(error = %e, "io_uring enter failed while reaping");
                break;
            }
        }
    }

    /// Hands a completion to its sink.
    fn dispatch(&self, ud: u64, res: i32, flags: u32) {
        let Some(kind) = Kind::from_u8((ud >> 56) as u8) else {
            return;
        };
        let ptr = (ud & PTR_MASK) as *const Sink;
        if kind == Kind::Quiet || ptr.is_null() {
            if res < 0 && res != -libc::ENOENT && res != -libc::EALREADY {
                tracing::debug!(errno = -res, "io_uring cancel or buffer provision failed");
            }
            return;
        }
        // SAFETY: `ptr` came from `Arc::into_raw` in `push`, and that
        // reference is held until the operation's last completion, which is
        // this one or a later one: the sink is alive.
        let sink = unsafe { &*ptr };
        let orphan = sink.deliver(Cqe {
            kind,
            seq: (ud >> 48) as u8,
            res,
            flags,
        });
        if let Some(bid) = orphan {
            self.provide(bid);
        }
        if !cqueue::more(flags) {
            // SAFETY: the last completion of the operation: the reference
            // `push` took is given back exactly once, here.
            drop(unsafe { Arc::from_raw(ptr) });
            self.inflight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Inner {
    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the callers' contracts (`Ring::push`) keep what the
            // entry names alive; cancels and provisions name only the
            // ring's own buffers and user data.
            if unsafe { self.uring.submission().push(e) }.is_ok() {
                self.unsubmitted = true;
                return Ok(());
            }
            self.submit()?;
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        loop {
            match self.uring.submit() {
                Ok(_) => {
                    self.unsubmitted = false;
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                // The completion queue is full: the reaper will make room.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        let (mem_l, ring_l) = Bufs::layouts(inner.bufs.count);
        let (mem, ring) = (inner.bufs.mem, inner.bufs.ring.cast::<u8>());
        let idle = self.inflight.load(Ordering::Acquire) == 0;
        // Close the io_uring instance first: after that the kernel no longer
        // reads the buffer ring or writes into the buffers of receives that
        // are not in flight.
        // SAFETY: `uring` is not used again (`self` is being dropped), and
        // it is dropped only here.
        unsafe { std::mem::ManuallyDrop::drop(&mut inner.uring) };
        if idle {
            // SAFETY: both came from `alloc` with these layouts; nothing is
            // in flight and no buffer is lent (a `Lent` holds the ring), so
            // nothing reaches them any more.
            unsafe {
                std::alloc::dealloc(mem, mem_l);
                std::alloc::dealloc(ring, ring_l);
            }
        }
        // Otherwise operations are still in flight (the runtime dropped the
        // reaper): the kernel may write into the buffers while it tears the
        // ring down, so they are leaked.
    }
}

/// The reaper: drains completions whenever the ring's descriptor is
/// readable, until nobody holds the ring and nothing is in flight.
async fn reap(afd: AsyncFd<RingFd>) {
    let ring = afd.get_ref().0.clone();
    let mut batch = Vec::with_capacity(256);
    loop {
        if ring.submit_wanted.swap(false, Ordering::AcqRel) {
            if let Err(e) = ring.submit() {
                tracing::warn!(error = %e, "io_uring submit failed");
            }
        }
        ring.drain(&mut batch);
        for (ud, res, flags) in batch.drain(..) {
            ring.dispatch(ud, res, flags);
        }
        if ring.holders.load(Ordering::Acquire) == 0 && ring.inflight.load(Ordering::Acquire) == 0 {
            break;
        }
        tokio::select! {
            r = afd.readable() => match r {
                Ok(mut g) => g.clear_ready(),
                Err(e) => {
                    tracing::error!(error = %e, "io_uring descriptor failed; reaper ends");
                    break;
                }
            },
            _ = ring.wake.notified() => {}
        }
    }
    drop(afd);
    tracing::debug!("io_uring reaper done");
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A receive completion naming buffer `bid` (IORING_CQE_F_BUFFER, the
    /// id above IORING_CQE_BUFFER_SHIFT).
    fn recv_with(bid: u16) -> Cqe {
        Cqe {
            kind: Kind::Recv,
            seq: 0,
            res: 10,
            flags: 1 | (u32::from(bid) << 16),
        }
    }

    /// A send's completion: it names no buffer.
    const SEND: Cqe = Cqe {
        kind: Kind::Send,
        seq: 0,
        res: 5,
        flags: 0,
    };

    #[test]
    fn a_closed_sink_hands_back_the_buffers_of_its_completions() {
        let sink = Sink::new();
        assert_eq!(sink.deliver(recv_with(3)), None, "kept for the connection");
        assert_eq!(sink.deliver(SEND), None);
        assert_eq!(
            sink.close(),
            vec![3],
            "the pending receive's buffer comes back"
        );
        assert_eq!(
            sink.deliver(recv_with(7)),
            Some(7),
            "after close, a late receive's buffer comes back at once"
        );
        assert_eq!(sink.deliver(SEND), None, "other completions name no buffer");
    }
}
