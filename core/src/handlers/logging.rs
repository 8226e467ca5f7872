//! [`LoggingHandler`]: every event and operation to `tracing`.
//!
//! Contract: it passes everything on unchanged; it logs at `debug` (or the
//! level given), with the channel id, the event, and for byte messages
//! their length and, when asked, a hex dump of their first bytes. With
//! tracing off at that level it costs one level check per event.

use std::fmt::Write as _;

use bytes::Bytes;
use tracing::Level;

use crate::handler::UserEvent;
use crate::{Context, Error, Handler, Msg, Promise};

/// Logs every event and operation (Netty's `LoggingHandler`).
///
/// ```
/// use weft_core::{EmbeddedChannel, LoggingHandler};
///
/// let mut ch = EmbeddedChannel::with_handler(LoggingHandler::new().hex_dump(64));
/// ch.write_inbound("hello"); // logged at debug: READ 5 bytes + hex dump
/// assert_eq!(ch.read_inbound::<bytes::Bytes>().unwrap(), "hello");
/// ```
#[derive(Debug, Clone)]
pub struct LoggingHandler {
    level: Level,
    dump: usize,
}

impl Default for LoggingHandler {
    fn default() -> Self {
        LoggingHandler::new()
    }
}

impl LoggingHandler {
    /// Logs at `debug`, without hex dumps.
    pub fn new() -> LoggingHandler {
        LoggingHandler {
            level: Level::DEBUG,
            dump: 0,
        }
    }

    /// Logs at `level`.
    pub fn level(mut self, level: Level) -> Self {
        self.level = level;
        self
    }

    /// Adds a hex dump of at most `max` bytes of each byte message.
    pub fn hex_dump(mut self, max: usize) -> Self {
        self.dump = max;
        self
    }

    fn enabled(&self) -> bool {
        match self.level {
            Level::ERROR => tracing::enabled!(Level::ERROR),
            Level::WARN => tracing::enabled!(Level::WARN),
            Level::INFO => tracing::enabled!(Level::INFO),
            Level::DEBUG => tracing::enabled!(Level::DEBUG),
            Level::TRACE => tracing::enabled!(Level::TRACE),
        }
    }

    fn log(&self, ctx: &Context<'_>, what: &str, detail: String) {
        let id = ctx.channel().id();
        match self.level {
            Level::ERROR => tracing::error!(channel = %id, "{what}{detail}"),
            Level::WARN => tracing::warn!(channel = %id, "{what}{detail}"),
            Level::INFO => tracing::info!(channel = %id, "{what}{detail}"),
            Level::DEBUG => tracing::debug!(channel = %id, "{what}{detail}"),
            Level::TRACE => tracing::trace!(channel = %id, "{what}{detail}"),
        }
    }

    fn describe(&self, msg: &Msg) -> String {
        let first: Option<Bytes> = match msg {
            Msg::Bytes(b) => Some(b.clone()),
            Msg::Composite(c) => Some(c.slice(..c.len().min(self.dump)).to_bytes()),
            _ => None,
        };
        let mut s = match msg {
            Msg::Bytes(b) => format!(" {} bytes", b.len()),
            Msg::Composite(c) => format!(" {} bytes in {} chunks", c.len(), c.chunk_count()),
            Msg::File(f) => format!(" file region {}+{}", f.offset(), f.len()),
            Msg::User(_) => format!(" {}", msg.type_name()),
        };
        if self.dump > 0 {
            if let Some(b) = first {
                s.push_str(": ");
                for x in b.iter().take(self.dump) {
                    let _ = write!(s, "{x:02x}");
                }
                if b.len() > self.dump {
                    s.push_str("...");
                }
            }
        }
        s
    }
}

impl Handler for LoggingHandler {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        if self.enabled() {
            self.log(ctx, "ACTIVE", String::new());
        }
        ctx.fire_active();
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if self.enabled() {
            self.log(ctx, "READ", self.describe(&msg));
        }
        ctx.fire_read(msg);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        if self.enabled() {
            self.log(ctx, "READ_COMPLETE", String::new());
        }
        ctx.fire_read_complete();
    }
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        if self.enabled() {
            self.log(ctx, "USER_EVENT", String::new());
        }
        ctx.fire_user_event(event);
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        if self.enabled() {
            self.log(ctx, "WRITABILITY", format!(" {writable}"));
        }
        ctx.fire_writability_changed(writable);
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        if self.enabled() {
            self.log(ctx, "EXCEPTION", format!(" {err}"));
        }
        ctx.fire_exception(err);
    }
    fn channel_inactive(&mut self, ctx: &mut Context<'_>) {
        if self.enabled() {
            self.log(ctx, "INACTIVE", String::new());
        }
        ctx.fire_inactive();
    }
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        if self.enabled() {
            self.log(ctx, "WRITE", self.describe(&msg));
        }
        ctx.write_with(msg, promise);
    }
    fn flush(&mut self, ctx: &mut Context<'_>) {
        if self.enabled() {
            self.log(ctx, "FLUSH", String::new());
        }
        ctx.flush();
    }
    fn read(&mut self, ctx: &mut Context<'_>) {
        if self.enabled() {
            self.log(ctx, "READ_REQUEST", String::new());
        }
        ctx.read();
    }
    fn close(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        if self.enabled() {
            self.log(ctx, "CLOSE", String::new());
        }
        ctx.close_with(promise);
    }
}
