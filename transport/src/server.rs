//! [`ServerBootstrap`] and [`Server`]: accept connections and run a pipeline
//! for each.
//!
//! Contract:
//! - `bind` binds a TCP (IPv4 or IPv6) or Unix-domain listener in the
//!   caller's tokio runtime and starts accepting; each accepted connection
//!   gets its own task, its own [`Pipeline`] filled by the child
//!   initializer, and the child options;
//! - accept errors never end the server: running out of descriptors
//!   (`EMFILE`, `ENFILE`) or memory makes it back off (10 ms, doubling to
//!   1 s) and try again; per-connection errors are logged and skipped;
//! - bounded by default: at most [`DEFAULT_MAX_CONNECTIONS`] connections at
//!   once (connections over the limit are accepted and closed at once, so
//!   the peer learns at once instead of waiting in the backlog), and a
//!   connection that has sent nothing and taken none of its answers for
//!   [`DEFAULT_IDLE_TIMEOUT`] is closed (a [`ReadTimeoutHandler`] that
//!   watches the transport's reads and output, first in every child
//!   pipeline as `"weft-idle-timeout"`); both are settings
//!   ([`max_connections`](ServerBootstrap::max_connections),
//!   [`idle_timeout`](ServerBootstrap::idle_timeout)) with a way out for
//!   those who mean it ([`no_connection_limit`](ServerBootstrap::no_connection_limit),
//!   [`no_idle_timeout`](ServerBootstrap::no_idle_timeout));
//! - [`Server::shutdown`] stops accepting, lets every channel finish writing
//!   what it had flushed (reading no more), and after the timeout closes
//!   whatever is left — also channels whose peer never reads; it returns
//!   once every channel is closed. [`Server::closed`] resolves then (Netty's
//!   `closeFuture()`); the shutdown's phases are kept by
//!   [`ServerCtl`](crate::control::ServerCtl).

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tracing::Instrument;
use weft_core::{Address, Channel, Error, Pipeline};

use crate::connection::{spawn_connection, Configure, Initializer};
use crate::control::{Phase, ServerCtl};
use crate::options::ChannelOptions;
use crate::stream::Stream;
use crate::timeout::ReadTimeoutHandler;
use crate::uring::RingRef;

/// Default most connections a server holds at once: 10,000.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default time a connection may send nothing and take none of its
/// answers before it is closed: 300 s (a response still being written
/// keeps it open).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// The name the idle timeout's handler has in every child pipeline.
pub const IDLE_TIMEOUT_HANDLER: &str = "weft-idle-timeout";

/// Configures and binds a server.
///
/// ```no_run
/// use weft_core::{from_fn, Context};
/// use weft_transport::ServerBootstrap;
///
/// # async fn run() -> Result<(), weft_core::Error> {
/// let server = ServerBootstrap::new()
///     .child_handler(|p| {
///         p.add_last("echo", from_fn(|ctx: &mut Context<'_>, msg: bytes::Bytes| {
///             ctx.write_and_flush(msg)
///         }))
///     })
///     .bind("127.0.0.1:0")
///     .await?;
/// println!("listening on {}", server.local_addr());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServerBootstrap {
    opts: ChannelOptions,
    init: Option<Initializer>,
    reuse_address: bool,
    reuse_port: bool,
    backlog: u32,
    max_connections: Option<usize>,
    idle_timeout: Option<Duration>,
}

impl Default for ServerBootstrap {
    fn default() -> Self {
        ServerBootstrap::new()
    }
}

impl ServerBootstrap {
    /// A bootstrap with default options and no initializer.
    pub fn new() -> ServerBootstrap {
        ServerBootstrap {
            opts: ChannelOptions::default(),
            init: None,
            reuse_address: true,
            reuse_port: false,
            backlog: 1024,
            max_connections: Some(DEFAULT_MAX_CONNECTIONS),
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
        }
    }

