//! [`FlushConsolidationHandler`]: fewer flushes, hence fewer system calls.
//!
//! Contract (Netty's semantics): while the channel is inside a burst of
//! reads (between the first `channel_read` and `channel_read_complete`),
//! flushes from handlers after it are held and done once at the end of the
//! burst; outside a burst, every `explicit_after`-th flush goes through
//! (default 256), and the rest are held until the next read completes or
//! the channel closes — unless `consolidate_outside_reads` is off (the
//! default), in which case flushes outside a burst go through at once.
//! Nothing written is ever left unflushed at the end of a burst or on close.

use crate::{Context, Handler, Msg, Promise};

/// Coalesces flushes within a read burst (Netty's
/// `FlushConsolidationHandler`). Put it near the head.
///
/// ```
/// use weft_core::{from_fn, Context, EmbeddedChannel, FlushConsolidationHandler};
///
/// let mut ch = EmbeddedChannel::builder()
///     .add_last("flush", FlushConsolidationHandler::new())
///     .add_last("app", from_fn(|ctx: &mut Context<'_>, m: bytes::Bytes| ctx.write_and_flush(m)))
///     .build();
/// ch.fire_read("a");
/// ch.fire_read("b");
/// assert_eq!(ch.outbound_len(), 0, "held during the burst");
/// ch.fire_read_complete();
/// assert_eq!(ch.outbound_len(), 2, "one flush at the end");
/// ```
#[derive(Debug, Clone)]
pub struct FlushConsolidationHandler {
    explicit_after: usize,
    outside_reads: bool,
    in_read: bool,
    pending: usize,
}

impl Default for FlushConsolidationHandler {
    fn default() -> Self {
        FlushConsolidationHandler::new()
    }
}

impl FlushConsolidationHandler {
    /// Consolidates within read bursts; at most 256 flushes held.
    pub fn new() -> FlushConsolidationHandler {
        FlushConsolidationHandler {
            explicit_after: 256,
            outside_reads: false,
            in_read: false,
            pending: 0,
        }
    }

    /// Lets every `n`-th held flush through (n ≥ 1).
    pub fn explicit_after(mut self, n: usize) -> Self {
        self.explicit_after = n.max(1);
        self
    }

    /// Also consolidates flushes made outside a read burst.
    pub fn consolidate_outside_reads(mut self, on: bool) -> Self {
        self.outside_reads = on;
        self
    }

    fn flush_now(&mut self, ctx: &mut Context<'_>) {
        if self.pending > 0 {
            self.pending = 0;
            ctx.flush();
        }
    }
}

#[crate::handler]
impl Handler for FlushConsolidationHandler {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.in_read = true;
        ctx.fire_read(msg);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        self.in_read = false;
        self.flush_now(ctx);
        ctx.fire_read_complete();
    }
    fn flush(&mut self, ctx: &mut Context<'_>) {
        self.pending += 1;
        if self.in_read || self.outside_reads {
            if self.pending >= self.explicit_after {
                self.flush_now(ctx);
            }
        } else {
            self.flush_now(ctx);
        }
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        if !writable {
            // The buffer is full: what is held must go out now.
            self.flush_now(ctx);
        }
        ctx.fire_writability_changed(writable);
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: crate::Error) {
        self.flush_now(ctx);
        ctx.fire_exception(err);
    }
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        self.flush_now(ctx);
        ctx.fire_inactive();
    }
    fn close(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        self.flush_now(ctx);
        ctx.close_with(promise);
    }
}
