//! [`ReadBudget`]: backpressure from a consumer on another task or thread
//! to a channel's reads.
//!
//! Contract: the producer side (a handler, on the connection's task)
//! [`add`](ReadBudget::add)s the bytes it hands to the consumer *before*
//! handing them over; past the high mark the channel's auto-read is turned
//! off, so the socket is not read and TCP flow control holds the peer. The
//! consumer [`take`](ReadBudget::take)s them as it is done with them; below
//! the low mark auto-read is turned back on. So at most about the high mark
//! (plus one read) waits for a slow consumer, whatever the peer sends.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::Channel;

/// Bytes handed to a slower consumer, against two marks; cheap to clone
/// (clones share the count).
///
/// ```
/// use weft_core::{EmbeddedChannel, ReadBudget};
///
/// let ch = EmbeddedChannel::new();
/// let budget = ReadBudget::new(1024, 256);
/// budget.add(2000, ch.channel()); // the handler passed 2000 bytes on
/// assert!(!ch.channel().is_auto_read());
/// budget.take(1900, ch.channel()); // the consumer is done with most of them
/// assert!(ch.channel().is_auto_read());
/// ```
#[derive(Clone)]
pub struct ReadBudget {
    held: Arc<AtomicUsize>,
    high: usize,
    low: usize,
}

impl ReadBudget {
    /// A budget whose channel's reads stop past `high` bytes held and
    /// resume below `low` (at most `high`).
    pub fn new(high: usize, low: usize) -> ReadBudget {
        ReadBudget {
            held: Arc::new(AtomicUsize::new(0)),
            high,
            low: low.min(high),
        }
    }

    /// `n` more bytes of `channel`'s are handed to the consumer; call
    /// before handing them.
    pub fn add(&self, n: usize, channel: &Channel) {
        let held = self.held.fetch_add(n, Ordering::AcqRel) + n;
        if held > self.high && channel.is_auto_read() {
            channel.set_auto_read(false);
        }
    }

    /// The consumer is done with `n` of `channel`'s bytes (or they were
    /// never handed over after all).
    pub fn take(&self, n: usize, channel: &Channel) {
        let held = self.held.fetch_sub(n, Ordering::AcqRel) - n;
        if held < self.low && !channel.is_auto_read() {
            channel.set_auto_read(true);
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }
}

impl fmt::Debug for ReadBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadBudget")
            .field("held", &self.held())
            .field("high", &self.high)
            .field("low", &self.low)
            .finish()
    }
}
