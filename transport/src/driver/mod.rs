//! The connection task: one per channel, owning its pipeline and socket.
//!
//! Contract:
//! - the task alternates between running the work that is due (commands
//!   queued from other tasks, flushed writes, a due output shutdown, a
//!   close) and waiting for the next wake-up: a command, the socket turning
//!   writable (while a write is blocked), or readable (while it wants to
//!   read);
//! - reads and writes are the read half's ([`read`]) and the write half's
//!   ([`write`]) business; what happens next — read or not, drain,
//!   half-closure, the output shutdown's linger, close — the
//!   [`Lifecycle`](crate::lifecycle) decides, as for the other drivers;
//! - while the channel is unwritable (above its high watermark) it reads
//!   nothing, and reads again below the low watermark, unless
//!   `pause_read_when_unwritable` is off;
//! - end of input fires [`InputShutdown`](weft_core::InputShutdown) (so
//!   decoders finish and handlers can answer); when half-closure is allowed
//!   the channel then stays open, otherwise it closes **once everything
//!   flushed has been written** — a peer that sends its request and shuts
//!   its output down (`shutdown(SHUT_WR)`, `nc -N`) receives the whole
//!   answer;
//! - after an output shutdown the pipeline asked for, a channel without
//!   half-closure lingers ([`crate::linger`]): it reads on for a bounded
//!   time and number of bytes, then closes;
//! - a server's shutdown drains the channel the same way (reading no more),
//!   and its abort phase closes it at once;
//! - on close, what was flushed before the close gets one non-blocking
//!   attempt to reach the kernel (Netty writes on flush, so
//!   `write_and_flush` then `close` delivers what fits in the socket
//!   buffer); then the socket is closed, every pending promise fails and
//!   `channel_inactive` fires.

mod read;
mod write;

use std::future::poll_fn;
use std::io;
use std::sync::Arc;
use std::task::Poll;

use weft_core::transport::CommandWaiter;
use weft_core::{Error, Pipeline};

use crate::control::ServerCtl;
use crate::lifecycle::{shutdown_write, Lifecycle};
use crate::options::ChannelOptions;
use crate::stream::Stream;
use read::Reader;
#[cfg(feature = "uring")]
pub(crate) use write::{merge_adjacent, unsupported, EMPTY_IOVEC, FRONT_IS_FILE, SENDFILE_STEP};
use write::{Flushed, Writer};

/// Whether the socket takes writes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    Ready,
    /// The send buffer was full: wait until the socket is writable.
    Blocked,
}

/// What ended a wait.
enum Wake {
    Commands,
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    /// The linger after the output shutdown is over.
    Lingered,
    /// A handler's timer is due.
    Timer,
}

/// What the loop does after a step.
enum Next {
    /// Wait for the next wake-up.
    Wait,
    /// More is due at once (a handler flushed again).
    Again,
    /// The write budget is spent: let other tasks run first.
    Yield,
    /// The channel closes.
    Close,
}

struct Conn<S> {
    stream: S,
    pipeline: Pipeline,
    opts: Arc<ChannelOptions>,
    ctl: Option<Arc<ServerCtl>>,
    reader: Reader,
    writer: Writer,
    output: Output,
    /// What the connection does next (`lifecycle.rs`).
    lc: Lifecycle,
    timer: crate::timer::ChannelTimer,
}

/// Runs a connection until it closes.
pub(crate) async fn drive<S: Stream>(
    stream: S,
    pipeline: Pipeline,
    opts: Arc<ChannelOptions>,
    ctl: Option<Arc<ServerCtl>>,
) {
    let mut conn = Conn {
        reader: Reader::new(&opts),
        writer: Writer::new(opts.sendfile, opts.write_spin),
        lc: Lifecycle::new(&opts),
        stream,
        pipeline,
        opts,
        ctl,
        output: Output::Ready,
        timer: crate::timer::ChannelTimer::default(),
    };
    tracing::debug!("channel active");
    conn.pipeline.transport().fire_active();
    let mut waiter = CommandWaiter::new();
    loop {
        match conn.run_due() {
            Next::Close => break,
            Next::Again => continue,
            Next::Yield => {
                tokio::task::yield_now().await;
                continue;
            }
            Next::Wait => {}
        }
        let wake = conn.wait(&mut waiter).await;
        if matches!(wake, Wake::Lingered) {
            break;
        }
        if let Err(e) = conn.on_wake(wake) {
            fail(&mut conn.pipeline, e);
            break;
        }
    }
    conn.close();
}

