//! [`Frame`]: one WebSocket frame as it travels through a pipeline, its
//! [`OpCode`], and the [`CloseCode`]s of the close handshake (RFC 6455 §5
//! and §7.4).
//!
//! Contract: a frame's payload is a `Bytes` — on the way in, a slice of
//! the bytes read (unmasked); on the way out, written by reference after
//! the frame header. A text frame's payload is UTF-8 only once the whole
//! message is (fragments may split a character); the codec checks it as it
//! arrives.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// What a frame carries (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// A further fragment of the message being received.
    Continuation,
    /// The first (or only) fragment of a text message.
    Text,
    /// The first (or only) fragment of a binary message.
    Binary,
    /// The close handshake.
    Close,
    /// A ping; answered with a pong carrying the same payload.
    Ping,
    /// A pong (an answer, or a heartbeat).
    Pong,
}

impl OpCode {
    /// The opcode of a frame's first byte; `None` for a reserved one.
    pub fn from_u8(n: u8) -> Option<OpCode> {
        Some(match n {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// The four bits on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, OpCode::Close | OpCode::Ping | OpCode::Pong)
    }
}

/// A close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (a server shutting down).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a kind of data the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: a text message that is not UTF-8, or a bad close reason.
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: a message that violates the endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: a frame or message over the endpoint's limit.
    pub const TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client needed an extension the server did not agree to.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);

    /// Whether a peer may send this code in a close frame: 1000–1003,
    /// 1007–1011, and the ranges for libraries and applications
    /// (3000–4999). 1005, 1006 and 1015 are never sent; the rest is
    /// reserved.
    pub fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1011 | 3000..=4999)
    }
}

impl fmt::Debug for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CloseCode({})", self.0)
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One WebSocket frame.
///
/// ```
/// use weft_codec::websocket::{CloseCode, Frame, OpCode};
///
/// let f = Frame::text("hello");
/// assert!(f.fin && f.opcode == OpCode::Text);
/// let c = Frame::close(CloseCode::NORMAL, "bye");
/// assert_eq!(c.close_code(), Some(CloseCode::NORMAL));
/// assert_eq!(c.close_reason(), Some("bye"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    /// The last fragment of its message (always set on control frames).
    pub fin: bool,
    /// The RSV1 bit: the message is compressed (permessage-deflate).
    pub rsv1: bool,
    /// What the frame carries.
    pub opcode: OpCode,
    /// The application data, unmasked.
    pub payload: Bytes,
}

impl Frame {
    /// A frame with no fragmentation and no extension bits.
    pub fn new(opcode: OpCode, payload: impl Into<Bytes>) -> Frame {
        Frame {
            fin: true,
            rsv1: false,
            opcode,
            payload: payload.into(),
        }
    }

    /// A whole text message (`&'static str`, `String` or `Bytes` holding
    /// UTF-8).
    pub fn text(text: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Text, text)
    }

    /// A whole binary message.
    pub fn binary(data: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Binary, data)
    }

    /// A ping.
    pub fn ping(data: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Ping, data)
    }

    /// A pong.
    pub fn pong(data: impl Into<Bytes>) -> Frame {
        Frame::new(OpCode::Pong, data)
    }

    /// A close frame with a code and a reason (the reason is cut to fit the
    /// 125-byte limit of control frames, at a character boundary).
    pub fn close(code: CloseCode, reason: &str) -> Frame {
        // The longest prefix of at most 123 bytes that ends at a character
        // boundary (0 always is one).
        let end = (0..=reason.len().min(123))
            .rev()
            .find(|&i| reason.is_char_boundary(i))
            .unwrap_or(0);
        let mut b = BytesMut::with_capacity(end.saturating_add(2));
        b.put_u16(code.0);
        b.put_slice(&reason.as_bytes()[..end]);
        Frame::new(OpCode::Close, b.freeze())
    }

    /// A close frame with no code.
    pub fn close_empty() -> Frame {
        Frame::new(OpCode::Close, Bytes::new())
    }

    /// A close frame's code, if it has one.
    pub fn close_code(&self) -> Option<CloseCode> {
        match (self.opcode, &self.payload[..]) {
            (OpCode::Close, [a, b, ..]) => Some(CloseCode(u16::from_be_bytes([*a, *b]))),
            _ => None,
        }
    }

    /// A close frame's reason, if it has a code and the reason is UTF-8.
    pub fn close_reason(&self) -> Option<&str> {
        match self.opcode {
            OpCode::Close if self.payload.len() >= 2 => {
                std::str::from_utf8(&self.payload[2..]).ok()
            }
            _ => None,
        }
    }
}

impl From<Frame> for weft_core::Msg {
    /// A frame travels as a user message (the codec turns it into bytes).
    fn from(f: Frame) -> weft_core::Msg {
        weft_core::Msg::user(f)
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("fin", &self.fin)
            .field("rsv1", &self.rsv1)
            .field("opcode", &self.opcode)
            .field("len", &self.payload.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_reason_is_cut_at_a_character_boundary() {
        let reason = "é".repeat(100); // 200 bytes
        let f = Frame::close(CloseCode::NORMAL, &reason);
        assert!(f.payload.len() <= 125);
        assert!(f.close_reason().is_some());
    }

    #[test]
    fn opcodes_round_trip_and_reserved_ones_are_none() {
        for n in 0..16u8 {
            match OpCode::from_u8(n) {
                Some(op) => assert_eq!(op.as_u8(), n),
                None => assert!(matches!(n, 3..=7 | 0xB..=0xF)),
            }
        }
    }

    #[test]
    fn sendable_close_codes() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert!(CloseCode(ok).is_sendable(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1012, 1015, 1016, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_sendable(), "{bad}");
        }
    }
}
