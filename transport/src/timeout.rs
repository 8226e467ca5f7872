//! Time-based handlers: [`IdleStateHandler`], [`ReadTimeoutHandler`],
//! [`WriteTimeoutHandler`].
//!
//! Contract:
//! - [`IdleStateHandler`] fires an [`IdleStateEvent`] user event when no
//!   read, no write, or neither happened for the configured time, then again
//!   after each further such period (a write counts when it is made; Netty
//!   counts it when it completes);
//! - [`ReadTimeoutHandler`] fires a timeout error and closes the channel when
//!   nothing was read for the configured time (a silent or half-open peer);
//! - both observe the output by default (Netty's `observeOutput`): bytes
//!   reaching the kernel count as activity, so a timeout never cuts a
//!   response that is still being written — a slow legitimate download
//!   completes — while a peer that neither sends nor takes its answer is
//!   still timed out;
//! - [`WriteTimeoutHandler`] fails a write whose promise has not completed in
//!   time with a timeout error, and closes the channel (as Netty does);
//! - a read or a write costs one counter increment and no clock read: the
//!   timer task looks at the counters every eighth of the limit and dates
//!   the activity it finds to that look, so an idleness is reported never
//!   before the limit and at most an eighth of it after (a 300 s idle
//!   timeout fires between 300 and 337.5 s after the last read).
//!
//! They need a tokio runtime with timers (the transport's), and follow its
//! clock (so `tokio::time::pause` drives them in tests); each keeps one
//! small timer task per channel and watched state, which ends with the
//! channel. Outside a runtime (an `EmbeddedChannel` test) they pass
//! everything through and time nothing.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

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

/// Events counted by the handler on the channel's task, read by its timer
/// task: one writer, so a load and a store (no locked instruction).
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    fn bump(&self) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(1),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// How often the timer looks at the counters: an eighth of the limit (at
/// least 1 ms), which bounds how late an idleness is reported.
fn check_period(limit: Duration) -> Duration {
    (limit / 8).max(Duration::from_millis(1))
}

/// Turns a count into moments, on the timer task: the last check at which
/// the count was seen to have moved (or the start). Never earlier than the
/// activity it stands for, at most one check period later.
#[derive(Debug)]
struct LastMoved {
    seen: u64,
    at: Instant,
}

impl LastMoved {
    fn new(count: u64, now: Instant) -> LastMoved {
        LastMoved {
            seen: count,
            at: now,
        }
    }

    /// Looks at `count` at `now`; the moment of the last move.
    fn observe(&mut self, count: u64, now: Instant) -> Instant {
        if count != self.seen {
            self.seen = count;
            self.at = now;
        }
        self.at
    }
}

/// What a watch counts as activity of its kind.
enum Count {
    /// The messages that passed the handler.
    Own(Arc<Counter>),
    /// The messages the transport read ([`Channel::messages_read`]).
    TransportReads,
}

impl Count {
    fn get(&self, ch: &Channel) -> u64 {
        match self {
            Count::Own(c) => c.get(),
            Count::TransportReads => ch.messages_read(),
        }
    }
}

/// One watched kind of activity: its count, and optionally the channel's
/// output (bytes reaching the kernel).
struct Watch {
    count: Count,
    own: LastMoved,
    output: Option<LastMoved>,
}

impl Watch {
    fn new(count: Count, ch: &Channel, observe_output: bool, now: Instant) -> Watch {
        Watch {
            own: LastMoved::new(count.get(ch), now),
            count,
            output: observe_output.then(|| LastMoved::new(ch.bytes_written(), now)),
        }
    }

    /// The moment of the last activity seen, looking at `now`.
    fn last(&mut self, ch: &Channel, now: Instant) -> Instant {
        let own = self.own.observe(self.count.get(ch), now);
        match &mut self.output {
            Some(o) => own.max(o.observe(ch.bytes_written(), now)),
            None => own,
        }
    }
}

