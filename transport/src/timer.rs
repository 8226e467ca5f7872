//! [`ChannelTimer`]: how a connection task waits for its handlers' timers
//! (`Context::schedule`), shared by the readiness, io_uring and datagram
//! drivers.
//!
//! Contract: before each wait the task arms it with the pipeline's earliest
//! deadline ([`Transport::next_timer`]); the sleep is reset only when that
//! deadline changed, so a handler that re-arms one timer (an idle guard)
//! costs one reset per re-arm, and a channel without timers costs nothing.
//! Once the sleep fires, [`fired`](ChannelTimer::fired) reads the clock once
//! and runs every timer due ([`Transport::run_timers`]).
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
}

impl ChannelTimer {
    /// Sets the sleep for `next` (the pipeline's earliest deadline).
    pub(crate) fn arm(&mut self, next: Option<Instant>) {
        if next == self.armed {
            return;
        }
        self.armed = next;
        if let Some(at) = next {
            match &mut self.sleep {
                Some(s) => s.as_mut().reset(at),
                None => self.sleep = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
    }

    /// Ready once the armed deadline passed.
    pub(crate) fn poll_due(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match (&self.armed, &mut self.sleep) {
            (Some(_), Some(s)) => s.as_mut().poll(cx),
            _ => Poll::Pending,
        }
    }

    /// The sleep fired: runs the timers due now.
    pub(crate) fn fired(&mut self, t: &mut Transport<'_>) {
        self.armed = None;
        t.run_timers(Instant::now());
    }
}
