//! The write half of a connection: draining the flushed part of the
//! outbound buffer to the socket, strictly in order.
//!
//! Contract:
//! - consecutive byte entries (`Bytes`, `CompositeBytes`) go out in one
//!   `writev` of at most [`IOV_MAX`] slices, a single slice with a plain
//!   `write` ([`Writer::write_gathered`]); slices adjacent in memory (pieces
//!   split off one buffer) travel as one `iovec`, without a copy; a header
//!   followed by a file is sent with `MSG_MORE` on TCP, so that it shares a
//!   segment with the file's first bytes;
//! - a `FileRegion` goes out with `sendfile` from its current position, in
//!   steps of at most [`SENDFILE_STEP`] bytes ([`Writer::write_sendfile`]);
//!   `sendfile` returning 0 before the region's end means the file shrank:
//!   that write fails with the file-shrank error and the error ends the
//!   channel (the peer's framing can no longer be trusted), never a spin;
//! - when the kernel refuses `sendfile` (`EINVAL`, `ENOSYS`, `EOPNOTSUPP`)
//!   or it is switched off, regions are streamed in chunks of
//!   [`FALLBACK_CHUNK`] bytes read from the file, one chunk in memory at a
//!   time ([`Writer::write_streamed`]);
//! - a user message reaching the socket fails its promise with an error
//!   naming its type and suggesting a missing encoder;
//! - after `write_spin` system calls the flush stops with
//!   [`Flushed::Budget`], so one busy channel does not starve the others on
//!   its thread; the bytes each system call wrote are counted on the
//!   channel before the writes it finished complete (a task woken by its
//!   write's completion reads a count that includes it).

use std::io::{self, IoSlice};
use std::os::fd::AsFd;

use bytes::Bytes;
use tokio::io::Interest;
use weft_core::transport::{OutboundBuffer, Transport, WrittenCounter};
use weft_core::{Error, Msg};

use crate::stream::Stream;
use nix::libc;

/// Most slices in one `writev` (Linux's IOV_MAX; 1025 gives EINVAL).
pub(crate) const IOV_MAX: usize = 1024;
/// Slices gathered on the stack; more than this use a heap array.
const SMALL_IOV: usize = 64;
/// Most bytes asked of one `sendfile` call.
pub(crate) const SENDFILE_STEP: usize = 1 << 20;
/// Size of one chunk when a `FileRegion` is streamed instead of sent.
pub(crate) const FALLBACK_CHUNK: usize = 64 * 1024;

/// How a flush ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flushed {
    /// Nothing flushed is left.
    Done,
    /// The socket's send buffer is full: wait for writability.
    Blocked,
    /// The write budget for this wake-up is spent.
    Budget,
}

/// How file regions leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Files {
    Sendfile,
    /// Read in chunks and written (sendfile off or refused).
    Streamed,
}

/// What one system call did.
pub(crate) enum Step {
    /// Wrote this many bytes; the entry may have more.
    Wrote(usize),
    /// Wrote this many bytes, less than offered: the send buffer is
    /// (nearly) full and the next attempt would most likely block.
    Short(usize),
    /// The socket would block.
    Blocked,
    /// Nothing was written (an interrupted call, an entry completed without
    /// a system call): go on without spending the budget.
    Again,
}

/// The write half's state.
#[derive(Debug)]
pub(crate) struct Writer {
    files: Files,
    /// A chunk of a streamed `FileRegion`, partly written.
    chunk: Option<Bytes>,
    spin: usize,
}

impl Writer {
    pub(crate) fn new(sendfile: bool, spin: usize) -> Writer {
        Writer {
            files: if sendfile {
                Files::Sendfile
            } else {
                Files::Streamed
            },
            chunk: None,
            spin,
        }
    }

