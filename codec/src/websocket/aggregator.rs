//! [`WebSocketMessageAggregator`]: whole [`Message`]s out of data frames.
//!
//! Contract: a message sent in one frame passes on with that frame's
//! payload (no copy); a fragmented one is joined once its last fragment
//! arrives (one copy). Sizes are the codec's business (its
//! `max_message_size` already bounds what can arrive) and so is UTF-8 (a
//! text message reaching this handler is valid). Control frames pass on as
//! [`Frame`]s, between or inside messages.

use bytes::{Bytes, BytesMut};
use weft_core::{Context, Events, Handler, Msg};

use super::frame::{Frame, OpCode};

/// A whole WebSocket message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message: the payload is UTF-8 (the codec checked it).
    Text(Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Message {
    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(b) => std::str::from_utf8(b).ok(),
            Message::Binary(_) => None,
        }
    }

    /// The payload, whichever the kind.
    pub fn payload(&self) -> &Bytes {
        match self {
            Message::Text(b) | Message::Binary(b) => b,
        }
    }
}

impl From<Message> for Frame {
    /// The message as one frame.
    fn from(m: Message) -> Frame {
        match m {
            Message::Text(b) => Frame::text(b),
            Message::Binary(b) => Frame::binary(b),
        }
    }
}

impl From<Message> for Msg {
    /// A message travels as one frame (the codec encodes frames).
    fn from(m: Message) -> Msg {
        Msg::user(Frame::from(m))
    }
}

/// Joins fragments into [`Message`]s; see the module contract.
///
/// ```
/// use weft_codec::websocket::{Frame, Message, OpCode, WebSocketMessageAggregator};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::with_handler(WebSocketMessageAggregator::new());
/// ch.write_inbound(Frame { fin: false, ..Frame::text("hel") });
/// ch.write_inbound(Frame { fin: true, ..Frame::new(OpCode::Continuation, "lo") });
/// let m: Message = ch.read_inbound().unwrap();
/// assert_eq!(m.as_text(), Some("hello"));
/// ```
#[derive(Debug, Default)]
pub struct WebSocketMessageAggregator {
    /// The kind of the message being joined, and its fragments so far.
    pending: Option<(OpCode, BytesMut)>,
}

impl WebSocketMessageAggregator {
    /// An aggregator with nothing pending.
    pub fn new() -> WebSocketMessageAggregator {
        WebSocketMessageAggregator::default()
    }
}

fn message(kind: OpCode, payload: Bytes) -> Message {
    match kind {
        OpCode::Text => Message::Text(payload),
        _ => Message::Binary(payload),
    }
}

impl Handler for WebSocketMessageAggregator {
    fn interest(&self) -> Events {
        Events::READ
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let f = match msg.downcast::<Frame>() {
            Ok(f) => f,
            Err(other) => return ctx.fire_read(other),
        };
        match f.opcode {
            OpCode::Text | OpCode::Binary if f.fin => {
                ctx.fire_read(Msg::user(message(f.opcode, f.payload)));
            }
            OpCode::Text | OpCode::Binary => {
                self.pending = Some((f.opcode, BytesMut::from(&f.payload[..])));
            }
            OpCode::Continuation => {
                // The codec only lets a continuation through inside a message.
                let Some((kind, mut joined)) = self.pending.take() else {
                    return;
                };
                joined.extend_from_slice(&f.payload);
                if f.fin {
                    ctx.fire_read(Msg::user(message(kind, joined.freeze())));
                } else {
                    self.pending = Some((kind, joined));
                }
            }
            _ => ctx.fire_read(Msg::user(f)),
        }
    }
}
