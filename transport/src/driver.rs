//! The connection task: one per channel, owning its pipeline and socket.
//!
//! Contract:
//! - reads: when the socket is readable (and auto-read is on, or a `read()`
//!   was requested), up to `max_reads_per_wakeup` reads into an adaptive
//!   buffer; each read is handed on as one `Bytes` split off the buffer (no
//!   copy), then `channel_read_complete`. The buffer grows when a read fills
//!   it and shrinks after two short reads in a row; it comes from a
//!   per-thread pool and goes back when the burst ends, so an idle
//!   connection holds no read buffer and steady-state reads allocate nothing;
//! - writes: flushed entries leave strictly in order. Consecutive byte
//!   entries go out in one `writev` of at most [`IOV_MAX`] slices (a single
//!   slice with a plain `write`); a `FileRegion` goes out with `sendfile`
//!   from its current position in steps of at most [`SENDFILE_STEP`] bytes.
//!   After `write_spin` system calls the task yields so that one busy
//!   channel does not starve the others on its thread;
//! - `sendfile` returning 0 before the region's end means the file shrank:
//!   that write fails with [`Error::is_file_shrank`], the error is fired,
//!   and the channel closes (the peer's framing can no longer be trusted);
//!   it never spins;
//! - `sendfile` refused by the kernel (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`):
//!   the region is streamed in chunks read from the file instead, one chunk
//!   in memory at a time;
//! - a user message reaching the socket fails its promise with an error
//!   naming its type and suggesting a missing encoder;
//! - while the channel is unwritable (above its high watermark) it reads
//!   nothing, and reads again below the low watermark, unless
//!   `pause_read_when_unwritable` is off; a read burst stops as soon as the
//!   handlers' writes make it unwritable;
//! - end of input fires [`InputShutdown`](weft_core::InputShutdown) (so
//!   decoders finish and handlers can answer); when half-closure is
//!   allowed the channel then stays open, otherwise it closes **once
//!   everything flushed has been written** — a peer that sends its request
//!   and shuts its output down (`shutdown(SHUT_WR)`, `nc -N`) receives the
//!   whole answer;
//! - on close, what was flushed before the close gets one non-blocking
//!   attempt to reach the kernel (Netty writes on flush, so
//!   `write_and_flush` then `close` delivers what fits in the socket
//!   buffer); then the socket is closed, every pending promise fails and
//!   `channel_inactive` fires.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use tokio::io::Interest;
use weft_core::{Channel, CommandWaiter, Error, InputShutdown, Msg, Pipeline};

use crate::options::ChannelOptions;
use crate::server::ServerCtl;
use crate::stream::Stream;

/// Most slices in one `writev` (Linux's IOV_MAX; 1025 gives EINVAL).
pub const IOV_MAX: usize = 1024;
/// Slices gathered on the stack; more than this use a heap array.
const SMALL_IOV: usize = 64;
/// Most bytes asked of one `sendfile` call.
pub const SENDFILE_STEP: usize = 1 << 20;
/// Size of one chunk when a `FileRegion` is streamed instead of sent.
pub const FALLBACK_CHUNK: usize = 64 * 1024;

enum Flushed {
    /// Nothing flushed is left.
    Done,
    /// The socket's send buffer is full: wait for writability.
    Blocked,
    /// The write budget for this wake-up is spent.
    Budget,
}

enum Wake {
    Commands,
    Readable(io::Result<()>),
    Writable(io::Result<()>),
}

struct State {
    read_size: usize,
    short_reads: u8,
    read_requested: bool,
    input_closed: bool,
    write_blocked: bool,
    sendfile_refused: bool,
    /// A chunk of a streamed `FileRegion`, partly written.
    chunk: Option<Bytes>,
}

