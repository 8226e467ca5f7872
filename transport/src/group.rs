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
//! worthless), and closed only if it still reaches its cap.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

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
}

impl fmt::Debug for ChannelGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelGroup")
            .field("len", &self.len())
            .finish()
    }
}
