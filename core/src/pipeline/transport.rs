//! [`Transport`]: what a transport does to a pipeline that a handler never
//! does (Netty's `Channel.Unsafe`).
//!
//! Contract, for whoever drives a pipeline from a socket:
//! - fire `channel_active` once, then `channel_read` per read and
//!   `channel_read_complete` per burst;
//! - before waiting, run the commands other tasks queued
//!   ([`run_commands`](Transport::run_commands)), then register with
//!   [`poll_commands`](Transport::poll_commands): a command queued after the
//!   run wakes the task;
//! - drain the flushed part of the [`OutboundBuffer`] to the socket,
//!   counting the bytes each system call wrote before completing the writes
//!   it finished ([`outbound_and_counter`](Transport::outbound_and_counter),
//!   or [`record_written`](Transport::record_written) first), so that a
//!   task woken by a completion reads a count that includes it; then call
//!   [`sync_writability`](Transport::sync_writability);
//! - wake for the earliest armed timer ([`next_timer`](Transport::next_timer),
//!   asked again after every step: handlers arm timers in any callback) and
//!   fire what is due ([`run_timers`](Transport::run_timers) with the time);
//! - act on a read request, a due output shutdown and a close request after
//!   each step; once the socket is closed, call
//!   [`finish_close`](Transport::finish_close), which fails what is pending
//!   and fires `channel_inactive`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context as TaskContext, Poll};

use super::ends::OutputShutdown;
use super::slot::{Ev, HEAD};
use super::Pipeline;
use crate::channel::Command;
use crate::mailbox::CommandWaiter;
use crate::outbound::{OutboundBuffer, WriteBufferWaterMark};
use crate::{Channel, Msg};

/// Most timers one [`Transport::run_timers`] fires.
const MAX_TIMERS_PER_RUN: usize = 1024;

/// A transport's handle on a pipeline; see [`Pipeline::transport`].
///
/// ```
/// use weft_core::{Channel, Pipeline};
///
/// let mut p = Pipeline::new(Channel::new(None, None));
/// p.write_and_flush("hi");
/// let mut t = p.transport();
/// let entry = t.outbound().pop_front().unwrap();
/// assert_eq!(entry.msg.downcast::<bytes::Bytes>().ok().unwrap(), "hi");
/// ```
#[derive(Debug)]
pub struct Transport<'a> {
    pipeline: &'a mut Pipeline,
}

