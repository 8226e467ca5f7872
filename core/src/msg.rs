//! [`Msg`]: what flows through a pipeline.
//!
//! Contract: the three kinds the transport understands — [`Bytes`],
//! [`CompositeBytes`] and [`FileRegion`] — travel as their own variants with
//! no allocation and no downcast; anything else travels as [`Msg::User`],
//! which remembers its type's name so that a message reaching a stage that
//! cannot take it produces an error naming it.
//!
//! # Text
//!
//! A `String` is text, not bytes: `Msg::from(String)` is a user message
//! holding the `String`, so a `StringEncoder` or `LineEncoder` (weft-codec)
//! takes it on its way to the head, and a handler typed on `String`
//! receives it from `fire_read`, exactly as in Netty. Text that reaches the
//! transport without an encoder fails its write with an error that names
//! the missing encoder; it is never written as it is, so it can never slip
//! unencoded past a stage such as TLS. Write `Bytes::from(string)` (no
//! copy: the `String`'s buffer becomes the `Bytes`) to send text as bytes
//! without an encoder. A `&'static str` is a byte constant (a protocol
//! literal such as `"+OK\r\n"`) and travels as `Bytes`.

use std::any::{Any, TypeId};
use std::fmt;

use bytes::Bytes;

use crate::{CompositeBytes, FileRegion};

/// A message in a pipeline.
///
/// ```
/// use bytes::Bytes;
/// use weft_core::Msg;
///
/// let m = Msg::from(Bytes::from_static(b"hi"));
/// assert_eq!(m.buffered_len(), 2);
/// let b: Bytes = m.downcast().unwrap();
/// assert_eq!(b, "hi");
///
/// #[derive(Debug, PartialEq)]
/// struct Ping(u32);
/// let m = Msg::user(Ping(7));
/// assert_eq!(m.type_name(), std::any::type_name::<Ping>());
/// let m = m.downcast::<String>().unwrap_err(); // a mismatch gives the message back
/// assert_eq!(m.downcast::<Ping>().unwrap(), Ping(7));
/// ```
pub enum Msg {
    /// A contiguous, reference-counted byte slice.
    Bytes(Bytes),
    /// Several byte slices joined by reference.
    Composite(CompositeBytes),
    /// A range of a file, sent with `sendfile(2)`.
    File(FileRegion),
    /// Any other message: a decoded frame, a request object, ...
    User(Box<dyn AnyMsg>),
}

/// A user message: any `Send + 'static` value, with its type name.
///
/// Implemented for every such type; you never implement it yourself.
pub trait AnyMsg: Any + Send {
    /// The name of the concrete type.
    fn type_name(&self) -> &'static str;
    /// Upcast for downcasting.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
    /// Upcast for downcasting by reference.
    fn as_any(&self) -> &(dyn Any + Send);
    /// The payload a datagram transport writes of it: a
    /// [`DatagramPacket`](crate::DatagramPacket)'s length, 0 for any other
    /// type (known per type when it is compiled: no downcast at run time).
    #[doc(hidden)]
    fn payload_len(&self) -> usize;
}

impl<T: Any + Send> AnyMsg for T {
    fn type_name(&self) -> &'static str {
        std::any::type_name::<T>()
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
    fn as_any(&self) -> &(dyn Any + Send) {
        self
    }
    #[inline]
    fn payload_len(&self) -> usize {
        (self as &dyn Any)
            .downcast_ref::<crate::DatagramPacket>()
            .map_or(0, |p| p.len())
    }
}

impl Msg {
    /// Wraps a value as a message. `Bytes`, `CompositeBytes`, `FileRegion`
    /// and `Msg` itself go to their own variants, anything else to `User`.
    #[inline]
    pub fn user<T: Any + Send>(value: T) -> Msg {
        if Self::is_builtin::<T>() {
            return Self::builtin(value);
        }
        // The common case: one move, into the box.
        Msg::User(Box::new(value))
    }

