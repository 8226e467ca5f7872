//! weft-codec: decoders and encoders for weft pipelines, zero-copy.
//!
//! - [`Decoder`] + [`DecoderHandler`]: bytes → messages, from a
//!   [`Cumulation`] that takes each read by reference; frames come out as
//!   slices of the bytes the transport read;
//! - [`Encoder`] + [`EncoderHandler`]: messages → bytes, appended to a
//!   `CompositeBytes` so headers go in front of payloads without copying;
//! - [`MessageDecoder`] / [`MessageEncoder`]: typed message transformations;
//! - frame codecs: [`LengthFieldBasedFrameDecoder`], [`LengthFieldPrepender`],
//!   [`LineBasedFrameDecoder`], [`DelimiterBasedFrameDecoder`],
//!   [`FixedLengthFrameDecoder`]; text: [`StringDecoder`], [`StringEncoder`],
//!   [`LineEncoder`];
//! - with the `tokio-util` feature, any `tokio_util::codec` decoder or
//!   encoder goes into a pipeline unchanged (see `tokio_util_codec`);
//! - with the `http` feature, HTTP/1.1: server and client codecs, the
//!   aggregator, `Expect: 100-continue`, content compression — module
//!   `http`, whose documentation opens with a ten-line HTTP service;
//! - with the `websocket` feature, WebSocket: the server handshake that
//!   swaps the HTTP handlers for a frame codec at run time — module
//!   `websocket`.
//!
//! Every limit has a finite default, and every builder checks its options.
//! Errors are `weft_core::Error`s with a kind (`TooLongFrame`,
//! `CorruptedFrame`, `Decode`, `Encode`; `is_codec()` for any of them).

#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_code)]
// Sizes, limits and offsets here come from peers: no arithmetic on them may
// wrap (a wrapped room once made the chunked decoder wait for ever, keeping
// every byte after an 8 KiB trailer line). Every `+`, `-` and `*` is
// checked, saturating or shown not to overflow by its type; tests may
// compute freely.
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

mod cumulation;
mod decoder;
mod delimiter;
mod encoder;
mod fixed;
#[cfg(feature = "http")]
pub mod http;
mod length_field;
mod line;
mod message;
mod string;
#[cfg(feature = "http")]
mod token_bucket;
#[cfg(feature = "tokio-util")]
pub mod tokio_util_codec;
#[cfg(feature = "websocket")]
pub mod websocket;

pub use cumulation::Cumulation;
pub use decoder::{Decoder, DecoderHandler};
pub use delimiter::DelimiterBasedFrameDecoder;
pub use encoder::{Encoder, EncoderHandler};
pub use fixed::FixedLengthFrameDecoder;
pub use length_field::{
    ByteOrder, LengthFieldBasedFrameDecoder, LengthFieldBasedFrameDecoderBuilder,
    LengthFieldPrepender, LengthFieldPrependerBuilder, DEFAULT_MAX_FRAME_LENGTH,
};
pub use line::{LineBasedFrameDecoder, DEFAULT_MAX_LINE_LENGTH};
pub use message::{MessageDecoder, MessageDecoderHandler, MessageEncoder, MessageEncoderHandler};
pub use string::{LineEncoder, StringDecoder, StringEncoder};
