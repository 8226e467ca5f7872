//! Datagram channels: UDP sockets driven through the same
//! [`Pipeline`]/[`Handler`](weft_core::Handler) model
//! as streams (Netty's `DatagramChannel`).
//!
//! Contract:
//! - [`DatagramBootstrap::bind`] binds a UDP socket (IPv4 or IPv6), fills
//!   its pipeline, spawns its task in the caller's runtime and returns a
//!   [`DatagramChannel`]; [`connect`](DatagramBootstrap::connect) also
//!   connects it to one peer, after which plain bytes may be written;
//! - every datagram read is a [`DatagramPacket`](weft_core::DatagramPacket)
//!   whose content is a slice of the receive buffer (no copy); writes are
//!   `DatagramPacket`s (or bytes when connected), from handlers or from any
//!   task through the channel handle;
//! - receives are batched with `recvmmsg` and sends with `sendmmsg`; runs
//!   of equal-size datagrams to one address leave as one segmented send
//!   (`UDP_SEGMENT`) where the kernel supports it; with
//!   [`gro`](DatagramOptions::gro), a coalesced receive is split into its
//!   datagrams by reference; without kernel support both fall back to one
//!   datagram per message, and the channel reports what it uses
//!   ([`DatagramChannel::gso`], [`DatagramChannel::gro`]);
//! - **datagrams are droppable**: the outbound queue is bounded (a 4 MiB
//!   cap by default); a write past it fails with
//!   [`ErrorKind::Dropped`](weft_core::ErrorKind::Dropped), is counted by
//!   [`Channel::writes_dropped`](weft_core::Channel::writes_dropped), and
//!   the channel stays open; above the high watermark the channel is
//!   unwritable and stops reading, as a stream channel does;
//! - an error for one datagram (too large, unreachable, refused) fails that
//!   write's promise or is fired as an exception, and the channel goes on.
//!
//! # Example: an echo server
//!
//! ```
//! use weft_core::{Context, DatagramPacket, Events, Handler, Msg};
//! use weft_transport::DatagramBootstrap;
//!
//! struct Echo;
//! #[weft_core::handler]
//! impl Handler for Echo {
//!     fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
//!         if let Ok(p) = msg.downcast::<DatagramPacket>() {
//!             ctx.write(p.reply(p.content().clone())); // the payload by reference
//!         }
//!     }
//!     fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
//!         ctx.flush(); // one sendmmsg for the whole batch
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let server = DatagramBootstrap::new()
//!     .handler(|p| p.add_last("echo", Echo))
//!     .bind("127.0.0.1:0")
//!     .await?;
//!
//! let client = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
//! client.send_to(b"ping", server.local()).await?;
//! let mut buf = [0u8; 16];
//! let (n, from) = client.recv_from(&mut buf).await?;
//! assert_eq!((&buf[..n], from), (&b"ping"[..], server.local()));
//! server.close().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod driver;
mod options;
mod sys;

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use tokio::net::UdpSocket;
use weft_core::{Address, Channel, Error, Pipeline};

use crate::connection::{empty_initializer, init_pipeline, Initializer, Limits};
use options::Join;
pub use options::{
    DatagramOptions, DEFAULT_BATCH, DEFAULT_DATAGRAM_OUTBOUND_CAP, DEFAULT_MAX_DATAGRAM_SIZE,
};

/// What a datagram channel's task and its handles share.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// GSO is in use (off if unsupported, or once the kernel refused it).
    pub(crate) gso: AtomicBool,
    /// Datagrams dropped for being larger than a receive slot.
    pub(crate) truncated: AtomicU64,
}

/// Configures and binds datagram channels.
///
/// ```no_run
/// use weft_transport::{DatagramBootstrap, DatagramOptions};
///
/// # async fn run() -> Result<(), weft_core::Error> {
/// let ch = DatagramBootstrap::new()
///     .options(DatagramOptions::new().reuse_port(true))
///     .handler(|_p| Ok(()))
///     .bind("[::1]:0")
///     .await?;
/// println!("bound to {}", ch.local());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct DatagramBootstrap {
    opts: DatagramOptions,
    init: Option<Initializer>,
}

impl Default for DatagramBootstrap {
    fn default() -> Self {
        DatagramBootstrap::new()
    }
}

impl DatagramBootstrap {
    /// A bootstrap with default options.
    pub fn new() -> DatagramBootstrap {
        DatagramBootstrap {
            opts: DatagramOptions::default(),
            init: None,
        }
    }