    /// Wraps a value that is boxed already, with no second allocation: a
    /// decoder that builds a large message in place hands it on as it is.
    /// `Bytes`, `CompositeBytes`, `FileRegion` and `Msg` go to their own
    /// variants, as with [`user`](Self::user).
    ///
    /// ```
    /// use weft_core::Msg;
    ///
    /// let m = Msg::from_box(Box::new([7u8; 256]));
    /// assert_eq!(m.downcast::<[u8; 256]>().unwrap()[0], 7);
    /// ```
    #[inline]
    pub fn from_box<T: Any + Send>(value: Box<T>) -> Msg {
        if Self::is_builtin::<T>() {
            return Self::builtin(*value);
        }
        Msg::User(value)
    }

    /// Whether `T` is one of the types with a variant of their own (known
    /// at compile time: the comparisons fold away).
    #[inline(always)]
    fn is_builtin<T: Any>() -> bool {
        let t = TypeId::of::<T>();
        t == TypeId::of::<Bytes>()
            || t == TypeId::of::<CompositeBytes>()
            || t == TypeId::of::<FileRegion>()
            || t == TypeId::of::<Msg>()
    }

    /// [`user`](Self::user) for the types with a variant of their own.
    #[inline]
    fn builtin<T: Any + Send>(value: T) -> Msg {
        let mut slot = Some(value);
        let any = &mut slot as &mut dyn Any;
        if let Some(b) = any.downcast_mut::<Option<Bytes>>() {
            return Msg::Bytes(b.take().expect("just set"));
        }
        if let Some(c) = any.downcast_mut::<Option<CompositeBytes>>() {
            return Msg::Composite(c.take().expect("just set"));
        }
        if let Some(f) = any.downcast_mut::<Option<FileRegion>>() {
            return Msg::File(f.take().expect("just set"));
        }
        if let Some(m) = any.downcast_mut::<Option<Msg>>() {
            return m.take().expect("just set");
        }
        Msg::User(Box::new(slot.take().expect("just set")))
    }

    /// Takes the message as a `T`, or gives it back when it is not one.
    ///
    /// `T` may be `Bytes`, `CompositeBytes`, `FileRegion`, `Msg`, or a user
    /// type; no allocation happens for the first four.
    #[inline]
    pub fn downcast<T: Any + Send>(self) -> Result<T, Msg> {
        if Self::is_builtin::<T>() {
            return self.downcast_builtin();
        }
        // The common case: one move, out of the box.
        match self {
            Msg::User(u) if (*u).as_any().is::<T>() => match u.into_any().downcast::<T>() {
                Ok(b) => Ok(*b),
                Err(_) => unreachable!("the type was checked just before"),
            },
            other => Err(other),
        }
    }

    /// Takes the message as a `Box<T>`, or gives it back when it is not
    /// one: a user message's box comes out as it is, so that its memory can
    /// carry the next message of that type ([`from_box`](Self::from_box)).
    /// For the types with a variant of their own the value is boxed.
    ///
    /// ```
    /// use weft_core::Msg;
    ///
    /// let b = Box::new([7u8; 64]);
    /// let at = &*b as *const [u8; 64];
    /// let back = Msg::from_box(b).downcast_box::<[u8; 64]>().unwrap();
    /// assert_eq!(&*back as *const [u8; 64], at, "the same box");
    /// ```
    #[inline]
    pub fn downcast_box<T: Any + Send>(self) -> Result<Box<T>, Msg> {
        if Self::is_builtin::<T>() {
            return self.downcast_builtin().map(Box::new);
        }
        match self {
            Msg::User(u) if (*u).as_any().is::<T>() => match u.into_any().downcast::<T>() {
                Ok(b) => Ok(b),
                Err(_) => unreachable!("the type was checked just before"),
            },
            other => Err(other),
        }
    }

