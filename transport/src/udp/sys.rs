//! Batched datagram system calls: `recvmmsg(2)` and `sendmmsg(2)` over
//! `mmsghdr` arrays kept from call to call, with the control messages weft
//! uses (`UDP_GRO` and the packet-info destination address in, `UDP_SEGMENT`
//! and the packet-info source address out).
//!
//! Contract:
//! - [`RecvBatch::recv`] receives up to its batch of datagrams into
//!   consecutive slots of one caller-owned buffer, without blocking, and
//!   reports each one's length, sender, destination address, GRO segment
//!   size and truncation; the buffer's bytes outside what it reports are
//!   left as they were;
//! - [`SendBatch::send`] sends up to its batch of messages without blocking,
//!   each from its own run of the caller's `IoSlice`s, to its own address,
//!   with its own segment size (GSO) and source address, and returns how
//!   many the kernel took (a prefix);
//! - both are one system call and return its error as it is (`WouldBlock`
//!   when the socket is not ready).
//!
//! This is the one module of weft-transport with `unsafe` code: nix's
//! wrappers share one set of control messages across all messages of a
//! `sendmmsg` and receive only into initialized buffers, and weft needs a
//! segment size per message and no per-burst zeroing. Every block says why
//! it is sound.

#![allow(unsafe_code)]

use std::io::{self, IoSlice};
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use bytes::{Bytes, BytesMut};

/// Room for the control messages of one datagram, aligned for `cmsghdr`:
/// a packet-info structure (at most 40 bytes with its header) and a GRO or
/// GSO size (at most 24).
const CMSG_ROOM: usize = 128;

/// The C structs of this module, for which all-zero bytes are a valid
/// value (integers, arrays of them, and raw pointers, null when zero).
trait Zeroed: Copy {
    fn zeroed() -> Self {
        // SAFETY: implemented only for plain C structs made of integers,
        // integer arrays and raw pointers, for which all-zero bytes are valid.
        unsafe { std::mem::zeroed() }
    }
}

impl Zeroed for libc::mmsghdr {}
impl Zeroed for libc::msghdr {}
impl Zeroed for libc::iovec {}
impl Zeroed for libc::sockaddr_storage {}
impl Zeroed for libc::cmsghdr {}

#[derive(Clone, Copy)]
#[repr(C, align(8))]
struct CmsgBuf([u8; CMSG_ROOM]);

/// One datagram [`RecvBatch::recv`] received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Received {
    /// Bytes written into its slot.
    pub(crate) len: usize,
    /// The sender (none for an unnamed sender).
    pub(crate) from: Option<SocketAddr>,
    /// The packet's destination address (packet info, when asked for).
    pub(crate) to: Option<IpAddr>,
    /// The GRO segment size: the slot holds several datagrams of this size
    /// (the last may be shorter), coalesced by the kernel.
    pub(crate) segment: Option<usize>,
    /// The datagram was larger than its slot and was cut.
    pub(crate) truncated: bool,
}

/// Reusable headers for `recvmmsg`.
pub(crate) struct RecvBatch {
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf>,
}

// SAFETY: the raw pointers inside the headers point into this struct's own
// vectors and the caller's buffer only during `recv`, which rewrites them
// before the call; they are never dereferenced at any other time, so moving
// the struct to another thread between calls is sound.
unsafe impl Send for RecvBatch {}

impl RecvBatch {
    /// Headers for up to `batch` datagrams a call.
    pub(crate) fn new(batch: usize) -> RecvBatch {
        let batch = batch.max(1);
        RecvBatch {
            hdrs: vec![Zeroed::zeroed(); batch],
            iovs: vec![Zeroed::zeroed(); batch],
            names: vec![Zeroed::zeroed(); batch],
            cmsgs: vec![CmsgBuf([0; CMSG_ROOM]); batch],
        }
    }

