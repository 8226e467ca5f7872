//! The two ends of a pipeline: the head, where outbound operations meet the
//! transport, and the tail, where inbound events nobody consumed end.
//!
//! Contract:
//! - a write reaching the head goes into the [`OutboundBuffer`]; one past
//!   its cap closes the channel with the cap's error; a write after the
//!   close fails at once with a closed-channel error;
//! - a flush marks everything buffered as flushed; a read request and a
//!   close are recorded for the transport, which acts on them after the
//!   current event;
//! - a close error (a write past the cap) is fired as `exception_caught`
//!   once the current event is over, and given to the writes that fail with
//!   the close;
//! - writability changes are computed here after each event and delivered
//!   from the head, never in the middle of a callback;
//! - at the tail, messages are dropped (logged at `debug`) and errors logged
//!   at `warn`, unless an [`EmbeddedChannel`](crate::EmbeddedChannel)
//!   collects them.

use std::collections::VecDeque;

use super::dispatch::Inner;
use super::slot::{Ev, HEAD};
use crate::handler::UserEvent;
use crate::outbound::OutboundBuffer;
use crate::promise::complete;
use crate::{Error, Msg, Promise};

/// What the head holds for the transport.
pub(crate) struct Head {
    pub(crate) outbound: OutboundBuffer,
    pub(crate) read_requested: bool,
    pub(crate) close_requested: bool,
    /// A pending output shutdown: done by the transport once the flushed
    /// writes before it are out.
    pub(crate) shutdown: Option<OutputShutdown>,
    pub(crate) close_promises: Vec<Promise>,
    pub(crate) closed: bool,
    pub(super) notified_writable: bool,
    /// A batch of commands is running: writability is settled once it is
    /// over, with every write of the batch counted.
    pub(super) batching: bool,
    pub(super) close_reason: Option<Error>,
    pub(super) reason_pending: bool,
}

/// An output shutdown a handler asked for (Netty's `shutdownOutput`),
/// handed to the transport once everything flushed before it is written.
///
/// The transport shuts the socket's write side down and reports the outcome
/// with [`complete`](OutputShutdown::complete); dropping it unreported fails
/// whoever waits on it.
#[derive(Debug)]
pub struct OutputShutdown {
    promise: Option<Promise>,
}

impl OutputShutdown {
    /// Reports the outcome of the shutdown to whoever asked for it.
    pub fn complete(self, result: Result<(), Error>) {
        complete(self.promise, result);
    }
}

/// What an EmbeddedChannel collects at the end of its pipeline.
#[derive(Default)]
pub(crate) struct Tail {
    pub(crate) inbound: VecDeque<Msg>,
    pub(crate) events: VecDeque<UserEvent>,
    pub(crate) errors: VecDeque<Error>,
}

impl Head {
    /// The head of `channel`'s pipeline: its outbound buffer keeps the
    /// limits the channel handle shares.
    pub(super) fn new(channel: &crate::Channel) -> Head {
        Head {
            outbound: OutboundBuffer::with_limits(channel.limits()),
            read_requested: false,
            close_requested: false,
            shutdown: None,
            close_promises: Vec::new(),
            closed: false,
            notified_writable: true,
            batching: false,
            close_reason: None,
            reason_pending: false,
        }
    }
}

impl Inner {
    pub(super) fn at_head(&mut self, ev: Ev) {
        match ev {
            Ev::Write(msg, promise) => {
                if self.head.closed {
                    complete(promise, Err(Error::closed()));
                } else {
                    self.head.outbound.push(msg, promise);
                    if let Some(err) = self.head.outbound.take_overflow() {
                        self.close_with_reason(err);
                    }
                    let dropped = self.head.outbound.take_dropped();
                    if dropped > 0 {
                        self.channel.record_dropped(dropped);
                    }
                }
            }
            Ev::Flush => self.head.outbound.flush(),
            Ev::ReadRequest => self.head.read_requested = true,
            Ev::Close(p) => {
                if self.head.closed {
                    complete(p, Ok(()));
                } else {
                    self.head.close_requested = true;
                    if let Some(p) = p {
                        self.head.close_promises.push(p);
                    }
                }
            }
            _ => {}
        }
    }

    pub(super) fn at_tail(&mut self, ev: Ev) {
        match ev {
            Ev::Read(msg) => match &mut self.tail {
                Some(t) => t.inbound.push_back(msg),
                None => tracing::debug!(
                    channel = %self.channel.id(),
                    msg_type = msg.type_name(),
                    "a message reached the end of the pipeline and was dropped; \
                     add a handler that consumes it"
                ),
            },
            Ev::UserEvent(e) => {
                if let Some(t) = &mut self.tail {
                    t.events.push_back(e);
                }
            }
            Ev::Exception(e) => match &mut self.tail {
                Some(t) => t.errors.push_back(e),
                None => tracing::warn!(
                    channel = %self.channel.id(),
                    error = ?e,
                    "an error reached the end of the pipeline unhandled"
                ),
            },
            _ => {}
        }
    }

