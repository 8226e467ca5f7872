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
//! - a read or a write costs one counter increment and no clock read: a
//!   timer of the channel's own ([`Context::schedule`]) looks at the
//!   counters every eighth of the limit and dates the activity it finds to
//!   that look, so an idleness is reported never before the limit and at
//!   most an eighth of it after (a 300 s idle timeout fires between 300 and
//!   337.5 s after the last read).
//!
//! [`IdleStateHandler`] and [`ReadTimeoutHandler`] run on the channel's
//! timers: no task of their own, the channel's clock (tokio's on a socket,
//! so `tokio::time::pause` drives them; the virtual one of an
//! `EmbeddedChannel`, so `advance_time` tests them without sockets), and
//! nothing left behind when the channel closes. [`WriteTimeoutHandler`]
//! watches each write's outcome ([`Context::watch_write`]: a flag set when
//! it completes, the writer's own promise completing as before) and keeps
//! one timer, for the oldest write not known to be complete; no task.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use weft_core::{Channel, Context, Error, Events, Handler, Msg, Promise, TimerId};

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

/// How often the timer looks at the counters: an eighth of the limit (at
/// least 1 ms), which bounds how late an idleness is reported.
fn check_period(limit: Duration) -> Duration {
    (limit / 8).max(Duration::from_millis(1))
}

/// Turns a count into moments: the last check at which the count was seen
/// to have moved (or the start). Never earlier than the activity it stands
/// for, at most one check period later.
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

/// One watched kind of activity: its count, and optionally the channel's
/// output (bytes reaching the kernel).
#[derive(Debug)]
struct Watch {
    own: LastMoved,
    output: Option<LastMoved>,
}

impl Watch {
    fn new(count: u64, ch: &Channel, observe_output: bool, now: Instant) -> Watch {
        Watch {
            own: LastMoved::new(count, now),
            output: observe_output.then(|| LastMoved::new(ch.bytes_written(), now)),
        }
    }

    /// The moment of the last activity seen, looking at `count` at `now`.
    fn last(&mut self, count: u64, ch: &Channel, now: Instant) -> Instant {
        let own = self.own.observe(count, now);
        match &mut self.output {
            Some(o) => own.max(o.observe(ch.bytes_written(), now)),
            None => own,
        }
    }
}

/// One kind of idleness an [`IdleStateHandler`] watches.
#[derive(Debug)]
struct Watched {
    state: IdleState,
    limit: Duration,
    read: Watch,
    wrote: Watch,
    /// When the last event was fired.
    fired: Option<Instant>,
    timer: Option<TimerId>,
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
    reads: u64,
    writes: u64,
    started: bool,
    observe_output: bool,
    watched: Vec<Watched>,
}

impl IdleStateHandler {
    /// Idle times for reading, writing and both (`None`: not watched).
    pub fn new(reader: Option<Duration>, writer: Option<Duration>, all: Option<Duration>) -> Self {
        IdleStateHandler {
            reader,
            writer,
            all,
            reads: 0,
            writes: 0,
            started: false,
            observe_output: true,
            watched: Vec::new(),
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
        let now = ctx.now();
        for (state, limit) in [
            (IdleState::ReaderIdle, self.reader),
            (IdleState::WriterIdle, self.writer),
            (IdleState::AllIdle, self.all),
        ] {
            let Some(limit) = limit.filter(|d| !d.is_zero()) else {
                continue;
            };
            let ch = ctx.channel();
            let read = Watch::new(self.reads, ch, false, now);
            let wrote = Watch::new(self.writes, ch, self.observe_output, now);
            let timer = Some(ctx.schedule(check_period(limit)));
            self.watched.push(Watched {
                state,
                limit,
                read,
                wrote,
                fired: None,
                timer,
            });
        }
    }
}

#[weft_core::handler]
impl Handler for IdleStateHandler {
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
        self.reads = self.reads.wrapping_add(1);
        ctx.fire_read(msg);
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        self.writes = self.writes.wrapping_add(1);
        ctx.write_with(msg, promise);
    }
    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId) {
        let (reads, writes, now) = (self.reads, self.writes, ctx.now());
        let Some(w) = self.watched.iter_mut().find(|w| w.timer == Some(id)) else {
            return;
        };
        let ch = ctx.channel();
        let last = match w.state {
            IdleState::ReaderIdle => w.read.last(reads, ch, now),
            IdleState::WriterIdle => w.wrote.last(writes, ch, now),
            IdleState::AllIdle => w
                .read
                .last(reads, ch, now)
                .max(w.wrote.last(writes, ch, now)),
        };
        // Counted from the last event fired, unless there was activity
        // after it (then this is the first of a new run).
        let (since, first) = match w.fired {
            Some(f) if f >= last => (f, false),
            _ => (last, true),
        };
        let idle_for = now.saturating_duration_since(since);
        let period = check_period(w.limit);
        let (next, event) = if idle_for >= w.limit {
            w.fired = Some(now);
            (
                period,
                Some(IdleStateEvent {
                    state: w.state,
                    first,
                }),
            )
        } else {
            (period.min(w.limit - idle_for), None)
        };
        w.timer = Some(ctx.schedule(next));
        if let Some(ev) = event {
            ctx.fire_user_event(Box::new(ev));
        }
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
    reads: u64,
    started: bool,
    observe_output: bool,
    /// Watches the transport's reads rather than its own.
    transport_reads: bool,
    activity: Option<Watch>,
}

