//! WebSocket (RFC 6455) on weft's HTTP codec: the server handshake that
//! rebuilds the pipeline at run time, and the frame codec behind it.
//!
//! Contract:
//! - [`WebSocketUpgrade`] answers an upgrade request on its path with 101
//!   and hands the connection over: the HTTP handlers leave, a
//!   [`WebSocketCodec`] (`"websocket"`) takes their place, and
//!   bytes the client sent right behind its request are its first frames;
//! - handlers after it receive [`Frame`]s (unmasked, payloads sliced from
//!   the bytes read) and write [`Frame`]s; every protocol rule is checked
//!   by the codec, which answers a violation with the right close code
//!   ([`WebSocketError`]) and closes;
//! - [`WebSocketClientHandshake`] does the client's side over the HTTP
//!   client codec and installs the codec for the client role (frames it
//!   sends are masked with fresh random keys);
//! - permessage-deflate (RFC 7692), when [`DeflateConfig`] is given to a
//!   handshake and the other end agrees, puts a [`PerMessageDeflate`] right
//!   after the codec: handlers behind it see and write uncompressed frames;
//! - [`WebSocketMessageAggregator`] after the codec turns fragments into
//!   whole [`Message`]s (single-frame messages without a copy);
//! - limits are finite by default ([`DEFAULT_MAX_FRAME_SIZE`],
//!   [`DEFAULT_MAX_MESSAGE_SIZE`]).
//!
//! A ten-line echo server:
//!
//! ```
//! use weft_codec::http::HttpServerCodec;
//! use weft_codec::websocket::{Frame, OpCode, WebSocketUpgrade};
//! use weft_core::{from_fn, Context, Pipeline};
//!
//! fn echo(p: &mut Pipeline) -> Result<(), weft_core::Error> {
//!     p.add_last("http", HttpServerCodec::new())?;
//!     p.add_last("ws", WebSocketUpgrade::new("/echo"))?;
//!     p.add_last("echo", from_fn(|ctx: &mut Context<'_>, frame: Frame| {
//!         if matches!(frame.opcode, OpCode::Text | OpCode::Binary | OpCode::Continuation) {
//!             ctx.write_and_flush(frame);
//!         }
//!     }))
//! }
//! # let _ = echo;
//! ```

mod aggregator;
mod boxes;
mod client;
mod codec;
mod deflate;
mod error;
mod frame;
mod handshake;
mod header;
mod mask;
mod utf8;

pub use aggregator::{Message, WebSocketMessageAggregator};
pub use client::{ClientHandshakeComplete, WebSocketClientHandshake};
pub use codec::{
    Role, WebSocketCodec, WebSocketConfig, DEFAULT_CLOSE_TIMEOUT, DEFAULT_MAX_FRAME_SIZE,
    DEFAULT_MAX_MESSAGE_SIZE, DEFAULT_PARTIAL_FRAME_BUDGET,
};
pub use deflate::{DeflateConfig, PerMessageDeflate, DEFAULT_MAX_INFLATE_RATE};
pub use error::{WebSocketError, WebSocketErrorKind};
pub use frame::{CloseCode, Frame, OpCode};
pub use handshake::{accept_key, HandshakeComplete, WebSocketUpgrade, DEFAULT_HANDSHAKE_TIMEOUT};
pub use mask::apply_mask;
