//! [`WebSocketError`]: why a connection is failed, with the close code that
//! tells the peer (RFC 6455 §7.1.7 and §7.4.1).
//!
//! Contract: every violation the codec finds becomes one of these; the
//! codec sends a close frame with its [`code`](WebSocketError::code),
//! closes the connection, and reports it to the pipeline as an exception
//! whose source is this error.

use std::fmt;

use super::frame::CloseCode;

/// What was wrong with what the peer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebSocketErrorKind {
    /// A frame or sequence of frames the protocol forbids: reserved bits or
    /// opcodes, a fragmented or oversized control frame, a missing or
    /// unexpected mask, a continuation with no message or a new message
    /// inside one, a malformed close payload (1002).
    Protocol,
    /// A text message, or a close reason, that is not UTF-8 (1007).
    InvalidUtf8,
    /// A frame or message larger than the limit (1009).
    TooBig,
}

/// A violation by the peer; see [`WebSocketErrorKind`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSocketError {
    kind: WebSocketErrorKind,
    detail: &'static str,
}

impl WebSocketError {
    pub(crate) fn new(kind: WebSocketErrorKind, detail: &'static str) -> WebSocketError {
        WebSocketError { kind, detail }
    }

    pub(crate) fn protocol(detail: &'static str) -> WebSocketError {
        WebSocketError::new(WebSocketErrorKind::Protocol, detail)
    }

    /// What was wrong.
    pub fn kind(&self) -> WebSocketErrorKind {
        self.kind
    }

    /// The close code sent to the peer.
    pub fn code(&self) -> CloseCode {
        match self.kind {
            WebSocketErrorKind::Protocol => CloseCode::PROTOCOL_ERROR,
            WebSocketErrorKind::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            WebSocketErrorKind::TooBig => CloseCode::TOO_BIG,
        }
    }

    /// The exception a handler fires for it: `TooLongFrame` for a size
    /// limit, `CorruptedFrame` for the rest, with this error as its source.
    pub(crate) fn into_exception(self) -> weft_core::Error {
        let kind = match self.kind {
            WebSocketErrorKind::TooBig => weft_core::ErrorKind::TooLongFrame,
            _ => weft_core::ErrorKind::CorruptedFrame,
        };
        weft_core::Error::with_source(kind, self)
    }

    /// A short description (also the close frame's reason).
    pub fn detail(&self) -> &'static str {
        self.detail
    }
}

impl fmt::Display for WebSocketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.detail, self.code())
    }
}

impl std::error::Error for WebSocketError {}
