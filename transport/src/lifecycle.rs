//! [`Lifecycle`]: what a connection does next, decided with no I/O — the
//! one state machine the readiness, io_uring and datagram drivers share
//! (Netty's `AbstractChannel.AbstractUnsafe`; quinn-proto's rule: the
//! drivers only do I/O and tell it what happened).
//!
//! Contract:
//! - a round starts with [`admit`](Lifecycle::admit): the commands' read
//!   request is taken, the server's phase applied (draining stops reads,
//!   the abort phase closes at once), a requested close closes;
//! - [`wants_read`](Lifecycle::wants_read) says whether the driver reads:
//!   not after the end of input, not while draining, only with auto-read
//!   or a read request, and not while unwritable unless
//!   `pause_read_when_unwritable` is off;
//! - the driver reports what it read ([`read`](Lifecycle::read), which
//!   says whether the bytes go to the handlers or are dropped while
//!   lingering), that reads were fired ([`fired`](Lifecycle::fired)), and
//!   the end of input ([`input_ended`](Lifecycle::input_ended), which fires
//!   `InputShutdown` once);
//! - an output shutdown the pipeline asked for is done by the driver
//!   ([`shutdown_write`], the one `shutdown(2)` of weft-transport); once it
//!   succeeded, a channel without half-closure lingers
//!   ([`output_shut`](Lifecycle::output_shut), [`crate::linger`]);
//! - [`closes`](Lifecycle::closes) says whether the channel closes now: a
//!   close was requested, the linger is spent, or the channel is ending
//!   (draining, or its input ended without half-closure) and everything
//!   flushed is out and no command waits.

use std::io;
use std::os::fd::RawFd;
use std::task::{Context as TaskContext, Poll};

use weft_core::transport::Transport;
use weft_core::{Channel, Error, InputShutdown, Pipeline};

use crate::control::{Phase, ServerCtl};
use crate::linger::Linger;
use crate::options::ChannelOptions;

/// Whether the channel still serves, or only finishes what it flushed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Serving,
    /// The server shuts down: no more reads; close once flushed.
    Draining,
}

/// What becomes of bytes just read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// They go to the handlers.
    Fire,
    /// Lingering: they are dropped, unseen by the handlers (and so by an
    /// idle guard: it is not activity).
    Drop,
}

/// See the module contract.
#[derive(Debug)]
pub(crate) struct Lifecycle {
    mode: Mode,
    input_ended: bool,
    /// A handler asked for a read (auto-read off).
    read_requested: bool,
    /// Bytes read since the channel opened.
    bytes_read: u64,
    linger: Option<Linger>,
    half_closure: bool,
    pause_when_unwritable: bool,
}

impl Lifecycle {
    pub(crate) fn new(opts: &ChannelOptions) -> Lifecycle {
        Lifecycle::with(opts.allow_half_closure, opts.pause_read_when_unwritable)
    }

    /// A datagram channel's: no half-closure to speak of, and never reads
    /// while unwritable (its answers must drain first).
    pub(crate) fn datagram() -> Lifecycle {
        Lifecycle::with(true, true)
    }

    fn with(half_closure: bool, pause_when_unwritable: bool) -> Lifecycle {
        Lifecycle {
            mode: Mode::Serving,
            input_ended: false,
            read_requested: false,
            bytes_read: 0,
            linger: None,
            half_closure,
            pause_when_unwritable,
        }
    }

    /// The start of a round, after the commands ran: `true` when the
    /// channel closes at once.
    #[inline]
    pub(crate) fn admit(&mut self, t: &mut Transport<'_>, ctl: Option<&ServerCtl>) -> bool {
        if t.take_read_request() {
            self.read_requested = true;
        }
        if let Some(ctl) = ctl {
            match ctl.phase() {
                Phase::Running => {}
                Phase::Draining => self.mode = Mode::Draining,
                Phase::Abort => return true,
            }
        }
        t.close_requested()
    }

    /// Whether the driver reads now.
    #[inline]
    pub(crate) fn wants_read(&self, ch: &Channel) -> bool {
        !self.input_ended
            && self.mode == Mode::Serving
            && (ch.is_auto_read() || self.read_requested)
            && (!self.pause_when_unwritable || ch.is_writable())
    }

