//! The io_uring transport's start-up self-check: on this kernel, does a
//! receive's completion reach a reactor that waits in `epoll_wait`?
//!
//! Contract:
//! - run once per process, by the first ring that starts; the verdict is
//!   kept, so later rings and connections pay nothing;
//! - it sets up a ring exactly as [`super::ring::builder`] does, arms a
//!   receive on one end of a loopback TCP pair, has another thread write a
//!   byte into the other end (so the network stack queues the receive's
//!   task work from another task's context, as a peer's data does), joins
//!   that thread and then asks epoll whether the ring's descriptor is
//!   readable. On a kernel that wakes the reactor in time it is readable
//!   at once: the task work was queued for this thread before the write
//!   returned, and ran when this thread next entered the kernel;
//! - it blocks its thread for at most [`LATE_BOUND`] (on a kernel that
//!   does not deliver), and well under a millisecond otherwise (measured:
//!   a loopback connect and accept, one write);
//! - a completion that is not there at once is a failure whose text says
//!   how late it was (or that it never came within the bound), which
//!   [`super::ring_for`] turns into a `warn` and the readiness transport, or
//!   into `bind`'s error when the options asked for io_uring explicitly.
//!
//! Why it exists: on Linux 6.18 a ring set up with `DEFER_TASKRUN` got
//! its receive notifications a grace period (~16 ms) late, and the test
//! suite, which counts work and not time, passed regardless. The ring is
//! not set up that way any more (see [`super::ring::builder`]); this check
//! makes a kernel that is late in some other way loud at start-up, not a
//! server that answers sixty messages a second.

#![allow(unsafe_code)]

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use io_uring::{opcode, types};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};

/// How long the check waits for a completion that is not there at once,
/// to say how late it is.
pub(crate) const LATE_BOUND: Duration = Duration::from_millis(100);

/// The process's verdict: `Ok`, or what went wrong, as text.
static VERDICT: OnceLock<Result<(), String>> = OnceLock::new();

/// `Ok` when completions reach the reactor on time on this kernel; the
/// check runs at the first call only.
pub(crate) fn completions_reach_the_reactor() -> io::Result<()> {
    VERDICT
        .get_or_init(|| match check() {
            Ok(Delivery::AtOnce) => Ok(()),
            Ok(Delivery::Late(after)) => Err(format!(
                "io_uring's start-up check: a receive's completion reached epoll {} ms after \
                 the data arrived, not at once; this kernel would delay every answer \
                 (use the readiness transport: unset WEFT_TRANSPORT or ChannelOptions::io_uring(false))",
                after.as_millis()
            )),
            Ok(Delivery::Never) => Err(format!(
                "io_uring's start-up check: a receive's completion did not reach epoll within \
                 {} ms of the data (use the readiness transport: unset WEFT_TRANSPORT or \
                 ChannelOptions::io_uring(false))",
                LATE_BOUND.as_millis()
            )),
            Err(e) => Err(format!("io_uring's start-up check failed: {e}")),
        })
        .clone()
        .map_err(io::Error::other)
}

/// How a receive's completion reached epoll.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Readable at the first look after the data was written.
    AtOnce,
    /// Readable this long after the first look.
    Late(Duration),
    /// Not within [`LATE_BOUND`].
    Never,
}

/// Runs the check (see the module's contract).
pub(crate) fn check() -> io::Result<Delivery> {
    let uring = super::ring::builder().build(8)?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut writer = std::net::TcpStream::connect(listener.local_addr()?)?;
    let (reader, _) = listener.accept()?;
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(io::Error::from)?;
    epoll
        .add(
            // SAFETY: the ring's descriptor stays open until the ring is
            // dropped, after the epoll instance's last use.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(uring.as_raw_fd()) },
            EpollEvent::new(EpollFlags::EPOLLIN, 0),
        )
        .map_err(io::Error::from)?;
    // The kernel writes into this until the receive completes; it is
    // leaked below unless the completion was seen.
    let buf: &'static mut [u8; 16] = Box::leak(Box::new([0u8; 16]));
    let recv = opcode::Recv::new(types::Fd(reader.as_raw_fd()), buf.as_mut_ptr(), 16)
        .build()
        .user_data(1);
    // SAFETY: the entry names `buf` (leaked: valid for ever unless freed
    // below after its completion) and `reader`'s descriptor, which stays
    // open until after the ring is dropped at the end of this function
    // (declared earlier, dropped later).
    unsafe { uring.submission_shared().push(&recv) }
        .map_err(|_| io::Error::other("a new ring's submission queue is full"))?;
    uring.submit()?;
    // Another thread's write, as a peer's data comes from another task.
    let wrote = std::thread::spawn(move || writer.write_all(b"x").map(|()| writer))
        .join()
        .map_err(|_| io::Error::other("the check's writer thread panicked"))??;
    let start = Instant::now();
    let mut events = [EpollEvent::empty()];
    let mut delivery = Delivery::Never;
    // A first look that does not wait, then waits until the bound.
    let mut timeout = 0u16;
    loop {
        match epoll.wait(&mut events, timeout) {
            Ok(1) if timeout == 0 => delivery = Delivery::AtOnce,
            Ok(1) => delivery = Delivery::Late(start.elapsed()),
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
        let left = LATE_BOUND.saturating_sub(start.elapsed());
        if delivery != Delivery::Never || left.is_zero() {
            break;
        }
        timeout = u16::try_from(left.as_millis()).unwrap_or(u16::MAX).max(1);
    }
    // An enter with GETEVENTS runs what task work is left, so the
    // completion, if it is coming, is in the queue after it.
    uring.submit_and_wait(0)?;
    // SAFETY: this thread is the only user of the ring's completion queue.
    let done = unsafe { uring.completion_shared() }.any(|c| c.user_data() == 1);
    if done {
        // SAFETY: the receive completed: the kernel no longer writes into
        // `buf`, which came from `Box::leak` above and is freed only here.
        drop(unsafe { Box::from_raw(buf as *mut [u8; 16]) });
    }
    drop(uring);
    drop((reader, wrote));
    Ok(delivery)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On the kernels this project runs on, the check passes; where the
    /// kernel refuses io_uring there is nothing to check.
    #[test]
    fn a_receive_completion_reaches_epoll_at_once() {
        match check() {
            Ok(d) => assert_eq!(d, Delivery::AtOnce),
            Err(e) => eprintln!("io_uring refused here ({e}); nothing to check"),
        }
    }
}
