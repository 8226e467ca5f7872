//! Setting up a connection: socket options, the channel, its pipeline, and
//! the task that drives it. Shared by the server (accepted connections) and
//! the client bootstrap.
//!
//! Contract: the socket is configured from the [`ChannelOptions`] first;
//! the pipeline gets the options' watermarks and cap before the initializer
//! runs; an initializer that fails or panics closes the connection (the
//! error is returned, the task never starts); a connection of a server is
//! registered with it before its task starts and unregistered when the task
//! ends.

use std::sync::Arc;

use tracing::Instrument;
use weft_core::{Channel, Error, Pipeline, WriteBufferWaterMark};

use crate::control::ServerCtl;
use crate::options::ChannelOptions;
use crate::stream::Stream;
use crate::uring::RingRef;

/// Fills a new channel's pipeline.
pub(crate) type Initializer = Arc<dyn Fn(&mut Pipeline) -> Result<(), Error> + Send + Sync>;

/// Applies the socket-level options.
pub(crate) trait Configure {
    fn configure(&self, opts: &ChannelOptions) -> std::io::Result<()>;
}

impl Configure for tokio::net::TcpStream {
    fn configure(&self, opts: &ChannelOptions) -> std::io::Result<()> {
        use nix::sys::socket::{setsockopt, sockopt};
        self.set_nodelay(opts.tcp_nodelay)?;
        if opts.keepalive {
            setsockopt(self, sockopt::KeepAlive, &true)?;
        }
        configure_buffers(self, opts)
    }
}

impl Configure for tokio::net::UnixStream {
    fn configure(&self, opts: &ChannelOptions) -> std::io::Result<()> {
        configure_buffers(self, opts)
    }
}

fn configure_buffers(s: &impl std::os::fd::AsFd, opts: &ChannelOptions) -> std::io::Result<()> {
    use nix::sys::socket::{setsockopt, sockopt};
    if let Some(n) = opts.recv_buffer_size {
        setsockopt(s, sockopt::RcvBuf, &n)?;
    }
    if let Some(n) = opts.send_buffer_size {
        setsockopt(s, sockopt::SndBuf, &n)?;
    }
    Ok(())
}

/// What a new channel's pipeline is given before its initializer runs.
pub(crate) struct Limits {
    pub(crate) auto_read: bool,
    pub(crate) watermark: WriteBufferWaterMark,
    pub(crate) cap: Option<usize>,
    /// A write past the cap is dropped rather than closing (datagrams).
    pub(crate) drops: bool,
}

/// A new channel's pipeline, set up as every transport sets it up: auto-read,
/// the watermarks, the cap and its policy, then the initializer; an error or
/// a panic in the initializer is returned.
pub(crate) fn init_pipeline(
    channel: &Channel,
    limits: Limits,
    init: &Initializer,
) -> Result<Pipeline, Error> {
    channel.set_auto_read(limits.auto_read);
    let mut pipeline = Pipeline::new(channel.clone());
    let mut t = pipeline.transport();
    t.set_watermark(limits.watermark);
    t.set_outbound_cap(limits.cap);
    t.set_overflow_drops(limits.drops);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| init(&mut pipeline))).unwrap_or_else(
        |_| {
            Err(Error::new(
                weft_core::ErrorKind::Panic,
                "the channel initializer panicked",
            ))
        },
    )?;
    Ok(pipeline)
}

/// An initializer that adds nothing (a bootstrap given none).
pub(crate) fn empty_initializer() -> Initializer {
    Arc::new(|_| Ok(()))
}

/// Builds a channel's pipeline and spawns its task.
///
/// With a ring, the connection runs on the io_uring transport.
pub(crate) fn spawn_connection<S: Stream + Configure>(
    stream: S,
    opts: &Arc<ChannelOptions>,
    init: &Initializer,
    ctl: Option<&Arc<ServerCtl>>,
    ring: Option<&RingRef>,
) -> Result<Channel, Error> {
    stream.configure(opts)?;
    let (local, remote) = stream.addresses();
    let span = tracing::debug_span!(
        "channel",
        id = tracing::field::Empty,
        peer = %remote.as_ref().map(|a| a.to_string()).unwrap_or_default()
    );
    let channel = Channel::new(local, remote);
    span.record("id", tracing::field::display(channel.id()));
    let pipeline = init_pipeline(
        &channel,
        Limits {
            auto_read: opts.auto_read,
            watermark: opts.watermark,
            cap: opts.max_outbound_bytes,
            drops: false,
        },
        init,
    )?;
    if let Some(ctl) = ctl {
        ctl.register(&channel);
    }
    let ctl = ctl.cloned();
    let opts = opts.clone();
    let id = channel.id();
    #[cfg(feature = "uring")]
    if let Some(ring) = ring {
        let fd = match stream.into_fd() {
            Ok(fd) => fd,
            Err(e) => {
                if let Some(ctl) = &ctl {
                    ctl.unregister(id);
                }
                return Err(Error::io(e));
            }
        };
        let ring = ring.clone();
        spawn(span, async move {
            crate::uring::drive(fd, S::CORKS, pipeline, opts, ctl.clone(), ring).await;
            if let Some(ctl) = ctl {
                ctl.unregister(id);
            }
        });
        return Ok(channel);
    }
    #[cfg(not(feature = "uring"))]
    let _ = ring;
    spawn(span, async move {
        crate::driver::drive(stream, pipeline, opts, ctl.clone()).await;
        if let Some(ctl) = ctl {
            ctl.unregister(id);
        }
    });
    Ok(channel)
}

/// Spawns a connection's task, in its span when somebody listens (the span
/// costs a little on every poll).
fn spawn(span: tracing::Span, task: impl std::future::Future<Output = ()> + Send + 'static) {
    if span.is_disabled() {
        tokio::spawn(task);
    } else {
        tokio::spawn(task.instrument(span));
    }
}