    /// [`downcast`](Self::downcast) to the types with a variant of their
    /// own.
    #[inline]
    fn downcast_builtin<T: Any + Send>(self) -> Result<T, Msg> {
        let want = TypeId::of::<T>();
        let mut out: Option<T> = None;
        {
            let any = &mut out as &mut dyn Any;
            if let Some(m) = any.downcast_mut::<Option<Msg>>() {
                *m = Some(self);
                return Ok(out.expect("just set"));
            }
        }
        match self {
            Msg::Bytes(b) if want == TypeId::of::<Bytes>() => {
                *(&mut out as &mut dyn Any)
                    .downcast_mut::<Option<Bytes>>()
                    .expect("checked") = Some(b);
                Ok(out.expect("just set"))
            }
            Msg::Composite(c) if want == TypeId::of::<CompositeBytes>() => {
                *(&mut out as &mut dyn Any)
                    .downcast_mut::<Option<CompositeBytes>>()
                    .expect("checked") = Some(c);
                Ok(out.expect("just set"))
            }
            Msg::File(f) if want == TypeId::of::<FileRegion>() => {
                *(&mut out as &mut dyn Any)
                    .downcast_mut::<Option<FileRegion>>()
                    .expect("checked") = Some(f);
                Ok(out.expect("just set"))
            }
            Msg::User(u) if (*u).as_any().is::<T>() => Ok(*u
                .into_any()
                .downcast::<T>()
                .expect("type checked just before")),
            other => Err(other),
        }
    }

    /// Whether the message is a `T` (see [`downcast`](Self::downcast)).
    pub fn is<T: Any>(&self) -> bool {
        let want = TypeId::of::<T>();
        if want == TypeId::of::<Msg>() {
            return true;
        }
        match self {
            Msg::Bytes(_) => want == TypeId::of::<Bytes>(),
            Msg::Composite(_) => want == TypeId::of::<CompositeBytes>(),
            Msg::File(_) => want == TypeId::of::<FileRegion>(),
            Msg::User(u) => (**u).as_any().type_id() == want,
        }
    }

    /// A reference to the message as a `T`, when it is one (see
    /// [`downcast`](Self::downcast)): `Some` exactly when
    /// [`is::<T>()`](Self::is) is true.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        if let Some(m) = (self as &dyn Any).downcast_ref::<T>() {
            return Some(m);
        }
        let any: &dyn Any = match self {
            Msg::Bytes(b) => b,
            Msg::Composite(c) => c,
            Msg::File(f) => f,
            Msg::User(u) => (**u).as_any(),
        };
        any.downcast_ref::<T>()
    }

    /// The name of the message's type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Msg::Bytes(_) => std::any::type_name::<Bytes>(),
            Msg::Composite(_) => std::any::type_name::<CompositeBytes>(),
            Msg::File(_) => std::any::type_name::<FileRegion>(),
            Msg::User(u) => (**u).type_name(),
        }
    }

    /// The bytes this message holds in memory, which is what write-buffer
    /// watermarks count.
    ///
    /// A [`FileRegion`] counts 0: its bytes stay in the page cache and go
    /// to the socket with `sendfile`, so they do not grow the process's
    /// memory; counting them would keep a channel unwritable for the whole
    /// of a large file and hold back small writes queued behind it. A
    /// [`DatagramPacket`](crate::DatagramPacket) counts its payload: a
    /// datagram transport writes it as it is. Any other user message counts
    /// 0: it has no known size and must be encoded before it reaches the
    /// transport.
    pub fn buffered_len(&self) -> usize {
        match self {
            Msg::Bytes(b) => b.len(),
            Msg::Composite(c) => c.len(),
            Msg::File(_) => 0,
            Msg::User(u) => (**u).payload_len(),
        }
    }

    /// Whether this is a byte message (`Bytes` or `CompositeBytes`).
    pub fn is_bytes(&self) -> bool {
        matches!(self, Msg::Bytes(_) | Msg::Composite(_))
    }
}

impl From<Bytes> for Msg {
    fn from(b: Bytes) -> Msg {
        Msg::Bytes(b)
    }
}

impl From<CompositeBytes> for Msg {
    fn from(c: CompositeBytes) -> Msg {
        Msg::Composite(c)
    }
}

impl From<FileRegion> for Msg {
    fn from(f: FileRegion) -> Msg {
        Msg::File(f)
    }
}