    /// Writes flushed entries until none is left, the socket is full, or
    /// the budget is spent. An error is the channel's end; the entry it hit
    /// has failed with it.
    pub(crate) fn flush<S: Stream>(
        &mut self,
        stream: &S,
        t: &mut Transport<'_>,
    ) -> Result<Flushed, Error> {
        let mut budget = self.spin;
        let r = loop {
            let (ob, written) = t.outbound_and_counter();
            let step = match ob.front_mut().map(|e| &mut e.msg) {
                None => break Ok(Flushed::Done),
                Some(Msg::Bytes(_) | Msg::Composite(_)) => {
                    Self::write_gathered(stream, ob, written)
                }
                Some(Msg::File(region)) if region.is_done() && self.chunk.is_none() => {
                    ob.complete_front(Ok(()));
                    Ok(Step::Again)
                }
                Some(Msg::File(_)) if self.files == Files::Streamed || self.chunk.is_some() => {
                    self.write_streamed(stream, ob, written)
                }
                Some(Msg::File(_)) => self.write_sendfile(stream, ob, written),
                Some(Msg::User(u)) => {
                    let err = unsupported(&**u);
                    ob.complete_front(Err(err));
                    Ok(Step::Again)
                }
            };
            match step {
                Ok(Step::Wrote(_)) => {
                    budget -= 1;
                    if budget == 0 {
                        break Ok(Flushed::Budget);
                    }
                }
                Ok(Step::Short(_) | Step::Blocked) => break Ok(Flushed::Blocked),
                Ok(Step::Again) => {}
                Err(e) => break Err(e),
            }
        };
        r
    }

    /// Writes a run of byte entries with one `write`/`writev`/`sendmsg`.
    pub(crate) fn write_gathered<S: Stream>(
        stream: &S,
        ob: &mut OutboundBuffer,
        written: WrittenCounter<'_>,
    ) -> Result<Step, Error> {
        let (slices, file_follows) = ob.gather_count(IOV_MAX);
        if slices == 0 {
            ob.advance(0); // completes empty entries
            return Ok(Step::Again);
        }
        let r = if S::CORKS && file_follows {
            // A header before a file body: say more follows, so that the
            // header and the first file bytes share a segment.
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
            let mut raw = [EMPTY_IOVEC; SMALL_IOV];
            writev_merged(stream, &iov[..n], &mut raw).map(|k| (k, total))
        } else {
            let mut iov = vec![IoSlice::new(&[]); IOV_MAX];
            let (n, total) = ob.gather(&mut iov);
            let mut raw = vec![EMPTY_IOVEC; IOV_MAX];
            writev_merged(stream, &iov[..n], &mut raw).map(|k| (k, total))
        };
        let step = io_step(r)?;
        if let Step::Wrote(k) | Step::Short(k) = step {
            written.add(k);
            ob.advance(k);
        }
        Ok(step)
    }

    /// Sends the front `FileRegion` with one `sendfile` step.
    pub(crate) fn write_sendfile<S: Stream>(
        &mut self,
        stream: &S,
        ob: &mut OutboundBuffer,
        written: WrittenCounter<'_>,
    ) -> Result<Step, Error> {
        let region = ob.front_region().expect(FRONT_IS_FILE);
        let file = region.file().clone();
        let mut offset = region.position() as i64;
        let count = region.remaining().min(SENDFILE_STEP as u64) as usize;
        let r = stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut offset), count)
                .map_err(io::Error::from)
        });
        let step = match r {
            Ok(0) => {
                let err = region.shrank_error();
                ob.complete_front(Err(err.clone()));
                return Err(err);
            }
            Err(e) if is_sendfile_refusal(&e) => {
                tracing::debug!(error = %e, "sendfile refused; streaming the file in chunks");
                self.files = Files::Streamed;
                return Ok(Step::Again);
            }
            r => io_step(r.map(|k| (k, count)))?,
        };
        if let Step::Wrote(k) | Step::Short(k) = step {
            written.add(k);
            region.advance(k as u64);
            if region.is_done() {
                ob.complete_front(Ok(()));
            }
        }
        Ok(step)
    }

    /// Writes the front `FileRegion` by chunks read from the file.
    pub(crate) fn write_streamed<S: Stream>(
        &mut self,
        stream: &S,
        ob: &mut OutboundBuffer,
        written: WrittenCounter<'_>,
    ) -> Result<Step, Error> {
        let chunk = match &mut self.chunk {
            Some(c) => c,
            None => match ob
                .front_region()
                .expect(FRONT_IS_FILE)
                .read_chunk(FALLBACK_CHUNK)
            {
                Ok(c) => self.chunk.insert(c),
                Err(e) => {
                    ob.complete_front(Err(e.clone()));
                    return Err(e);
                }
            },
        };
        // A short write here just leaves the rest of the chunk for the next
        // call, which finds out whether the socket is full.
        let step = match io_step(stream.try_write(chunk).map(|k| (k, k)))? {
            Step::Short(k) => Step::Wrote(k),
            s => s,
        };
        if let Step::Wrote(k) = step {
            written.add(k);
            let _ = chunk.split_to(k);
            if chunk.is_empty() {
                self.chunk = None;
            }
        }
        Ok(step)
    }
}

