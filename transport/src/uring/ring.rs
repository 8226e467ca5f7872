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
//!   [`BUF_SIZE`] bytes in one provided-buffer group; a buffer a completion
//!   names belongs to the connection that got it until it provides it again
//!   with [`Ring::provide`];
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
use io_uring::{cqueue, opcode, squeue, IoUring};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use weft_core::Msg;

/// Size of one receive buffer.
pub(crate) const BUF_SIZE: usize = 16 * 1024;
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

    fn deliver(&self, cqe: Cqe) {
        let waker = {
            let mut s = lock(&self.state);
            s.cqes.push(cqe);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The receive buffers: one allocation, handed to the kernel.
struct Bufs {
    ptr: *mut u8,
    count: u16,
}

// SAFETY: the allocation is owned by the ring and only reached through it,
// under its lock or through slices a completion handed to one connection.
unsafe impl Send for Bufs {}

struct Inner {
    uring: IoUring,
    bufs: Bufs,
    /// Entries pushed since the last submit.
    unsubmitted: bool,
}

/// A shared io_uring instance; see the module's contract.
pub(crate) struct Ring {
    inner: Mutex<Inner>,
    fd: RawFd,
    /// With deferred task work the ring's descriptor does not wake epoll;
    /// an eventfd registered with the ring does, and the reaper waits on it.
    eventfd: Option<std::os::fd::OwnedFd>,
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
        match &self.0.eventfd {
            Some(e) => e.as_raw_fd(),
            None => self.0.fd,
        }
    }
}

impl Ring {
    /// A ring with `count` receive buffers, its descriptor registered with
    /// the current tokio runtime and its reaper spawned there.
    pub(crate) fn start(count: u16) -> io::Result<RingRef> {
        let mut builder = IoUring::builder();
        builder
            .setup_cqsize(ENTRIES * 4)
            .setup_coop_taskrun()
            .setup_taskrun_flag();
        let single = tokio::runtime::Handle::current().runtime_flavor()
            == tokio::runtime::RuntimeFlavor::CurrentThread;
        if single {
            builder.setup_single_issuer().setup_defer_taskrun();
        }
        let uring = builder.build(ENTRIES)?;
        let fd = uring.as_raw_fd();
        let eventfd = if single {
            // SAFETY: eventfd takes no pointers; a descriptor it returns is
            // new and ours alone.
            let e = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
            if e < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `e` is a fresh descriptor owned by nobody else.
            let e = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(e) };
            uring.submitter().register_eventfd(e.as_raw_fd())?;
            Some(e)
        } else {
            None
        };
        let mem = vec![0u8; usize::from(count) * BUF_SIZE].into_boxed_slice();
        let bufs = Bufs {
            ptr: Box::into_raw(mem).cast::<u8>(),
            count,
        };
        let ring = Arc::new(Ring {
            inner: Mutex::new(Inner {
                uring,
                bufs,
                unsubmitted: false,
            }),
            fd,
            eventfd,
            inflight: AtomicUsize::new(0),
            holders: AtomicUsize::new(0),
            wake: tokio::sync::Notify::new(),
            submit_wanted: std::sync::atomic::AtomicBool::new(false),
        });
        {
            let mut inner = lock(&ring.inner);
            let ptr = inner.bufs.ptr;
            let e = opcode::ProvideBuffers::new(ptr, BUF_SIZE as i32, count, GROUP, 0)
                .build()
                .user_data(encode(std::ptr::null(), Kind::Quiet, 0));
            inner.push(&e)?;
            inner.submit()?;
        }
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
    pub(crate) fn provide(&self, bid: u16) -> io::Result<()> {
        let mut inner = lock(&self.inner);
        assert!(bid < inner.bufs.count, "a buffer id the kernel gave");
        // SAFETY: `bid` is in range, so the buffer lies inside the
        // allocation.
        let ptr = unsafe { inner.bufs.ptr.add(usize::from(bid) * BUF_SIZE) };
        let e = opcode::ProvideBuffers::new(ptr, BUF_SIZE as i32, 1, GROUP, bid)
            .build()
            .user_data(encode(std::ptr::null(), Kind::Quiet, 0));
        inner.push(&e)
    }

    /// The first `len` bytes of receive buffer `bid`, as the completion that
    /// named it left them.
    ///
    /// # Safety
    ///
    /// The caller holds `bid` (a completion gave it and it was not provided
    /// again), and `len` is that completion's result.
    pub(crate) unsafe fn received(&self, bid: u16, len: usize) -> &[u8] {
        let inner = lock(&self.inner);
        assert!(bid < inner.bufs.count && len <= BUF_SIZE);
        // SAFETY: in range (checked); the kernel wrote `len` bytes there and
        // no longer touches the buffer until it is provided again, which
        // only its holder does (the caller's contract).
        unsafe { std::slice::from_raw_parts(inner.bufs.ptr.add(usize::from(bid) * BUF_SIZE), len) }
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
        sink.deliver(Cqe {
            kind,
            seq: (ud >> 48) as u8,
            res,
            flags,
        });
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
        if self.inflight.load(Ordering::Acquire) == 0 {
            let len = usize::from(inner.bufs.count) * BUF_SIZE;
            // SAFETY: the allocation came from `Box::into_raw` of a boxed
            // slice of `len` bytes; no operation is in flight, and the ring
            // (whose receives could still write into it) is closed right
            // after, so nothing can reach it any more.
            drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(inner.bufs.ptr, len)) });
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
                Ok(mut g) => {
                    g.clear_ready();
                    if let Some(e) = &ring.eventfd {
                        // Reset the counter (the value itself says nothing).
                        let mut v = [0u8; 8];
                        let _ = nix::unistd::read(e.as_raw_fd(), &mut v);
                    }
                }
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