    /// Fills the channel's pipeline.
    pub fn handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Pipeline) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.init = Some(Arc::new(f));
        self
    }

    /// The channel's options.
    pub fn options(mut self, opts: DatagramOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Binds to `addr` (the first address it resolves to).
    pub async fn bind(
        &self,
        addr: impl tokio::net::ToSocketAddrs,
    ) -> Result<DatagramChannel, Error> {
        let local = resolve(addr).await?;
        self.open(local, None)
    }

    /// Binds to `local` and connects to `remote`: only `remote`'s datagrams
    /// are received, and plain bytes written go to it.
    pub async fn connect(
        &self,
        local: impl tokio::net::ToSocketAddrs,
        remote: impl tokio::net::ToSocketAddrs,
    ) -> Result<DatagramChannel, Error> {
        let local = resolve(local).await?;
        let remote = resolve(remote).await?;
        self.open(local, Some(remote))
    }

    fn open(
        &self,
        local: SocketAddr,
        remote: Option<SocketAddr>,
    ) -> Result<DatagramChannel, Error> {
        let opts = &self.opts;
        opts.validate()?;
        let init = self.init.clone().unwrap_or_else(empty_initializer);
        let (socket, gso, gro) = open_socket(opts, local, remote)?;
        let socket = Arc::new(socket);
        let local = socket.local_addr()?;
        let stats = Arc::new(Stats::default());
        stats.gso.store(gso, Ordering::Relaxed);

        let channel = Channel::new(Some(Address::Inet(local)), remote.map(Address::Inet));
        let pipeline = init_pipeline(
            &channel,
            Limits {
                auto_read: opts.auto_read,
                watermark: opts.watermark,
                cap: opts.max_outbound_bytes,
                drops: true,
            },
            &init,
        )?;
        let slot = opts.slot(gro);
        let udp = driver::Udp {
            socket: socket.clone(),
            pipeline,
            stats: stats.clone(),
            local,
            connected: remote.is_some(),
            recv: sys::RecvBatch::new(opts.batch),
            send: sys::SendBatch::new(opts.batch, local.is_ipv6()),
            slot,
            // One buffer per receive of a burst (and one more), kept while
            // their datagrams may still be queued for writing.
            buf: sys::RecvBuf::new(slot * opts.batch, driver::READ_CALLS + 1),
            received: Vec::with_capacity(opts.batch),
            iov_store: Vec::new(),
            msgs: Vec::with_capacity(opts.batch),
            counts: Vec::with_capacity(opts.batch),
            timer: crate::timer::ChannelTimer::default(),
            blocked: false,
            lc: crate::lifecycle::Lifecycle::datagram(),
        };
        let span = tracing::debug_span!("datagram", id = %channel.id(), local = %local);
        tokio::spawn(tracing::Instrument::instrument(udp.run(), span));
        Ok(DatagramChannel {
            channel,
            socket: Arc::downgrade(&socket),
            stats,
            local,
            gro,
        })
    }
}

impl fmt::Debug for DatagramBootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramBootstrap")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

async fn resolve(addr: impl tokio::net::ToSocketAddrs) -> Result<SocketAddr, Error> {
    tokio::net::lookup_host(addr)
        .await?
        .next()
        .ok_or_else(|| Error::invalid_argument("the address resolved to nothing"))
}

