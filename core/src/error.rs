//! weft's error type.
//!
//! Contract: every failure that crosses a weft API — a failed write promise,
//! an `exception_caught` event, a pipeline mutation that was refused — is an
//! [`Error`]. It is shaped like [`std::io::Error`]: an [`ErrorKind`] to
//! match on ([`Error::kind`], or the `is_*()` predicates where they read
//! better), a message, and the underlying cause (an [`std::io::Error`], a
//! TLS or user error) reached with [`std::error::Error::source`]. `Display`
//! prints this level only — the kind and the message, never the cause, so
//! that an error reporter walking the sources prints each thing once. Its
//! text is for people and may change; match on the kind. Errors are cheap
//! to clone, so one failure can fail many promises.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

type Cause = Arc<dyn StdError + Send + Sync>;

/// The error type of weft.
///
/// ```
/// use weft_core::Error;
///
/// let err = Error::closed();
/// assert!(err.is_closed());
/// assert!(!err.is_io());
/// ```
#[derive(Clone)]
pub struct Error {
    inner: Arc<Inner>,
}

struct Inner {
    kind: Kind,
    msg: Option<String>,
    cause: Option<Cause>,
}

/// What kind of failure an [`Error`] is. More kinds may come: match with a
/// wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The channel is closed, or closed before the operation completed.
    Closed,
    /// An operating-system I/O error (the source is the [`std::io::Error`]).
    Io,
    /// A frame exceeded a decoder's limit.
    TooLongFrame,
    /// A frame cannot be valid.
    CorruptedFrame,
    /// Another failure while decoding input.
    Decode,
    /// A failure while encoding output.
    Encode,
    /// A typed handler received a message of another type.
    TypeMismatch,
    /// A message reached a stage that cannot handle its type.
    UnsupportedMessage,
    /// A handler panicked.
    Panic,
    /// A pipeline operation was refused.
    Pipeline,
    /// An argument was out of its valid range.
    InvalidArgument,
    /// A file became shorter than the region being sent from it.
    FileShrank,
    /// An operation did not complete in time.
    Timeout,
    /// A TLS failure (the source is the TLS library's error).
    Tls,
    /// A write was dropped and the channel stays open: a datagram channel's
    /// outbound queue was full. Datagrams are droppable, so a datagram
    /// channel refuses a write past its cap instead of closing, as a stream
    /// channel does.
    Dropped,
    /// A write was refused because it would have taken the channel's
    /// outbound bytes past their cap (`max_outbound_bytes`): the peer is
    /// not reading. The channel closes for it: the writes it still held
    /// fail with this error too, later ones with
    /// [`Closed`](ErrorKind::Closed).
    OutboundFull,
    /// An application error.
    User,
}

use ErrorKind as Kind;

impl ErrorKind {
    fn describe(self) -> &'static str {
        match self {
            Kind::Closed => "channel closed",
            Kind::Io => "i/o error",
            Kind::TooLongFrame => "frame too long",
            Kind::CorruptedFrame => "corrupted frame",
            Kind::Decode => "decode error",
            Kind::Encode => "encode error",
            Kind::TypeMismatch => "message type mismatch",
            Kind::UnsupportedMessage => "unsupported message",
            Kind::Panic => "handler panicked",
            Kind::Pipeline => "pipeline error",
            Kind::InvalidArgument => "invalid argument",
            Kind::FileShrank => "file shrank while it was being sent",
            Kind::Timeout => "timed out",
            Kind::Tls => "tls error",
            Kind::Dropped => "write dropped",
            Kind::OutboundFull => "outbound bytes past their cap",
            Kind::User => "user error",
        }
    }
}

impl Error {
    fn make(kind: Kind, msg: Option<String>, cause: Option<Cause>) -> Error {
        Error {
            inner: Arc::new(Inner { kind, msg, cause }),
        }
    }

    /// An error of `kind` with a message.
    ///
    /// ```
    /// use weft_core::{Error, ErrorKind};
    ///
    /// let e = Error::new(ErrorKind::Decode, "a length of -1");
    /// assert_eq!(e.kind(), ErrorKind::Decode);
    /// assert_eq!(e.to_string(), "decode error: a length of -1");
    /// ```
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> Error {
        Error::make(kind, Some(msg.into()), None)
    }

    /// An error of `kind` caused by `source` (reached with
    /// [`source`](StdError::source); not part of this error's text).
    ///
    /// ```
    /// use std::error::Error as _;
    /// use weft_core::{Error, ErrorKind};
    ///
    /// let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
    /// let e = Error::with_source(ErrorKind::Io, io);
    /// assert_eq!(e.to_string(), "i/o error");
    /// assert_eq!(e.source().unwrap().to_string(), "broken pipe");
    /// ```
    pub fn with_source<E: StdError + Send + Sync + 'static>(kind: ErrorKind, source: E) -> Error {
        Error::make(kind, None, Some(Arc::new(source)))
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The channel is closed (or was closed before the operation completed).
    pub fn closed() -> Error {
        Error::make(Kind::Closed, None, None)
    }

    /// An I/O error from the operating system.
    pub fn io(err: std::io::Error) -> Error {
        Error::make(Kind::Io, None, Some(Arc::new(err)))
    }

    /// A frame longer than the decoder's limit (Netty's `TooLongFrameException`).
    pub fn too_long_frame(msg: impl Into<String>) -> Error {
        Error::make(Kind::TooLongFrame, Some(msg.into()), None)
    }

