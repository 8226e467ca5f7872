//! The connection task on io_uring: the same channel semantics as the
//! readiness driver (`crate::driver`), with the socket driven by completions.
//!
//! Contract:
//! - while the channel wants to read (auto-read or a requested read, not
//!   draining, not paused by unwritability) one multishot receive is armed,
//!   selecting from the ring's provided buffers; when the channel stops
//!   wanting reads the receive is cancelled, so the kernel stops taking
//!   bytes off the socket and backpressure reaches the peer;
//! - each receive is handed on as one `Bytes` over the ring's buffer (no
//!   copy), which goes back to the kernel when the last slice of it drops;
//!   while reads are paused, or once three quarters of the pool are lent
//!   out, the bytes are copied and the buffer goes back at once, so peers
//!   whose bytes sit in handlers (partial frames, slow consumers) can never
//!   take the whole pool; the receives of one wake-up are handed on in
//!   order, each in reads of at most `read_max` bytes, while the channel
//!   wants them, then `channel_read_complete`; bytes received after reads
//!   were switched off wait and are handed on when reads resume, never
//!   dropped;
//! - one write is in flight at a time, so bytes leave in order: a run of
//!   byte entries goes out with one `send`/`sendmsg` of their slices (no
//!   copy; `MSG_MORE` before a file body on TCP), a single large `Bytes`
//!   to a non-loopback peer with `SEND_ZC`, a `FileRegion` with `sendfile`
//!   on the socket made non-blocking for the call (a `POLL_ADD` waits when
//!   it is full), or, with sendfile off or refused, with `splice` from the
//!   file into the connection's pipe and on to the socket, linked; the bytes a
//!   completion reports are counted, then the entries they finish complete;
//! - end of input, output shutdown, draining and closing follow the
//!   readiness driver's contract; on close, what was flushed and is not in
//!   flight gets one non-blocking `writev`, operations in flight are
//!   cancelled, and memory they name moves into the connection's sink until
//!   the kernel is done with it.

#![allow(unsafe_code)]

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::Poll;

use std::collections::VecDeque;

use bytes::Bytes;
use io_uring::{cqueue, opcode, types};
use weft_core::transport::{CommandWaiter, OutboundBuffer};
use weft_core::{Error, Msg, Pipeline};

use super::ring::{Cqe, Kind, RingRef, Sink};
use crate::control::ServerCtl;
use crate::driver::FRONT_IS_FILE;
use crate::lifecycle::{shutdown_write, Fate, Lifecycle};
use crate::options::ChannelOptions;

/// A single `Bytes` at least this long is sent with `SEND_ZC`.
pub(crate) const ZC_MIN: usize = 64 * 1024;
/// The connection's pipe for `FileRegion`s asks for this size.
const PIPE_SIZE: usize = 1 << 20;
/// Most slices in one `sendmsg`.
const IOV_MAX: usize = 1024;
/// Slices gathered on the stack.
const SMALL_IOV: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recv {
    Idle,
    Armed(u64),
    /// Cancelled; its last completion has not come yet.
    Cancelling(u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    Idle,
    Send(u64),
    /// Waiting for the socket to take a `sendfile`.
    Poll(u64),
    /// Splices: into the pipe (when asked) and out of it.
    Splice {
        into_pipe: Option<u64>,
        out: Option<u64>,
    },
}

enum Wake {
    Commands,
    Completions,
    /// The linger after the output shutdown is over.
    Lingered,
    /// A handler's timer is due.
    Timer,
}

/// The connection's pipe, made at its first `FileRegion`.
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    size: usize,
    /// Bytes in the pipe, not yet sent.
    held: usize,
}

struct Conn {
    fd: OwnedFd,
    corks: bool,
    ring: RingRef,
    sink: Arc<Sink>,
    pipeline: Pipeline,
    opts: Arc<ChannelOptions>,
    ctl: Option<Arc<ServerCtl>>,
    recv: Recv,
    /// The peer's end of input was received, behind `inbox`'s bytes.
    eof: bool,
    /// Received bytes not yet handed on.
    inbox: VecDeque<Bytes>,
    write: Write,
    pipe: Option<Pipe>,
    zc_seq: u8,
    /// Whether files go out with `sendfile` (until the kernel refuses it;
    /// then, or with the option off, with `splice`).
    sendfile: bool,
    /// Whether `SEND_ZC` is worth trying (TCP to another host, until the
    /// kernel refuses).
    zc: bool,
    /// What the connection does next (`lifecycle.rs`), as for the
    /// readiness driver.
    lc: Lifecycle,
    cqes: Vec<Cqe>,
    /// Cancels and stashes are done (by `close` or on drop).
    finished: bool,
    timer: crate::timer::ChannelTimer,
}

