//! The io_uring transport (feature `uring`, Linux): the same channels,
//! pipelines and options as the readiness transport, with the socket driven
//! by an io_uring instance instead of readiness and system calls.
//!
//! Contract:
//! - a channel uses it when its options say so
//!   ([`ChannelOptions::io_uring`](crate::ChannelOptions::io_uring)), or
//!   by default when the environment variable `WEFT_TRANSPORT` is
//!   `io_uring`; everything a handler sees is the same as on the readiness
//!   transport (the transport test suite, and the examples' suites of
//!   hostile peers, run on both);
//! - a server's connections share one ring, created at `bind` in the
//!   caller's runtime with its descriptor registered there (`ring`); a
//!   client connection gets a small ring of its own;
//! - receives are multishot into the ring's provided buffers, writes are
//!   `send`/`sendmsg` of the outbound slices, `SEND_ZC` for one large
//!   `Bytes`, and `sendfile` after a poll for writability for a
//!   `FileRegion` (`splice` through a pipe when sendfile is off) (`conn`);
//! - a kernel or sandbox that refuses io_uring, or whose completions do
//!   not reach the reactor at once (the start-up check, `probe`), makes
//!   `bind` and `connect` fail with that error when the options asked for
//!   io_uring, and fall back to the readiness transport (a `warn` naming
//!   the reason) when only the environment did.

#[cfg(feature = "uring")]
mod conn;
#[cfg(feature = "uring")]
mod probe;
#[cfg(feature = "uring")]
mod ring;

#[cfg(feature = "uring")]
pub(crate) use conn::drive;
#[cfg(feature = "uring")]
pub(crate) use ring::RingRef;

/// Stands for a ring where the feature is off: there is none.
#[cfg(not(feature = "uring"))]
#[derive(Clone, Debug)]
pub(crate) enum RingRef {}

/// Receive buffers of a server's ring ([`ring::BUF_SIZE`] each: 4 MiB in all).
#[cfg(feature = "uring")]
const SERVER_BUFFERS: u16 = 128;
/// Receive buffers of a client connection's own ring.
#[cfg(feature = "uring")]
const CLIENT_BUFFERS: u16 = 8;

/// The ring a server or client connection runs on, if its options ask for
/// io_uring: an error only when they asked explicitly.
pub(crate) fn ring_for(
    opts: &crate::options::ChannelOptions,
    server: bool,
) -> std::io::Result<Option<RingRef>> {
    #[cfg(feature = "uring")]
    {
        use crate::options::Transport;
        let count = if server {
            SERVER_BUFFERS
        } else {
            CLIENT_BUFFERS
        };
        match opts.transport() {
            Transport::Readiness => Ok(None),
            Transport::Uring { explicit } => match ring::Ring::start(count) {
                Ok(r) => Ok(Some(r)),
                Err(e) if !explicit => {
                    tracing::warn!(error = %e, "io_uring unusable here; using the readiness transport");
                    Ok(None)
                }
                Err(e) => Err(e),
            },
        }
    }
    #[cfg(not(feature = "uring"))]
    {
        let _ = server;
        match opts.transport() {
            crate::options::Transport::Readiness => Ok(None),
            // `validate` refuses this before a bootstrap gets here.
            crate::options::Transport::Uring { .. } => Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "weft-transport was built without its `uring` feature",
            )),
        }
    }
}