/// Makes, configures, binds (and connects) the socket; says whether GSO and
/// GRO are on.
fn open_socket(
    opts: &DatagramOptions,
    local: SocketAddr,
    remote: Option<SocketAddr>,
) -> Result<(UdpSocket, bool, bool), Error> {
    use nix::sys::socket::{getsockopt, setsockopt, sockopt};
    use socket2::{Domain, Protocol, Socket, Type};

    let domain = if local.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let s = Socket::new(
        domain,
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )?;
    if opts.reuse_addr {
        s.set_reuse_address(true)?;
    }
    if opts.reuse_port {
        s.set_reuse_port(true)?;
    }
    if let Some(n) = opts.recv_buffer_size {
        s.set_recv_buffer_size(n)?;
    }
    if let Some(n) = opts.send_buffer_size {
        s.set_send_buffer_size(n)?;
    }
    if opts.broadcast {
        s.set_broadcast(true)?;
    }
    if local.is_ipv6() {
        if let Some(v6) = opts.only_v6 {
            s.set_only_v6(v6)?;
        }
        if let Some(ttl) = opts.ttl {
            s.set_unicast_hops_v6(ttl)?;
        }
        if let Some(on) = opts.multicast_loop {
            s.set_multicast_loop_v6(on)?;
        }
        if opts.packet_info {
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true).map_err(io::Error::from)?;
        }
    } else {
        if let Some(ttl) = opts.ttl {
            s.set_ttl_v4(ttl)?;
        }
        if let Some(ttl) = opts.multicast_ttl {
            s.set_multicast_ttl_v4(ttl)?;
        }
        if let Some(on) = opts.multicast_loop {
            s.set_multicast_loop_v4(on)?;
        }
        if let Some(ifa) = opts.multicast_if_v4 {
            s.set_multicast_if_v4(&ifa)?;
        }
        if opts.packet_info {
            setsockopt(&s, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)?;
        }
    }
    s.bind(&local.into())?;
    for join in &opts.joins {
        match *join {
            Join::V4 { group, interface } => s.join_multicast_v4(&group, &interface)?,
            Join::V6 { group, interface } => s.join_multicast_v6(&group, interface)?,
        }
    }
    if let Some(remote) = remote {
        s.connect(&remote.into())?;
    }
    // GSO: the kernel knows the option (Linux 4.18+); GRO: it accepts it
    // (Linux 5.0+). Without them the channel sends and receives one
    // datagram per message.
    let gso = opts.gso && getsockopt(&s, sockopt::UdpGsoSegment).is_ok();
    let gro = opts.gro && setsockopt(&s, sockopt::UdpGroSegment, &true).is_ok();
    tracing::debug!(%local, gso, gro, "datagram socket bound");
    let std: std::net::UdpSocket = s.into();
    Ok((UdpSocket::from_std(std)?, gso, gro))
}

/// A handle to a datagram channel: its [`Channel`] (writes, close, state,
/// from any task) plus what only a datagram socket has, such as joining and
/// leaving multicast groups while it runs.
///
/// Dereferences to [`Channel`]. Dropping every handle does not close the
/// channel; [`close`](Channel::close) does.
#[derive(Clone)]
pub struct DatagramChannel {
    channel: Channel,
    socket: Weak<UdpSocket>,
    stats: Arc<Stats>,
    local: SocketAddr,
    /// GRO is on (it is set once, at bind).
    gro: bool,
}

impl DatagramChannel {
    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The address the socket is bound to.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Whether runs of equal-size datagrams leave as one segmented send.
    pub fn gso(&self) -> bool {
        self.stats.gso.load(Ordering::Relaxed)
    }

    /// Whether the kernel coalesces received datagrams (split again into
    /// packets by reference).
    pub fn gro(&self) -> bool {
        self.gro
    }

    /// Datagrams dropped so far for being larger than
    /// [`max_datagram_size`](DatagramOptions::max_datagram_size).
    pub fn truncated(&self) -> u64 {
        self.stats.truncated.load(Ordering::Relaxed)
    }

    /// Joins an IPv4 multicast group on an interface (by address;
    /// `0.0.0.0`: the kernel's choice).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<(), Error> {
        Ok(self.socket()?.join_multicast_v4(group, interface)?)
    }

    /// Leaves an IPv4 multicast group.
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> Result<(), Error> {
        Ok(self.socket()?.leave_multicast_v4(group, interface)?)
    }

    /// Joins an IPv6 multicast group on an interface (by index; 0: the
    /// kernel's choice).
    pub fn join_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<(), Error> {
        Ok(self.socket()?.join_multicast_v6(&group, interface)?)
    }

    /// Leaves an IPv6 multicast group.
    pub fn leave_multicast_v6(&self, group: Ipv6Addr, interface: u32) -> Result<(), Error> {
        Ok(self.socket()?.leave_multicast_v6(&group, interface)?)
    }

    fn socket(&self) -> Result<Arc<UdpSocket>, Error> {
        self.socket.upgrade().ok_or_else(Error::closed)
    }
}

impl Deref for DatagramChannel {
    type Target = Channel;
    fn deref(&self) -> &Channel {
        &self.channel
    }
}

impl fmt::Debug for DatagramChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramChannel")
            .field("id", &self.channel.id())
            .field("local", &self.local)
            .field("gso", &self.gso())
            .field("gro", &self.gro())
            .finish()
    }
}