    /// The child initializer: fills each accepted connection's pipeline.
    /// An error closes that connection.
    pub fn child_handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Pipeline) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.init = Some(Arc::new(f));
        self
    }

    /// SO_REUSEADDR on the listener (default: on).
    pub fn reuse_address(mut self, on: bool) -> Self {
        self.reuse_address = on;
        self
    }

    /// SO_REUSEPORT on the listener (default: off).
    pub fn reuse_port(mut self, on: bool) -> Self {
        self.reuse_port = on;
        self
    }

    /// The listen backlog (default 1024).
    pub fn backlog(mut self, n: u32) -> Self {
        self.backlog = n;
        self
    }

    /// Most connections open at once; connections over it are accepted and
    /// closed at once (default [`DEFAULT_MAX_CONNECTIONS`], 10,000).
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// No limit on the connections open at once: the process's descriptor
    /// limit is then the only one.
    pub fn no_connection_limit(mut self) -> Self {
        self.max_connections = None;
        self
    }

    /// Closes a connection that has sent nothing and taken none of its
    /// answers for `t` (default [`DEFAULT_IDLE_TIMEOUT`], 300 s): a
    /// [`ReadTimeoutHandler`] watching the transport's reads and observing
    /// output, first in each child pipeline as [`IDLE_TIMEOUT_HANDLER`].
    /// Protocols with shorter idle rules set theirs (dns-server's TCP
    /// listener: 10 s).
    pub fn idle_timeout(mut self, t: Duration) -> Self {
        self.idle_timeout = Some(t);
        self
    }

    /// No idle timeout: connections stay open for as long as their peers
    /// keep them.
    pub fn no_idle_timeout(mut self) -> Self {
        self.idle_timeout = None;
        self
    }

    /// The options of each accepted channel (Netty's `childOption`).
    ///
    /// ```
    /// use weft_transport::{ChannelOptions, ServerBootstrap};
    ///
    /// let b = ServerBootstrap::new()
    ///     .child_options(ChannelOptions::new().allow_half_closure(true).keepalive(true));
    /// # drop(b);
    /// ```
    pub fn child_options(mut self, opts: ChannelOptions) -> Self {
        self.opts = opts;
        self
    }

    fn check(&self) -> Result<Initializer, Error> {
        self.opts.validate()?;
        if self.idle_timeout.is_some_and(|t| t.is_zero()) {
            return Err(Error::invalid_argument(
                "the idle timeout must be positive (no_idle_timeout() turns it off)",
            ));
        }
        let init = self
            .init
            .clone()
            .ok_or_else(|| Error::invalid_argument("ServerBootstrap needs a child_handler"))?;
        Ok(match self.idle_timeout {
            None => init,
            Some(t) => Arc::new(move |p: &mut Pipeline| {
                init(p)?;
                p.add_first(
                    IDLE_TIMEOUT_HANDLER,
                    ReadTimeoutHandler::new(t).watch_transport_reads(),
                )
            }),
        })
    }

    /// Binds a TCP listener (IPv4 or IPv6) and starts accepting.
    pub async fn bind(self, addr: impl tokio::net::ToSocketAddrs) -> Result<Server, Error> {
        let init = self.check()?;
        let mut last = None;
        for a in tokio::net::lookup_host(addr).await? {
            match self.listen_tcp(a) {
                Ok(l) => {
                    let local = l.local_addr()?;
                    return self.start(Listener::Tcp(l), Address::Inet(local), init);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::invalid_argument("address resolved to nothing")))
    }

    fn listen_tcp(&self, a: SocketAddr) -> Result<TcpListener, Error> {
        let s = if a.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        s.set_reuseaddr(self.reuse_address)?;
        s.set_reuseport(self.reuse_port)?;
        s.bind(a)?;
        Ok(s.listen(self.backlog)?)
    }

    /// Binds a Unix-domain listener at `path` and starts accepting.
    pub async fn bind_unix(self, path: impl AsRef<Path>) -> Result<Server, Error> {
        let init = self.check()?;
        let path: PathBuf = path.as_ref().to_path_buf();
        let l = UnixListener::bind(&path)?;
        self.start(Listener::Unix(l), Address::Unix(Some(path)), init)
    }

    fn start(self, listener: Listener, local: Address, init: Initializer) -> Result<Server, Error> {
        let ctl = Arc::new(ServerCtl::new());
        // The connections' ring, when they run on io_uring: the accept loop
        // holds it, and each connection a reference.
        let ring = crate::uring::ring_for(&self.opts, true)?;
        let opts = Arc::new(self.opts);
        let task = tokio::spawn(
            accept_loop(
                listener,
                ctl.clone(),
                opts,
                init,
                self.max_connections,
                ring,
            )
            .instrument(tracing::debug_span!("server", local = %local)),
        );
        tracing::debug!(local = %local, "listening");
        Ok(Server {
            inner: Arc::new(ServerInner {
                local,
                ctl,
                accept: Mutex::new(Some(task)),
            }),
        })
    }
}

impl fmt::Debug for ServerBootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerBootstrap")
            .field("opts", &self.opts)
            .field("backlog", &self.backlog)
            .field("max_connections", &self.max_connections)
            .field("idle_timeout", &self.idle_timeout)
            .finish_non_exhaustive()
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