/// Runs a connection on `ring` until it closes.
pub(crate) async fn drive(
    fd: OwnedFd,
    corks: bool,
    pipeline: Pipeline,
    opts: Arc<ChannelOptions>,
    ctl: Option<Arc<ServerCtl>>,
    ring: RingRef,
) {
    // io_uring waits for the socket itself; a non-blocking descriptor would
    // make it hand EAGAIN back instead.
    if let Err(e) = set_nonblocking(fd.as_raw_fd(), false) {
        tracing::debug!(error = %e, "could not clear O_NONBLOCK");
    }
    // On loopback the kernel copies a zero-copy send's pages anyway, after
    // pinning them: SEND_ZC only costs there (measured: 8 % of a 4 KiB echo
    // in skb_copy_ubufs, 4 % pinning pages).
    let loopback = matches!(
        pipeline.channel().remote_addr(),
        Some(weft_core::Address::Inet(a)) if a.ip().is_loopback()
    );
    let lc = Lifecycle::new(&opts);
    let mut conn = Conn {
        fd,
        corks,
        ring,
        sink: Sink::new(),
        pipeline,
        opts,
        ctl,
        recv: Recv::Idle,
        eof: false,
        inbox: VecDeque::new(),
        write: Write::Idle,
        pipe: None,
        zc_seq: 0,
        sendfile: true,
        zc: corks && !loopback,
        lc,
        cqes: Vec::new(),
        finished: false,
        timer: crate::timer::ChannelTimer::default(),
    };
    tracing::debug!("channel active (io_uring)");
    conn.pipeline.transport().fire_active();
    let mut waiter = CommandWaiter::new();
    loop {
        match conn.run_due() {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => {
                conn.fail(e);
                break;
            }
        }
        conn.ring.submit_soon();
        match conn.wait(&mut waiter).await {
            Wake::Commands => {}
            Wake::Timer => conn.timer.fired(&mut conn.pipeline.transport()),
            Wake::Lingered => break,
            Wake::Completions => {
                if let Err(e) = conn.on_completions() {
                    conn.fail(e);
                    break;
                }
            }
        }
    }
    conn.close();
}

fn errno(res: i32) -> Error {
    Error::io(io::Error::from_raw_os_error(-res))
}

impl Conn {
    fn wants_read(&self) -> bool {
        self.lc.wants_read(self.pipeline.channel())
    }

    /// Runs what is due; `Ok(true)` when the channel closes.
    fn run_due(&mut self) -> Result<bool, Error> {
        {
            let mut t = self.pipeline.transport();
            t.run_commands();
            if self.lc.admit(&mut t, self.ctl.as_deref()) {
                return Ok(true);
            }
        }
        // Reads first: bytes that waited in the inbox are handed on here
        // when reads resume, and what the handlers flush in answer must be
        // started in this same round, not left for an unrelated wake-up.
        self.update_reads()?;
        if self.write == Write::Idle {
            self.start_write()?;
            self.pipeline.transport().sync_writability();
        }
        let mut t = self.pipeline.transport();
        if let Some(shutdown) = t.take_due_shutdown() {
            let r = shutdown_write(self.fd.as_raw_fd());
            self.lc.output_shut(r.is_ok(), &self.opts);
            shutdown.complete(r);
        }
        Ok(self.lc.closes(&mut t, self.write == Write::Idle))
    }

    /// Hands on what waits in the inbox, arms or cancels the receive.
    fn update_reads(&mut self) -> Result<(), Error> {
        if self.wants_read() {
            self.hand_on();
        }
        // Handing on may have changed what the handlers want.
        let want = self.wants_read();
        match self.recv {
            Recv::Idle if want && !self.eof => {
                let e = opcode::RecvMulti::new(types::Fd(self.fd.as_raw_fd()), self.ring.group())
                    .build();
                // SAFETY: a receive names only the socket and the ring's
                // provided buffers, which the ring keeps alive.
                let ud = unsafe { self.ring.push(&self.sink, Kind::Recv, 0, e) }?;
                self.recv = Recv::Armed(ud);
            }
            Recv::Armed(ud) if !want => {
                self.ring.cancel(ud)?;
                self.recv = Recv::Cancelling(ud);
            }
            _ => {}
        }
        Ok(())
    }

