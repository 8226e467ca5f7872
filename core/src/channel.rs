//! [`Channel`]: a handle to one connection, usable from any task.
//!
//! Contract:
//! - a `Channel` is `Clone + Send + Sync`; every operation on it is queued to
//!   the channel's own task, which runs it through the pipeline from the
//!   tail, so handler methods never run concurrently for one channel;
//! - the queue costs nothing until it is used (an empty `Vec` behind a lock);
//! - once the channel is closed, new writes fail at once with a
//!   closed-channel error, and writes still queued fail the same way;
//! - state reads ([`is_writable`](Channel::is_writable),
//!   [`is_open`](Channel::is_open)) are lock-free.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;
use tokio::sync::Notify;

use crate::{Error, Msg, Pipeline, Promise, WriteFuture};

/// A channel's identity, unique within the process.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelId(u64);

impl ChannelId {
    fn next() -> ChannelId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        ChannelId(NEXT.fetch_add(1, Ordering::Relaxed))
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
}

struct Shared {
    id: ChannelId,
    local: Option<Address>,
    remote: Option<Address>,
    writable: AtomicBool,
    open: AtomicBool,
    auto_read: AtomicBool,
    /// Commands from other tasks; `None` once the channel is closed.
    queue: Mutex<Option<Vec<Command>>>,
    has_commands: AtomicBool,
    waker: AtomicWaker,
    closed: Notify,
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
                queue: Mutex::new(Some(Vec::new())),
                has_commands: AtomicBool::new(false),
                waker: AtomicWaker::new(),
                closed: Notify::new(),
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
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        match q.as_mut() {
            Some(q) => {
                q.push(cmd);
                self.shared.has_commands.store(true, Ordering::Release);
            }
            None => return Err(cmd),
        }
        drop(q);
        self.shared.waker.wake();
        Ok(())
    }

    fn push_write(&self, msg: Msg, promise: Option<Promise>, flush: bool) {
        if let Err(Command::Write(_, Some(p), _)) = self.push(Command::Write(msg, promise, flush)) {
            p.fail(Error::closed());
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

    // ---- for the channel's own task ----

    /// Registers the task to wake when commands arrive and tells whether
    /// some are waiting. Transports call this from their connection task.
    pub fn poll_commands(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut registered = false;
        self.poll_commands_registered(cx, &mut registered)
    }

    /// [`poll_commands`](Self::poll_commands) for a task that polls often:
    /// `registered` (kept by the caller, initially `false`) remembers that
    /// the task's waker is in place, so it is not stored again on every poll.
    /// The waker is consumed only by a command's arrival, which this call
    /// reports, so the flag is cleared exactly then.
    pub fn poll_commands_registered(
        &self,
        cx: &mut Context<'_>,
        registered: &mut bool,
    ) -> Poll<()> {
        if self.shared.has_commands.load(Ordering::Acquire) {
            *registered = false;
            return Poll::Ready(());
        }
        if *registered {
            return Poll::Pending;
        }
        self.shared.waker.register(cx.waker());
        *registered = true;
        if self.shared.has_commands.load(Ordering::Acquire) {
            *registered = false;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Whether commands are waiting.
    pub fn has_commands(&self) -> bool {
        self.shared.has_commands.load(Ordering::Acquire)
    }

    pub(crate) fn take_commands(&self) -> Vec<Command> {
        if !self.shared.has_commands.load(Ordering::Acquire)
            || !self.shared.has_commands.swap(false, Ordering::AcqRel)
        {
            return Vec::new();
        }
        let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
        match q.as_mut() {
            Some(q) => std::mem::take(q),
            None => Vec::new(),
        }
    }

    pub(crate) fn set_writable(&self, writable: bool) {
        self.shared.writable.store(writable, Ordering::Release);
    }

    /// Marks the channel closed and returns the commands that were still
    /// queued, for the caller to fail.
    pub(crate) fn mark_closed(&self) -> Vec<Command> {
        let left = {
            let mut q = self.shared.queue.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.open.store(false, Ordering::Release);
            q.take().unwrap_or_default()
        };
        self.shared.has_commands.store(false, Ordering::Release);
        self.shared.closed.notify_waiters();
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
            _ => {}
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
