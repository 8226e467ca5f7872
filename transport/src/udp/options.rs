//! [`DatagramOptions`]: the settings of a datagram channel, validated
//! together when it binds.

use std::net::{Ipv4Addr, Ipv6Addr};

use weft_core::{Error, WriteBufferWaterMark};

/// Default datagrams per `recvmmsg`/`sendmmsg` call: 32.
pub const DEFAULT_BATCH: usize = 32;
/// Default receive slot, the largest datagram received whole: 2,048 bytes
/// (Netty's default for datagram channels). A larger datagram is cut to
/// it, counted ([`DatagramChannel::truncated`](super::DatagramChannel::truncated))
/// and dropped.
pub const DEFAULT_MAX_DATAGRAM_SIZE: usize = 2048;
/// Default cap on the bytes of datagrams waiting for the socket: 4 MiB.
/// Past it a write is dropped, not queued.
pub const DEFAULT_DATAGRAM_OUTBOUND_CAP: usize = 4 << 20;
/// The receive slot while GRO is on: the largest coalesced receive.
pub(crate) const GRO_SLOT: usize = 65536;
/// Most datagrams one GSO send carries (the kernel's UDP_MAX_SEGMENTS).
pub(crate) const GSO_MAX_SEGMENTS: usize = 64;

/// A multicast group to join when the channel binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Join {
    V4 {
        group: Ipv4Addr,
        interface: Ipv4Addr,
    },
    V6 {
        group: Ipv6Addr,
        interface: u32,
    },
}

/// The settings of a datagram channel.
///
/// ```
/// use weft_transport::DatagramOptions;
///
/// let opts = DatagramOptions::new()
///     .batch(64)
///     .max_datagram_size(1500)
///     .reuse_port(true)
///     .packet_info(true);
/// assert!(opts.validate().is_ok());
/// assert!(DatagramOptions::new().batch(0).validate().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct DatagramOptions {
    pub(crate) batch: usize,
    pub(crate) max_datagram_size: usize,
    pub(crate) gso: bool,
    pub(crate) gro: bool,
    pub(crate) packet_info: bool,
    pub(crate) recv_buffer_size: Option<usize>,
    pub(crate) send_buffer_size: Option<usize>,
    pub(crate) reuse_addr: bool,
    pub(crate) reuse_port: bool,
    pub(crate) broadcast: bool,
    pub(crate) ttl: Option<u32>,
    pub(crate) multicast_ttl: Option<u32>,
    pub(crate) multicast_loop: Option<bool>,
    pub(crate) multicast_if_v4: Option<Ipv4Addr>,
    pub(crate) joins: Vec<Join>,
    pub(crate) only_v6: Option<bool>,
    pub(crate) auto_read: bool,
    pub(crate) watermark: WriteBufferWaterMark,
    pub(crate) max_outbound_bytes: Option<usize>,
}

impl Default for DatagramOptions {
    fn default() -> Self {
        DatagramOptions {
            batch: DEFAULT_BATCH,
            max_datagram_size: DEFAULT_MAX_DATAGRAM_SIZE,
            gso: true,
            gro: false,
            packet_info: false,
            recv_buffer_size: None,
            send_buffer_size: None,
            reuse_addr: false,
            reuse_port: false,
            broadcast: false,
            ttl: None,
            multicast_ttl: None,
            multicast_loop: None,
            multicast_if_v4: None,
            joins: Vec::new(),
            only_v6: None,
            auto_read: true,
            watermark: WriteBufferWaterMark::default(),
            max_outbound_bytes: Some(DEFAULT_DATAGRAM_OUTBOUND_CAP),
        }
    }
}

impl DatagramOptions {
    /// The defaults: batches of 32, datagrams up to 2,048 bytes received,
    /// GSO on where the kernel has it, GRO off, a 4 MiB outbound cap.
    pub fn new() -> DatagramOptions {
        DatagramOptions::default()
    }