    /// The most datagrams one call receives.
    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Receives up to the batch of datagrams into `buf`, datagram `i` at
    /// offset `i * slot`, as many as whole slots fit; their descriptions
    /// replace `out`'s contents. Returns how many arrived.
    pub(crate) fn recv(
        &mut self,
        fd: RawFd,
        buf: &mut [u8],
        slot: usize,
        out: &mut Vec<Received>,
    ) -> io::Result<usize> {
        out.clear();
        let n = self.hdrs.len().min(buf.len() / slot.max(1));
        if n == 0 {
            return Ok(0);
        }
        let base = buf.as_mut_ptr();
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                // SAFETY: i * slot + slot <= buf.len(), so the slot lies in
                // the caller's buffer.
                iov_base: unsafe { base.add(i * slot) }.cast(),
                iov_len: slot,
            };
            let mut h: libc::msghdr = Zeroed::zeroed();
            h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.cmsgs[i].0.as_mut_ptr().cast();
            h.msg_controllen = CMSG_ROOM as _;
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: the first n headers point to live, writable memory of the
        // sizes they state (the slots of `buf`, this struct's names and
        // control buffers), all borrowed mutably for the call; MSG_DONTWAIT
        // keeps the call from blocking; a null timeout is allowed.
        let r = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        for i in 0..r as usize {
            let h = &self.hdrs[i].msg_hdr;
            let mut got = Received {
                len: (self.hdrs[i].msg_len as usize).min(slot),
                from: sockaddr_to_std(&self.names[i], h.msg_namelen),
                to: None,
                segment: None,
                truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            };
            // SAFETY: the kernel filled the header's control buffer (and set
            // its length) for this message; CMSG_FIRSTHDR/NXTHDR stay inside
            // msg_control..msg_control+msg_controllen, and each message's
            // data is read unaligned, as its own type, only when its level,
            // type and length say it holds one.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(h);
                while !c.is_null() {
                    let data = libc::CMSG_DATA(c);
                    let len = (*c).cmsg_len as usize;
                    match ((*c).cmsg_level, (*c).cmsg_type) {
                        (libc::IPPROTO_IP, libc::IP_PKTINFO)
                            if len >= cmsg_len::<libc::in_pktinfo>() =>
                        {
                            let info = data.cast::<libc::in_pktinfo>().read_unaligned();
                            got.to = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                                info.ipi_addr.s_addr,
                            ))));
                        }
                        (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                            if len >= cmsg_len::<libc::in6_pktinfo>() =>
                        {
                            let info = data.cast::<libc::in6_pktinfo>().read_unaligned();
                            got.to = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                        }
                        (libc::SOL_UDP, libc::UDP_GRO) if len >= cmsg_len::<libc::c_int>() => {
                            let seg = data.cast::<libc::c_int>().read_unaligned();
                            if seg > 0 && (seg as usize) < got.len {
                                got.segment = Some(seg as usize);
                            }
                        }
                        _ => {}
                    }
                    c = libc::CMSG_NXTHDR(h, c);
                }
            }
            out.push(got);
        }
        Ok(r as usize)
    }
}

/// The receive slots of a channel: buffers of `size` bytes, every byte of
/// each initialized once (zeroed when allocated). Received datagrams are
/// taken from the front of the current one; an exhausted buffer waits among
/// at most `keep` spares until every datagram taken from it has been
/// dropped, and is then reused whole, without zeroing it again. A read
/// burst whose datagrams are still queued for writing (an echo) thus
/// cycles through a few buffers and allocates nothing in steady state.
pub(crate) struct RecvBuf {
    buf: BytesMut,
    spares: Vec<BytesMut>,
    keep: usize,
    /// The length each buffer was allocated with, all of it initialized.
    size: usize,
    /// `buf` holds a buffer (it is empty before the first use).
    allocated: bool,
}

impl RecvBuf {
    /// Slots in buffers of `size` bytes (allocated on first use), keeping
    /// up to `keep` exhausted buffers for reuse.
    pub(crate) fn new(size: usize, keep: usize) -> RecvBuf {
        RecvBuf {
            buf: BytesMut::new(),
            spares: Vec::new(),
            keep,
            size,
            allocated: false,
        }
    }