/// Spawns the timer task: after `first`, then after each wait it returns,
/// calls `check` with the time (`None`: stop).
fn spawn_timer(
    channel: Channel,
    first: Duration,
    mut check: impl FnMut(&Channel, Instant) -> Option<Duration> + Send + 'static,
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
            match check(&channel, Instant::now()) {
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
    reads: Arc<Counter>,
    writes: Arc<Counter>,
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
            reads: Arc::default(),
            writes: Arc::default(),
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
        let watched: Vec<(IdleState, Duration)> = [
            (IdleState::ReaderIdle, self.reader),
            (IdleState::WriterIdle, self.writer),
            (IdleState::AllIdle, self.all),
        ]
        .into_iter()
        .filter_map(|(s, d)| d.filter(|d| !d.is_zero()).map(|d| (s, d)))
        .collect();
        let ch = ctx.channel();
        for (state, limit) in watched {
            let now = Instant::now();
            let mut read = Watch::new(Count::Own(self.reads.clone()), ch, false, now);
            let mut wrote = Watch::new(
                Count::Own(self.writes.clone()),
                ch,
                self.observe_output,
                now,
            );
            // When the last event was fired.
            let mut fired: Option<Instant> = None;
            let period = check_period(limit);
            spawn_timer(ch.clone(), period, move |ch, now| {
                let last = match state {
                    IdleState::ReaderIdle => read.last(ch, now),
                    IdleState::WriterIdle => wrote.last(ch, now),
                    IdleState::AllIdle => read.last(ch, now).max(wrote.last(ch, now)),
                };
                // Counted from the last event fired, unless there was
                // activity after it (then this is the first of a new run).
                let (since, first) = match fired {
                    Some(f) if f >= last => (f, false),
                    _ => (last, true),
                };
                let idle_for = now.saturating_duration_since(since);
                if idle_for >= limit {
                    fired = Some(now);
                    let ev = IdleStateEvent { state, first };
                    ch.execute(move |p| p.fire_user_event(Box::new(ev)));
                    Some(period)
                } else {
                    Some(period.min(limit - idle_for))
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
        self.reads.bump();
        ctx.fire_read(msg);
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        self.writes.bump();
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
    reads: Arc<Counter>,
    started: bool,
    observe_output: bool,
    /// Watches the transport's reads rather than its own.
    transport_reads: bool,
}

impl ReadTimeoutHandler {
    /// Times out after `limit` without a read (nor, by default, any output
    /// progress).
    pub fn new(limit: Duration) -> ReadTimeoutHandler {
        ReadTimeoutHandler {
            limit,
            reads: Arc::default(),
            started: false,
            observe_output: true,
            transport_reads: false,
        }
    }

    /// Watches the messages the transport reads
    /// ([`Channel::messages_read`]) instead of those that reach this
    /// handler, and stays out of the read path (no hop per read). For a
    /// handler at the head of the pipeline (`add_first`) the two are the
    /// same reads; further in, behind a decoder, a peer that sends a
    /// frame's bytes slowly would count as active where the default
    /// counts only whole frames.
    pub fn watch_transport_reads(mut self) -> Self {
        self.transport_reads = true;
        self
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
        let limit = self.limit;
        let observe = self.observe_output;
        let ch = ctx.channel();
        let count = if self.transport_reads {
            Count::TransportReads
        } else {
            Count::Own(self.reads.clone())
        };
        let mut activity = Watch::new(count, ch, observe, Instant::now());
        let period = check_period(limit);
        spawn_timer(ch.clone(), period, move |ch, now| {
            let idle_for = now.saturating_duration_since(activity.last(ch, now));
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
                Some(period.min(limit - idle_for))
            }
        });
    }
}

impl Handler for ReadTimeoutHandler {
    fn interest(&self) -> Events {
        if self.transport_reads {
            Events::ACTIVE
        } else {
            Events::ACTIVE | Events::READ
        }
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
        self.reads.bump();
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

    /// Advances the paused clock by `step` until `done` or `max` (in
    /// steps), running what the timer queued; the elapsed time when done.
    async fn run_until(
        ch: &mut EmbeddedChannel,
        step: Duration,
        max: u32,
        mut done: impl FnMut(&mut EmbeddedChannel) -> bool,
    ) -> Option<Duration> {
        let t0 = Instant::now();
        for _ in 0..max {
            tokio::time::advance(step).await;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            ch.run_pending_tasks();
            if done(ch) {
                return Some(t0.elapsed());
            }
        }
        None
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_timeout_fires_after_the_limit_and_within_an_eighth_of_it() {
        read_timeout_fires_after_the_limit(ReadTimeoutHandler::new).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_timeout_on_the_transport_reads_fires_after_the_limit_too() {
        read_timeout_fires_after_the_limit(|d| ReadTimeoutHandler::new(d).watch_transport_reads())
            .await;
    }

    #[test]
    fn a_read_timeout_on_the_transport_reads_is_out_of_the_read_path() {
        let watching = ReadTimeoutHandler::new(Duration::from_secs(1)).watch_transport_reads();
        assert!(!watching.interest().contains(Events::READ));
        assert!(ReadTimeoutHandler::new(Duration::from_secs(1))
            .interest()
            .contains(Events::READ));
        let mut ch = EmbeddedChannel::with_handler(watching);
        ch.write_inbound("a");
        ch.write_inbound_all(["b", "c"]);
        assert_eq!(ch.channel().messages_read(), 3);
    }

    async fn read_timeout_fires_after_the_limit(make: impl Fn(Duration) -> ReadTimeoutHandler) {
        let limit = Duration::from_millis(800);
        let mut ch = EmbeddedChannel::with_handler(make(limit));
        // Reads at 100 ms intervals for a second keep it open.
        let kept = run_until(&mut ch, Duration::from_millis(100), 10, |ch| {
            ch.write_inbound("x");
            drop(ch.read_inbound::<Bytes>());
            !ch.is_open()
        })
        .await;
        assert_eq!(kept, None, "closed while reads were coming");
        // Then silence: closed at 800 to 900 ms after the last read.
        let after = run_until(&mut ch, Duration::from_millis(10), 200, |ch| !ch.is_open())
            .await
            .expect("the timeout fired");
        assert!(after >= limit, "too early: {after:?}");
        assert!(
            after <= limit + limit / 8 + Duration::from_millis(10),
            "too late: {after:?}"
        );
        let err = ch.check_exception().unwrap_err();
        assert_eq!(err.kind(), weft_core::ErrorKind::Timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn reader_idle_fires_once_per_idle_period_and_first_after_activity() {
        let limit = Duration::from_millis(400);
        let mut ch = EmbeddedChannel::with_handler(IdleStateHandler::new(Some(limit), None, None));
        let mut seen = Vec::new();
        let mut next_event = |ch: &mut EmbeddedChannel| {
            let ev = ch.read_user_event::<IdleStateEvent>();
            if let Some(e) = ev {
                seen.push(e.first);
            }
            ev.is_some()
        };
        let step = Duration::from_millis(5);
        let t = run_until(&mut ch, step, 200, &mut next_event)
            .await
            .unwrap();
        assert!(t >= limit && t <= limit + limit / 8 + step, "{t:?}");
        // Still idle: again after another whole period, not the first.
        let t = run_until(&mut ch, step, 200, &mut next_event)
            .await
            .unwrap();
        assert!(t >= limit && t <= limit + step, "{t:?}");
        // A read, then idle again: the first of a new run.
        ch.write_inbound("x");
        drop(ch.read_inbound::<Bytes>());
        let t = run_until(&mut ch, step, 200, &mut next_event)
            .await
            .unwrap();
        assert!(t >= limit && t <= limit + limit / 8 + step, "{t:?}");
        assert_eq!(seen, [true, false, true]);
        assert!(ch.is_open(), "idleness is reported, not acted on");
    }
}