    /// Datagrams per `recvmmsg` and per `sendmmsg` call (1 to 1,024).
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n;
        self
    }

    /// The largest datagram received whole (1 to 65,535 bytes): the size
    /// of each receive slot. The batch's slots are one buffer, and a
    /// datagram the pipeline keeps holds that buffer's memory.
    pub fn max_datagram_size(mut self, n: usize) -> Self {
        self.max_datagram_size = n;
        self
    }

    /// Send runs of equal-size datagrams to one address as one segmented
    /// send (`UDP_SEGMENT`) where the kernel supports it (default on; off
    /// for good if the kernel refuses a segmented send).
    pub fn gso(mut self, on: bool) -> Self {
        self.gso = on;
        self
    }

    /// Let the kernel coalesce received datagrams of one flow (`UDP_GRO`),
    /// split again into packets by reference (default off). With GRO each
    /// receive slot is 64 KiB, so a batch's buffer is `batch` × 64 KiB:
    /// for bulk receivers, with a smaller batch.
    pub fn gro(mut self, on: bool) -> Self {
        self.gro = on;
        self
    }

    /// Report each datagram's destination address as its packet's
    /// [`local`](weft_core::DatagramPacket::local) (`IP_PKTINFO`,
    /// `IPV6_RECVPKTINFO`): a socket bound to a wildcard address can then
    /// answer from the address it was asked on (default off).
    pub fn packet_info(mut self, on: bool) -> Self {
        self.packet_info = on;
        self
    }

    /// `SO_RCVBUF`, in bytes.
    pub fn recv_buffer_size(mut self, n: usize) -> Self {
        self.recv_buffer_size = Some(n);
        self
    }

    /// `SO_SNDBUF`, in bytes.
    pub fn send_buffer_size(mut self, n: usize) -> Self {
        self.send_buffer_size = Some(n);
        self
    }

    /// `SO_REUSEADDR` (default off).
    pub fn reuse_addr(mut self, on: bool) -> Self {
        self.reuse_addr = on;
        self
    }

    /// `SO_REUSEPORT`: several sockets on one port, the kernel spreading
    /// datagrams among them (default off).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// `SO_BROADCAST`: allow sending to broadcast addresses (default off).
    pub fn broadcast(mut self, on: bool) -> Self {
        self.broadcast = on;
        self
    }

    /// The unicast TTL (IPv4) or hop limit (IPv6), 1 to 255.
    pub fn ttl(mut self, ttl: u32) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The multicast TTL (IPv4), 0 to 255.
    pub fn multicast_ttl(mut self, ttl: u32) -> Self {
        self.multicast_ttl = Some(ttl);
        self
    }

    /// Whether multicast datagrams this socket sends loop back to local
    /// members (the kernel's default is on).
    pub fn multicast_loop(mut self, on: bool) -> Self {
        self.multicast_loop = Some(on);
        self
    }

    /// The interface IPv4 multicast datagrams leave by, named by its
    /// address.
    pub fn multicast_interface_v4(mut self, interface: Ipv4Addr) -> Self {
        self.multicast_if_v4 = Some(interface);
        self
    }

    /// Joins an IPv4 multicast group on an interface (named by its address;
    /// `0.0.0.0` lets the kernel choose) when the channel binds. Join and
    /// leave later with [`DatagramChannel`](super::DatagramChannel).
    pub fn join_multicast_v4(mut self, group: Ipv4Addr, interface: Ipv4Addr) -> Self {
        self.joins.push(Join::V4 { group, interface });
        self
    }

    /// Joins an IPv6 multicast group on an interface (by index; 0 lets the
    /// kernel choose) when the channel binds.
    pub fn join_multicast_v6(mut self, group: Ipv6Addr, interface: u32) -> Self {
        self.joins.push(Join::V6 { group, interface });
        self
    }

    /// `IPV6_V6ONLY` for a socket bound to an IPv6 address.
    pub fn only_v6(mut self, on: bool) -> Self {
        self.only_v6 = Some(on);
        self
    }

    /// Whether the channel reads on its own (default on).
    pub fn auto_read(mut self, on: bool) -> Self {
        self.auto_read = on;
        self
    }

    /// Write-buffer watermarks, over the payload bytes of the datagrams
    /// waiting for the socket.
    pub fn watermark(mut self, wm: WriteBufferWaterMark) -> Self {
        self.watermark = wm;
        self
    }

    /// The cap on the payload bytes waiting for the socket (`None`: no cap).
    /// A write past it fails with
    /// [`ErrorKind::Dropped`](weft_core::ErrorKind::Dropped) and is
    /// counted by [`Channel::writes_dropped`](weft_core::Channel::writes_dropped);
    /// the channel stays open.
    pub fn max_outbound_bytes(mut self, cap: Option<usize>) -> Self {
        self.max_outbound_bytes = cap;
        self
    }

    /// Checks the settings together.
    pub fn validate(&self) -> Result<(), Error> {
        if !(1..=1024).contains(&self.batch) {
            return Err(Error::invalid_argument(format!(
                "a batch of {} datagrams: it must be 1 to 1024",
                self.batch
            )));
        }
        if !(1..=65535).contains(&self.max_datagram_size) {
            return Err(Error::invalid_argument(format!(
                "a largest datagram of {} bytes: it must be 1 to 65535",
                self.max_datagram_size
            )));
        }
        if let Some(ttl) = self.ttl {
            if !(1..=255).contains(&ttl) {
                return Err(Error::invalid_argument(format!(
                    "a TTL of {ttl}: it must be 1 to 255"
                )));
            }
        }
        if let Some(ttl) = self.multicast_ttl {
            if ttl > 255 {
                return Err(Error::invalid_argument(format!(
                    "a multicast TTL of {ttl}: it must be 0 to 255"
                )));
            }
        }
        if let Some(cap) = self.max_outbound_bytes {
            if cap < self.watermark.high() {
                return Err(Error::invalid_argument(format!(
                    "an outbound cap of {cap} bytes is below the high watermark ({})",
                    self.watermark.high()
                )));
            }
        }
        Ok(())
    }

    /// The receive slot: the largest datagram, or a coalesced receive.
    pub(crate) fn slot(&self, gro: bool) -> usize {
        if gro {
            GRO_SLOT
        } else {
            self.max_datagram_size
        }
    }
}