    /// Fires the inbox's bytes, in reads of at most `read_max` bytes while
    /// the channel still wants them (as the readiness driver's burst stops
    /// once the handlers' answers made it unwritable), and, behind them,
    /// the end of input.
    fn hand_on(&mut self) {
        let mut fired = false;
        while self.wants_read() {
            let Some(front) = self.inbox.front_mut() else {
                break;
            };
            let b = if front.len() > self.opts.read_max {
                front.split_to(self.opts.read_max)
            } else {
                self.inbox.pop_front().expect("a front")
            };
            if self.lc.read(b.len()) == Fate::Drop {
                // Lingering: read only to be dropped.
                drop(b);
                if self.lc.read_spent() {
                    break; // run_due closes the channel
                }
                continue;
            }
            let mut t = self.pipeline.transport();
            t.fire_read(b);
            fired = true;
            if t.close_requested() || t.is_closed() {
                break;
            }
            if self.lc.read_spent() {
                break; // run_due closes the channel
            }
        }
        if fired {
            self.lc.fired();
            self.pipeline.transport().fire_read_complete();
        }
        if self.eof && self.inbox.is_empty() {
            // Once: the lifecycle fires `InputShutdown` the first time only.
            self.lc.input_ended(&mut self.pipeline);
        }
    }

