//! The datagram channel's task: one per socket, owning it and its pipeline.
//!
//! Contract:
//! - the task alternates, as a stream channel's does, between the work that
//!   is due (commands from other tasks, flushed writes, a close) and waiting
//!   for a command, the socket turning writable (while a send is blocked)
//!   or readable (while it wants to read: auto-read on or a read asked for,
//!   and writable unless the outbound queue is above its high watermark);
//! - **reads**: up to [`READ_CALLS`] `recvmmsg` calls a wake-up, each
//!   filling up to a batch of slots of one buffer; every datagram is fired
//!   as a [`DatagramPacket`] whose content is a slice of that buffer (GRO:
//!   each segment of a coalesced receive is its own packet, a slice too),
//!   then `channel_read_complete` once; a datagram cut to its slot is
//!   counted and dropped; an error the network reports for one datagram
//!   (refused, unreachable) is fired as an exception and the channel stays
//!   open;
//! - **writes**: flushed entries leave strictly in order, up to a batch of
//!   messages per `sendmmsg`; consecutive datagrams to one address and from
//!   one source whose sizes are equal (the last may be shorter) are one
//!   message with a segment size (GSO), up to 64 of them; a
//!   [`DatagramPacket`] goes to its remote address, plain bytes to the
//!   connected peer; a write that is neither (or bytes on an unconnected
//!   channel, or a file) fails with an unsupported-message error; an error
//!   for one datagram fails that write's promise only; a segmented send the
//!   kernel refuses turns GSO off for the channel and is sent again
//!   unsegmented; after [`WRITE_CALLS`] calls the task yields;
//! - **close**: what was flushed gets one non-blocking attempt, then the
//!   socket closes, every pending write fails and `channel_inactive` fires.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use weft_core::transport::{CommandWaiter, Entry};
use weft_core::{DatagramPacket, Error, ErrorKind, Msg, Pipeline};

use super::options::GSO_MAX_SEGMENTS;
use super::sys::{OutMsg, Received, RecvBatch, RecvBuf, SendBatch};
use super::Stats;

/// Most `recvmmsg` calls per wake-up.
pub(crate) const READ_CALLS: usize = 4;
/// Most `sendmmsg` calls before the task yields to its neighbours.
pub(crate) const WRITE_CALLS: usize = 16;
/// The most slices one message may have (the kernel's `UIO_MAXIOV`).
const MAX_IOV: usize = 1024;
/// The most bytes one segmented send carries (the IPv4 datagram limit less
/// its headers, rounded down).
const GSO_MAX_BYTES: usize = 65000;

/// What the loop does after a step.
enum Next {
    /// Wait for the next wake-up.
    Wait,
    /// More is due at once.
    Again,
    /// The send budget is spent: let other tasks run first.
    Yield,
    /// The channel closes.
    Close,
}

/// What a flush left.
enum Flushed {
    Done,
    Blocked,
    Budget,
}

enum Wake {
    Commands,
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    /// A handler's timer is due.
    Timer,
}

pub(crate) struct Udp {
    pub(crate) socket: Arc<UdpSocket>,
    pub(crate) pipeline: Pipeline,
    pub(crate) stats: Arc<Stats>,
    pub(crate) local: SocketAddr,
    pub(crate) connected: bool,
    pub(crate) recv: RecvBatch,
    pub(crate) send: SendBatch,
    /// Receive slots of `slot` bytes.
    pub(crate) slot: usize,
    pub(crate) buf: RecvBuf,
    pub(crate) received: Vec<Received>,
    /// Reused between flushes (see `reuse`).
    pub(crate) iov_store: Vec<IoSlice<'static>>,
    pub(crate) msgs: Vec<OutMsg>,
    /// Entries per planned message.
    pub(crate) counts: Vec<usize>,
    pub(crate) blocked: bool,
    /// What the channel does next (`lifecycle.rs`): a read request,
    /// reading only while writable, closing when asked.
    pub(crate) lc: crate::lifecycle::Lifecycle,
    pub(crate) timer: crate::timer::ChannelTimer,
}

