//! Lingering close (RFC 9112 §9.6, nginx's `lingering_close`): what a
//! channel without half-closure does after its own output was shut down.
//!
//! Contract:
//! - it starts when an output shutdown the pipeline asked for succeeded and
//!   half-closure is off (with half-closure on, the application owns the
//!   input and nothing here applies);
//! - from then on the channel keeps reading (so the peer's last requests
//!   do not turn the close into a reset that destroys the answer in its
//!   receive buffer) for at most [`ChannelOptions::linger`]'s time and
//!   bytes (default [`DEFAULT_LINGER_TIME`], [`DEFAULT_LINGER_BYTES`]),
//!   then closes; end of input closes it earlier, as always;
//! - what it reads then is dropped by the transport: no handler sees it
//!   (nobody could answer it), it costs no decoding, and it is not
//!   activity to an idle guard ([`Channel::messages_read`] does not move);
//! - so a peer that keeps sending after its connection was answered for
//!   the last time (after a 400, say) costs a bounded time and a bounded
//!   amount of reading, never a sink that swallows for ever (an attacking
//!   client once made http-hello read and discard 159 GB in 35 s).
//!
//! [`ChannelOptions::linger`]: crate::ChannelOptions::linger
//! [`Channel::messages_read`]: weft_core::Channel::messages_read

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::options::ChannelOptions;

/// Default longest linger after the output is shut down.
pub(crate) const DEFAULT_LINGER_TIME: Duration = Duration::from_secs(5);
/// Default most bytes read while lingering.
pub(crate) const DEFAULT_LINGER_BYTES: u64 = 1 << 20;

/// A channel's linger, once its output is shut down.
#[derive(Debug)]
pub(crate) struct Linger {
    /// The bytes read before the linger began.
    read_at_start: u64,
    most: u64,
    until: Pin<Box<tokio::time::Sleep>>,
}

impl Linger {
    /// The linger that starts now, with `read` bytes read so far; `None`
    /// when half-closure is on.
    pub(crate) fn start(opts: &ChannelOptions, read: u64) -> Option<Linger> {
        if opts.allow_half_closure {
            return None;
        }
        tracing::debug!(
            time = ?opts.linger_time,
            bytes = opts.linger_bytes,
            "output shut down: lingering"
        );
        Some(Linger {
            read_at_start: read,
            most: opts.linger_bytes,
            until: Box::pin(tokio::time::sleep(opts.linger_time)),
        })
    }

    /// The most bytes in all (since the channel opened) the channel reads:
    /// a reader stops there, between two reads.
    pub(crate) fn limit(&self) -> u64 {
        self.read_at_start.saturating_add(self.most)
    }

    /// Whether `read` bytes in all (since the channel opened) are past
    /// what the linger allows.
    pub(crate) fn spent(&self, read: u64) -> bool {
        let over = read > self.limit();
        if over {
            tracing::debug!(bytes = self.most, "lingered over its bytes; closing");
        }
        over
    }

    /// Ready once the linger's time is up.
    pub(crate) fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let r = self.until.as_mut().poll(cx);
        if r.is_ready() {
            tracing::debug!("lingered for its time; closing");
        }
        r
    }
}
