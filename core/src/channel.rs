//! [`Channel`]: a handle to one connection, usable from any task.
//!
//! Contract:
//! - a `Channel` is `Clone + Send + Sync`; every operation on it is queued to
//!   the channel's own task, which runs it through the pipeline from the
//!   tail, so handler methods never run concurrently for one channel;
//! - the queue costs nothing until it is used (an empty `Vec` behind a lock);
//! - once the channel is closed, new writes fail at once with a
//!   closed-channel error, and writes still queued fail the same way;
//! - a write counts toward the channel's watermark and cap when it is
//!   submitted, not when the connection task gets to it: the handle turns
//!   unwritable at once when its queued writes and the outbound buffer pass
//!   the high watermark (the task then delivers the writability change to
//!   the pipeline, and the writable one after it drains), and a write that
//!   would pass the cap is refused (an
//!   [`ErrorKind::OutboundFull`](crate::ErrorKind::OutboundFull) error, the
//!   same check and text as the outbound buffer's: one weight function,
//!   one cap check), and the channel closed, at once (a
//!   datagram channel drops such a write instead: it fails with
//!   [`ErrorKind::Dropped`](crate::ErrorKind::Dropped), is counted by
//!   [`writes_dropped`](Channel::writes_dropped), and the channel stays
//!   open);
//! - a queued user message (one the pipeline encodes, such as a protocol's
//!   frame) weighs [`QUEUED_USER_MSG_WEIGHT`] bytes until the task takes
//!   it (then its encoded bytes count in the outbound buffer): it has no
//!   byte length of its own, and counting it as nothing let writes from
//!   other tasks grow the queue without bound while the task lagged; a
//!   [`DatagramPacket`](crate::DatagramPacket) weighs its payload (at least
//!   that much);
//! - state reads ([`is_writable`](Channel::is_writable),
//!   [`is_open`](Channel::is_open)) are lock-free.
//!
//! # The handshake with the connection task
//!
//! What crosses tasks, and why no command is ever left without a wake-up:
//! - **a command** is one operation of this handle — write (with or without
//!   a promise and a flush), flush, read, close, output shutdown, or a
//!   closure to run with the pipeline ([`execute`](Channel::execute);
//!   [`set_auto_read`](Channel::set_auto_read) sends an empty one so that
//!   the task looks at the new flag). Commands run in the order they were
//!   pushed, on the connection task, between socket events;
//! - **the waker** is stored by the connection task only, through
//!   [`poll_commands`](Channel::poll_commands) with the
//!   [`CommandWaiter`] it keeps, before it waits; it is consumed only by the
//!   push that finds it stored, which clears the "stored" mark in the same
//!   atomic operation that marks the queue non-empty, and wakes it;
//! - **the consumer** takes commands whenever it runs, whatever woke it
//!   (socket readiness, a timer, a command), and polls again before it
//!   waits; a poll that finds the mark cleared stores the waker again and
//!   re-checks the queue in the same operation that sets the mark.
//!
//! Either the push's operation comes first and the poll sees the command,
//! or the poll's does and the push sees the waker: no interleaving loses a
//! command (model-checked with loom: `RUSTFLAGS="--cfg weft_loom" cargo
//! test -p weft-core --lib --release loom`). Flags that other tasks change
//! (auto-read, the server's shutdown phase) follow the same rule: change
//! the flag, then push a command, so the task re-reads it after waking. The
//! details are in the `mailbox` module.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Notify;

use crate::mailbox::{CommandWaiter, Mailbox};
use crate::sync::{AtomicBool, AtomicUsize, Ordering};
use crate::{Error, Msg, Pipeline, Promise, WriteFuture};

/// What a user message written through a [`Channel`] handle counts toward
/// the channel's watermark and cap while it waits for the channel's task:
/// about what it holds in memory there (its box, the command, a promise)
/// when its payload is shared or small. A user message holding a large
/// payload of its own is undercounted by this; encode it to bytes before
/// writing it from another task when that matters.
pub const QUEUED_USER_MSG_WEIGHT: usize = 256;

/// What a write queued on a handle counts (the outbound buffer's weight
/// function, for a message not encoded yet).
fn queued_weight(msg: &Msg) -> usize {
    crate::outbound::weight(msg, true)
}