    /// The free slots, at least `min` bytes of them: the rest of the
    /// current buffer, or a spare whose datagrams are all gone, or a new one.
    pub(crate) fn free(&mut self, min: usize) -> &mut [u8] {
        if self.buf.len() < min {
            let mut old = std::mem::take(&mut self.buf);
            old.clear();
            // Even with no room left (all of it taken), the handle can
            // reclaim the whole buffer once the datagrams are gone; the
            // first, empty handle holds no buffer at all.
            if self.allocated && self.spares.len() < self.keep {
                self.spares.push(old);
            }
            self.allocated = true;
            let size = self.size;
            let reusable = self.spares.iter_mut().position(|b| b.try_reclaim(size));
            match reusable {
                Some(i) => {
                    let mut b = self.spares.swap_remove(i);
                    // SAFETY: `try_reclaim` succeeded, so nothing else refers
                    // to this buffer's allocation any more and, without
                    // allocating, it now has room for `size` bytes inside that
                    // allocation; `zeroed_buffer` initialized every byte of the
                    // allocation's capacity, and they have since only been
                    // written (by the kernel, with data), never de-initialized.
                    unsafe { b.set_len(size) };
                    self.buf = b;
                }
                None => self.buf = zeroed_buffer(size),
            }
        }
        &mut self.buf
    }

    /// Takes the first `n` bytes of the free slots, as received data.
    pub(crate) fn take(&mut self, n: usize) -> Bytes {
        self.buf.split_to(n).freeze()
    }
}

/// A buffer of `size` bytes whose whole capacity (which may exceed `size`)
/// is initialized, so that any part of it reclaimed later is too.
fn zeroed_buffer(size: usize) -> BytesMut {
    let mut b = BytesMut::with_capacity(size);
    b.resize(b.capacity(), 0);
    b.truncate(size);
    b
}

/// One message for [`SendBatch::send`]: a datagram, or with `segment` a
/// run of datagrams of that size (the last may be shorter) the kernel cuts
/// apart (UDP GSO).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OutMsg {
    /// Where to (`None`: the connected peer).
    pub(crate) to: Option<SocketAddr>,
    /// The source address to send from (`None`: the kernel's choice).
    pub(crate) from: Option<IpAddr>,
    /// The GSO segment size.
    pub(crate) segment: Option<u16>,
    /// The message's slices: `iovs[iov_start..iov_start + iov_len]`.
    pub(crate) iov_start: usize,
    pub(crate) iov_len: usize,
}

/// Reusable headers for `sendmmsg`.
pub(crate) struct SendBatch {
    hdrs: Vec<libc::mmsghdr>,
    names: Vec<libc::sockaddr_storage>,
    cmsgs: Vec<CmsgBuf>,
    /// The socket is IPv6: IPv4 peers are written as mapped addresses.
    v6: bool,
}

// SAFETY: as for RecvBatch, the headers' pointers are rewritten before each
// call and never dereferenced at any other time.
unsafe impl Send for SendBatch {}

impl SendBatch {
    /// Headers for up to `batch` messages a call, on an IPv6 socket or not.
    pub(crate) fn new(batch: usize, v6: bool) -> SendBatch {
        let batch = batch.max(1);
        SendBatch {
            hdrs: vec![Zeroed::zeroed(); batch],
            names: vec![Zeroed::zeroed(); batch],
            cmsgs: vec![CmsgBuf([0; CMSG_ROOM]); batch],
            v6,
        }
    }

    /// The most messages one call sends.
    pub(crate) fn capacity(&self) -> usize {
        self.hdrs.len()
    }