impl From<Vec<u8>> for Msg {
    fn from(v: Vec<u8>) -> Msg {
        Msg::Bytes(Bytes::from(v))
    }
}

impl From<&'static [u8]> for Msg {
    fn from(v: &'static [u8]) -> Msg {
        Msg::Bytes(Bytes::from_static(v))
    }
}

impl From<&'static str> for Msg {
    fn from(v: &'static str) -> Msg {
        Msg::Bytes(Bytes::from_static(v.as_bytes()))
    }
}

/// Text: a user message holding the `String` (see the module docs).
impl From<String> for Msg {
    fn from(v: String) -> Msg {
        Msg::User(Box::new(v))
    }
}

impl fmt::Debug for Msg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Msg::Bytes(b) => f.debug_tuple("Msg::Bytes").field(&b.len()).finish(),
            Msg::Composite(c) => f.debug_tuple("Msg::Composite").field(c).finish(),
            Msg::File(r) => f.debug_tuple("Msg::File").field(r).finish(),
            Msg::User(u) => f
                .debug_tuple("Msg::User")
                .field(&(**u).type_name())
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_routes_known_kinds_to_their_variants() {
        assert!(matches!(Msg::user(Bytes::new()), Msg::Bytes(_)));
        assert!(matches!(
            Msg::user(CompositeBytes::new()),
            Msg::Composite(_)
        ));
        assert!(matches!(Msg::user(Msg::from("x")), Msg::Bytes(_)));
        assert!(matches!(Msg::user(5u32), Msg::User(_)));
        assert!(matches!(
            Msg::from_box(Box::new(Bytes::new())),
            Msg::Bytes(_)
        ));
        assert!(matches!(Msg::from_box(Box::new(5u32)), Msg::User(_)));
    }

    #[test]
    fn downcast_round_trips() {
        let m = Msg::from("abc");
        assert!(m.is::<Bytes>());
        assert!(!m.is::<u32>());
        let m = m.downcast::<u32>().unwrap_err();
        let m = m.downcast::<CompositeBytes>().unwrap_err();
        assert_eq!(m.downcast::<Bytes>().unwrap(), "abc");

        let m = Msg::user(String::from("s"));
        assert_eq!(m.type_name(), "alloc::string::String");
        assert_eq!(m.downcast_ref::<String>().unwrap(), "s");
        let m = m.downcast::<Msg>().unwrap();
        assert_eq!(m.downcast::<String>().unwrap(), "s");
    }

    #[test]
    fn downcast_ref_agrees_with_is() {
        let c: CompositeBytes = [Bytes::from_static(b"ab")].into_iter().collect();
        let msgs = [
            Msg::from("abc"),
            Msg::from(c),
            Msg::user(7u32),
            Msg::from(String::from("text")),
        ];
        for m in &msgs {
            assert_eq!(m.is::<Bytes>(), m.downcast_ref::<Bytes>().is_some());
            assert_eq!(
                m.is::<CompositeBytes>(),
                m.downcast_ref::<CompositeBytes>().is_some()
            );
            assert_eq!(m.is::<u32>(), m.downcast_ref::<u32>().is_some());
            assert_eq!(m.is::<String>(), m.downcast_ref::<String>().is_some());
            assert!(m.is::<Msg>() && m.downcast_ref::<Msg>().is_some());
        }
        assert_eq!(msgs[0].downcast_ref::<Bytes>().unwrap(), "abc");
    }

    #[test]
    fn a_string_is_text() {
        let m = Msg::from(String::from("hé"));
        assert!(m.is::<String>() && !m.is::<Bytes>());
        assert_eq!(m.type_name(), std::any::type_name::<String>());
        assert!(Msg::from("lit").is::<Bytes>());
    }

    #[test]
    fn buffered_len_counts_memory_only() {
        let c: CompositeBytes = [Bytes::from_static(b"ab"), Bytes::from_static(b"cde")]
            .into_iter()
            .collect();
        assert_eq!(Msg::from(c).buffered_len(), 5);
        assert_eq!(Msg::user(1u8).buffered_len(), 0);
    }
}
