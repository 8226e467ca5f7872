//! weft's error type.
//!
//! Contract: every failure that crosses a weft API — a failed write promise,
//! an `exception_caught` event, a pipeline mutation that was refused — is an
//! [`Error`]. It is opaque: ask it what it is with the `is_*()` predicates,
//! and reach the underlying cause (an [`std::io::Error`], a user error) with
//! [`std::error::Error::source`]. Errors are cheap to clone, so one failure
//! can fail many promises.

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Closed,
    Io,
    TooLongFrame,
    CorruptedFrame,
    Decode,
    Encode,
    TypeMismatch,
    UnsupportedMessage,
    Panic,
    Pipeline,
    InvalidArgument,
    FileShrank,
    Timeout,
    Tls,
    User,
}

impl Kind {
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
            Kind::User => "user error",
        }
    }
}

impl Error {
    fn new(kind: Kind, msg: Option<String>, cause: Option<Cause>) -> Error {
        Error {
            inner: Arc::new(Inner { kind, msg, cause }),
        }
    }

    /// The channel is closed (or was closed before the operation completed).
    pub fn closed() -> Error {
        Error::new(Kind::Closed, None, None)
    }

    /// The channel closed, with a word on why.
    pub fn closed_because(why: impl Into<String>) -> Error {
        Error::new(Kind::Closed, Some(why.into()), None)
    }

    /// An I/O error from the operating system.
    pub fn io(err: std::io::Error) -> Error {
        Error::new(Kind::Io, None, Some(Arc::new(err)))
    }

    /// A frame longer than the decoder's limit (Netty's `TooLongFrameException`).
    pub fn too_long_frame(msg: impl Into<String>) -> Error {
        Error::new(Kind::TooLongFrame, Some(msg.into()), None)
    }

    /// A frame that cannot be valid (Netty's `CorruptedFrameException`).
    pub fn corrupted_frame(msg: impl Into<String>) -> Error {
        Error::new(Kind::CorruptedFrame, Some(msg.into()), None)
    }

    /// Any other failure while decoding input.
    pub fn decode(msg: impl Into<String>) -> Error {
        Error::new(Kind::Decode, Some(msg.into()), None)
    }

    /// A failure while encoding output.
    pub fn encode(msg: impl Into<String>) -> Error {
        Error::new(Kind::Encode, Some(msg.into()), None)
    }

    /// A handler received a message of a type it does not take.
    pub fn type_mismatch(expected: &'static str, found: &str) -> Error {
        Error::new(
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
        Error::new(
            Kind::UnsupportedMessage,
            Some(format!("a message of type `{type_name}` {hint}")),
            None,
        )
    }

    /// A handler panicked; `msg` is the panic payload when it was a string.
    pub fn panic(msg: impl Into<String>) -> Error {
        Error::new(Kind::Panic, Some(msg.into()), None)
    }

    /// A pipeline operation was refused (duplicate name, no such handler).
    pub fn pipeline(msg: impl Into<String>) -> Error {
        Error::new(Kind::Pipeline, Some(msg.into()), None)
    }

    /// An argument was out of its valid range (builder options, file bounds).
    pub fn invalid_argument(msg: impl Into<String>) -> Error {
        Error::new(Kind::InvalidArgument, Some(msg.into()), None)
    }

    /// A file became shorter than the region being sent from it.
    pub fn file_shrank(msg: impl Into<String>) -> Error {
        Error::new(Kind::FileShrank, Some(msg.into()), None)
    }

    /// An operation did not complete in time.
    pub fn timeout(msg: impl Into<String>) -> Error {
        Error::new(Kind::Timeout, Some(msg.into()), None)
    }

    /// A TLS failure; the cause is the TLS library's error.
    pub fn tls<E: StdError + Send + Sync + 'static>(cause: E) -> Error {
        Error::new(Kind::Tls, None, Some(Arc::new(cause)))
    }

    /// An application error, carried through the pipeline as its source.
    pub fn user<E: StdError + Send + Sync + 'static>(cause: E) -> Error {
        Error::new(Kind::User, None, Some(Arc::new(cause)))
    }

    /// An application error given as a message.
    pub fn user_msg(msg: impl Into<String>) -> Error {
        Error::new(Kind::User, Some(msg.into()), None)
    }

    /// The channel was closed.
    pub fn is_closed(&self) -> bool {
        self.inner.kind == Kind::Closed
    }
    /// An I/O error; its [`source`](StdError::source) is the [`std::io::Error`].
    pub fn is_io(&self) -> bool {
        self.inner.kind == Kind::Io
    }
    /// A frame exceeded a decoder's limit.
    pub fn is_too_long_frame(&self) -> bool {
        self.inner.kind == Kind::TooLongFrame
    }
    /// A frame was corrupt.
    pub fn is_corrupted_frame(&self) -> bool {
        self.inner.kind == Kind::CorruptedFrame
    }
    /// Any codec error: too long, corrupted, or another decode/encode failure.
    pub fn is_codec(&self) -> bool {
        matches!(
            self.inner.kind,
            Kind::TooLongFrame | Kind::CorruptedFrame | Kind::Decode | Kind::Encode
        )
    }
    /// A typed handler received a message of another type.
    pub fn is_type_mismatch(&self) -> bool {
        self.inner.kind == Kind::TypeMismatch
    }
    /// A message reached a stage that cannot handle it.
    pub fn is_unsupported_message(&self) -> bool {
        self.inner.kind == Kind::UnsupportedMessage
    }
    /// A handler panicked.
    pub fn is_panic(&self) -> bool {
        self.inner.kind == Kind::Panic
    }
    /// A pipeline operation was refused.
    pub fn is_pipeline(&self) -> bool {
        self.inner.kind == Kind::Pipeline
    }
    /// An argument was invalid.
    pub fn is_invalid_argument(&self) -> bool {
        self.inner.kind == Kind::InvalidArgument
    }
    /// A file shrank under a `FileRegion` being sent.
    pub fn is_file_shrank(&self) -> bool {
        self.inner.kind == Kind::FileShrank
    }
    /// A timeout.
    pub fn is_timeout(&self) -> bool {
        self.inner.kind == Kind::Timeout
    }
    /// A TLS failure.
    pub fn is_tls(&self) -> bool {
        self.inner.kind == Kind::Tls
    }
    /// An application error.
    pub fn is_user(&self) -> bool {
        self.inner.kind == Kind::User
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
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.inner.kind.describe())?;
        if let Some(m) = &self.inner.msg {
            write!(f, ": {m}")?;
        }
        if let Some(c) = &self.inner.cause {
            write!(f, ": {c}")?;
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
    fn error_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Error>();
    }
}