/// Gives an emptied vector's allocation a new lifetime for its slices (an
/// in-place collect of an empty vector keeps the allocation).
fn reuse<'a, 'b>(v: Vec<IoSlice<'a>>) -> Vec<IoSlice<'b>> {
    debug_assert!(v.is_empty());
    v.into_iter().map(|_| unreachable!("empty")).collect()
}

impl Udp {
    /// Runs the channel until it closes.
    pub(crate) async fn run(mut self) {
        self.pipeline.transport().fire_active();
        let mut waiter = CommandWaiter::new();
        loop {
            match self.run_due() {
                Next::Wait => {}
                Next::Again => continue,
                Next::Yield => {
                    tokio::task::yield_now().await;
                    continue;
                }
                Next::Close => break,
            }
            let wake = self.wait(&mut waiter).await;
            let r = match wake {
                Wake::Commands => Ok(()),
                Wake::Timer => {
                    self.timer.fired(&mut self.pipeline.transport());
                    Ok(())
                }
                Wake::Writable(r) => r.map(|()| self.blocked = false),
                Wake::Readable(r) => match r {
                    Ok(()) => self.read_burst(),
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = r {
                tracing::debug!(error = %e, "datagram channel failed");
                self.pipeline.fire_exception(Error::io(e));
                break;
            }
        }
        self.close();
    }

    /// Runs what is due without waiting.
    fn run_due(&mut self) -> Next {
        let mut t = self.pipeline.transport();
        t.run_commands();
        let close = self.lc.admit(&mut t, None);
        if let Some(shutdown) = t.take_due_shutdown() {
            shutdown.complete(Err(Error::invalid_argument(
                "a datagram channel has no output to shut down; close it",
            )));
        }
        if close {
            return Next::Close;
        }
        let mut next = Next::Wait;
        if !self.blocked && !self.pipeline.transport().outbound().flushed_is_empty() {
            match self.flush() {
                Flushed::Done => {}
                Flushed::Blocked => self.blocked = true,
                Flushed::Budget => next = Next::Yield,
            }
            self.pipeline.transport().sync_writability();
        }
        let mut t = self.pipeline.transport();
        if self.lc.closes(&mut t, !self.blocked) {
            return Next::Close;
        }
        if matches!(next, Next::Wait) && !self.blocked && !t.outbound().flushed_is_empty() {
            // A handler flushed more while reacting to the sends (a
            // writability change): send it before waiting.
            next = Next::Again;
        }
        next
    }

    async fn wait(&mut self, waiter: &mut CommandWaiter) -> Wake {
        let want_read = self.lc.wants_read(self.pipeline.channel());
        let want_write = self.blocked;
        let (socket, mut t) = (&self.socket, self.pipeline.transport());
        let timer = &mut self.timer;
        timer.arm(t.next_timer());
        poll_fn(|cx| {
            if t.poll_commands(cx, waiter).is_ready() {
                return Poll::Ready(Wake::Commands);
            }
            if timer.poll_due(cx).is_ready() {
                return Poll::Ready(Wake::Timer);
            }
            if want_write {
                if let Poll::Ready(r) = socket.poll_send_ready(cx) {
                    return Poll::Ready(Wake::Writable(r));
                }
            }
            if want_read {
                if let Poll::Ready(r) = socket.poll_recv_ready(cx) {
                    return Poll::Ready(Wake::Readable(r));
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Up to [`READ_CALLS`] batches, each datagram fired as a packet.
    fn read_burst(&mut self) -> io::Result<()> {
        self.lc.fired();
        let fd = self.socket.as_raw_fd();
        let mut fired = false;
        for _ in 0..READ_CALLS {
            let mut got = 0;
            let slot = self.slot;
            let (recv, buf, received) = (&mut self.recv, self.buf.free(slot), &mut self.received);
            let r = self.socket.try_io(Interest::READABLE, || {
                let want = (buf.len() / slot).min(recv.capacity());
                got = recv.recv(fd, buf, slot, received)?;
                if got < want {
                    // The queue is empty now: let tokio clear the readiness,
                    // so the next wake-up is a real one (data that arrives
                    // meanwhile still wakes the task).
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Ok(())
            });
            let drained = match r {
                Ok(()) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
                Err(e) if per_datagram(&e) => {
                    // An ICMP error for an earlier datagram (a connected
                    // socket): the peer's problem, not the channel's.
                    self.pipeline.fire_exception(Error::io(e));
                    true
                }
                Err(e) => return Err(e),
            };
            if got > 0 {
                self.fire_received(got);
                fired = true;
            }
            let ch = self.pipeline.channel();
            if drained || !ch.is_open() || !ch.is_auto_read() || !ch.is_writable() {
                break;
            }
        }
        if fired {
            self.pipeline.transport().fire_read_complete();
        }
        Ok(())
    }

    /// Fires the `got` datagrams the last receive described.
    fn fire_received(&mut self, got: usize) {
        let data = self.buf.take(got * self.slot);
        for i in 0..got {
            let d = self.received[i];
            if d.truncated {
                self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    slot = self.slot,
                    "a datagram larger than the largest accepted was dropped"
                );
                continue;
            }
            let Some(from) = d.from else { continue };
            let local = match d.to {
                Some(ip) => SocketAddr::new(ip, self.local.port()),
                None => self.local,
            };
            let start = i * self.slot;
            let whole = data.slice(start..start + d.len);
            match d.segment {
                Some(seg) => {
                    let mut off = 0;
                    while off < whole.len() {
                        let end = (off + seg).min(whole.len());
                        self.fire_packet(whole.slice(off..end), from, local);
                        off = end;
                    }
                }
                None => self.fire_packet(whole, from, local),
            }
        }
    }

    fn fire_packet(&mut self, content: Bytes, from: SocketAddr, local: SocketAddr) {
        let p = DatagramPacket::new(content, from).with_local(local);
        self.pipeline.transport().fire_read(p);
    }

    /// Sends the flushed datagrams, a batch per call.
    fn flush(&mut self) -> Flushed {
        let fd = self.socket.as_raw_fd();
        for _ in 0..WRITE_CALLS {
            let mut iovs = reuse(std::mem::take(&mut self.iov_store));
            self.msgs.clear();
            self.counts.clear();
            let gso = self.stats.gso.load(Ordering::Relaxed);
            let mut t = self.pipeline.transport();
            let ob = t.outbound();
            if ob.flushed_is_empty() {
                self.iov_store = reuse(iovs);
                return Flushed::Done;
            }
            let bad = plan(
                ob.flushed_entries(),
                self.connected,
                gso,
                self.send.capacity(),
                &mut iovs,
                &mut self.msgs,
                &mut self.counts,
            );
            if let Some(err) = bad {
                // The first entry cannot be sent as a datagram.
                iovs.clear();
                self.iov_store = reuse(iovs);
                ob.complete_front(Err(err));
                continue;
            }
            let (send, msgs) = (&mut self.send, &self.msgs);
            let r = self
                .socket
                .try_io(Interest::WRITABLE, || send.send(fd, &iovs, msgs));
            let sizes: usize = match &r {
                Ok(n) => self.msgs[..*n]
                    .iter()
                    .map(|m| {
                        iovs[m.iov_start..m.iov_start + m.iov_len]
                            .iter()
                            .map(|s| s.len())
                            .sum::<usize>()
                    })
                    .sum(),
                Err(_) => 0,
            };
            iovs.clear();
            self.iov_store = reuse(iovs);
            let mut t = self.pipeline.transport();
            match r {
                Ok(n) => {
                    // Counted before the writes complete: a task woken by
                    // its write's completion reads a count that includes it.
                    t.record_written(sizes);
                    let entries: usize = self.counts[..n].iter().sum();
                    for _ in 0..entries {
                        t.outbound().complete_front(Ok(()));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Flushed::Blocked,
                Err(e) => {
                    if self.msgs[0].segment.is_some() && gso_refused(&e) {
                        tracing::debug!(error = %e, "the kernel refused a segmented send: GSO off");
                        self.stats.gso.store(false, Ordering::Relaxed);
                        continue;
                    }
                    // This datagram's own failure (too large, unreachable,
                    // refused): its writes fail, the channel goes on.
                    tracing::debug!(error = %e, "a datagram could not be sent");
                    let err = Error::io(e);
                    for _ in 0..self.counts[0] {
                        t.outbound().complete_front(Err(err.clone()));
                    }
                }
            }
        }
        if self.pipeline.transport().outbound().flushed_is_empty() {
            Flushed::Done
        } else {
            Flushed::Budget
        }
    }

    fn close(mut self) {
        if self.pipeline.transport().close_requested() && !self.blocked {
            let _ = self.flush();
        }
        let mut t = self.pipeline.transport();
        drop(self.socket);
        t.finish_close();
        tracing::debug!("datagram channel closed");
    }
}

/// Whether a socket error concerns one datagram, not the socket.
fn per_datagram(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
    )
}

/// Whether a failed segmented send says the path cannot segment (no
/// checksum offload, a segment over the device's MTU).
fn gso_refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOPROTOOPT)
    )
}

/// One datagram to send, from an outbound entry.
struct Outgoing<'a> {
    to: Option<SocketAddr>,
    from: Option<IpAddr>,
    len: usize,
    slices: Slices<'a>,
}

enum Slices<'a> {
    One(&'a Bytes),
    Many(&'a weft_core::CompositeBytes),
}

fn outgoing(entry: &Entry, connected: bool) -> Result<Outgoing<'_>, Error> {
    match &entry.msg {
        Msg::User(_) => match entry.msg.downcast_ref::<DatagramPacket>() {
            Some(p) => Ok(Outgoing {
                to: Some(p.remote()),
                from: p.local().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()),
                len: p.len(),
                slices: Slices::One(p.content()),
            }),
            None => Err(Error::unsupported_message(
                entry.msg.type_name(),
                "a datagram channel writes DatagramPacket (or bytes when connected)",
            )),
        },
        Msg::Bytes(b) if connected => Ok(Outgoing {
            to: None,
            from: None,
            len: b.len(),
            slices: Slices::One(b),
        }),
        Msg::Composite(c) if connected => Ok(Outgoing {
            to: None,
            from: None,
            len: c.len(),
            slices: Slices::Many(c),
        }),
        Msg::Bytes(_) | Msg::Composite(_) => Err(Error::new(
            ErrorKind::UnsupportedMessage,
            "bytes written to a datagram channel that is not connected: write a DatagramPacket \
             with the recipient's address",
        )),
        Msg::File(_) => Err(Error::unsupported_message(
            entry.msg.type_name(),
            "a datagram channel sends no files; read the file into a DatagramPacket",
        )),
    }
}

/// Plans one `sendmmsg` from the flushed entries: fills `iovs`, `msgs`
/// and, per message, the number of entries it carries. Returns the error
/// of the first entry when it cannot be sent (nothing is planned then);
/// planning stops before any later entry that cannot.
fn plan<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    connected: bool,
    gso: bool,
    max_msgs: usize,
    iovs: &mut Vec<IoSlice<'a>>,
    msgs: &mut Vec<OutMsg>,
    counts: &mut Vec<usize>,
) -> Option<Error> {
    // The open GSO group: its segment size and bytes so far.
    let mut group: Option<(usize, usize)> = None;
    for (i, entry) in entries.enumerate() {
        let out = match outgoing(entry, connected) {
            Ok(o) => o,
            Err(e) if i == 0 => return Some(e),
            Err(_) => break,
        };
        let first = iovs.len();
        let slices = match out.slices {
            Slices::One(_) => 1,
            Slices::Many(c) => c.chunks().len(),
        };
        let joins = gso
            && out.len > 0
            && match (group, msgs.last()) {
                (Some((seg, bytes)), Some(last)) => {
                    last.to == out.to
                        && last.from == out.from
                        && out.len <= seg
                        && counts[counts.len() - 1] < GSO_MAX_SEGMENTS
                        && bytes + out.len <= GSO_MAX_BYTES
                        && last.iov_len + slices <= MAX_IOV
                        && seg <= u16::MAX as usize
                }
                _ => false,
            };
        if !joins && msgs.len() == max_msgs {
            break;
        }
        match out.slices {
            Slices::One(b) => iovs.push(IoSlice::new(b)),
            Slices::Many(c) => iovs.extend(c.chunks().map(|b| IoSlice::new(b))),
        }
        let added = iovs.len() - first;
        if joins {
            let last = msgs.last_mut().expect("a group is open");
            let (seg, bytes) = group.expect("a group is open");
            last.iov_len += added;
            last.segment = Some(seg as u16);
            *counts.last_mut().expect("a group is open") += 1;
            // A shorter datagram ends the group.
            group = (out.len == seg).then_some((seg, bytes + out.len));
        } else {
            msgs.push(OutMsg {
                to: out.to,
                from: out.from,
                segment: None,
                iov_start: first,
                iov_len: added,
            });
            counts.push(1);
            group = (out.len > 0).then_some((out.len, out.len));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_core::{CompositeBytes, Promise};

    fn entry(msg: impl Into<Msg>) -> Entry {
        Entry {
            msg: msg.into(),
            promise: None::<Promise>,
        }
    }

    fn planned(entries: &[Entry], gso: bool, max: usize) -> (Vec<OutMsg>, Vec<usize>, usize) {
        let mut iovs = Vec::new();
        let mut msgs = Vec::new();
        let mut counts = Vec::new();
        assert!(plan(
            entries.iter(),
            false,
            gso,
            max,
            &mut iovs,
            &mut msgs,
            &mut counts
        )
        .is_none());
        (msgs, counts, iovs.len())
    }

    #[test]
    fn equal_datagrams_to_one_address_are_one_segmented_message() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let mut e: Vec<Entry> = (0..5)
            .map(|_| entry(DatagramPacket::new(vec![1u8; 100], a)))
            .collect();
        e.push(entry(DatagramPacket::new(vec![1u8; 40], a))); // shorter: ends the group
        e.push(entry(DatagramPacket::new(vec![1u8; 100], a)));
        e.push(entry(DatagramPacket::new(vec![1u8; 100], b)));
        let (msgs, counts, iovs) = planned(&e, true, 32);
        assert_eq!(counts, [6, 1, 1]);
        assert_eq!(msgs[0].segment, Some(100));
        assert_eq!((msgs[0].iov_start, msgs[0].iov_len), (0, 6));
        assert_eq!(msgs[1].segment, None);
        assert_eq!(msgs[2].to, Some(b));
        assert_eq!(iovs, 8);
        // Without GSO every datagram is its own message.
        let (msgs, counts, _) = planned(&e, false, 32);
        assert_eq!(msgs.len(), 8);
        assert!(counts.iter().all(|&c| c == 1));
        // The batch bounds the messages, not the datagrams in a group.
        let (msgs, counts, _) = planned(&e, true, 2);
        assert_eq!(counts, [6, 1]);
        assert_eq!(msgs.len(), 2);
    }

    #[test]
    fn a_group_holds_at_most_64_segments_and_65000_bytes() {
        let a: SocketAddr = "[::1]:9".parse().unwrap();
        let e: Vec<Entry> = (0..100)
            .map(|_| entry(DatagramPacket::new(vec![0u8; 10], a)))
            .collect();
        let (_, counts, _) = planned(&e, true, 32);
        assert_eq!(counts, [64, 36]);
        let e: Vec<Entry> = (0..20)
            .map(|_| entry(DatagramPacket::new(vec![0u8; 6000], a)))
            .collect();
        let (_, counts, _) = planned(&e, true, 32);
        assert_eq!(counts, [10, 10]);
    }

    #[test]
    fn what_is_not_a_datagram_fails_at_the_front_and_stops_planning_behind() {
        let a: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let e = [
            entry(Bytes::from_static(b"no address")),
            entry(DatagramPacket::new("x", a)),
        ];
        let (mut iovs, mut msgs, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        let err = plan(e.iter(), false, true, 8, &mut iovs, &mut msgs, &mut counts).unwrap();
        assert_eq!(err.kind(), ErrorKind::UnsupportedMessage);
        let e = [
            entry(DatagramPacket::new("x", a)),
            entry(String::from("text")),
        ];
        let (msgs, counts, _) = planned(&e, true, 8);
        assert_eq!((msgs.len(), counts), (1, vec![1]));
        // Connected, bytes and composites go to the peer.
        let c: CompositeBytes = [Bytes::from_static(b"a"), Bytes::from_static(b"bc")]
            .into_iter()
            .collect();
        let e = [entry(Bytes::from_static(b"abc")), entry(c)];
        let (mut iovs, mut msgs, mut counts) = (Vec::new(), Vec::new(), Vec::new());
        assert!(plan(e.iter(), true, true, 8, &mut iovs, &mut msgs, &mut counts).is_none());
        assert_eq!(counts, [2]);
        assert_eq!(msgs[0].segment, Some(3));
        assert_eq!(iovs.len(), 3);
    }
}