/// A channel's identity, unique within the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(u64);

impl ChannelId {
    fn next() -> ChannelId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ChannelId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// The id as a number.
    pub fn as_u64(&self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// A channel's local or remote address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// A TCP/IP address.
    Inet(std::net::SocketAddr),
    /// A Unix-domain socket path (`None` for an unnamed socket).
    Unix(Option<std::path::PathBuf>),
    /// An [`EmbeddedChannel`](crate::EmbeddedChannel), which has no socket.
    Embedded,
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Inet(a) => write!(f, "{a}"),
            Address::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Address::Unix(None) => f.write_str("unix:(unnamed)"),
            Address::Embedded => f.write_str("embedded"),
        }
    }
}

type Task = Box<dyn FnOnce(&mut Pipeline) + Send>;

pub(crate) enum Command {
    Write(Msg, Option<Promise>, bool),
    Flush,
    Read,
    Close(Option<Promise>),
    ShutdownOutput(Option<Promise>),
    Exec(Task),
    /// A write from this handle passed the cap: fail and close.
    Overflow(Error),
}

struct Shared {
    id: ChannelId,
    local: Option<Address>,
    remote: Option<Address>,
    writable: AtomicBool,
    open: AtomicBool,
    auto_read: AtomicBool,
    /// Commands from other tasks, with the wake-up handshake.
    commands: Mailbox<Command>,
    /// Bytes of the writes queued in `commands`.
    queued: AtomicUsize,
    /// The outbound buffer's bytes, as the connection task last saw them.
    outbound: AtomicUsize,
    /// The watermarks, the cap and the drop flag: the outbound buffer's
    /// own, shared (`outbound.rs`).
    limits: std::sync::Arc<crate::outbound::OutboundLimits>,
    /// Bytes the transport has handed to the kernel so far.
    written: std::sync::atomic::AtomicU64,
    /// Messages the transport has read and fired so far.
    read: std::sync::atomic::AtomicU64,
    /// Writes dropped so far (past the cap, with `drops` set).
    dropped: std::sync::atomic::AtomicU64,
    closed: Notify,
    /// Woken when the handle turns writable again (and on close).
    writable_again: Notify,
}

/// A handle to a connection. Cheap to clone; usable from any task.
///
/// ```
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::new();
/// let handle = ch.channel().clone();
/// std::thread::spawn(move || handle.write_and_flush("hi")).join().unwrap();
/// ch.run_pending_tasks();
/// assert_eq!(ch.read_outbound::<bytes::Bytes>().unwrap(), "hi");
/// ```
#[derive(Clone)]
pub struct Channel {
    shared: Arc<Shared>,
}

impl Channel {
    /// A new open channel handle. Transports call this; applications get
    /// their handles from a bootstrap or from [`Context::channel`](crate::Context::channel).
    pub fn new(local: Option<Address>, remote: Option<Address>) -> Channel {
        Channel {
            shared: Arc::new(Shared {
                id: ChannelId::next(),
                local,
                remote,
                writable: AtomicBool::new(true),
                open: AtomicBool::new(true),
                auto_read: AtomicBool::new(true),
                commands: Mailbox::new(),
                queued: AtomicUsize::new(0),
                outbound: AtomicUsize::new(0),
                limits: Default::default(),
                written: std::sync::atomic::AtomicU64::new(0),
                read: std::sync::atomic::AtomicU64::new(0),
                dropped: std::sync::atomic::AtomicU64::new(0),
                closed: Notify::new(),
                writable_again: Notify::new(),
            }),
        }
    }

    /// The channel's id.
    pub fn id(&self) -> ChannelId {
        self.shared.id
    }

    /// The local address, when there is one.
    pub fn local_addr(&self) -> Option<&Address> {
        self.shared.local.as_ref()
    }

    /// The peer's address, when there is one.
    pub fn remote_addr(&self) -> Option<&Address> {
        self.shared.remote.as_ref()
    }

    /// Whether the outbound buffer is below its high watermark. A writer
    /// that waits for writability keeps memory bounded.
    pub fn is_writable(&self) -> bool {
        self.shared.writable.load(Ordering::Acquire)
    }