impl ReadTimeoutHandler {
    /// Times out after `limit` without a read (nor, by default, any output
    /// progress).
    pub fn new(limit: Duration) -> ReadTimeoutHandler {
        ReadTimeoutHandler {
            limit,
            reads: 0,
            started: false,
            observe_output: true,
            transport_reads: false,
            activity: None,
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

    /// The count of reads it watches.
    fn reads(&self, ch: &Channel) -> u64 {
        if self.transport_reads {
            ch.messages_read()
        } else {
            self.reads
        }
    }

    fn start(&mut self, ctx: &mut Context<'_>) {
        if self.started {
            return;
        }
        self.started = true;
        let ch = ctx.channel();
        self.activity = Some(Watch::new(
            self.reads(ch),
            ch,
            self.observe_output,
            ctx.now(),
        ));
        ctx.schedule(check_period(self.limit));
    }
}

impl Handler for ReadTimeoutHandler {
    /// Kept by hand: watching the transport's count of reads, it skips
    /// `channel_read` (no hop in the read path).
    fn interest(&self) -> Events {
        if self.transport_reads {
            Events::ACTIVE | Events::TIMER
        } else {
            Events::ACTIVE | Events::READ | Events::TIMER
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
        self.reads = self.reads.wrapping_add(1);
        ctx.fire_read(msg);
    }
    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        let (now, limit) = (ctx.now(), self.limit);
        let count = self.reads(ctx.channel());
        let Some(activity) = self.activity.as_mut() else {
            return;
        };
        let idle_for = now.saturating_duration_since(activity.last(count, ctx.channel(), now));
        if idle_for >= limit {
            let what = if self.observe_output {
                " or written"
            } else {
                ""
            };
            ctx.fire_exception(Error::timeout(format!("nothing read{what} for {limit:?}")));
            ctx.close();
        } else {
            ctx.schedule(check_period(limit).min(limit - idle_for));
        }
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
pub struct WriteTimeoutHandler {
    limit: Duration,
    /// The writes not known to be complete, oldest first: each one's
    /// deadline and the flag its watched promise sets.
    pending: VecDeque<(Instant, Arc<AtomicBool>)>,
    /// The timer armed for the oldest deadline.
    timer: Option<TimerId>,
}

impl WriteTimeoutHandler {
    /// Writes must complete within `limit`.
    pub fn new(limit: Duration) -> WriteTimeoutHandler {
        WriteTimeoutHandler {
            limit,
            pending: VecDeque::new(),
            timer: None,
        }
    }

    /// Forgets the completed writes at the front; arms the timer for the
    /// oldest one left, if none is armed.
    fn rearm(&mut self, ctx: &mut Context<'_>) {
        while self
            .pending
            .front()
            .is_some_and(|(_, done)| done.load(Ordering::Acquire))
        {
            self.pending.pop_front();
        }
        if self.timer.is_none() {
            if let Some((at, _)) = self.pending.front() {
                let after = at.saturating_duration_since(ctx.now());
                self.timer = Some(ctx.schedule(after));
            }
        }
    }
}

impl fmt::Debug for WriteTimeoutHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteTimeoutHandler")
            .field("limit", &self.limit)
            .field("pending", &self.pending.len())
            .finish()
    }
}

#[weft_core::handler]
impl Handler for WriteTimeoutHandler {
    /// Watches the write's promise (the writer's own, if any, completes as
    /// before): no task, one flag per write, one timer for the oldest.
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let watched = ctx.watch_write(promise, move |_| flag.store(true, Ordering::Release));
        self.pending.push_back((ctx.now() + self.limit, done));
        self.rearm(ctx);
        ctx.write_with(msg, Some(watched));
    }

    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        self.timer = None;
        self.rearm(ctx);
        let now = ctx.now();
        if self.pending.front().is_some_and(|(at, _)| *at <= now) {
            let limit = self.limit;
            self.pending.clear();
            // The stuck write (and those behind it) fail with the timeout.
            ctx.close_with_error(Error::timeout(format!(
                "write not completed within {limit:?}"
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use weft_core::EmbeddedChannel;

    #[test]
    fn they_pass_everything_through_and_time_nothing_until_time_moves() {
        let mut ch = EmbeddedChannel::builder()
            .add_last(
                "idle",
                IdleStateHandler::new(Some(Duration::from_millis(1)), None, None),
            )
            .add_last("rt", ReadTimeoutHandler::new(Duration::from_millis(1)))
            .build();
        ch.write_inbound("in");
        assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "in");
        ch.write_outbound("out");
        assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "out");
        assert!(ch.check_exception().is_ok());
        assert!(ch.is_open(), "the virtual clock has not moved");
    }

    /// Advances the virtual clock by `step` until `done` or `max` steps;
    /// the time elapsed when done.
    fn run_until(
        ch: &mut EmbeddedChannel,
        step: Duration,
        max: u32,
        mut done: impl FnMut(&mut EmbeddedChannel) -> bool,
    ) -> Option<Duration> {
        let t0 = ch.now();
        for _ in 0..max {
            ch.advance_time(step);
            if done(ch) {
                return Some(ch.now() - t0);
            }
        }
        None
    }

    #[test]
    fn a_read_timeout_fires_after_the_limit_and_within_an_eighth_of_it() {
        read_timeout_fires_after_the_limit(ReadTimeoutHandler::new);
    }

    #[test]
    fn a_read_timeout_on_the_transport_reads_fires_after_the_limit_too() {
        read_timeout_fires_after_the_limit(|d| ReadTimeoutHandler::new(d).watch_transport_reads());
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

    fn read_timeout_fires_after_the_limit(make: impl Fn(Duration) -> ReadTimeoutHandler) {
        let limit = Duration::from_millis(800);
        let mut ch = EmbeddedChannel::with_handler(make(limit));
        // Reads at 100 ms intervals for a second keep it open.
        let kept = run_until(&mut ch, Duration::from_millis(100), 10, |ch| {
            ch.write_inbound("x");
            drop(ch.read_inbound::<Bytes>());
            !ch.is_open()
        });
        assert_eq!(kept, None, "closed while reads were coming");
        // Then silence: closed at 800 to 900 ms after the last read.
        let after = run_until(&mut ch, Duration::from_millis(10), 200, |ch| !ch.is_open())
            .expect("the timeout fired");
        assert!(after >= limit, "too early: {after:?}");
        assert!(
            after <= limit + limit / 8 + Duration::from_millis(10),
            "too late: {after:?}"
        );
        let err = ch.check_exception().unwrap_err();
        assert_eq!(err.kind(), weft_core::ErrorKind::Timeout);
    }

    #[test]
    fn output_progress_keeps_a_read_timeout_off() {
        let limit = Duration::from_millis(800);
        let mut ch = EmbeddedChannel::with_handler(ReadTimeoutHandler::new(limit));
        // Nothing read for 3 s, but bytes reach the "kernel" every 100 ms.
        let closed = run_until(&mut ch, Duration::from_millis(100), 30, |ch| {
            ch.write_outbound("out");
            !ch.is_open()
        });
        assert_eq!(closed, None, "a download in progress was cut");
    }

    #[test]
    fn reader_idle_fires_once_per_idle_period_and_first_after_activity() {
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
        let t = run_until(&mut ch, step, 200, &mut next_event).unwrap();
        assert!(t >= limit && t <= limit + limit / 8 + step, "{t:?}");
        // Still idle: again after another whole period, not the first.
        let t = run_until(&mut ch, step, 200, &mut next_event).unwrap();
        assert!(t >= limit && t <= limit + step, "{t:?}");
        // A read, then idle again: the first of a new run.
        ch.write_inbound("x");
        drop(ch.read_inbound::<Bytes>());
        let t = run_until(&mut ch, step, 200, &mut next_event).unwrap();
        assert!(t >= limit && t <= limit + limit / 8 + step, "{t:?}");
        assert_eq!(seen, [true, false, true]);
        assert!(ch.is_open(), "idleness is reported, not acted on");
    }

    #[test]
    fn a_write_not_completed_in_time_fails_with_the_timeout_and_closes() {
        let limit = Duration::from_secs(2);
        let mut ch = EmbeddedChannel::with_handler(WriteTimeoutHandler::new(limit));
        // Written and flushed at once: completes, no timeout later.
        let mut quick = ch.pipeline_mut().write_and_flush(Bytes::from_static(b"a"));
        ch.run_pending_tasks();
        assert!(quick.try_result().unwrap().is_ok());
        ch.advance_time(Duration::from_secs(5));
        assert!(ch.is_open(), "a completed write timed out");
        // Written and never flushed: stuck.
        let mut stuck = ch.write_one_outbound(Bytes::from_static(b"b"));
        ch.advance_time(Duration::from_millis(1999));
        assert!(stuck.try_result().is_none());
        assert!(ch.is_open());
        ch.advance_time(Duration::from_millis(1));
        let err = stuck.try_result().expect("resolved").unwrap_err();
        assert!(err.is_timeout(), "{err}");
        assert!(!ch.is_open());
        assert!(ch.check_exception().unwrap_err().is_timeout());
    }

    #[test]
    fn a_removed_guard_leaves_no_timer_behind() {
        let mut ch = EmbeddedChannel::with_handler(ReadTimeoutHandler::new(Duration::from_secs(1)));
        ch.pipeline_mut().remove("ReadTimeoutHandler").unwrap();
        ch.advance_time(Duration::from_secs(10));
        assert!(ch.is_open());
        assert!(ch.pipeline_mut().transport().next_timer().is_none());
    }
}