async fn accept_loop(
    listener: Listener,
    ctl: Arc<ServerCtl>,
    opts: Arc<ChannelOptions>,
    init: Initializer,
    max: Option<usize>,
    ring: Option<RingRef>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = ctl.stopped_running() => return,
            r = accept(&listener) => r,
        };
        match accepted {
            Ok(conn) => {
                backoff = Duration::from_millis(10);
                if let Some(max) = max {
                    if ctl.count() >= max {
                        tracing::debug!(
                            max,
                            "connection limit reached; closing the new connection"
                        );
                        drop(conn);
                        continue;
                    }
                }
                match conn {
                    Accepted::Tcp(s) => spawn_child(s, &ctl, &opts, &init, ring.as_ref()),
                    Accepted::Unix(s) => spawn_child(s, &ctl, &opts, &init, ring.as_ref()),
                }
            }
            Err(e) if is_resource_exhaustion(&e) => {
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                tokio::select! {
                    _ = ctl.stopped_running() => return,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
            Err(e) => tracing::debug!(error = %e, "accept failed"),
        }
    }
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    match l {
        Listener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        Listener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

fn is_resource_exhaustion(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM)
    )
}

fn spawn_child<S: Stream + Configure>(
    stream: S,
    ctl: &Arc<ServerCtl>,
    opts: &Arc<ChannelOptions>,
    init: &Initializer,
    ring: Option<&RingRef>,
) {
    if let Err(e) = spawn_connection(stream, opts, init, Some(ctl), ring) {
        tracing::warn!(error = ?e, "could not set up an accepted connection");
    }
}

/// A running server: a cheap handle, clonable and usable from any task.
///
/// When the last handle is dropped the server stops accepting but leaves
/// open connections running; call [`shutdown`](Server::shutdown) to close
/// them gracefully, and [`closed`](Server::closed) to wait for that from
/// elsewhere.
///
/// ```no_run
/// # use weft_transport::ServerBootstrap;
/// # async fn run(b: ServerBootstrap) -> Result<(), weft_core::Error> {
/// let server = b.bind("127.0.0.1:7000").await?;
/// let handle = server.clone();
/// tokio::spawn(async move {
///     // ... on SIGTERM, an admin command, a test's end:
///     handle.shutdown(std::time::Duration::from_secs(5)).await;
/// });
/// server.closed().await; // Netty's closeFuture().sync()
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Server {
    inner: Arc<ServerInner>,
}

struct ServerInner {
    local: Address,
    ctl: Arc<ServerCtl>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Server {
    /// The address the server listens on.
    pub fn local_addr(&self) -> &Address {
        &self.inner.local
    }

    /// The TCP address, for a TCP server.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        match &self.inner.local {
            Address::Inet(a) => Some(*a),
            _ => None,
        }
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.inner.ctl.count()
    }

    /// Handles to the open connections.
    pub fn channels(&self) -> Vec<Channel> {
        self.inner.ctl.channels()
    }

    /// Stops accepting; lets each channel finish writing what it flushed
    /// (reading nothing more) for at most `timeout`; then closes the rest,
    /// whatever their peers do. Returns once every channel is closed, and
    /// wakes [`closed`](Self::closed). Calling it again, from any handle,
    /// waits for the same end.
    pub async fn shutdown(&self, timeout: Duration) {
        let ctl = &self.inner.ctl;
        ctl.set_phase(Phase::Draining);
        let accept = self
            .inner
            .accept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = accept {
            let _ = t.await;
            if let Address::Unix(Some(p)) = &self.inner.local {
                let _ = std::fs::remove_file(p);
            }
        }
        let drained = tokio::time::timeout(timeout, ctl.all_closed()).await;
        if drained.is_err() {
            tracing::debug!(
                left = ctl.count(),
                "shutdown timeout: closing the remaining channels"
            );
            ctl.set_phase(Phase::Abort);
            ctl.all_closed().await;
        }
        ctl.mark_stopped();
    }

    /// Resolves once a [`shutdown`](Self::shutdown) has completed: the
    /// server accepts no more and every one of its channels is closed.
    pub async fn closed(&self) {
        self.inner.ctl.closed().await;
    }
}

impl Drop for ServerInner {
    fn drop(&mut self) {
        let accept = self
            .accept
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(t) = accept {
            t.abort();
            if let Address::Unix(Some(p)) = &self.local {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local", &self.inner.local)
            .field("connections", &self.connections())
            .finish()
    }
}
