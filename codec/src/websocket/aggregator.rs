//! [`WebSocketMessageAggregator`]: whole [`Message`]s out of data frames.
//!
//! Contract: a message sent in one frame passes on with that frame's
//! payload (no copy); a fragmented one is joined once its last fragment
//! arrives (one copy). Sizes are the codec's business (its
//! `max_message_size` already bounds what can arrive) and so is UTF-8 (a
//! text message reaching this handler is valid); but the fragments held
//! also count in a budget of all connections together (the codec's
//! default one, or [`memory_budget`](WebSocketMessageAggregator::memory_budget)),
//! and a fragment that would pass it closes the connection with 1009.
//! Control frames pass on as [`Frame`]s, between or inside messages.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use weft_core::{BudgetShare, Context, Error, ErrorKind, Handler, MemoryBudget, Msg};

use super::codec::share_of;
use super::frame::{CloseCode, Frame, OpCode};

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
#[derive(Debug)]
pub struct WebSocketMessageAggregator {
    /// The kind of the message being joined, and its fragments so far.
    pending: Option<(OpCode, BytesMut)>,
    /// What `pending` holds, in the budget.
    held: BudgetShare,
    failed: bool,
}

impl Default for WebSocketMessageAggregator {
    fn default() -> Self {
        WebSocketMessageAggregator::new()
    }
}

impl WebSocketMessageAggregator {
    /// An aggregator with nothing pending, counting in the process's
    /// default budget for partial frames and messages.
    pub fn new() -> WebSocketMessageAggregator {
        WebSocketMessageAggregator {
            pending: None,
            held: share_of(&None),
            failed: false,
        }
    }

    /// Counts the fragments it holds in `budget` instead.
    pub fn memory_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.held = share_of(&Some(budget));
        self
    }

    /// The fragments would pass the budget: 1009, the error, the close.
    fn refuse(&mut self, ctx: &mut Context<'_>) {
        self.failed = true;
        self.pending = None;
        self.held.resize(0);
        let why = "partial messages are over the server's memory budget";
        ctx.write_and_flush(Msg::user(Frame::close(CloseCode::TOO_BIG, why)));
        ctx.fire_exception(Error::new(ErrorKind::TooLongFrame, why));
        ctx.close();
    }
}

fn message(kind: OpCode, payload: Bytes) -> Message {
    match kind {
        OpCode::Text => Message::Text(payload),
        _ => Message::Binary(payload),
    }
}

#[weft_core::handler]
impl Handler for WebSocketMessageAggregator {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let f = match msg.downcast::<Frame>() {
            Ok(f) => f,
            Err(other) => return ctx.fire_read(other),
        };
        if self.failed {
            return;
        }
        match f.opcode {
            OpCode::Text | OpCode::Binary if f.fin => {
                ctx.fire_read(Msg::user(message(f.opcode, f.payload)));
            }
            OpCode::Text | OpCode::Binary => {
                if !self.held.resize(f.payload.len()) {
                    return self.refuse(ctx);
                }
                self.pending = Some((f.opcode, BytesMut::from(&f.payload[..])));
            }
            OpCode::Continuation => {
                // The codec only lets a continuation through inside a message.
                let Some((kind, mut joined)) = self.pending.take() else {
                    return;
                };
                if !f.fin
                    && !self
                        .held
                        .resize(joined.len().saturating_add(f.payload.len()))
                {
                    return self.refuse(ctx);
                }
                joined.extend_from_slice(&f.payload);
                if f.fin {
                    self.held.resize(0);
                    ctx.fire_read(Msg::user(message(kind, joined.freeze())));
                } else {
                    self.pending = Some((kind, joined));
                }
            }
            _ => ctx.fire_read(Msg::user(f)),
        }
    }
}