    /// `n` bytes were read: whether they go to the handlers.
    #[inline]
    pub(crate) fn read(&mut self, n: usize) -> Fate {
        self.bytes_read = self.bytes_read.saturating_add(n as u64);
        if self.linger.is_some() {
            Fate::Drop
        } else {
            Fate::Fire
        }
    }

    /// Whether a burst of reads stops here: the linger's bytes are spent.
    #[inline]
    pub(crate) fn read_spent(&self) -> bool {
        self.linger
            .as_ref()
            .is_some_and(|l| l.spent(self.bytes_read))
    }

    /// Reads were fired (and `channel_read_complete`): a read request is
    /// answered.
    #[inline]
    pub(crate) fn fired(&mut self) {
        self.read_requested = false;
    }

    /// The peer's input ended (and every byte before it was handed on):
    /// fires [`InputShutdown`] once.
    pub(crate) fn input_ended(&mut self, pipeline: &mut Pipeline) {
        if std::mem::replace(&mut self.input_ended, true) {
            return;
        }
        tracing::debug!(half_closure = self.half_closure, "input shut down by peer");
        pipeline.fire_user_event(Box::new(InputShutdown));
    }

    /// The output was shut down as the pipeline asked (`ok`: it
    /// succeeded): a channel without half-closure lingers.
    pub(crate) fn output_shut(&mut self, ok: bool, opts: &ChannelOptions) {
        if ok {
            self.linger = Linger::start(opts, self.bytes_read);
        }
    }

    /// Whether the channel closes now; `output_idle`: no write is under
    /// way in the driver.
    #[inline]
    pub(crate) fn closes(&self, t: &mut Transport<'_>, output_idle: bool) -> bool {
        if t.close_requested() || self.read_spent() {
            return true;
        }
        let ending = self.mode == Mode::Draining || (self.input_ended && !self.half_closure);
        ending && output_idle && t.outbound().flushed_is_empty() && !t.has_commands()
    }

    /// Ready once the linger's time is over (never when not lingering).
    #[inline]
    pub(crate) fn poll_linger(&mut self, cx: &mut TaskContext<'_>) -> Poll<()> {
        match self.linger.as_mut() {
            Some(l) => l.poll_expired(cx),
            None => Poll::Pending,
        }
    }
}

/// Shuts the socket's output down (`shutdown(fd, SHUT_WR)`).
pub(crate) fn shutdown_write(fd: RawFd) -> Result<(), Error> {
    let r = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Write)
        .map_err(|e| Error::io(io::Error::from(e)));
    tracing::debug!(ok = r.is_ok(), "output shut down");
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(half_closure: bool) -> ChannelOptions {
        ChannelOptions {
            allow_half_closure: half_closure,
            ..ChannelOptions::default()
        }
    }

    #[test]
    fn the_end_of_input_closes_once_flushed_unless_half_closed() {
        for half in [false, true] {
            let mut lc = Lifecycle::new(&opts(half));
            let mut p = Pipeline::new(Channel::new(None, None));
            assert!(lc.wants_read(p.channel()));
            lc.input_ended(&mut p);
            assert!(!lc.wants_read(p.channel()));
            assert_eq!(lc.closes(&mut p.transport(), true), !half);
            // A write under way keeps the channel open either way.
            assert!(!lc.closes(&mut p.transport(), false));
        }
    }

    #[test]
    fn reads_wait_for_auto_read_or_a_request_and_for_writability() {
        let mut lc = Lifecycle::new(&opts(false));
        let mut p = Pipeline::new(Channel::new(None, None));
        p.channel().set_auto_read(false);
        assert!(!lc.wants_read(p.channel()));
        p.read();
        assert!(!lc.admit(&mut p.transport(), None));
        assert!(lc.wants_read(p.channel()));
        lc.fired();
        assert!(!lc.wants_read(p.channel()));
    }

    #[test]
    fn a_requested_close_closes_at_admission() {
        let mut lc = Lifecycle::new(&opts(false));
        let mut p = Pipeline::new(Channel::new(None, None));
        p.close();
        assert!(lc.admit(&mut p.transport(), None));
        assert!(lc.closes(&mut p.transport(), false));
    }
}