    async fn wait(&mut self, waiter: &mut CommandWaiter) -> Wake {
        let sink = self.sink.clone();
        let cqes = &mut self.cqes;
        let lc = &mut self.lc;
        let mut t = self.pipeline.transport();
        let timer = &mut self.timer;
        timer.arm(t.next_timer());
        poll_fn(|cx| {
            if t.poll_commands(cx, waiter).is_ready() {
                return Poll::Ready(Wake::Commands);
            }
            if timer.poll_due(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if lc.poll_linger(cx).is_ready() {
                return Poll::Ready(Wake::Lingered);
            }
            if sink.poll_take(cx, cqes).is_ready() {
                return Poll::Ready(Wake::Completions);
            }
            Poll::Pending
        })
        .await
    }

    fn on_completions(&mut self) -> Result<(), Error> {
        let mut cqes = std::mem::take(&mut self.cqes);
        let mut r = Ok(());
        for c in cqes.drain(..) {
            if r.is_err() {
                // Still give received buffers back.
                if let Some(bid) = super::ring::buffer_of(&c) {
                    self.ring.provide(bid);
                }
                continue;
            }
            r = match c.kind {
                Kind::Recv => self.on_recv(c),
                Kind::Send | Kind::SendZc => self.on_send(c),
                Kind::SpliceIn | Kind::SpliceOut => self.on_splice(c),
                Kind::Poll => {
                    // Writable (or cancelled, or failed: the next sendfile
                    // says which).
                    self.write = Write::Idle;
                    Ok(())
                }
                Kind::Quiet => Ok(()),
            };
        }
        self.cqes = cqes;
        r?;
        if self.wants_read() {
            self.hand_on();
        }
        Ok(())
    }

    fn on_recv(&mut self, c: Cqe) -> Result<(), Error> {
        if let Some(bid) = cqueue::buffer_select(c.flags) {
            if c.res > 0 {
                // Lent without a copy when it is handed on now; bytes that
                // wait (reads paused) are copied, so the buffer goes back.
                let lend = self.wants_read();
                // SAFETY: the completion gave this connection `bid`, with
                // `res` bytes received into it; `take` gives it back.
                let b = unsafe { self.ring.take(bid, c.res as usize, lend) };
                self.inbox.push_back(b);
            } else {
                self.ring.provide(bid);
            }
        }
        if !cqueue::more(c.flags) {
            self.recv = Recv::Idle;
        }
        match c.res {
            0 => {
                self.eof = true;
                Ok(())
            }
            n if n > 0 => Ok(()),
            // Our cancel, or the pool ran dry for a moment: re-armed when
            // reads are wanted.
            n if n == -libc::ECANCELED || n == -libc::ENOBUFS || n == -libc::EINTR => Ok(()),
            n => Err(errno(n)),
        }
    }

    fn on_send(&mut self, c: Cqe) -> Result<(), Error> {
        if c.kind == Kind::SendZc && cqueue::notif(c.flags) {
            let mut keep = self.sink.keep();
            keep.zc.retain(|(s, _)| *s != c.seq);
            return Ok(());
        }
        if c.kind == Kind::SendZc && !cqueue::more(c.flags) {
            // No notification follows: the buffer is free now.
            let mut keep = self.sink.keep();
            keep.zc.retain(|(s, _)| *s != c.seq);
        }
        self.write = Write::Idle;
        if c.res < 0 {
            if c.res == -libc::ECANCELED {
                return Ok(());
            }
            if c.kind == Kind::SendZc && (c.res == -libc::EOPNOTSUPP || c.res == -libc::EINVAL) {
                // Nothing was sent; the entry goes again without zero-copy.
                tracing::debug!(errno = -c.res, "SEND_ZC refused; sending with copies");
                self.zc = false;
                return Ok(());
            }
            let e = errno(c.res);
            self.pipeline.transport().outbound().fail_flushed(&e);
            return Err(e);
        }
        let n = c.res as usize;
        let mut t = self.pipeline.transport();
        let (ob, written) = t.outbound_and_counter();
        written.add(n);
        ob.advance(n);
        t.sync_writability();
        Ok(())
    }

    fn on_splice(&mut self, c: Cqe) -> Result<(), Error> {
        let Write::Splice {
            mut into_pipe,
            mut out,
        } = self.write
        else {
            return Ok(());
        };
        let pipe = self.pipe.as_mut().expect("a splice has a pipe");
        let mut t = self.pipeline.transport();
        let (ob, written) = t.outbound_and_counter();
        let mut err = None;
        match c.kind {
            Kind::SpliceIn => {
                into_pipe = None;
                let region = ob.front_region().expect(FRONT_IS_FILE);
                match c.res {
                    0 if !region.is_done() => err = Some(region.shrank_error()),
                    n if n >= 0 => {
                        region.advance(n as u64);
                        pipe.held += n as usize;
                    }
                    n => err = Some(errno(n)),
                }
            }
            _ => {
                out = None;
                match c.res {
                    n if n >= 0 => {
                        pipe.held -= n as usize;
                        written.add(n as usize);
                    }
                    // The link broke on a short splice into the pipe: the
                    // rest of the pipe goes out next.
                    n if n == -libc::ECANCELED => {}
                    n => err = Some(errno(n)),
                }
            }
        }
        if let Some(e) = err {
            ob.complete_front(Err(e.clone()));
            self.write = Write::Idle;
            return Err(e);
        }
        self.write = if into_pipe.is_none() && out.is_none() {
            if pipe.held == 0 && ob.front_region().expect(FRONT_IS_FILE).is_done() {
                ob.complete_front(Ok(()));
            }
            Write::Idle
        } else {
            Write::Splice { into_pipe, out }
        };
        Ok(())
    }

    /// Starts the next write, completing on the way the entries that need
    /// no system call.
    fn start_write(&mut self) -> Result<(), Error> {
        loop {
            let held = self.pipe_held();
            let mut t = self.pipeline.transport();
            let ob = t.outbound();
            match ob.front_mut().map(|e| &mut e.msg) {
                None => return Ok(()),
                Some(Msg::Bytes(_) | Msg::Composite(_)) => {
                    let (slices, file_follows) = ob.gather_count(IOV_MAX);
                    if slices == 0 {
                        ob.advance(0); // completes empty entries
                        continue;
                    }
                    return self.start_send(slices, file_follows);
                }
                Some(Msg::File(r)) if r.is_done() && held == 0 => {
                    ob.complete_front(Ok(()));
                }
                Some(Msg::File(_)) if self.opts.sendfile && self.sendfile => {
                    match self.sendfile_now()? {
                        Some(()) => continue, // the region is done
                        None => return Ok(()),
                    }
                }
                Some(Msg::File(_)) => {
                    return self.start_splice();
                }
                Some(Msg::User(u)) => {
                    let err = crate::driver::unsupported(&**u);
                    ob.complete_front(Err(err));
                }
            }
        }
    }

    fn pipe_held(&self) -> usize {
        self.pipe.as_ref().map_or(0, |p| p.held)
    }

    fn start_send(&mut self, slices: usize, file_follows: bool) -> Result<(), Error> {
        let fd = types::Fd(self.fd.as_raw_fd());
        let mut flags = libc::MSG_NOSIGNAL;
        if self.corks && file_follows {
            flags |= libc::MSG_MORE;
        }
        let mut t = self.pipeline.transport();
        let ob = t.outbound();
        let mut keep = self.sink.keep();
        // A single large Bytes: zero-copy, holding a reference until the
        // kernel's notification.
        if let (1, Some(Msg::Bytes(b))) = (slices, ob.front().map(|e| &e.msg)) {
            if self.zc && b.len() >= ZC_MIN && flags & libc::MSG_MORE == 0 {
                self.zc_seq = self.zc_seq.wrapping_add(1);
                let seq = self.zc_seq;
                keep.zc.push_back((seq, b.clone()));
                let e = opcode::SendZc::new(fd, b.as_ptr(), b.len() as u32)
                    .flags(flags)
                    .build();
                drop(keep);
                // SAFETY: the buffer is held by `keep.zc` until the
                // operation's notification (or its last completion).
                let ud = unsafe { self.ring.push(&self.sink, Kind::SendZc, seq, e) }?;
                self.write = Write::Send(ud);
                return Ok(());
            }
        }
        if slices <= SMALL_IOV {
            let mut iov = [IoSlice::new(&[]); SMALL_IOV];
            let (n, _) = ob.gather(&mut iov);
            merge_into(&iov[..n], &mut keep.iov);
        } else {
            let mut iov = vec![IoSlice::new(&[]); slices.min(IOV_MAX)];
            let (n, _) = ob.gather(&mut iov);
            merge_into(&iov[..n], &mut keep.iov);
        }
        let e = if keep.iov.len() == 1 {
            let v = keep.iov[0];
            opcode::Send::new(fd, v.iov_base as *const u8, v.iov_len as u32)
                .flags(flags)
                .build()
        } else {
            // SAFETY: an all-zero msghdr is a valid empty header.
            let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
            msg.msg_iov = keep.iov.as_mut_ptr();
            msg.msg_iovlen = keep.iov.len() as _;
            let ptr: *const libc::msghdr = &*msg;
            keep.msg = Some(msg);
            opcode::SendMsg::new(fd, ptr).flags(flags as u32).build()
        };
        drop(keep);
        // SAFETY: the iovecs and header live in the sink's `Keep`, untouched
        // until this send completes (one write in flight at a time); the
        // bytes they point into belong to the outbound buffer's front
        // entries, which stay queued until the completion advances them, and
        // move into `Keep` if the channel closes first (`finish`).
        let ud = unsafe { self.ring.push(&self.sink, Kind::Send, 0, e) }?;
        self.write = Write::Send(ud);
        Ok(())
    }

    /// Sends the front `FileRegion` with `sendfile`, made non-blocking for
    /// the call, until it is done (`Some`), the socket is full, or this
    /// turn's budget is spent; then (`None`) a poll for writability is in
    /// flight and the region goes on when it completes. io_uring runs
    /// every `splice` on a worker thread, which made the spliced 1 GiB file
    /// 0.66x the readiness transport's `sendfile` at 1.46x its CPU; this
    /// keeps the kernel's one-call file path.
    fn sendfile_now(&mut self) -> Result<Option<()>, Error> {
        const STEPS: usize = 16;
        let fd = self.fd.as_raw_fd();
        let mut t = self.pipeline.transport();
        let (ob, written) = t.outbound_and_counter();
        let region = ob.front_region().expect(FRONT_IS_FILE);
        let file = region.file().clone();
        set_nonblocking(fd, true).map_err(Error::io)?;
        let mut outcome = Ok(None);
        for _ in 0..STEPS {
            let mut offset = region.position() as i64;
            let count = region.remaining().min(crate::driver::SENDFILE_STEP as u64) as usize;
            // SAFETY: `fd` is the connection's socket, open for the call.
            let sock = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            match nix::sys::sendfile::sendfile(sock, &*file, Some(&mut offset), count) {
                Ok(0) => {
                    outcome = Err(region.shrank_error());
                    break;
                }
                Ok(k) => {
                    written.add(k);
                    region.advance(k as u64);
                    if region.is_done() {
                        outcome = Ok(Some(()));
                        break;
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(nix::errno::Errno::EINTR) => {}
                Err(e @ (nix::errno::Errno::EINVAL | nix::errno::Errno::ENOSYS)) => {
                    tracing::debug!(error = %e, "sendfile refused; splicing instead");
                    self.sendfile = false;
                    outcome = Ok(None);
                    break;
                }
                Err(e) => {
                    outcome = Err(Error::io(io::Error::from(e)));
                    break;
                }
            }
        }
        let restored = set_nonblocking(fd, false);
        match outcome {
            Ok(Some(())) => {
                ob.complete_front(Ok(()));
                restored.map_err(Error::io)?;
                Ok(Some(()))
            }
            Ok(None) if !self.sendfile => {
                restored.map_err(Error::io)?;
                self.start_splice()?;
                Ok(None)
            }
            Ok(None) => {
                restored.map_err(Error::io)?;
                let e = opcode::PollAdd::new(types::Fd(fd), libc::POLLOUT as u32).build();
                // SAFETY: a poll names only the socket.
                let ud = unsafe { self.ring.push(&self.sink, Kind::Poll, 0, e) }?;
                self.write = Write::Poll(ud);
                Ok(None)
            }
            Err(e) => {
                ob.complete_front(Err(e.clone()));
                Err(e)
            }
        }
    }

    fn start_splice(&mut self) -> Result<(), Error> {
        if self.pipe.is_none() {
            self.pipe = Some(make_pipe().map_err(Error::io)?);
        }
        let pipe = self.pipe.as_ref().expect("made above");
        let sock = types::Fd(self.fd.as_raw_fd());
        let pr = types::Fd(pipe.read.as_raw_fd());
        if pipe.held > 0 {
            let e = opcode::Splice::new(pr, -1, sock, -1, pipe.held as u32).build();
            // SAFETY: a splice names descriptors only; the kernel holds
            // references to their files while it runs.
            let ud = unsafe { self.ring.push(&self.sink, Kind::SpliceOut, 0, e) }?;
            self.write = Write::Splice {
                into_pipe: None,
                out: Some(ud),
            };
            return Ok(());
        }
        let mut t = self.pipeline.transport();
        let region = t.outbound().front_region().expect(FRONT_IS_FILE);
        let len = region.remaining().min(pipe.size as u64) as u32;
        let file = types::Fd(region.file().as_raw_fd());
        let at = region.position() as i64;
        let into = opcode::Splice::new(file, at, types::Fd(pipe.write.as_raw_fd()), -1, len)
            .build()
            .flags(io_uring::squeue::Flags::IO_LINK);
        let out = opcode::Splice::new(pr, -1, sock, -1, len).build();
        // SAFETY: as above, descriptors only. The file stays open while its
        // region is queued, and the kernel holds its own reference once the
        // splice starts.
        let ud_in = unsafe { self.ring.push(&self.sink, Kind::SpliceIn, 0, into) }?;
        // SAFETY: as above.
        let ud_out = unsafe { self.ring.push(&self.sink, Kind::SpliceOut, 0, out) }?;
        self.write = Write::Splice {
            into_pipe: Some(ud_in),
            out: Some(ud_out),
        };
        Ok(())
    }

    fn fail(&mut self, err: Error) {
        crate::driver::fail(&mut self.pipeline, err);
    }

    /// Cancels what is in flight and moves the memory a send in flight
    /// names into the sink. Idempotent.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        // Receive buffers in completions not handled yet (or arriving
        // later) go back to the pool, not away with the connection.
        for bid in self.sink.close() {
            self.ring.provide(bid);
        }
        for c in self.cqes.drain(..) {
            if let Some(bid) = super::ring::buffer_of(&c) {
                self.ring.provide(bid);
            }
        }
        if let Recv::Armed(ud) = self.recv {
            let _ = self.ring.cancel(ud);
        }
        let mut uds = [None, None];
        match self.write {
            Write::Idle => {}
            Write::Send(ud) | Write::Poll(ud) => uds[0] = Some(ud),
            Write::Splice { into_pipe, out } => uds = [into_pipe, out],
        }
        for ud in uds.into_iter().flatten() {
            let _ = self.ring.cancel(ud);
        }
        if matches!(self.write, Write::Send(_)) {
            // The send's iovecs point into the flushed entries: they must
            // outlive it, so they move into the sink.
            let mut t = self.pipeline.transport();
            let err = t.close_error();
            let ob = t.outbound();
            let mut keep = self.sink.keep();
            while let Some(e) = ob.pop_front() {
                if let Some(p) = e.promise {
                    p.fail(err.clone());
                }
                keep.msgs.push(e.msg);
            }
        }
        let _ = self.ring.submit();
    }

    /// Closes the socket and completes the channel's close.
    fn close(mut self) {
        if self.pipeline.transport().close_requested() && self.write == Write::Idle {
            // As in the readiness driver: what was flushed before the close
            // gets one non-blocking attempt to reach the kernel.
            let mut t = self.pipeline.transport();
            let (ob, written) = t.outbound_and_counter();
            if let Some(n) = write_now(self.fd.as_raw_fd(), ob) {
                written.add(n);
                ob.advance(n);
            }
        }
        self.finish();
        self.pipeline.transport().finish_close();
        tracing::debug!("channel inactive");
        // The socket closes when `self` drops; operations still in flight
        // hold the kernel's own reference to it until their cancels land.
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.finish();
    }
}

/// One non-blocking `sendmsg` of the front byte entries; the bytes written.
fn write_now(fd: RawFd, ob: &OutboundBuffer) -> Option<usize> {
    let mut iov = [IoSlice::new(&[]); SMALL_IOV];
    let (n, _) = ob.gather(&mut iov);
    if n == 0 {
        return None;
    }
    nix::sys::socket::sendmsg::<()>(
        fd,
        &iov[..n],
        &[],
        nix::sys::socket::MsgFlags::MSG_DONTWAIT | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ok()
    .filter(|&k| k > 0)
}

/// Sets or clears `O_NONBLOCK` on `fd`.
fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_retain(fcntl(fd, FcntlArg::F_GETFL)?);
    let want = if on {
        flags | OFlag::O_NONBLOCK
    } else {
        flags - OFlag::O_NONBLOCK
    };
    if want != flags {
        fcntl(fd, FcntlArg::F_SETFL(want))?;
    }
    Ok(())
}

/// Sets `out` to `iov` as iovecs, joining slices adjacent in memory (the
/// readiness driver's `merge_adjacent`).
fn merge_into(iov: &[IoSlice<'_>], out: &mut Vec<libc::iovec>) {
    out.clear();
    out.resize(iov.len(), crate::driver::EMPTY_IOVEC);
    let n = crate::driver::merge_adjacent(iov, out);
    out.truncate(n);
}

fn make_pipe() -> io::Result<Pipe> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both descriptors are open and ours alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: fcntl on a descriptor we own; F_SETPIPE_SZ takes an int.
    let set = unsafe {
        libc::fcntl(
            write.as_raw_fd(),
            libc::F_SETPIPE_SZ,
            PIPE_SIZE as libc::c_int,
        )
    };
    let size = if set > 0 {
        set as usize
    } else {
        // SAFETY: as above; F_GETPIPE_SZ takes no argument.
        let got = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        if got > 0 {
            got as usize
        } else {
            64 * 1024
        }
    };
    Ok(Pipe {
        read,
        write,
        size,
        held: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_composite_of_three_parts_is_three_iovecs_pointing_at_the_parts() {
        let parts: Vec<Bytes> = [1111, 2222, 3333]
            .iter()
            .map(|n| Bytes::from(vec![b'c'; *n]))
            .collect();
        let c: weft_core::CompositeBytes = parts.iter().cloned().collect();
        let mut ob = OutboundBuffer::default();
        ob.push(Msg::Composite(c), None);
        ob.flush();
        let mut iov = [IoSlice::new(&[]); SMALL_IOV];
        let (n, total) = ob.gather(&mut iov);
        let mut out = Vec::new();
        merge_into(&iov[..n], &mut out);
        assert_eq!((out.len(), total), (3, 6666));
        for (v, p) in out.iter().zip(&parts) {
            assert_eq!(v.iov_base as usize, p.as_ptr() as usize, "no copy");
            assert_eq!(v.iov_len, p.len());
        }
    }
}