    /// Bytes the transport has handed to the kernel for this channel so
    /// far (files included). Timeout handlers watch it to tell a response
    /// still being written from a stuck one.
    pub fn bytes_written(&self) -> u64 {
        self.shared
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Messages the transport has read and fired into the pipeline so far
    /// (one per socket read, one per datagram). A read timeout at the head
    /// of the pipeline watches it instead of sitting in the read path.
    pub fn messages_read(&self) -> u64 {
        self.shared.read.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts one more message read. Only the task that drives the
    /// pipeline writes the count, so a load and a store do (no locked
    /// instruction per read); other tasks only load it.
    pub(crate) fn record_read(&self) {
        let read = &self.shared.read;
        let n = read.load(std::sync::atomic::Ordering::Relaxed);
        read.store(n.wrapping_add(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Records that `n` more bytes reached the kernel (see
    /// [`Transport::record_written`](crate::transport::Transport::record_written)).
    pub(crate) fn record_written(&self, n: usize) {
        self.shared
            .written
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes refused at the cap without closing the channel, so far: a
    /// datagram channel drops a datagram when its outbound queue is full
    /// (the write fails with [`ErrorKind::Dropped`](crate::ErrorKind::Dropped)).
    /// Always 0 for a stream channel, which closes instead.
    pub fn writes_dropped(&self) -> u64 {
        self.shared
            .dropped
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Counts `n` more dropped writes.
    pub(crate) fn record_dropped(&self, n: u64) {
        self.shared
            .dropped
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the channel is still open.
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Whether the channel reads on its own (Netty's `autoRead`).
    pub fn is_auto_read(&self) -> bool {
        self.shared.auto_read.load(Ordering::Acquire)
    }

    /// Switches auto-read on or off. Off, the channel reads only when asked
    /// with [`read`](Self::read) (or `ctx.read()`): the way to hold a fast
    /// peer back while a slow one catches up (proxy backpressure).
    pub fn set_auto_read(&self, on: bool) {
        if self.shared.auto_read.swap(on, Ordering::AcqRel) != on {
            // Wake the channel's task so that it sees the change.
            let _ = self.push(Command::Exec(Box::new(|_| {})));
        }
    }

    fn push(&self, cmd: Command) -> Result<(), Command> {
        self.shared.commands.push(cmd)
    }

    fn push_write(&self, msg: Msg, promise: Option<Promise>, flush: bool) {
        let len = queued_weight(&msg);
        if len > 0 {
            let sh = &self.shared;
            let held = sh.queued.fetch_add(len, Ordering::AcqRel)
                + len
                + sh.outbound.load(Ordering::Acquire);
            let cap = sh.limits.cap();
            if held > cap {
                sh.queued.fetch_sub(len, Ordering::AcqRel);
                if sh.limits.drops() {
                    self.record_dropped(1);
                    if let Some(p) = promise {
                        p.fail(crate::outbound::dropped_error(len, held - len, cap));
                    }
                    return;
                }
                let err = crate::outbound::over_cap_error(len, held - len, cap);
                if let Some(p) = promise {
                    p.fail(err.clone());
                }
                let _ = self.push(Command::Overflow(err));
                return;
            }
            if held > sh.limits.high() {
                sh.writable.store(false, Ordering::Release);
            }
        }
        if let Err(Command::Write(_, p, _)) = self.push(Command::Write(msg, promise, flush)) {
            self.shared.queued.fetch_sub(len, Ordering::AcqRel);
            if let Some(p) = p {
                p.fail(Error::closed());
            }
        }
    }

    /// Writes a message from the tail of the pipeline, without flushing and
    /// without a promise.
    pub fn write(&self, msg: impl Into<Msg>) {
        self.push_write(msg.into(), None, false);
    }

    /// Writes a message without flushing; the future resolves when it is
    /// written (after a later flush) or fails.
    pub fn write_with_promise(&self, msg: impl Into<Msg>) -> WriteFuture {
        let (p, f) = Promise::new();
        self.push_write(msg.into(), Some(p), false);
        f
    }

    /// Writes and flushes; the future resolves once the message's last byte
    /// is in the kernel, or fails (closed channel, I/O error, ...).
    pub fn write_and_flush(&self, msg: impl Into<Msg>) -> WriteFuture {
        let (p, f) = Promise::new();
        self.push_write(msg.into(), Some(p), true);
        f
    }

    /// Flushes the messages written so far.
    pub fn flush(&self) {
        let _ = self.push(Command::Flush);
    }

    /// Requests one read (useful with auto-read off).
    pub fn read(&self) {
        let _ = self.push(Command::Read);
    }

    /// Closes the channel through the pipeline; the future resolves once it
    /// is closed. Pending writes fail with a closed-channel error.
    pub fn close(&self) -> WriteFuture {
        let (p, f) = Promise::new();
        if let Err(Command::Close(Some(p))) = self.push(Command::Close(Some(p))) {
            p.succeed(); // already closed
        }
        f
    }

    /// Shuts the output down (TCP FIN) once everything flushed before it is
    /// written; the channel stays open for reading. The future resolves
    /// when the shutdown is done.
    pub fn shutdown_output(&self) -> WriteFuture {
        let (p, f) = Promise::new();
        if let Err(Command::ShutdownOutput(Some(p))) = self.push(Command::ShutdownOutput(Some(p))) {
            p.fail(Error::closed());
        }
        f
    }

    /// Runs `f` on the channel's task with its pipeline, for example to add
    /// or remove handlers from outside. Dropped if the channel is closed.
    pub fn execute(&self, f: impl FnOnce(&mut Pipeline) + Send + 'static) {
        let _ = self.push(Command::Exec(Box::new(f)));
    }

    /// Resolves once the channel is closed (Netty's `closeFuture`).
    pub async fn closed(&self) {
        loop {
            let notified = self.shared.closed.notified();
            if !self.is_open() {
                return;
            }
            notified.await;
        }
    }

    /// Resolves once the channel is writable (at once if it is now), or
    /// closed: what a task that produces for this channel from elsewhere
    /// awaits instead of polling [`is_writable`](Self::is_writable).
    /// Writable again means back below the low watermark.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let ch = weft_core::EmbeddedChannel::new();
    /// ch.channel().writable().await; // a new channel is writable
    /// # });
    /// ```
    pub async fn writable(&self) {
        loop {
            let notified = self.shared.writable_again.notified();
            if self.is_writable() || !self.is_open() {
                return;
            }
            notified.await;
        }
    }

    // ---- for the channel's own task ----

    /// Tells whether commands are waiting and, when none are, makes sure the
    /// calling task is woken by the next one. Transports call this from
    /// their connection task before they wait, keeping `waiter` from one
    /// call to the next (a poll from the same task then costs one atomic
    /// load). Only one task may poll a channel's commands.
    pub(crate) fn poll_commands(
        &self,
        cx: &mut Context<'_>,
        waiter: &mut CommandWaiter,
    ) -> Poll<()> {
        self.shared.commands.poll(cx, waiter)
    }

    /// Whether commands are waiting.
    pub(crate) fn has_commands(&self) -> bool {
        self.shared.commands.has_items()
    }

    /// Takes the queued commands; their writes leave the handle's count
    /// (the pipeline's outbound buffer counts them from now on).
    pub(crate) fn take_commands(&self) -> Vec<Command> {
        let cmds = self.shared.commands.take();
        let bytes: usize = cmds
            .iter()
            .map(|c| match c {
                Command::Write(m, _, _) => queued_weight(m),
                _ => 0,
            })
            .sum();
        if bytes > 0 {
            self.shared.queued.fetch_sub(bytes, Ordering::AcqRel);
        }
        cmds
    }

    /// Weight of writes submitted from other tasks and not yet taken.
    pub(crate) fn queued_bytes(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Publishes what the pipeline's outbound buffer holds, for the checks
    /// writes from other tasks make (its limits they read from the same
    /// place as the buffer: [`limits`](Self::limits)).
    pub(crate) fn publish_outbound(&self, bytes: usize) {
        self.shared.outbound.store(bytes, Ordering::Release);
    }

    /// The outbound limits this channel's outbound buffer keeps.
    pub(crate) fn limits(&self) -> std::sync::Arc<crate::outbound::OutboundLimits> {
        self.shared.limits.clone()
    }

    pub(crate) fn set_writable(&self, writable: bool) {
        self.shared.writable.store(writable, Ordering::Release);
        if writable {
            self.shared.writable_again.notify_waiters();
        }
    }

    /// Marks the channel closed and returns the commands that were still
    /// queued, for the caller to fail.
    pub(crate) fn mark_closed(&self) -> Vec<Command> {
        // Closed for commands first: a write pushed after this fails at
        // once; one pushed before is in `left`.
        let left = self.shared.commands.close();
        self.shared.open.store(false, Ordering::Release);
        self.shared.closed.notify_waiters();
        self.shared.writable_again.notify_waiters();
        left
    }
}

impl Command {
    /// Fails a command that can no longer run.
    pub(crate) fn fail(self) {
        match self {
            Command::Write(_, Some(p), _) => p.fail(Error::closed()),
            Command::Close(Some(p)) => p.succeed(),
            Command::ShutdownOutput(Some(p)) => p.fail(Error::closed()),
            Command::Write(..)
            | Command::Flush
            | Command::Read
            | Command::Close(None)
            | Command::ShutdownOutput(None)
            | Command::Exec(_)
            | Command::Overflow(_) => {}
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Channel");
        d.field("id", &self.shared.id);
        if let Some(a) = &self.shared.local {
            d.field("local", &format_args!("{a}"));
        }
        if let Some(a) = &self.shared.remote {
            d.field("remote", &format_args!("{a}"));
        }
        d.field("open", &self.is_open()).finish()
    }
}

impl PartialEq for Channel {
    fn eq(&self, other: &Channel) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for Channel {}

impl std::hash::Hash for Channel {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.shared.id.hash(state);
    }
}

/// Model checks of the handle's operations against a consumer that behaves
/// like the connection task (see the `mailbox` module for the handshake).
#[cfg(all(test, weft_loom))]
mod loom_tests {
    use super::*;
    use loom::thread;
    use std::future::poll_fn;

    /// Runs the consumer side until `done` holds: run what is queued (writes
    /// succeed), check the condition, poll before parking.
    fn drive(ch: &Channel, mut done: impl FnMut(&Channel, usize) -> bool) -> usize {
        let mut ran = 0;
        let mut waiter = CommandWaiter::new();
        crate::sync::model_block_on(async {
            loop {
                for cmd in ch.take_commands() {
                    ran += 1;
                    if let Command::Write(_, Some(p), _) = cmd {
                        p.succeed();
                    }
                }
                if done(ch, ran) {
                    break;
                }
                poll_fn(|cx| ch.poll_commands(cx, &mut waiter)).await;
            }
        });
        ran
    }

    #[test]
    fn loom_writes_from_two_threads_reach_the_task() {
        loom::model(|| {
            let ch = Channel::new(None, None);
            let writers: Vec<_> = (0..2)
                .map(|_| {
                    let ch = ch.clone();
                    thread::spawn(move || ch.write_and_flush("x"))
                })
                .collect();
            drive(&ch, |_, ran| ran == 2);
            for w in writers {
                let mut f = w.join().unwrap();
                assert!(f.try_result().unwrap().is_ok());
            }
        });
    }

    /// Auto-read switched on from another thread: the task, parked with
    /// auto-read off, wakes and sees the flag.
    #[test]
    fn loom_auto_read_toggled_from_another_thread() {
        loom::model(|| {
            let ch = Channel::new(None, None);
            ch.set_auto_read(false);
            let _ = ch.take_commands();
            let t = {
                let ch = ch.clone();
                thread::spawn(move || ch.set_auto_read(true))
            };
            drive(&ch, |ch, _| ch.is_auto_read());
            t.join().unwrap();
        });
    }

    /// A close racing with a write: the write's future always resolves —
    /// written, failed by the close, or refused at once.
    #[test]
    fn loom_close_racing_with_a_write() {
        loom::model(|| {
            let ch = Channel::new(None, None);
            let w = {
                let ch = ch.clone();
                thread::spawn(move || ch.write_and_flush("x"))
            };
            for cmd in ch.take_commands() {
                if let Command::Write(_, Some(p), _) = cmd {
                    p.succeed();
                }
            }
            for cmd in ch.mark_closed() {
                cmd.fail();
            }
            let mut f = w.join().unwrap();
            assert!(
                f.try_result().is_some(),
                "the write's future never resolved"
            );
            assert!(!ch.is_open());
        });
    }
}
