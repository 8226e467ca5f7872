//! [`Cumulation`]: the bytes a decoder has received but not yet consumed.
//!
//! Contract:
//! - when it is empty, an arriving `Bytes` becomes the cumulation as it is,
//!   without a copy, and frames split off it are slices of that very read;
//! - when unconsumed bytes remain and more arrive, the two are joined into
//!   one contiguous buffer: the unconsumed tail and the new read are copied
//!   once (a frame that spans reads must be contiguous); a uniquely owned
//!   buffer is reused in place rather than copied;
//! - [`split_to`](Cumulation::split_to) hands frames out as `Bytes` without
//!   copying; consumed space is released as frames are split off, so a
//!   long-lived connection's cumulation holds only what is unconsumed.

use std::fmt;
use std::ops::Deref;

use bytes::{Buf, Bytes, BytesMut};

/// Bytes received and not yet decoded.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::Cumulation;
///
/// let read = Bytes::from_static(b"abcdef");
/// let mut c = Cumulation::new();
/// c.push(read.clone());
/// let frame = c.split_to(3);
/// assert_eq!(frame, "abc");
/// assert_eq!(frame.as_ptr(), read.as_ptr()); // a slice of the read, not a copy
/// assert_eq!(&c[..], b"def");
/// ```
#[derive(Default)]
pub struct Cumulation {
    inner: Inner,
}

#[derive(Default)]
enum Inner {
    #[default]
    Empty,
    Frozen(Bytes),
    Mut(BytesMut),
}

impl Cumulation {
    /// An empty cumulation.
    pub fn new() -> Cumulation {
        Cumulation::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.inner = match std::mem::take(&mut self.inner) {
            Inner::Empty => Inner::Frozen(data),
            Inner::Frozen(old) if old.is_empty() => Inner::Frozen(data),
            Inner::Frozen(old) => {
                let mut m = match old.try_into_mut() {
                    Ok(m) => m,
                    Err(old) => {
                        let mut m = BytesMut::with_capacity(old.len().saturating_add(data.len()));
                        m.extend_from_slice(&old);
                        m
                    }
                };
                m.extend_from_slice(&data);
                Inner::Mut(m)
            }
            Inner::Mut(mut m) => {
                if m.is_empty() {
                    Inner::Frozen(data)
                } else {
                    m.extend_from_slice(&data);
                    Inner::Mut(m)
                }
            }
        };
    }

    /// Number of unconsumed bytes.
    pub fn len(&self) -> usize {
        self.deref().len()
    }

    /// Whether nothing is left.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Splits off the first `n` bytes as a frame, without copying.
    ///
    /// # Panics
    ///
    /// If `n > self.len()`.
    pub fn split_to(&mut self, n: usize) -> Bytes {
        match &mut self.inner {
            Inner::Empty => {
                assert!(n == 0, "split_to past the end");
                Bytes::new()
            }
            Inner::Frozen(b) => {
                let out = b.split_to(n);
                if b.is_empty() {
                    self.inner = Inner::Empty;
                }
                out
            }
            Inner::Mut(m) => {
                let out = m.split_to(n).freeze();
                if m.is_empty() {
                    self.inner = Inner::Empty;
                }
                out
            }
        }
    }

    /// Discards the first `n` bytes.
    ///
    /// # Panics
    ///
    /// If `n > self.len()`.
    pub fn advance(&mut self, n: usize) {
        match &mut self.inner {
            Inner::Empty => assert!(n == 0, "advance past the end"),
            Inner::Frozen(b) => b.advance(n),
            Inner::Mut(m) => m.advance(n),
        }
        if self.is_empty() {
            self.inner = Inner::Empty;
        }
    }

    /// The unconsumed bytes as one `Bytes` sharing the buffer (a reference,
    /// not a copy): a decoder can parse it, slice what it keeps out of it,
    /// then [`advance`](Cumulation::advance) past what it consumed. A
    /// buffer being filled is frozen for this; while such slices live, the
    /// next [`push`](Cumulation::push) copies the unconsumed tail once, as
    /// it would after a [`split_to`](Cumulation::split_to).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use weft_codec::Cumulation;
    ///
    /// let read = Bytes::from_static(b"key=value;rest");
    /// let mut c = Cumulation::new();
    /// c.push(read.clone());
    /// let all = c.bytes();
    /// let value = all.slice(4..9);
    /// c.advance(10);
    /// assert_eq!(value, "value");
    /// assert_eq!(value.as_ptr(), read[4..].as_ptr());
    /// assert_eq!(&c[..], b"rest");
    /// ```
    pub fn bytes(&mut self) -> Bytes {
        self.bytes_ref().clone()
    }

    /// The unconsumed bytes as one `Bytes`, borrowed: what
    /// [`bytes`](Cumulation::bytes) gives, without a reference count taken
    /// (slice it with `slice_ref` to keep parts).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use weft_codec::Cumulation;
    ///
    /// let mut c = Cumulation::new();
    /// c.push(Bytes::from_static(b"key value"));
    /// let all = c.bytes_ref();
    /// let value = all.slice_ref(&all[4..]);
    /// assert_eq!(value, "value");
    /// ```
    pub fn bytes_ref(&mut self) -> &Bytes {
        let frozen = self.take_all();
        self.inner = Inner::Frozen(frozen);
        match &self.inner {
            Inner::Frozen(b) => b,
            _ => unreachable!("frozen just above"),
        }
    }

    /// Takes everything that is left.
    pub fn take_all(&mut self) -> Bytes {
        match std::mem::take(&mut self.inner) {
            Inner::Empty => Bytes::new(),
            Inner::Frozen(b) => b,
            Inner::Mut(m) => m.freeze(),
        }
    }

    /// The unconsumed bytes as a `BytesMut`, for decoders written against
    /// `BytesMut` (tokio-util's). Copies only if the bytes are shared.
    pub fn as_bytes_mut(&mut self) -> &mut BytesMut {
        if !matches!(self.inner, Inner::Mut(_)) {
            let m = match std::mem::take(&mut self.inner) {
                Inner::Empty => BytesMut::new(),
                Inner::Frozen(b) => b.try_into_mut().unwrap_or_else(|b| BytesMut::from(&b[..])),
                Inner::Mut(m) => m,
            };
            self.inner = Inner::Mut(m);
        }
        match &mut self.inner {
            Inner::Mut(m) => m,
            _ => unreachable!("set just above"),
        }
    }
}

impl Deref for Cumulation {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match &self.inner {
            Inner::Empty => &[],
            Inner::Frozen(b) => b,
            Inner::Mut(m) => m,
        }
    }
}

impl fmt::Debug for Cumulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cumulation")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_reads_and_splits_without_losing_bytes() {
        let mut c = Cumulation::new();
        c.push(Bytes::from_static(b"ab"));
        c.push(Bytes::from_static(b"cd"));
        assert_eq!(&c[..], b"abcd");
        assert_eq!(c.split_to(3), "abc");
        c.push(Bytes::from_static(b"ef"));
        assert_eq!(c.take_all(), "def");
        assert!(c.is_empty());
    }

    #[test]
    fn empty_cumulation_takes_the_read_by_reference() {
        let read = Bytes::from(vec![1u8; 100]);
        let mut c = Cumulation::new();
        c.push(read.clone());
        let f = c.split_to(10);
        assert_eq!(f.as_ptr(), read.as_ptr());
        let g = c.split_to(90);
        assert_eq!(g.as_ptr() as usize, read.as_ptr() as usize + 10);
    }
}