impl<S: Stream> Conn<S> {
    /// Runs what is due without waiting.
    fn run_due(&mut self) -> Next {
        let mut t = self.pipeline.transport();
        t.run_commands();
        if self.lc.admit(&mut t, self.ctl.as_deref()) {
            return Next::Close;
        }
        let mut next = Next::Wait;
        if self.output == Output::Ready && !t.outbound().flushed_is_empty() {
            match self.writer.flush(&self.stream, &mut t) {
                Ok(Flushed::Done) => {}
                Ok(Flushed::Blocked) => self.output = Output::Blocked,
                Ok(Flushed::Budget) => next = Next::Yield,
                Err(e) => {
                    // The writes that were under way fail with the cause.
                    t.outbound().fail_flushed(&e);
                    fail(&mut self.pipeline, e);
                    return Next::Close;
                }
            }
            t.sync_writability();
        }
        if let Some(shutdown) = t.take_due_shutdown() {
            let r = shutdown_write(self.stream.as_raw_fd());
            self.lc.output_shut(r.is_ok(), &self.opts);
            shutdown.complete(r);
        }
        // Shutting down, or the peer's input ended without half-closure,
        // and everything flushed is out; a requested close; a spent linger.
        if self.lc.closes(&mut t, true) {
            return Next::Close;
        }
        let flushed_out = t.outbound().flushed_is_empty();
        if matches!(next, Next::Wait) && self.output == Output::Ready && !flushed_out {
            // A handler flushed more while reacting to the last write (a
            // writability change, an error): write it before waiting.
            next = Next::Again;
        }
        next
    }

    /// Waits for a command, or the socket's readiness the channel wants.
    async fn wait(&mut self, waiter: &mut CommandWaiter) -> Wake {
        let want_read = self.lc.wants_read(self.pipeline.channel());
        let want_write = self.output == Output::Blocked;
        let (stream, mut t) = (&self.stream, self.pipeline.transport());
        let lc = &mut self.lc;
        let timer = &mut self.timer;
        timer.arm(t.next_timer());
        poll_fn(|cx| {
            if t.poll_commands(cx, waiter).is_ready() {
                return Poll::Ready(Wake::Commands);
            }
            if timer.poll_due(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if lc.poll_linger(cx).is_ready() {
                return Poll::Ready(Wake::Lingered);
            }
            if want_write {
                if let Poll::Ready(r) = stream.poll_write_ready(cx) {
                    return Poll::Ready(Wake::Writable(r));
                }
            }
            if want_read {
                if let Poll::Ready(r) = stream.poll_read_ready(cx) {
                    return Poll::Ready(Wake::Readable(r));
                }
            }
            Poll::Pending
        })
        .await
    }

    fn on_wake(&mut self, wake: Wake) -> Result<(), Error> {
        match wake {
            Wake::Commands | Wake::Lingered => Ok(()),
            Wake::Timer => {
                self.timer.fired(&mut self.pipeline.transport());
                Ok(())
            }
            Wake::Writable(r) => {
                r?;
                self.output = Output::Ready;
                Ok(())
            }
            Wake::Readable(r) => {
                r?;
                self.reader
                    .read_burst(&self.stream, &mut self.pipeline, &self.opts, &mut self.lc)
            }
        }
    }

    /// Closes the socket and completes the channel's close.
    fn close(mut self) {
        let mut t = self.pipeline.transport();
        if t.close_requested() && self.output == Output::Ready {
            // As in Netty, where a flush writes at once: what was flushed
            // before the close gets one non-blocking attempt to reach the
            // kernel.
            if let Err(e) = self.writer.flush(&self.stream, &mut t) {
                t.outbound().fail_flushed(&e);
            }
        }
        drop(self.stream);
        t.finish_close();
        tracing::debug!("channel inactive");
    }
}

/// Fires an error that ends the channel.
pub(crate) fn fail(pipeline: &mut Pipeline, err: Error) {
    if matches!(
        err.io_kind(),
        Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
    ) {
        tracing::debug!(error = ?err, "connection reset by peer");
    } else {
        tracing::debug!(error = ?err, "channel failed");
    }
    pipeline.fire_exception(err);
}
