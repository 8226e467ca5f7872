//! [`ChannelTimer`]: how a connection task waits for its handlers' timers
//! (`Context::schedule`), shared by the readiness, io_uring and datagram
//! drivers.
//!
//! Contract: before each wait the task arms it with the pipeline's earliest
//! deadline ([`Transport::next_timer`]); the sleep is reset only when that
//! deadline changed, so a handler that re-arms one timer (an idle guard)
//! costs one reset per re-arm, and a channel without timers costs nothing.
//! Once the sleep fires, [`fired`](ChannelTimer::fired) reads the clock once
//! and runs every timer due ([`Transport::run_timers`]). The sleep is polled
//! once after each reset (which registers the task's waker with tokio's
//! timer); later wake-ups only ask whether it elapsed, which is cheap: a
//! connection task is its own tokio task, so its waker never changes.
//!
//! [`Transport::next_timer`]: weft_core::transport::Transport::next_timer
//! [`Transport::run_timers`]: weft_core::transport::Transport::run_timers

use std::pin::Pin;
use std::task::{Context, Poll};

use std::future::Future;
use tokio::time::{Instant, Sleep};
use weft_core::transport::Transport;

/// A connection task's wait for the earliest timer.
#[derive(Debug, Default)]
pub(crate) struct ChannelTimer {
    sleep: Option<Pin<Box<Sleep>>>,
    /// The deadline the sleep is set for; `None`: not armed.
    armed: Option<Instant>,
    /// The sleep was polled since it was set: the task's waker is
    /// registered with the timer, and it is enough to ask whether it
    /// elapsed (a poll of a sleep costs far more, every wake-up).
    registered: bool,
}

impl ChannelTimer {
    /// Sets the sleep for `next` (the pipeline's earliest deadline).
    pub(crate) fn arm(&mut self, next: Option<Instant>) {
        if next == self.armed {
            return;
        }
        self.armed = next;
        self.registered = false;
        if let Some(at) = next {
            match &mut self.sleep {
                Some(s) => s.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
    }

    /// Ready once the armed deadline passed.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (Some(_), Some(s)) = (&self.armed, &mut self.sleep) else {
            return Poll::Pending;
        };
        if self.registered {
            // The timer wakes this task (its waker does not change) when it
            // elapses.
            return if s.is_elapsed() {
                Poll::Ready(())
            } else {
                Poll::Pending
            };
        }
        self.registered = true;
        s.as_mut().poll(cx)
    }

    /// The sleep fired: runs the timers due now.
    pub(crate) fn fired(&mut self, t: &mut Transport<'_>) {
        self.armed = None;
        t.run_timers(Instant::now());
    }
}
