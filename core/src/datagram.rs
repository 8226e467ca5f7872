//! [`DatagramPacket`]: one datagram and its addresses, the message of a
//! datagram channel (Netty's `DatagramPacket`).
//!
//! Contract:
//! - read from a datagram channel, `content` is the datagram's payload as a
//!   slice of the receive buffer (no copy), `remote` the sender and `local`
//!   the address it was sent to (the destination address of the packet when
//!   the channel asked for it, else the socket's bound address);
//! - written to a datagram channel, `content` goes to `remote` as one
//!   datagram; `local`, when set, picks the source address of the packet
//!   (a socket bound to a wildcard address answers from the address a query
//!   came to);
//! - in the outbound buffer's accounting a packet weighs its payload's
//!   length, so watermarks and the cap bound queued datagrams as they bound
//!   bytes.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::Msg;

/// One datagram with its remote (and, optionally, local) address.
///
/// ```
/// use bytes::Bytes;
/// use weft_core::{DatagramPacket, Msg};
///
/// let to = "127.0.0.1:5353".parse().unwrap();
/// let p = DatagramPacket::new(Bytes::from_static(b"ping"), to);
/// assert_eq!(p.remote(), to);
/// let m = Msg::from(p);
/// assert_eq!(m.buffered_len(), 4); // counts as its payload
/// let p: DatagramPacket = m.downcast().unwrap();
/// assert_eq!(p.into_content(), "ping");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct DatagramPacket {
    content: Bytes,
    remote: SocketAddr,
    local: Option<SocketAddr>,
}

impl DatagramPacket {
    /// A datagram of `content` to (or from) `remote`.
    pub fn new(content: impl Into<Bytes>, remote: SocketAddr) -> DatagramPacket {
        DatagramPacket {
            content: content.into(),
            remote,
            local: None,
        }
    }

    /// The same datagram with a local address: where a received one was
    /// sent to, or the source address to send one from.
    pub fn with_local(mut self, local: SocketAddr) -> DatagramPacket {
        self.local = Some(local);
        self
    }

    /// The payload.
    pub fn content(&self) -> &Bytes {
        &self.content
    }

    /// The payload, taken out of the packet.
    pub fn into_content(self) -> Bytes {
        self.content
    }

    /// The peer: the sender of a received datagram, the recipient of one to
    /// send.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The local address, when known or chosen.
    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// An answer to this datagram: `content` to its sender, from the
    /// address it was sent to.
    ///
    /// ```
    /// use weft_core::DatagramPacket;
    ///
    /// let q = DatagramPacket::new("q", "10.0.0.9:4000".parse().unwrap())
    ///     .with_local("127.0.0.1:53".parse().unwrap());
    /// let a = q.reply("a");
    /// assert_eq!(a.remote(), q.remote());
    /// assert_eq!(a.local(), q.local());
    /// ```
    pub fn reply(&self, content: impl Into<Bytes>) -> DatagramPacket {
        DatagramPacket {
            content: content.into(),
            remote: self.remote,
            local: self.local,
        }
    }

    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        self.content.len()
    }

    /// Whether the payload is empty (an empty datagram is valid).
    pub fn is_empty(&self) -> bool {
        self.content.is_empty()
    }
}

impl fmt::Debug for DatagramPacket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramPacket")
            .field("len", &self.content.len())
            .field("remote", &self.remote)
            .field("local", &self.local)
            .finish()
    }
}

impl From<DatagramPacket> for Msg {
    fn from(p: DatagramPacket) -> Msg {
        Msg::User(Box::new(p))
    }
}
