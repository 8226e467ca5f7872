//! [`ChannelGroup`]: a set of channels with a broadcast write.
//!
//! Contract: a channel added to a group leaves it by itself when it closes;
//! a broadcast writes the same message (cloned: for `Bytes`, a reference
//! count, never a copy of the data) to every member.
//!
//! Slow members: a broadcast is a write from another task, so it counts
//! toward each member's watermark and cap when it is made. By default
//! ([`SlowMembers::Close`]) a member that falls so far behind that a
//! broadcast would pass its outbound cap has that write refused and is
//! closed: one member that never reads cannot hold the sender's memory.
//! With [`SlowMembers::Skip`] a member above its high watermark is skipped
//! for that broadcast instead (lossy: for feeds where a late message is
//! worthless), and closed only if it still reaches its cap. With
//! [`SlowMembers::PauseSender`] the sender is slowed instead: a broadcast
//! made with [`write_and_flush_from`](ChannelGroup::write_and_flush_from)
//! that leaves members above their high watermark stops the sender's
//! reads until each of them is writable again (below its low watermark),
//! so a room runs at the pace of its slowest reader and nobody who reads
//! is dropped; a member that stays above its mark for the policy's
//! `stall` is closed (it is not reading), and the sender goes on.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft_core::{Channel, ChannelId, Error, Msg};

/// A set of open channels.
///
/// ```no_run
/// use weft_transport::ChannelGroup;
/// # fn f(ch: weft_core::Channel) {
/// let group = ChannelGroup::new();
/// group.add(ch);
/// group.write_and_flush(bytes::Bytes::from_static(b"to everyone\n"));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct ChannelGroup {
    members: Arc<Mutex<HashMap<ChannelId, Channel>>>,
    slow: SlowMembers,
    /// Senders whose reads are paused for laggards (`PauseSender`).
    paused: Arc<Mutex<HashSet<ChannelId>>>,
}

/// What a broadcast does with a member that is not keeping up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowMembers {
    /// Write to it anyway; past its outbound cap the write is refused and
    /// the member is closed (the default).
    #[default]
    Close,
    /// Skip it while it is above its high watermark (the message is lost
    /// for that member); past its cap it is still closed.
    Skip,
    /// Slow the sender of a [`write_and_flush_from`](ChannelGroup::write_and_flush_from):
    /// while members are above their high watermark after its broadcast,
    /// the sender's reads are paused (auto-read off, back on once each of
    /// them is writable again). A member still above its mark `stall`
    /// after the pause began is closed: it is not reading. Past its cap a
    /// member is closed, as with `Close`.
    PauseSender {
        /// How long a member may hold the sender back.
        stall: Duration,
    },
}

impl ChannelGroup {
    /// An empty group.
    pub fn new() -> ChannelGroup {
        ChannelGroup::default()
    }

    /// An empty group with the given policy for slow members.
    pub fn with_slow_members(policy: SlowMembers) -> ChannelGroup {
        ChannelGroup {
            members: Arc::default(),
            slow: policy,
            paused: Arc::default(),
        }
    }

    /// Adds a channel; it leaves the group when it closes. Must be called
    /// inside a tokio runtime (a small task watches the channel).
    pub fn add(&self, channel: Channel) {
        if !channel.is_open() {
            return;
        }
        let id = channel.id();
        self.lock().insert(id, channel.clone());
        let members = Arc::downgrade(&self.members);
        tokio::spawn(async move {
            channel.closed().await;
            if let Some(m) = members.upgrade() {
                m.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            }
        });
    }

    /// Removes a channel.
    pub fn remove(&self, id: ChannelId) -> Option<Channel> {
        self.lock().remove(&id)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether the group is empty.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The members.
    pub fn channels(&self) -> Vec<Channel> {
        self.lock().values().cloned().collect()
    }

    /// Writes and flushes `msg` to every member but `except`; resolves when
    /// every write completed, with the first error if any failed.
    pub fn write_and_flush_except<M>(
        &self,
        msg: M,
        except: Option<ChannelId>,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static
    where
        M: Into<Msg> + Clone,
    {
        let futures: Vec<_> = self
            .lock()
            .values()
            .filter(|c| Some(c.id()) != except)
            .filter(|c| self.slow != SlowMembers::Skip || c.is_writable())
            .map(|c| c.write_and_flush(msg.clone()))
            .collect();
        async move {
            let mut first = Ok(());
            for r in futures::future::join_all(futures).await {
                if first.is_ok() {
                    first = r;
                }
            }
            first
        }
    }

    /// Writes and flushes `msg` to every member.
    pub fn write_and_flush<M>(
        &self,
        msg: M,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static
    where
        M: Into<Msg> + Clone,
    {
        self.write_and_flush_except(msg, None)
    }

    /// Writes and flushes `msg` to every member, as sent by `sender` (a
    /// member or not; it gets the message too if it is one). With
    /// [`SlowMembers::PauseSender`], members that this leaves above their
    /// high watermark pause `sender`'s reads until they are writable again
    /// or closed for stalling; with the other policies this is
    /// [`write_and_flush`](Self::write_and_flush). Must be called inside
    /// a tokio runtime when it may pause (a small task waits for the
    /// laggards).
    pub fn write_and_flush_from<M>(
        &self,
        sender: &Channel,
        msg: M,
    ) -> impl std::future::Future<Output = Result<(), Error>> + Send + 'static
    where
        M: Into<Msg> + Clone,
    {
        let done = self.write_and_flush_except(msg, None);
        if let SlowMembers::PauseSender { stall } = self.slow {
            self.pause_for_laggards(sender, stall);
        }
        done
    }

    /// Pauses `sender`'s reads while members are above their high
    /// watermark; closes those still there after `stall`.
    fn pause_for_laggards(&self, sender: &Channel, stall: Duration) {
        let laggards: Vec<Channel> = self
            .lock()
            .values()
            .filter(|c| !c.is_writable() && c.is_open())
            .cloned()
            .collect();
        if laggards.is_empty() || !sender.is_auto_read() {
            return;
        }
        let id = sender.id();
        if !self.paused_set().insert(id) {
            return; // paused already, by an earlier broadcast
        }
        tracing::debug!(
            channel = %id,
            laggards = laggards.len(),
            "members are behind: the sender's reads are paused"
        );
        sender.set_auto_read(false);
        let sender = sender.clone();
        let paused = Arc::clone(&self.paused);
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + stall;
            for member in laggards {
                if tokio::time::timeout_at(deadline, member.writable())
                    .await
                    .is_err()
                {
                    tracing::debug!(
                        channel = %member.id(),
                        ?stall,
                        "a member held the sender back too long: closed"
                    );
                    drop(member.close());
                }
            }
            paused.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            if sender.is_open() {
                sender.set_auto_read(true);
            }
        });
    }

    /// Closes every member.
    pub fn close(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let futures: Vec<_> = self.lock().values().map(|c| c.close()).collect();
        async move {
            futures::future::join_all(futures).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ChannelId, Channel>> {
        self.members.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn paused_set(&self) -> std::sync::MutexGuard<'_, HashSet<ChannelId>> {
        self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for ChannelGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelGroup")
            .field("len", &self.len())
            .finish()
    }
}
