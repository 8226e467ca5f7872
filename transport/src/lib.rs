//! weft-transport: run weft pipelines over tokio TCP and Unix-domain sockets.
//!
//! - [`ServerBootstrap`] binds a listener and gives each accepted connection
//!   its own task and [`Pipeline`](weft_core::Pipeline);
//! - [`Bootstrap`] connects as a client;
//! - the connection task reads into adaptive buffers, hands each read on as
//!   a `Bytes` without copying, and writes the outbound buffer with one
//!   `writev` per run of byte messages and `sendfile(2)` for each
//!   [`FileRegion`](weft_core::FileRegion);
//! - with the feature `uring` (Linux), channels can run on io_uring instead
//!   ([`ChannelOptions::io_uring`], or `WEFT_TRANSPORT=io_uring` for the
//!   process): multishot receives into a shared buffer ring, handed on
//!   without a copy; ordered sends of the same slices; `sendfile` for files.
//!   Handlers see no difference;
//! - [`ChannelGroup`] broadcasts to many channels;
//! - [`DatagramBootstrap`] binds UDP sockets as datagram channels in the
//!   same pipeline model, batched (`recvmmsg`/`sendmmsg`) and segmented
//!   (GSO, GRO) at the socket; the [`udp`] module's docs show a UDP echo
//!   handler in ten lines.
//!
//! # Watermarks and file bytes
//!
//! Writability follows the bytes the outbound buffer holds **in memory**
//! (`Bytes` and `CompositeBytes`). A `FileRegion` counts 0: its bytes stay in
//! the page cache until `sendfile` moves them, so they cost the process no
//! memory, and counting them would keep a channel unwritable for the whole
//! of a large file. When a region must be streamed instead (no `sendfile`),
//! only one chunk of it is in memory at a time.
//!
//! # Example: an echo server
//!
//! ```no_run
//! use weft_core::{Context, Events, Handler, Msg};
//! use weft_transport::ServerBootstrap;
//!
//! struct Echo;
//! #[weft_core::handler]
//! impl Handler for Echo {
//!     fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
//!         ctx.write(msg);
//!     }
//!     fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
//!         ctx.flush();
//!     }
//! }
//!
//! # async fn run() -> Result<(), weft_core::Error> {
//! let server = ServerBootstrap::new()
//!     .child_handler(|p| p.add_last("echo", Echo))
//!     .bind("127.0.0.1:7000")
//!     .await?;
//! // Serve until some task calls `shutdown` on a clone of the handle (on
//! // SIGTERM, say). Dropping the last handle would stop accepting at once.
//! server.closed().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_code)]

mod client;
mod connection;
mod control;
mod driver;
mod group;
#[cfg(feature = "http")]
pub mod http_client;
mod lifecycle;
mod linger;
mod options;
mod recv_pool;
mod server;
mod stream;
mod timeout;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
pub mod udp;
mod uring;

pub use client::Bootstrap;
pub use group::{ChannelGroup, SlowMembers};
#[cfg(feature = "http")]
pub use http_client::{Body, HttpClient, HttpClientBuilder};
pub use options::ChannelOptions;
pub use server::{
    Server, ServerBootstrap, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS, IDLE_TIMEOUT_HANDLER,
};
pub use timeout::{
    IdleState, IdleStateEvent, IdleStateHandler, ReadTimeoutHandler, WriteTimeoutHandler,
};
#[cfg(feature = "tls")]
pub use tls::{TlsHandler, TlsHandshakeCompleted};
pub use udp::{DatagramBootstrap, DatagramChannel, DatagramOptions};