    /// Sends `msgs` (at most [`capacity`](Self::capacity) of them are
    /// looked at), each from its run of `iovs`. Returns how many the kernel
    /// took, from the first.
    pub(crate) fn send(
        &mut self,
        fd: RawFd,
        iovs: &[IoSlice<'_>],
        msgs: &[OutMsg],
    ) -> io::Result<usize> {
        let n = msgs.len().min(self.hdrs.len());
        if n == 0 {
            return Ok(0);
        }
        for (i, m) in msgs[..n].iter().enumerate() {
            assert!(m.iov_start + m.iov_len <= iovs.len(), "slices out of range");
            let mut h: libc::msghdr = Zeroed::zeroed();
            if let Some(to) = m.to {
                h.msg_namelen = std_to_sockaddr(&mut self.names[i], to, self.v6);
                h.msg_name = (&mut self.names[i] as *mut libc::sockaddr_storage).cast();
            }
            // IoSlice is ABI-compatible with iovec on Unix (std's guarantee);
            // the kernel only reads through this pointer.
            h.msg_iov = iovs[m.iov_start..].as_ptr().cast_mut().cast();
            h.msg_iovlen = m.iov_len as _;
            let room = &mut self.cmsgs[i].0;
            let mut used = 0;
            if let Some(seg) = m.segment {
                used += put_cmsg(&mut room[used..], libc::SOL_UDP, libc::UDP_SEGMENT, seg);
            }
            match m.from {
                Some(IpAddr::V4(ip)) if !self.v6 => {
                    let info = libc::in_pktinfo {
                        ipi_ifindex: 0,
                        ipi_spec_dst: libc::in_addr {
                            s_addr: u32::from(ip).to_be(),
                        },
                        ipi_addr: libc::in_addr { s_addr: 0 },
                    };
                    used += put_cmsg(&mut room[used..], libc::IPPROTO_IP, libc::IP_PKTINFO, info);
                }
                Some(ip) => {
                    let ip6 = match ip {
                        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                        IpAddr::V6(v6) => v6,
                    };
                    let info = libc::in6_pktinfo {
                        ipi6_addr: libc::in6_addr {
                            s6_addr: ip6.octets(),
                        },
                        ipi6_ifindex: 0,
                    };
                    used += put_cmsg(
                        &mut room[used..],
                        libc::IPPROTO_IPV6,
                        libc::IPV6_PKTINFO,
                        info,
                    );
                }
                None => {}
            }
            if used > 0 {
                h.msg_control = room.as_mut_ptr().cast();
                h.msg_controllen = used as _;
            }
            self.hdrs[i] = libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            };
        }
        // SAFETY: the first n headers point to live memory of the sizes they
        // state: the caller's slices (borrowed for the call, only read), this
        // struct's addresses and control messages; MSG_DONTWAIT keeps the
        // call from blocking.
        let r = unsafe {
            libc::sendmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(r as usize)
    }
}

/// `CMSG_LEN` of a `T`.
fn cmsg_len<T>() -> usize {
    // SAFETY: CMSG_LEN is arithmetic on its argument.
    unsafe { libc::CMSG_LEN(size_of::<T>() as libc::c_uint) as usize }
}

/// Writes one control message holding `value` at the start of `room`;
/// returns the space it takes (`CMSG_SPACE`).
fn put_cmsg<T: Copy>(room: &mut [u8], level: libc::c_int, ty: libc::c_int, value: T) -> usize {
    // SAFETY: CMSG_SPACE is arithmetic on its argument.
    let space = unsafe { libc::CMSG_SPACE(size_of::<T>() as libc::c_uint) } as usize;
    assert!(space <= room.len(), "control message room");
    // The rooms are 8-aligned and every message takes a multiple of 8
    // bytes, so `room` starts aligned for cmsghdr.
    debug_assert_eq!(
        room.as_ptr() as usize % std::mem::align_of::<libc::cmsghdr>(),
        0
    );
    let mut hdr: libc::cmsghdr = Zeroed::zeroed();
    hdr.cmsg_len = cmsg_len::<T>() as _;
    hdr.cmsg_level = level;
    hdr.cmsg_type = ty;
    let p = room.as_mut_ptr();
    // SAFETY: `space` bytes from `p` are in `room` (checked above), which
    // holds the header and, at CMSG_DATA's offset past it, the value; both
    // are written unaligned, as plain bytes.
    unsafe {
        p.cast::<libc::cmsghdr>().write_unaligned(hdr);
        let data = libc::CMSG_DATA(p.cast::<libc::cmsghdr>());
        data.cast::<T>().write_unaligned(value);
    }
    space
}

/// A kernel socket address as a std one.
fn sockaddr_to_std(ss: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    match ss.ss_family as libc::c_int {
        libc::AF_INET if len as usize >= size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is large and aligned enough for any address.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len as usize >= size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Writes `addr` into `ss` (an IPv4 address mapped when the socket is
/// IPv6); returns its length.
fn std_to_sockaddr(ss: &mut libc::sockaddr_storage, addr: SocketAddr, v6: bool) -> libc::socklen_t {
    let addr = match addr {
        SocketAddr::V4(a) if v6 => {
            SocketAddr::V6(SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0))
        }
        a => a,
    };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // socket address.
            unsafe {
                (ss as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above.
            unsafe {
                (ss as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_buffer_is_reused_whole_once_its_datagrams_are_gone() {
        let mut r = RecvBuf::new(64, 2);
        let first = r.free(64).as_ptr();
        let a = r.take(64);
        // `a` still holds the first buffer: the next slots are another's.
        let second = r.free(64).as_ptr();
        assert_ne!(first, second);
        let b = r.take(64);
        drop(a);
        // The first is free again: reused from its start, not allocated.
        let third = r.free(64);
        assert_eq!(third.as_ptr(), first);
        assert_eq!(third.len(), 64);
        drop(b);
    }

    #[test]
    fn addresses_round_trip() {
        let mut ss: libc::sockaddr_storage = Zeroed::zeroed();
        for a in ["127.0.0.1:53", "[::1]:5353", "[fe80::1%2]:9"] {
            let a: SocketAddr = a.parse().unwrap();
            let len = std_to_sockaddr(&mut ss, a, false);
            assert_eq!(sockaddr_to_std(&ss, len), Some(a));
        }
        let v4: SocketAddr = "10.1.2.3:7".parse().unwrap();
        let len = std_to_sockaddr(&mut ss, v4, true);
        let mapped = sockaddr_to_std(&ss, len).unwrap();
        assert_eq!(mapped.to_string(), "[::ffff:10.1.2.3]:7");
    }

    #[test]
    fn a_batch_goes_out_in_one_call_and_comes_back_in_one() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = b.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 10 + i as usize]).collect();
        let iovs: Vec<IoSlice<'_>> = payloads.iter().map(|p| IoSlice::new(p)).collect();
        let msgs: Vec<OutMsg> = (0..5)
            .map(|i| OutMsg {
                to: Some(to),
                from: None,
                segment: None,
                iov_start: i,
                iov_len: 1,
            })
            .collect();
        let mut s = SendBatch::new(8, false);
        assert_eq!(s.send(a.as_raw_fd(), &iovs, &msgs).unwrap(), 5);
        let mut r = RecvBatch::new(8);
        let mut buf = vec![0u8; 8 * 64];
        let mut out = Vec::new();
        let mut got = 0;
        while got < 5 {
            match r.recv(b.as_raw_fd(), &mut buf, 64, &mut out) {
                Ok(n) => {
                    for (i, d) in out.iter().enumerate() {
                        let want = &payloads[got + i];
                        assert_eq!(&buf[i * 64..i * 64 + d.len], &want[..]);
                        assert_eq!(d.from, Some(a.local_addr().unwrap()));
                        assert!(!d.truncated);
                    }
                    got += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_datagram_larger_than_its_slot_is_marked_truncated() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(&[7u8; 100], b.local_addr().unwrap()).unwrap();
        b.set_nonblocking(false).unwrap();
        // Wait for it with a blocking peek, then take it in a batch.
        let mut peek = [0u8; 1];
        let _ = b.peek_from(&mut peek).unwrap();
        let mut r = RecvBatch::new(4);
        let mut buf = vec![0u8; 4 * 32];
        let mut out = Vec::new();
        assert_eq!(r.recv(b.as_raw_fd(), &mut buf, 32, &mut out).unwrap(), 1);
        assert!(out[0].truncated);
        assert_eq!(out[0].len, 32);
    }
}