impl<'a> Transport<'a> {
    pub(super) fn new(pipeline: &'a mut Pipeline) -> Transport<'a> {
        Transport { pipeline }
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.pipeline.inner.channel
    }

    /// Fires `channel_active`.
    pub fn fire_active(&mut self) {
        let _ = self.pipeline.enter(|p| p.forward(HEAD, Ev::Active));
    }

    /// Fires `channel_read` with what the socket gave.
    pub fn fire_read(&mut self, msg: impl Into<Msg>) {
        let msg = msg.into();
        self.pipeline.inner.channel.record_read();
        let _ = self.pipeline.enter(|p| p.forward_read(HEAD, msg));
    }

    /// The earliest deadline of the handlers' timers: when to wake next.
    pub fn next_timer(&self) -> Option<tokio::time::Instant> {
        self.pipeline.inner.next_timer()
    }

    /// Fires every timer due at `now`, in deadline order (a timer armed by
    /// one of them runs too if it is due already); how many fired.
    pub fn run_timers(&mut self, now: tokio::time::Instant) -> usize {
        let mut n = 0;
        // Bounded: a handler that re-arms for `now` from its own timer must
        // not hold the task (the rest fire on the next wake-up, at once).
        while n < MAX_TIMERS_PER_RUN && self.pipeline.inner.next_timer().is_some_and(|at| at <= now)
        {
            match self.pipeline.enter(|p| p.fire_due_timer(now)) {
                Ok(true) => n += 1,
                Ok(false) => break,
                Err(_) => n += 1, // a panic: the pipeline recovered and closes
            }
        }
        n
    }

    /// Fires `channel_read_complete`, at the end of a read burst.
    pub fn fire_read_complete(&mut self) {
        let _ = self.pipeline.enter(|p| p.forward(HEAD, Ev::ReadComplete));
    }

    /// Runs the operations queued through [`Channel`] handles from other
    /// tasks, in order. Returns how many ran.
    pub fn run_commands(&mut self) -> usize {
        let cmds = self.pipeline.inner.channel.take_commands();
        let n = cmds.len();
        // The taken writes no longer count as queued: settle writability
        // once they are all in the buffer, not half-way through.
        self.pipeline.inner.head.batching = true;
        for cmd in cmds {
            if self.pipeline.inner.head.closed {
                cmd.fail();
                continue;
            }
            let p = &mut *self.pipeline;
            match cmd {
                Command::Write(m, promise, flush) => {
                    p.write_with(m, promise);
                    if flush {
                        p.flush();
                    }
                }
                Command::Flush => p.flush(),
                Command::Read => p.read(),
                Command::Close(promise) => p.close_with(promise),
                Command::ShutdownOutput(promise) => p.shutdown_output(promise),
                Command::Exec(f) => {
                    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| f(&mut *p))) {
                        let err = p.inner.recover(payload);
                        p.fire_exception(err);
                    }
                }
                Command::Overflow(err) => {
                    let _ = p.enter(|i| i.close_with_reason(err));
                }
            }
        }
        self.pipeline.inner.head.batching = false;
        // The taken writes now count in the outbound buffer.
        if n > 0 {
            self.pipeline.inner.publish_outbound();
        }
        let _ = self.pipeline.enter(|_| {});
        n
    }

    /// Registers the task to be woken by the next command queued from
    /// another task; ready at once if one is queued already. `waiter` is
    /// the task's own (one per task, kept across polls).
    pub fn poll_commands(
        &mut self,
        cx: &mut TaskContext<'_>,
        waiter: &mut CommandWaiter,
    ) -> Poll<()> {
        self.pipeline.inner.channel.poll_commands(cx, waiter)
    }

    /// Whether commands are queued.
    pub fn has_commands(&self) -> bool {
        self.pipeline.inner.channel.has_commands()
    }

    /// The outbound buffer the head writes into; the transport drains its
    /// flushed part to the socket.
    pub fn outbound(&mut self) -> &mut OutboundBuffer {
        &mut self.pipeline.inner.head.outbound
    }

    /// Counts `n` bytes as written to the socket (seen by
    /// [`Channel::bytes_written`], which write timeouts watch).
    pub fn record_written(&self, n: usize) {
        self.pipeline.inner.channel.record_written(n);
    }

    /// The outbound buffer and the channel's count of bytes written,
    /// borrowed together, so that a writer counts what a system call wrote
    /// before it completes the writes that call finished.
    ///
    /// ```
    /// use weft_core::{Channel, Pipeline};
    ///
    /// let mut p = Pipeline::new(Channel::new(None, None));
    /// p.write_and_flush("hi");
    /// let ch = p.channel().clone();
    /// let mut t = p.transport();
    /// let (ob, written) = t.outbound_and_counter();
    /// written.add(2); // the socket took both bytes
    /// ob.advance(2); // then the write completes
    /// assert_eq!(ch.bytes_written(), 2);
    /// ```
    pub fn outbound_and_counter(&mut self) -> (&mut OutboundBuffer, WrittenCounter<'_>) {
        let inner = &mut self.pipeline.inner;
        (&mut inner.head.outbound, WrittenCounter(&inner.channel))
    }

    /// Delivers the writability change that draining the outbound buffer
    /// caused, and publishes its size to the other tasks' handles.
    pub fn sync_writability(&mut self) {
        self.pipeline.inner.publish_outbound();
        let _ = self.pipeline.enter(|_| {});
    }

    /// Sets the write-buffer watermarks.
    pub fn set_watermark(&mut self, wm: WriteBufferWaterMark) {
        self.pipeline.inner.head.outbound.set_watermark(wm);
        let _ = self.pipeline.enter(|_| {});
    }

    /// Sets the cap on the outbound bytes (`None`: no cap; the default is
    /// [`DEFAULT_OUTBOUND_CAP`](crate::transport::DEFAULT_OUTBOUND_CAP)). A
    /// write past it fails with a closed-channel error naming the cap, and
    /// the channel closes.
    pub fn set_outbound_cap(&mut self, cap: Option<usize>) {
        self.pipeline.inner.head.outbound.set_cap(cap);
    }

    /// Makes a write past the cap drop (its promise fails with
    /// [`ErrorKind::Dropped`](crate::ErrorKind::Dropped), counted by
    /// [`Channel::writes_dropped`]) instead of closing the channel: the
    /// policy of a datagram transport, whose messages are droppable.
    pub fn set_overflow_drops(&mut self, on: bool) {
        self.pipeline.inner.head.outbound.set_overflow_drops(on);
    }

    /// Whether a handler asked for a read since the last call; clears it.
    pub fn take_read_request(&mut self) -> bool {
        std::mem::take(&mut self.pipeline.inner.head.read_requested)
    }

    /// The output shutdown a handler asked for, once everything flushed
    /// before it is written; `None` while there is none or it is not due.
    pub fn take_due_shutdown(&mut self) -> Option<OutputShutdown> {
        let head = &mut self.pipeline.inner.head;
        if head.outbound.flushed_is_empty() {
            head.shutdown.take()
        } else {
            None
        }
    }

    /// Whether a close reached the head (or a handler panicked, or a write
    /// passed the cap) and the channel is not closed yet.
    pub fn close_requested(&self) -> bool {
        let head = &self.pipeline.inner.head;
        head.close_requested && !head.closed
    }

    /// The error pending writes fail with when the channel closes: the
    /// reason it is closing for (a write timeout, the cap), else a plain
    /// closed-channel error. For a transport that must fail writes itself
    /// before [`finish_close`](Self::finish_close) (io_uring, whose
    /// in-flight entries outlive the buffer).
    pub fn close_error(&self) -> crate::Error {
        let head = &self.pipeline.inner.head;
        head.close_reason
            .clone()
            .unwrap_or_else(crate::Error::closed)
    }

    /// Whether [`finish_close`](Self::finish_close) ran.
    pub fn is_closed(&self) -> bool {
        self.pipeline.inner.head.closed
    }

    /// Completes a close once the transport has closed its socket: marks the
    /// channel closed, fails every pending write and queued command with a
    /// closed-channel error (or the error that closed it), fires
    /// `channel_inactive`, and completes the close promises. Idempotent.
    pub fn finish_close(&mut self) {
        if !self.pipeline.inner.mark_closed() {
            return;
        }
        let _ = self.pipeline.enter(|p| p.forward(HEAD, Ev::Inactive));
        for p in std::mem::take(&mut self.pipeline.inner.head.close_promises) {
            p.succeed();
        }
    }
}

/// Counts bytes as written on a channel ([`Channel::bytes_written`]); see
/// [`Transport::outbound_and_counter`].
#[derive(Clone, Copy, Debug)]
pub struct WrittenCounter<'a>(&'a Channel);

impl WrittenCounter<'_> {
    /// Counts `n` more bytes as written.
    pub fn add(&self, n: usize) {
        self.0.record_written(n);
    }
}