    /// Asks the transport to close because of `err`, which is fired as
    /// `exception_caught` once the current event is done.
    pub(crate) fn close_with_reason(&mut self, err: Error) {
        self.set_close_reason(err);
        self.head.close_requested = true;
    }

    /// Records why the channel is closing (the first reason wins): it is
    /// fired once as an exception, and pending writes fail with it.
    pub(crate) fn set_close_reason(&mut self, err: Error) {
        if self.head.close_reason.is_none() && !self.head.closed {
            tracing::debug!(channel = %self.channel.id(), error = ?err, "closing the channel");
            self.head.close_reason = Some(err);
            self.head.reason_pending = true;
        }
    }

    /// The close error waiting to be fired, once.
    pub(super) fn take_pending_reason(&mut self) -> Option<Error> {
        if std::mem::take(&mut self.head.reason_pending) {
            self.head.close_reason.clone()
        } else {
            None
        }
    }

    /// Whether a writability change is due: the buffer changed state, or a
    /// write from another task turned the handle unwritable.
    pub(super) fn writability_due(&self) -> bool {
        let w = self.head.outbound.is_writable();
        w != self.head.notified_writable
            || (w && (!self.channel.is_writable() || self.over_high_with_queued()))
    }

    /// Whether the outbound bytes, with the writes other tasks submitted
    /// and the task has not taken yet, are above the high watermark.
    fn over_high_with_queued(&self) -> bool {
        let ob = &self.head.outbound;
        ob.buffered_bytes() + self.channel.queued_bytes() > ob.watermark().high()
    }

    /// Delivers the writability changes that are due, from the head.
    pub(super) fn sync_writability(&mut self) {
        if self.watched.is_some() {
            self.poll_watched();
        }
        self.publish_outbound();
        if self.head.notified_writable
            && (!self.channel.is_writable() || self.over_high_with_queued())
            && !self.head.closed
        {
            // Writes submitted from other tasks passed the high watermark
            // (as they saw it): a real change for whoever watches the
            // handle, delivered now; writable again below the low one.
            self.head.outbound.force_unwritable();
        }
        for _ in 0..4 {
            let w = self.head.outbound.is_writable() && !self.over_high_with_queued();
            if w == self.head.notified_writable {
                return;
            }
            self.head.notified_writable = w;
            self.channel.set_writable(w);
            self.forward(HEAD, Ev::Writability(w));
            if !w {
                // The submits that turned it unwritable may have judged by
                // a size the task had already drained (the published size
                // lags a flush): if little is held now, no drain is coming
                // to end it, so it ends here, with its event.
                self.head.outbound.recheck_low_watermark();
            }
        }
    }

    /// Publishes the outbound buffer's size for the checks that writes from
    /// other tasks make (one store): after a flush drained it, after
    /// commands filled it, even when its writability did not change.
    pub(crate) fn publish_outbound(&self) {
        self.channel
            .publish_outbound(self.head.outbound.buffered_bytes());
    }

    /// Records an output shutdown for the transport (after the flush the
    /// caller did); a second request completes the first.
    pub(super) fn request_shutdown(&mut self, promise: Option<Promise>) {
        if self.head.closed {
            complete(promise, Err(Error::closed()));
            return;
        }
        if let Some(old) = self.head.shutdown.replace(OutputShutdown { promise }) {
            old.complete(Ok(()));
        }
    }

    /// Marks the channel closed and fails everything still pending; returns
    /// `false` when it was closed already. `channel_inactive` is the
    /// caller's to fire.
    pub(super) fn mark_closed(&mut self) -> bool {
        if self.head.closed {
            return false;
        }
        self.head.closed = true;
        self.head.close_requested = false;
        for cmd in self.channel.mark_closed() {
            cmd.fail();
        }
        let closed = self.head.close_reason.clone().unwrap_or_else(Error::closed);
        self.head.outbound.fail_all(&closed);
        if let Some(s) = self.head.shutdown.take() {
            s.complete(Err(closed));
        }
        self.poll_watched();
        self.channel.set_writable(false);
        self.head.notified_writable = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use crate::{Channel, Context, Handler, Pipeline};

    #[derive(Debug)]
    struct Watch(Arc<Mutex<Vec<bool>>>);

    #[crate::handler]
    impl Handler for Watch {
        fn writability_changed(&mut self, _ctx: &mut Context<'_>, writable: bool) {
            self.0.lock().unwrap().push(writable);
        }
    }

    /// A handle turned unwritable by a submit that saw a stale size, with
    /// nothing actually held: the next sync announces the change and its
    /// end, so the handle is writable again (it used to stay unwritable
    /// with no drain to come: a writer waiting for writability, or a group
    /// skipping slow members, waited for ever) and handlers that paused on
    /// the first event resume on the second.
    #[test]
    fn a_stale_unwritable_flag_with_nothing_held_is_cleared() {
        let mut p = Pipeline::new(Channel::new(None, None));
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let s2 = seen.clone();
        p.add_last("watch", Watch(s2)).unwrap();
        p.channel().set_writable(false);
        p.transport().sync_writability();
        assert!(p.channel().is_writable());
        assert!(p.inner().head.outbound.is_writable());
        assert_eq!(*seen.lock().unwrap(), [false, true]);
    }
}
