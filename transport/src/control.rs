//! [`ServerCtl`]: what a server shares with its connection tasks — the
//! shutdown phase and the registry of open channels.
//!
//! Contract:
//! - the phase only moves forward (running → draining → abort). Each change
//!   is stored first, then every registered channel is sent a command, so
//!   that its task wakes and reads the new phase (the rule of the `Channel`
//!   handshake, model-checked in weft-core);
//! - a connection registers its channel before its task starts and
//!   unregisters when the task ends; the last one out wakes whoever waits
//!   for the server to drain.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use weft_core::{Channel, ChannelId};

/// Where a server is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Phase {
    /// Accepting and serving.
    Running = 0,
    /// Accepting no more; channels finish writing what they flushed.
    Draining = 1,
    /// The shutdown timeout passed: channels close now.
    Abort = 2,
}

/// Shared by a server and its connection tasks.
pub(crate) struct ServerCtl {
    phase: AtomicU8,
    channels: Mutex<HashMap<ChannelId, Channel>>,
    /// Notified when the phase changes.
    changed: Notify,
    /// Notified when the last channel closes.
    drained: Notify,
    /// Set, and `stopped_notify` notified, once a shutdown has completed.
    stopped: AtomicBool,
    stopped_notify: Notify,
}

impl ServerCtl {
    pub(crate) fn new() -> ServerCtl {
        ServerCtl {
            phase: AtomicU8::new(Phase::Running as u8),
            channels: Mutex::new(HashMap::new()),
            changed: Notify::new(),
            drained: Notify::new(),
            stopped: AtomicBool::new(false),
            stopped_notify: Notify::new(),
        }
    }

    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Running,
            1 => Phase::Draining,
            _ => Phase::Abort,
        }
    }

    /// Moves the phase forward to `p` (never back) and wakes every task.
    pub(crate) fn set_phase(&self, p: Phase) {
        if self.phase.fetch_max(p as u8, Ordering::AcqRel) >= p as u8 {
            return;
        }
        self.changed.notify_waiters();
        for ch in self.lock().values() {
            ch.execute(|_| {});
        }
    }

    /// Resolves when the phase has left `Running`.
    pub(crate) async fn stopped_running(&self) {
        wait_until(&self.changed, || self.phase() != Phase::Running).await;
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ChannelId, Channel>> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, channel: &Channel) {
        self.lock().insert(channel.id(), channel.clone());
    }

    pub(crate) fn unregister(&self, id: ChannelId) {
        let mut chans = self.lock();
        chans.remove(&id);
        if chans.is_empty() {
            drop(chans);
            self.drained.notify_waiters();
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }

    pub(crate) fn channels(&self) -> Vec<Channel> {
        self.lock().values().cloned().collect()
    }

    /// Resolves once no channel is registered.
    pub(crate) async fn all_closed(&self) {
        wait_until(&self.drained, || self.count() == 0).await;
    }

    /// Records that a shutdown completed and wakes [`closed`](Self::closed).
    pub(crate) fn mark_stopped(&self) {
        self.stopped.store(true, Ordering::Release);
        self.stopped_notify.notify_waiters();
    }

    /// Resolves once a shutdown has completed.
    pub(crate) async fn closed(&self) {
        wait_until(&self.stopped_notify, || {
            self.stopped.load(Ordering::Acquire)
        })
        .await;
    }
}

/// Resolves once `done()` holds, re-checking it whenever `notify` fires.
/// The wait is registered before each check, so a notification between the
/// check and the wait is not lost.
async fn wait_until(notify: &Notify, done: impl Fn() -> bool) {
    loop {
        let n = notify.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if done() {
            return;
        }
        n.await;
    }
}