    /// A frame that cannot be valid (Netty's `CorruptedFrameException`).
    pub fn corrupted_frame(msg: impl Into<String>) -> Error {
        Error::make(Kind::CorruptedFrame, Some(msg.into()), None)
    }

    /// Any other failure while decoding input.
    pub fn decode(msg: impl Into<String>) -> Error {
        Error::make(Kind::Decode, Some(msg.into()), None)
    }

    /// A failure while encoding output.
    pub fn encode(msg: impl Into<String>) -> Error {
        Error::make(Kind::Encode, Some(msg.into()), None)
    }

    /// A handler received a message of a type it does not take.
    pub(crate) fn type_mismatch(expected: &'static str, found: &str) -> Error {
        Error::make(
            Kind::TypeMismatch,
            Some(format!(
                "expected a message of type `{expected}`, got `{found}`"
            )),
            None,
        )
    }

    /// A message reached a stage that cannot handle its type, typically a
    /// user message reaching the transport because an encoder is missing.
    pub fn unsupported_message(type_name: &str, hint: &str) -> Error {
        Error::make(
            Kind::UnsupportedMessage,
            Some(format!("a message of type `{type_name}` {hint}")),
            None,
        )
    }

    /// A handler panicked; `msg` is the panic payload when it was a string.
    pub(crate) fn panic(msg: impl Into<String>) -> Error {
        Error::make(Kind::Panic, Some(msg.into()), None)
    }

    /// A pipeline operation was refused (duplicate name, no such handler).
    pub(crate) fn pipeline(msg: impl Into<String>) -> Error {
        Error::make(Kind::Pipeline, Some(msg.into()), None)
    }

    /// An argument was out of its valid range (builder options, file bounds).
    pub fn invalid_argument(msg: impl Into<String>) -> Error {
        Error::make(Kind::InvalidArgument, Some(msg.into()), None)
    }

    /// A file became shorter than the region being sent from it.
    pub(crate) fn file_shrank(msg: impl Into<String>) -> Error {
        Error::make(Kind::FileShrank, Some(msg.into()), None)
    }

    /// An operation did not complete in time.
    pub fn timeout(msg: impl Into<String>) -> Error {
        Error::make(Kind::Timeout, Some(msg.into()), None)
    }

    /// An application error, carried through the pipeline as its source.
    pub fn user<E: StdError + Send + Sync + 'static>(cause: E) -> Error {
        Error::make(Kind::User, None, Some(Arc::new(cause)))
    }

    /// The channel was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.kind == Kind::Closed
    }
    /// A write was refused at the channel's outbound cap
    /// ([`ErrorKind::OutboundFull`]): the peer stopped reading.
    pub fn is_outbound_full(&self) -> bool {
        self.inner.kind == Kind::OutboundFull
    }
    /// An I/O error; its [`source`](StdError::source) is the [`std::io::Error`].
    pub fn is_io(&self) -> bool {
        self.inner.kind == Kind::Io
    }
    /// Any codec error: too long, corrupted, or another decode/encode failure.
    pub fn is_codec(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::TooLongFrame | Kind::CorruptedFrame | Kind::Decode | Kind::Encode
        )
    }
    /// A timeout.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == Kind::Timeout
    }

    /// The underlying I/O error kind, if this is an I/O error.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        self.inner
            .cause
            .as_deref()
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .map(|e| e.kind())
    }
}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Error {
        Error::io(err)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("weft::Error");
        d.field("kind", &self.inner.kind);
        if let Some(m) = &self.inner.msg {
            d.field("msg", m);
        }
        if let Some(c) = &self.inner.cause {
            d.field("cause", c);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    /// This level only: the kind and the message. The cause is the
    /// [`source`](StdError::source); `{:?}` shows all of it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        if let Some(m) = &self.inner.msg {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .cause
            .as_deref()
            .map(|c| c as &(dyn StdError + 'static))
    }
}

/// A specialised `Result` for weft operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates_and_source() {
        let e = Error::io(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "x"));
        assert!(e.is_io());
        assert!(!e.is_closed());
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::BrokenPipe));
        assert!(e.source().is_some());
        assert!(Error::too_long_frame("a").is_codec());
        assert!(Error::corrupted_frame("a").is_codec());
        let m = Error::type_mismatch("u32", "alloc::string::String");
        assert!(m.to_string().contains("u32") && m.to_string().contains("String"));
        assert!(Error::closed().to_string().contains("closed"));
    }

    #[test]
    fn display_prints_this_level_and_the_source_the_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "broken pipe");
        let e = Error::io(io);
        assert_eq!(e.to_string(), "i/o error");
        assert_eq!(e.source().unwrap().to_string(), "broken pipe");
        assert_eq!(e.kind(), ErrorKind::Io);
        // A reporter walking the chain prints each thing once.
        let mut chain = vec![e.to_string()];
        let mut cur: Option<&(dyn StdError + 'static)> = e.source();
        while let Some(c) = cur {
            chain.push(c.to_string());
            cur = c.source();
        }
        assert_eq!(chain.join(": "), "i/o error: broken pipe");
        assert!(
            format!("{e:?}").contains("broken pipe"),
            "Debug shows it all"
        );
    }

    #[test]
    fn error_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Error>();
    }
}