/// Runs a connection until it closes.
pub(crate) async fn drive<S: Stream>(
    stream: S,
    mut pipeline: Pipeline,
    opts: Arc<ChannelOptions>,
    ctl: Option<Arc<ServerCtl>>,
) {
    let channel = pipeline.channel().clone();
    tracing::debug!("channel active");
    pipeline.fire_active();
    let mut st = State {
        read_size: opts.read_initial,
        short_reads: 0,
        read_requested: false,
        input_closed: false,
        write_blocked: false,
        sendfile_refused: !opts.sendfile,
        chunk: None,
    };
    let mut draining = false;
    let mut waiter = CommandWaiter::new();
    loop {
        pipeline.run_commands();
        if pipeline.take_read_request() {
            st.read_requested = true;
        }
        if let Some(ctl) = &ctl {
            match ctl.phase() {
                crate::server::Phase::Running => {}
                crate::server::Phase::Draining => draining = true,
                crate::server::Phase::Abort => break,
            }
        }
        if pipeline.close_requested() {
            break;
        }

        let mut yield_now = false;
        if !st.write_blocked && !pipeline.outbound().flushed_is_empty() {
            match flush(&stream, &mut pipeline, &channel, &mut st, &opts) {
                Ok(Flushed::Done) => {}
                Ok(Flushed::Blocked) => st.write_blocked = true,
                Ok(Flushed::Budget) => yield_now = true,
                Err(e) => {
                    // The writes that were under way fail with the cause.
                    pipeline.outbound().fail_flushed(&e);
                    fail(&mut pipeline, e);
                    break;
                }
            }
            pipeline.sync_writability();
        }
        if pipeline.shutdown_output_pending() && pipeline.outbound().flushed_is_empty() {
            if let Some(p) = pipeline.take_shutdown_output() {
                let r = nix::sys::socket::shutdown(
                    stream.as_raw_fd(),
                    nix::sys::socket::Shutdown::Write,
                )
                .map_err(|e| Error::io(io::Error::from(e)));
                tracing::debug!("output shut down");
                if let Some(p) = p {
                    p.complete(r);
                }
            }
        }
        if pipeline.close_requested() {
            break;
        }
        if (draining || (st.input_closed && !opts.allow_half_closure))
            && pipeline.outbound().flushed_is_empty()
            && !channel.has_commands()
        {
            // Shutting down, or the peer's input ended without half-closure:
            // everything flushed is out, so the channel can close.
            break;
        }
        if yield_now {
            tokio::task::yield_now().await;
            continue;
        }
        if !st.write_blocked && !pipeline.outbound().flushed_is_empty() {
            // A handler flushed more while reacting to the last write (a
            // writability change, an error): write it before waiting.
            continue;
        }

        let want_read = !st.input_closed
            && !draining
            && (channel.is_auto_read() || st.read_requested)
            && (!opts.pause_read_when_unwritable || channel.is_writable());
        let want_write = st.write_blocked;
        let wake = poll_fn(|cx| {
            if channel.poll_commands(cx, &mut waiter).is_ready() {
                return Poll::Ready(Wake::Commands);
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
        .await;
        match wake {
            Wake::Commands => {}
            Wake::Writable(Ok(())) => st.write_blocked = false,
            Wake::Readable(Ok(())) => {
                if let Err(e) = read_burst(&stream, &mut pipeline, &mut st, &opts) {
                    fail(&mut pipeline, e);
                    break;
                }
            }
            Wake::Writable(Err(e)) | Wake::Readable(Err(e)) => {
                fail(&mut pipeline, Error::io(e));
                break;
            }
        }
    }
    if pipeline.close_requested() && !st.write_blocked {
        // As in Netty, where a flush writes at once: what was flushed before
        // the close gets one non-blocking attempt to reach the kernel.
        if let Err(e) = flush(&stream, &mut pipeline, &channel, &mut st, &opts) {
            pipeline.outbound().fail_flushed(&e);
        }
    }
    drop(stream);
    pipeline.finish_close();
    tracing::debug!("channel inactive");
}

/// Fires an error that ends the channel.
fn fail(pipeline: &mut Pipeline, err: Error) {
    if err.is_io()
        && matches!(
            err.io_kind(),
            Some(io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe)
        )
    {
        tracing::debug!(error = ?err, "connection reset by peer");
    } else {
        tracing::debug!(error = ?err, "channel failed");
    }
    pipeline.fire_exception(err);
}

fn read_burst<S: Stream>(
    stream: &S,
    pipeline: &mut Pipeline,
    st: &mut State,
    opts: &ChannelOptions,
) -> Result<(), Error> {
    let mut buf = crate::recv_pool::take(st.read_size);
    let mut reads = 0;
    let mut got_any = false;
    while reads < opts.max_reads_per_wakeup {
        if buf.capacity() - buf.len() < opts.read_min.max(st.read_size / 4) {
            buf.reserve(st.read_size);
        }
        let offered = buf.capacity() - buf.len();
        match stream.try_read_drain(&mut buf) {
            Ok(0) => {
                st.input_closed = true;
                break;
            }
            Ok(n) => {
                reads += 1;
                got_any = true;
                // Adapt the next read's size.
                if n == offered {
                    st.read_size = (st.read_size * 2).min(opts.read_max);
                    st.short_reads = 0;
                } else if n < st.read_size / 2 {
                    st.short_reads += 1;
                    if st.short_reads >= 2 {
                        st.read_size = (st.read_size / 2).max(opts.read_min);
                        st.short_reads = 0;
                    }
                } else {
                    st.short_reads = 0;
                }
                pipeline.fire_read(buf.split().freeze());
                if pipeline.close_requested() || pipeline.is_closed() {
                    break;
                }
                if !pipeline.channel().is_auto_read() {
                    break;
                }
                if opts.pause_read_when_unwritable && !pipeline.channel().is_writable() {
                    break; // the handlers' answers wait: read no more for now
                }
                if n < offered {
                    break; // drained: the next read would block
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(e)),
        }
    }
    crate::recv_pool::give(buf);
    if got_any {
        st.read_requested = false;
        pipeline.fire_read_complete();
    }
    if st.input_closed {
        tracing::debug!(
            half_closure = opts.allow_half_closure,
            "input shut down by peer"
        );
        pipeline.fire_user_event(Box::new(InputShutdown));
    }
    Ok(())
}

fn flush<S: Stream>(
    stream: &S,
    pipeline: &mut Pipeline,
    channel: &Channel,
    st: &mut State,
    opts: &ChannelOptions,
) -> Result<Flushed, Error> {
    let mut budget = opts.write_spin;
    loop {
        let ob = pipeline.outbound();
        let Some(front) = ob.front_mut() else {
            return Ok(Flushed::Done);
        };
        match &mut front.msg {
            Msg::Bytes(_) | Msg::Composite(_) => {
                let (slices, file_follows) = ob.gather_count(IOV_MAX);
                if slices == 0 {
                    ob.advance(0); // completes empty entries
                    continue;
                }
                let r = if S::CORKS && file_follows {
                    // A header before a file body: say more follows, so that
                    // the header and the first file bytes share a segment.
                    let mut iov = [IoSlice::new(&[]); SMALL_IOV];
                    let (n, total) = ob.gather(&mut iov);
                    stream
                        .try_io(Interest::WRITABLE, || {
                            nix::sys::socket::sendmsg::<()>(
                                stream.as_raw_fd(),
                                &iov[..n],
                                &[],
                                nix::sys::socket::MsgFlags::from_bits_retain(nix::libc::MSG_MORE)
                                    | nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
                                None,
                            )
                            .map_err(io::Error::from)
                        })
                        .map(|k| (k, total))
                } else if slices == 1 {
                    let b = ob.first_slice().expect("counted one slice");
                    stream.try_write(b).map(|k| (k, b.len()))
                } else if slices <= SMALL_IOV {
                    let mut iov = [IoSlice::new(&[]); SMALL_IOV];
                    let (n, total) = ob.gather(&mut iov);
                    stream.try_write_vectored(&iov[..n]).map(|k| (k, total))
                } else {
                    let mut iov = vec![IoSlice::new(&[]); IOV_MAX];
                    let (n, total) = ob.gather(&mut iov);
                    stream.try_write_vectored(&iov[..n]).map(|k| (k, total))
                };
                match r {
                    Ok((k, total)) => {
                        ob.advance(k);
                        channel.record_written(k);
                        if k < total {
                            // The send buffer is (nearly) full; the next
                            // attempt would most likely block.
                            return Ok(Flushed::Blocked);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flushed::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(e)),
                }
            }
            Msg::File(region) => {
                if region.is_done() && st.chunk.is_none() {
                    ob.complete_front(Ok(()));
                    continue;
                }
                if st.sendfile_refused || st.chunk.is_some() {
                    // Streamed: one chunk read from the file at a time.
                    if st.chunk.is_none() {
                        match region.read_chunk(FALLBACK_CHUNK) {
                            Ok(c) => st.chunk = Some(c),
                            Err(e) => {
                                ob.complete_front(Err(e.clone()));
                                return Err(e);
                            }
                        }
                    }
                    let chunk = st.chunk.as_mut().expect("set above");
                    match stream.try_write(chunk) {
                        Ok(k) => {
                            channel.record_written(k);
                            let _ = chunk.split_to(k);
                            if chunk.is_empty() {
                                st.chunk = None;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return Ok(Flushed::Blocked)
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(Error::io(e)),
                    }
                } else {
                    let file = region.file().clone();
                    let mut offset = region.position() as i64;
                    let count = region.remaining().min(SENDFILE_STEP as u64) as usize;
                    let r = stream.try_io(Interest::WRITABLE, || {
                        nix::sys::sendfile::sendfile(
                            stream.as_fd(),
                            file.as_fd(),
                            Some(&mut offset),
                            count,
                        )
                        .map_err(io::Error::from)
                    });
                    match r {
                        Ok(0) => {
                            let err = region.shrank_error();
                            ob.complete_front(Err(err.clone()));
                            return Err(err);
                        }
                        Ok(k) => {
                            channel.record_written(k);
                            region.advance(k as u64);
                            if region.is_done() {
                                ob.complete_front(Ok(()));
                            } else if k < count {
                                return Ok(Flushed::Blocked);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return Ok(Flushed::Blocked)
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e)
                            if matches!(
                                e.raw_os_error(),
                                Some(
                                    libc_errno::EINVAL
                                        | libc_errno::ENOSYS
                                        | libc_errno::EOPNOTSUPP
                                )
                            ) =>
                        {
                            tracing::debug!(error = %e, "sendfile refused; streaming the file in chunks");
                            st.sendfile_refused = true;
                            continue;
                        }
                        Err(e) => return Err(Error::io(e)),
                    }
                }
            }
            Msg::User(u) => {
                let name = (**u).type_name();
                let hint = if (**u).as_any().is::<String>() {
                    "reached the transport, which writes only bytes: add a StringEncoder or \
                     LineEncoder (weft-codec) to the pipeline, or write Bytes::from(text)"
                } else {
                    "reached the transport, which writes only Bytes, CompositeBytes and \
                     FileRegion: is an encoder missing from the pipeline?"
                };
                ob.complete_front(Err(Error::unsupported_message(name, hint)));
                tracing::warn!(msg_type = name, "user message reached the transport");
                continue;
            }
        }
        budget -= 1;
        if budget == 0 {
            return Ok(Flushed::Budget);
        }
    }
}

mod libc_errno {
    pub(super) const EINVAL: i32 = nix::errno::Errno::EINVAL as i32;
    pub(super) const ENOSYS: i32 = nix::errno::Errno::ENOSYS as i32;
    pub(super) const EOPNOTSUPP: i32 = nix::errno::Errno::EOPNOTSUPP as i32;
}
