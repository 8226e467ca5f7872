//! weft-core: the pieces every weft program is made of.
//!
//! - [`Msg`]: what flows through a pipeline — [`Bytes`](bytes::Bytes),
//!   [`CompositeBytes`], [`FileRegion`], or any user type;
//! - [`DatagramPacket`]: a datagram and its addresses, for datagram
//!   channels;
//! - [`CompositeBytes`]: byte slices joined by reference, written with one
//!   `writev`;
//! - [`FileRegion`]: a range of a file, written with `sendfile(2)`;
//! - [`Handler`], [`Pipeline`], [`Context`]: the chain of named stages a
//!   connection's events and operations travel through;
//! - [`Channel`]: a handle to a connection, usable from any task;
//! - [`EmbeddedChannel`]: a pipeline driven by hand, to test handlers without
//!   a socket;
//! - [`Error`]: one opaque error type with an [`ErrorKind`];
//! - [`small_bytes`]: short-lived byte messages carved from a per-thread
//!   chunk, for decoders that would otherwise allocate per message.
//!
//! This crate knows nothing of sockets; `weft-transport` drives pipelines
//! from tokio sockets through the [`transport`] module, the one surface
//! written for transport authors rather than handler authors.
//!
//! # Memory without reference counting by hand
//!
//! Netty's `ByteBuf` is reference-counted by hand: every handler must
//! `retain()` and `release()` correctly, and a leak detector hunts the ones
//! that do not. In weft a buffer is a [`bytes::Bytes`], freed when its last
//! owner drops it: there is nothing to release, nothing to leak, and no
//! `IllegalReferenceCountException` to debug. A slice of a buffer keeps the
//! buffer alive, and the compiler sees to the rest.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use weft_core::{Context, EmbeddedChannel, Handler, Events, Msg};
//!
//! /// Echoes every message back.
//! #[derive(Debug)]
//! struct Echo;
//!
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
//! let mut ch = EmbeddedChannel::with_handler(Echo);
//! ch.write_inbound("hello");
//! assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "hello");
//! ```

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_code)]

// `#[handler]` names `::weft_core::Events`, also inside this crate.
extern crate self as weft_core;

mod channel;
mod combined;
mod composite;
mod datagram;
mod embedded;
mod error;
mod file_region;
mod handler;
mod handlers;
mod mailbox;
mod memory_budget;
mod msg;
mod outbound;
mod pipeline;
mod promise;
mod read_budget;
mod small_bytes;
mod sync;
pub mod transport;
mod typed;

pub use bytes;

// The README's example compiles and runs as a doc test.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub use channel::{Address, Channel, ChannelId, QUEUED_USER_MSG_WEIGHT};
pub use combined::Combined;
#[doc(hidden)]
pub use combined::Halves;
pub use composite::CompositeBytes;
pub use datagram::DatagramPacket;
pub use embedded::{EmbeddedBuilder, EmbeddedChannel};
pub use error::{Error, ErrorKind, Result};
pub use file_region::FileRegion;
pub use handler::{Events, Handler, InputShutdown, UserEvent};
pub use handlers::{
    CorrelationHandler, Correlator, FlushConsolidationHandler, LoggingHandler, ResponseFuture,
    DEFAULT_MAX_IN_FLIGHT,
};
pub use memory_budget::{BudgetShare, MemoryBudget};
pub use msg::{AnyMsg, Msg};
pub use outbound::WriteBufferWaterMark;
pub use pipeline::{Context, Pipeline, TimerId};
pub use promise::{Promise, WriteFuture};
pub use read_budget::ReadBudget;
pub use small_bytes::{small_bytes, SMALL_MAX};
pub use typed::{from_fn, FnInbound, Typed, TypedInbound};
pub use weft_macros::handler;
