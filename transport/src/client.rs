//! [`Bootstrap`]: connect to a server and run a pipeline for the connection.
//!
//! Contract: `connect` resolves the address, connects within the timeout
//! (default 10 s), fills the pipeline with the initializer, spawns the
//! connection's task in the caller's runtime and returns its [`Channel`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use weft_core::{Channel, Error, Pipeline};

use crate::connection::{empty_initializer, spawn_connection, Configure, Initializer};
use crate::options::ChannelOptions;
use crate::stream::Stream;

/// Configures and opens client connections.
///
/// ```no_run
/// use weft_transport::Bootstrap;
///
/// # async fn run() -> Result<(), weft_core::Error> {
/// let ch = Bootstrap::new()
///     .handler(|_p| Ok(()))
///     .connect("127.0.0.1:7000")
///     .await?;
/// ch.write_and_flush("hello\n").await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Bootstrap {
    opts: ChannelOptions,
    init: Option<Initializer>,
    connect_timeout: Duration,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap::new()
    }
}

impl Bootstrap {
    /// A bootstrap with default options.
    pub fn new() -> Bootstrap {
        Bootstrap {
            opts: ChannelOptions::default(),
            init: None,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// Fills the connection's pipeline.
    pub fn handler<F>(mut self, f: F) -> Self
    where
        F: Fn(&mut Pipeline) -> Result<(), Error> + Send + Sync + 'static,
    {
        self.init = Some(Arc::new(f));
        self
    }

    /// How long `connect` may take (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The connection's options.
    ///
    /// ```
    /// use weft_transport::{Bootstrap, ChannelOptions};
    ///
    /// let b = Bootstrap::new().options(ChannelOptions::new().auto_read(false));
    /// # drop(b);
    /// ```
    pub fn options(mut self, opts: ChannelOptions) -> Self {
        self.opts = opts;
        self
    }

    fn check(&self) -> Result<Initializer, Error> {
        self.opts.validate()?;
        Ok(self.init.clone().unwrap_or_else(empty_initializer))
    }

    /// Connects over TCP.
    pub async fn connect(&self, addr: impl tokio::net::ToSocketAddrs) -> Result<Channel, Error> {
        let init = self.check()?;
        let stream = self.in_time(tokio::net::TcpStream::connect(addr)).await?;
        self.start(stream, &init)
    }

    /// Connects to a Unix-domain socket.
    pub async fn connect_unix(&self, path: impl AsRef<Path>) -> Result<Channel, Error> {
        let init = self.check()?;
        let stream = self.in_time(tokio::net::UnixStream::connect(path)).await?;
        self.start(stream, &init)
    }

    /// Starts the connected channel's task (on its own ring when the
    /// options ask for io_uring).
    fn start<S: Stream + Configure>(
        &self,
        stream: S,
        init: &Initializer,
    ) -> Result<Channel, Error> {
        let ring = crate::uring::ring_for(&self.opts, false)?;
        spawn_connection(
            stream,
            &Arc::new(self.opts.clone()),
            init,
            None,
            ring.as_ref(),
        )
    }

    /// Runs a connect within the connect timeout.
    async fn in_time<S>(
        &self,
        connect: impl std::future::Future<Output = std::io::Result<S>>,
    ) -> Result<S, Error> {
        match tokio::time::timeout(self.connect_timeout, connect).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(Error::timeout(format!(
                "connect took longer than {:?}",
                self.connect_timeout
            ))),
        }
    }
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap")
            .field("opts", &self.opts)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}
