//! Time-based handlers: [`IdleStateHandler`], [`ReadTimeoutHandler`],
//! [`WriteTimeoutHandler`].
//!
//! Contract:
//! - [`IdleStateHandler`] fires an [`IdleStateEvent`] user event when no
//!   read, no write, or neither happened for the configured time, then again
//!   after each further such period (a write counts when it is made, which
//!   costs nothing per write; Netty counts it when it completes);
//! - [`ReadTimeoutHandler`] fires a timeout error and closes the channel when
//!   nothing was read for the configured time (a silent or half-open peer);
//! - both observe the output by default (Netty's `observeOutput`): bytes
//!   reaching the kernel count as activity, so a timeout never cuts a
//!   response that is still being written — a slow legitimate download
//!   completes — while a peer that neither sends nor takes its answer is
//!   still timed out;
//! - [`WriteTimeoutHandler`] fails a write whose promise has not completed in
//!   time with a timeout error, and closes the channel (as Netty does).
//!
//! They need a tokio runtime with timers (the transport's); each keeps one
//! small timer task per channel, which ends with the channel. Outside a
//! runtime (an `EmbeddedChannel` test) they pass everything through and
//! time nothing.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft_core::{Channel, Context, Error, Events, Handler, Msg, Promise};

/// Which kind of idleness an [`IdleStateEvent`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleState {
    /// Nothing read.
    ReaderIdle,
    /// Nothing written.
    WriterIdle,
    /// Neither read nor written.
    AllIdle,
}

/// The user event an [`IdleStateHandler`] fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdleStateEvent {
    /// The kind of idleness.
    pub state: IdleState,
    /// Whether this is the first such event since the last activity.
    pub first: bool,
}

/// Milliseconds since a process-wide base, for lock-free timestamps.
fn now_ms() -> u64 {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Default)]
struct Activity {
    last_read: AtomicU64,
    last_write: AtomicU64,
}

/// Watches a channel's output from a timer task: when its count of bytes
/// written last moved.
struct OutputWatch {
    seen: u64,
    moved_at: u64,
}

impl OutputWatch {
    fn new(ch: &Channel) -> OutputWatch {
        OutputWatch {
            seen: ch.bytes_written(),
            moved_at: 0,
        }
    }

    /// The last moment (in [`now_ms`]) output was seen moving.
    fn last_progress(&mut self, ch: &Channel) -> u64 {
        let w = ch.bytes_written();
        if w != self.seen {
            self.seen = w;
            self.moved_at = now_ms();
        }
        self.moved_at
    }
}

/// Spawns the timer task: every `period`, checks `check` (which returns the
/// time until the next check, or `None` to stop).
fn spawn_timer(
    channel: Channel,
    first: Duration,
    mut check: impl FnMut(&Channel) -> Option<Duration> + Send + 'static,
) {
    if tokio::runtime::Handle::try_current().is_err() {
        // No timers outside a runtime (an EmbeddedChannel test): nothing
        // to watch with.
        tracing::debug!("no tokio runtime: timer not started");
        return;
    }
    tokio::spawn(async move {
        let mut wait = first;
        loop {
            tokio::select! {
                _ = channel.closed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            match check(&channel) {
                Some(next) => wait = next.max(Duration::from_millis(1)),
                None => return,
            }
        }
    });
}

/// Fires [`IdleStateEvent`]s (Netty's `IdleStateHandler`).
///
/// ```no_run
/// use std::time::Duration;
/// use weft_transport::IdleStateHandler;
/// # fn f(p: &mut weft_core::Pipeline) -> Result<(), weft_core::Error> {
/// // Reader idle after 30 s, never writer- or all-idle.
/// p.add_first("idle", IdleStateHandler::new(Some(Duration::from_secs(30)), None, None))?;
/// # Ok(()) }
/// ```
pub struct IdleStateHandler {
    reader: Option<Duration>,
    writer: Option<Duration>,
    all: Option<Duration>,
    activity: Arc<Activity>,
    started: bool,
    observe_output: bool,
}

impl IdleStateHandler {
    /// Idle times for reading, writing and both (`None`: not watched).
    pub fn new(reader: Option<Duration>, writer: Option<Duration>, all: Option<Duration>) -> Self {
        IdleStateHandler {
            reader,
            writer,
            all,
            activity: Arc::default(),
            started: false,
            observe_output: true,
        }
    }

    /// Whether bytes reaching the kernel count as write activity (default:
    /// yes), so that a response still being written to a slow reader is
    /// not writer- or all-idle.
    pub fn observe_output(mut self, on: bool) -> Self {
        self.observe_output = on;
        self
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        if self.started {
            return;
        }
        self.started = true;
        let now = now_ms();
        self.activity.last_read.store(now, Ordering::Relaxed);
        self.activity.last_write.store(now, Ordering::Relaxed);
        let watched: Vec<(IdleState, Duration)> = [
            (IdleState::ReaderIdle, self.reader),
            (IdleState::WriterIdle, self.writer),
            (IdleState::AllIdle, self.all),
        ]
        .into_iter()
        .filter_map(|(s, d)| d.filter(|d| !d.is_zero()).map(|d| (s, d)))
        .collect();
        for (state, limit) in watched {
            let activity = self.activity.clone();
            let mut first = true;
            let observe = self.observe_output;
            let mut output = OutputWatch::new(ctx.channel());
            spawn_timer(ctx.channel().clone(), limit, move |ch| {
                let mut wrote = activity.last_write.load(Ordering::Relaxed);
                if observe {
                    wrote = wrote.max(output.last_progress(ch));
                }
                let last = match state {
                    IdleState::ReaderIdle => activity.last_read.load(Ordering::Relaxed),
                    IdleState::WriterIdle => wrote,
                    IdleState::AllIdle => activity.last_read.load(Ordering::Relaxed).max(wrote),
                };
                let idle_for = Duration::from_millis(now_ms().saturating_sub(last));
                if idle_for >= limit {
                    let ev = IdleStateEvent { state, first };
                    first = false;
                    ch.execute(move |p| p.fire_user_event(Box::new(ev)));
                    Some(limit)
                } else {
                    first = true;
                    Some(limit - idle_for)
                }
            });
        }
    }
}

impl Handler for IdleStateHandler {
    fn interest(&self) -> Events {
        Events::ACTIVE | Events::READ | Events::WRITE
    }
    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        if ctx.channel().is_open() {
            self.start(ctx);
        }
    }
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.start(ctx);
        ctx.fire_active();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.activity.last_read.store(now_ms(), Ordering::Relaxed);
        ctx.fire_read(msg);
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        self.activity.last_write.store(now_ms(), Ordering::Relaxed);
        ctx.write_with(msg, promise);
    }
}