pub(crate) const EMPTY_IOVEC: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// Writes `iov` with one `writev`, passing slices that continue one another
/// in memory as one segment: an encoder that appends its messages to one
/// buffer and splits each off (the HTTP server codec does) produces such
/// runs, and the kernel then copies one long segment instead of many short
/// ones. Nothing is copied here; `raw` is scratch space at least as long as
/// `iov`.
#[allow(unsafe_code)]
fn writev_merged<S: Stream>(
    stream: &S,
    iov: &[IoSlice<'_>],
    raw: &mut [libc::iovec],
) -> io::Result<usize> {
    let n = merge_adjacent(iov, raw);
    stream.try_io(Interest::WRITABLE, || {
        // SAFETY: `raw[..n]` describes memory borrowed from `iov`, whose
        // slices stay alive and unchanged for this call; merged entries
        // span two or more slices that are adjacent in memory, so every
        // byte they cover belongs to one of the borrowed slices. The kernel
        // only reads it. `n` is at most IOV_MAX.
        let r = unsafe { libc::writev(stream.as_raw_fd(), raw.as_ptr(), n as libc::c_int) };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(r as usize)
        }
    })
}

/// Copies `iov` into `raw` as `iovec`s, joining each slice that starts where
/// the previous one ends; returns how many entries it used.
pub(crate) fn merge_adjacent(iov: &[IoSlice<'_>], raw: &mut [libc::iovec]) -> usize {
    let mut n = 0;
    for s in iov {
        let base = s.as_ptr() as usize;
        if n > 0 {
            let prev = &mut raw[n - 1];
            if prev.iov_base as usize + prev.iov_len == base {
                prev.iov_len += s.len();
                continue;
            }
        }
        raw[n] = libc::iovec {
            iov_base: s.as_ptr() as *mut libc::c_void,
            iov_len: s.len(),
        };
        n += 1;
    }
    n
}

/// What a driver says when the front entry it matched as a file is not one
/// (it never happens: the entry was just matched).
pub(crate) const FRONT_IS_FILE: &str = "the front entry is a FileRegion";

/// Sorts a write's outcome, given as `(written, offered)`.
fn io_step(r: io::Result<(usize, usize)>) -> Result<Step, Error> {
    match r {
        Ok((k, offered)) if k < offered => Ok(Step::Short(k)),
        Ok((k, _)) => Ok(Step::Wrote(k)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(Step::Blocked),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(Step::Again),
        Err(e) => Err(Error::io(e)),
    }
}

fn is_sendfile_refusal(e: &io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}

/// The error for a user message that reached the socket.
pub(crate) fn unsupported(u: &dyn weft_core::AnyMsg) -> Error {
    let name = u.type_name();
    let hint = if u.as_any().is::<String>() {
        "reached the transport, which writes only bytes: add a StringEncoder or \
         LineEncoder (weft-codec) to the pipeline, or write Bytes::from(text)"
    } else {
        "reached the transport, which writes only Bytes, CompositeBytes and \
         FileRegion: is an encoder missing from the pipeline?"
    };
    tracing::warn!(msg_type = name, "user message reached the transport");
    Error::unsupported_message(name, hint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjacent_slices_of_one_buffer_become_one_segment() {
        let whole = Bytes::from(vec![7u8; 300]);
        let (a, b, c) = (
            whole.slice(..100),
            whole.slice(100..250),
            whole.slice(250..),
        );
        let other = Bytes::from(vec![1u8; 10]);
        let iov = [
            IoSlice::new(&a),
            IoSlice::new(&b),
            IoSlice::new(&other),
            IoSlice::new(&c),
        ];
        let mut raw = [EMPTY_IOVEC; 4];
        let n = merge_adjacent(&iov, &mut raw);
        assert_eq!(n, 3, "a and b join; other and c do not touch");
        assert_eq!(raw[0].iov_base as usize, a.as_ptr() as usize);
        assert_eq!(raw[0].iov_len, 250);
        assert_eq!(raw[1].iov_len, 10);
        assert_eq!(raw[2].iov_base as usize, c.as_ptr() as usize);
        assert_eq!(raw[2].iov_len, 50);
    }

    #[test]
    fn slices_out_of_order_stay_apart() {
        let whole = Bytes::from(vec![7u8; 200]);
        let (a, b) = (whole.slice(..100), whole.slice(100..));
        let iov = [IoSlice::new(&b), IoSlice::new(&a)];
        let mut raw = [EMPTY_IOVEC; 2];
        assert_eq!(merge_adjacent(&iov, &mut raw), 2);
    }
}