impl fmt::Debug for IdleStateHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdleStateHandler")
            .field("reader", &self.reader)
            .field("writer", &self.writer)
            .field("all", &self.all)
            .finish()
    }
}

/// Closes the channel with a timeout error when nothing was read for a while
/// (Netty's `ReadTimeoutHandler`).
pub struct ReadTimeoutHandler {
    limit: Duration,
    last_read: Arc<AtomicU64>,
    started: bool,
    observe_output: bool,
}

impl ReadTimeoutHandler {
    /// Times out after `limit` without a read (nor, by default, any output
    /// progress).
    pub fn new(limit: Duration) -> ReadTimeoutHandler {
        ReadTimeoutHandler {
            limit,
            last_read: Arc::default(),
            started: false,
            observe_output: true,
        }
    }

    /// Whether bytes reaching the kernel count as activity (default: yes):
    /// the timeout then never cuts a response that is still being written,
    /// and still closes a peer that neither sends nor takes its answer.
    pub fn observe_output(mut self, on: bool) -> Self {
        self.observe_output = on;
        self
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        if self.started {
            return;
        }
        self.started = true;
        self.last_read.store(now_ms(), Ordering::Relaxed);
        let last_read = self.last_read.clone();
        let limit = self.limit;
        let observe = self.observe_output;
        let mut output = OutputWatch::new(ctx.channel());
        spawn_timer(ctx.channel().clone(), limit, move |ch| {
            let mut last = last_read.load(Ordering::Relaxed);
            if observe {
                last = last.max(output.last_progress(ch));
            }
            let idle_for = Duration::from_millis(now_ms().saturating_sub(last));
            if idle_for >= limit {
                ch.execute(move |p| {
                    p.fire_exception(Error::timeout(format!(
                        "nothing read{} for {limit:?}",
                        if observe { " or written" } else { "" }
                    )));
                    p.close();
                });
                None
            } else {
                Some(limit - idle_for)
            }
        });
    }
}

impl Handler for ReadTimeoutHandler {
    fn interest(&self) -> Events {
        Events::ACTIVE | Events::READ
    }
    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        if ctx.channel().is_open() {
            self.start(ctx);
        }
    }
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.start(ctx);
        ctx.fire_active();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.last_read.store(now_ms(), Ordering::Relaxed);
        ctx.fire_read(msg);
    }
}

impl fmt::Debug for ReadTimeoutHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTimeoutHandler")
            .field("limit", &self.limit)
            .finish()
    }
}

/// Fails a write that has not completed in time, and closes the channel
/// (Netty's `WriteTimeoutHandler`).
#[derive(Debug)]
pub struct WriteTimeoutHandler {
    limit: Duration,
}

impl WriteTimeoutHandler {
    /// Writes must complete within `limit`.
    pub fn new(limit: Duration) -> WriteTimeoutHandler {
        WriteTimeoutHandler { limit }
    }
}

impl Handler for WriteTimeoutHandler {
    fn interest(&self) -> Events {
        Events::WRITE
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        if tokio::runtime::Handle::try_current().is_err() {
            return ctx.write_with(msg, promise); // no timers here
        }
        let (p, done) = Promise::new();
        ctx.write_with(msg, Some(p));
        let ch = ctx.channel().clone();
        let limit = self.limit;
        tokio::spawn(async move {
            match tokio::time::timeout(limit, done).await {
                Ok(r) => {
                    if let Some(orig) = promise {
                        orig.complete(r);
                    }
                }
                Err(_) => {
                    let err = Error::timeout(format!("write not completed within {limit:?}"));
                    if let Some(orig) = promise {
                        orig.fail(err.clone());
                    }
                    ch.execute(move |p| {
                        p.fire_exception(err);
                        p.close();
                    });
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use weft_core::EmbeddedChannel;

    #[test]
    fn without_a_runtime_they_pass_everything_through() {
        let mut ch = EmbeddedChannel::builder()
            .add_last(
                "idle",
                IdleStateHandler::new(Some(Duration::from_millis(1)), None, None),
            )
            .add_last("rt", ReadTimeoutHandler::new(Duration::from_millis(1)))
            .add_last("wt", WriteTimeoutHandler::new(Duration::from_millis(1)))
            .build();
        ch.write_inbound("in");
        assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "in");
        ch.write_outbound("out");
        assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "out");
        assert!(ch.check_exception().is_ok());
        assert!(ch.is_open());
    }
}
