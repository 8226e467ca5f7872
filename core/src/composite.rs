//! [`CompositeBytes`]: an ordered run of [`Bytes`] joined by reference.
//!
//! Contract:
//! - no method copies payload bytes except [`CompositeBytes::to_bytes`], the one
//!   explicit copy; slicing and splitting share the original memory, slicing
//!   the chunks at the edges;
//! - empty chunks are never stored, so every stored chunk has at least one byte;
//! - appending a chunk is amortised O(1), so appending N chunks is O(N);
//! - it is a [`bytes::Buf`] whose [`chunks_vectored`](Buf::chunks_vectored)
//!   gives one `IoSlice` per chunk, which is how the transport writes a
//!   composite with one `writev`.
//!
//! This is weft's counterpart of Netty's `CompositeByteBuf`, without its
//! consolidation step (which re-copies everything every 16 components).

use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;
use std::ops::{Bound, RangeBounds};

use bytes::{Buf, Bytes};

/// An ordered run of [`Bytes`], joined without copying.
///
/// ```
/// use bytes::Bytes;
/// use weft_core::CompositeBytes;
///
/// let header = Bytes::from_static(b"\x00\x05");
/// let body = Bytes::from_static(b"hello");
/// let mut frame = CompositeBytes::new();
/// frame.push(header);
/// frame.push(body.clone());
/// assert_eq!(frame.len(), 7);
/// assert_eq!(frame.chunk_count(), 2);
/// // The body is shared, not copied.
/// assert_eq!(frame.chunks().nth(1).unwrap().as_ptr(), body.as_ptr());
/// assert_eq!(frame, &b"\x00\x05hello"[..]);
/// ```
#[derive(Clone, Default)]
pub struct CompositeBytes {
    chunks: VecDeque<Bytes>,
    len: usize,
}

impl CompositeBytes {
    /// An empty composite; allocates nothing.
    pub const fn new() -> CompositeBytes {
        CompositeBytes {
            chunks: VecDeque::new(),
            len: 0,
        }
    }

    /// An empty composite with room for `n` chunks.
    pub fn with_capacity(n: usize) -> CompositeBytes {
        CompositeBytes {
            chunks: VecDeque::with_capacity(n),
            len: 0,
        }
    }

    /// Appends a chunk by reference. An empty chunk is dropped.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_back(chunk);
        }
    }

    /// Puts a chunk in front (a header before a payload). An empty chunk is dropped.
    pub fn push_front(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.len += chunk.len();
            self.chunks.push_front(chunk);
        }
    }

    /// Appends every chunk of `other`, by reference.
    pub fn append(&mut self, other: CompositeBytes) {
        self.len += other.len;
        if self.chunks.is_empty() {
            self.chunks = other.chunks;
        } else {
            self.chunks.extend(other.chunks);
        }
    }

    /// Total number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of (non-empty) chunks.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// The chunks, in order.
    pub fn chunks(&self) -> impl ExactSizeIterator<Item = &Bytes> + DoubleEndedIterator + '_ {
        self.chunks.iter()
    }

    /// Removes and returns the first chunk.
    pub fn pop_front(&mut self) -> Option<Bytes> {
        let c = self.chunks.pop_front()?;
        self.len -= c.len();
        Some(c)
    }

    /// A composite over `range` of this one, sharing its memory.
    ///
    /// # Panics
    ///
    /// If the range is out of bounds or decreasing (as `Bytes::slice`).
    pub fn slice(&self, range: impl RangeBounds<usize>) -> CompositeBytes {
        let start = match range.start_bound() {
            Bound::Included(&n) => n,
            Bound::Excluded(&n) => n.checked_add(1).expect("out of range"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&n) => n.checked_add(1).expect("out of range"),
            Bound::Excluded(&n) => n,
            Bound::Unbounded => self.len,
        };
        assert!(
            start <= end && end <= self.len,
            "range {start}..{end} out of bounds for CompositeBytes of length {}",
            self.len
        );
        let mut out = CompositeBytes::new();
        let mut pos = 0;
        for c in &self.chunks {
            let c_start = pos;
            let c_end = pos + c.len();
            pos = c_end;
            if c_end <= start {
                continue;
            }
            if c_start >= end {
                break;
            }
            let a = start.saturating_sub(c_start);
            let b = (end - c_start).min(c.len());
            if a == 0 && b == c.len() {
                out.push(c.clone());
            } else {
                out.push(c.slice(a..b));
            }
        }
        out
    }

    /// Splits off and returns the first `at` bytes; `self` keeps the rest.
    ///
    /// # Panics
    ///
    /// If `at > self.len()`.
    pub fn split_to(&mut self, at: usize) -> CompositeBytes {
        assert!(
            at <= self.len,
            "split_to out of bounds: {at} > {}",
            self.len
        );
        let mut out = CompositeBytes::new();
        let mut need = at;
        while need > 0 {
            let front = self.chunks.front_mut().expect("length accounting");
            if front.len() <= need {
                need -= front.len();
                let c = self.chunks.pop_front().expect("non-empty");
                self.len -= c.len();
                out.push(c);
            } else {
                let c = front.split_to(need);
                self.len -= need;
                out.push(c);
                need = 0;
            }
        }
        out
    }

    /// Splits off and returns the bytes from `at` on; `self` keeps the first `at`.
    ///
    /// # Panics
    ///
    /// If `at > self.len()`.
    pub fn split_off(&mut self, at: usize) -> CompositeBytes {
        assert!(
            at <= self.len,
            "split_off out of bounds: {at} > {}",
            self.len
        );
        let mut tail_len = self.len - at;
        let mut rev = Vec::new();
        while tail_len > 0 {
            let back = self.chunks.back_mut().expect("length accounting");
            if back.len() <= tail_len {
                tail_len -= back.len();
                let c = self.chunks.pop_back().expect("non-empty");
                self.len -= c.len();
                rev.push(c);
            } else {
                let keep = back.len() - tail_len;
                let c = back.split_off(keep);
                self.len -= c.len();
                rev.push(c);
                tail_len = 0;
            }
        }
        let mut out = CompositeBytes::with_capacity(rev.len());
        for c in rev.into_iter().rev() {
            out.push(c);
        }
        out
    }

    /// Copies the content into one contiguous [`Bytes`].
    ///
    /// This is the only method that copies payload. A composite of zero or
    /// one chunk is returned without a copy.
    pub fn to_bytes(&self) -> Bytes {
        match self.chunks.len() {
            0 => Bytes::new(),
            1 => self.chunks[0].clone(),
            _ => {
                let mut v = Vec::with_capacity(self.len);
                for c in &self.chunks {
                    v.extend_from_slice(c);
                }
                Bytes::from(v)
            }
        }
    }

    /// Converts into a single [`Bytes`]: free for zero or one chunk, a copy otherwise.
    pub fn into_bytes(mut self) -> Bytes {
        if self.chunks.len() <= 1 {
            self.chunks.pop_front().unwrap_or_default()
        } else {
            self.to_bytes()
        }
    }

    fn eq_slice(&self, other: &[u8]) -> bool {
        if other.len() != self.len {
            return false;
        }
        let mut rest = other;
        for c in &self.chunks {
            let (head, tail) = rest.split_at(c.len());
            if head != &c[..] {
                return false;
            }
            rest = tail;
        }
        true
    }
}

impl Buf for CompositeBytes {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map(|c| &c[..]).unwrap_or(&[])
    }

    fn advance(&mut self, mut cnt: usize) {
        assert!(
            cnt <= self.len,
            "cannot advance past the end: {cnt} > {}",
            self.len
        );
        self.len -= cnt;
        while cnt > 0 {
            let front = self.chunks.front_mut().expect("length accounting");
            if front.len() <= cnt {
                cnt -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(cnt);
                cnt = 0;
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, c) in dst.iter_mut().zip(self.chunks.iter()) {
            *slot = IoSlice::new(c);
            n += 1;
        }
        n
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        // Zero-copy when the range lies inside the first chunk.
        assert!(len <= self.len, "copy_to_bytes out of range");
        if let Some(front) = self.chunks.front_mut() {
            if front.len() >= len {
                let out = front.split_to(len);
                if front.is_empty() {
                    self.chunks.pop_front();
                }
                self.len -= len;
                return out;
            }
        }
        self.split_to(len).to_bytes()
    }
}

impl From<Bytes> for CompositeBytes {
    fn from(b: Bytes) -> CompositeBytes {
        let mut c = CompositeBytes::new();
        c.push(b);
        c
    }
}

impl FromIterator<Bytes> for CompositeBytes {
    fn from_iter<I: IntoIterator<Item = Bytes>>(iter: I) -> CompositeBytes {
        let mut c = CompositeBytes::new();
        c.extend(iter);
        c
    }
}

impl Extend<Bytes> for CompositeBytes {
    fn extend<I: IntoIterator<Item = Bytes>>(&mut self, iter: I) {
        for b in iter {
            self.push(b);
        }
    }
}

impl IntoIterator for CompositeBytes {
    type Item = Bytes;
    type IntoIter = std::collections::vec_deque::IntoIter<Bytes>;
    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter()
    }
}

impl PartialEq for CompositeBytes {
    fn eq(&self, other: &CompositeBytes) -> bool {
        self.len == other.len
            && self
                .clone()
                .into_iter()
                .flatten()
                .eq(other.clone().into_iter().flatten())
    }
}

impl Eq for CompositeBytes {}

impl PartialEq<[u8]> for CompositeBytes {
    fn eq(&self, other: &[u8]) -> bool {
        self.eq_slice(other)
    }
}

impl PartialEq<&[u8]> for CompositeBytes {
    fn eq(&self, other: &&[u8]) -> bool {
        self.eq_slice(other)
    }
}

impl PartialEq<Vec<u8>> for CompositeBytes {
    fn eq(&self, other: &Vec<u8>) -> bool {
        self.eq_slice(other)
    }
}

impl<const N: usize> PartialEq<[u8; N]> for CompositeBytes {
    fn eq(&self, other: &[u8; N]) -> bool {
        self.eq_slice(other)
    }
}

impl fmt::Debug for CompositeBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompositeBytes")
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn flat(c: &CompositeBytes) -> Vec<u8> {
        c.chunks().flat_map(|b| b.iter().copied()).collect()
    }

    #[test]
    fn chunks_vectored_points_at_original_memory() {
        let parts = [
            Bytes::from_static(b"abc"),
            Bytes::from(vec![1u8; 10]),
            Bytes::from_static(b"z"),
        ];
        let c: CompositeBytes = parts.iter().cloned().collect();
        let mut io = [IoSlice::new(&[]); 8];
        let n = c.chunks_vectored(&mut io);
        assert_eq!(n, 3);
        for (s, p) in io[..n].iter().zip(parts.iter()) {
            assert_eq!(s.as_ptr(), p.as_ptr());
            assert_eq!(s.len(), p.len());
        }
    }

    #[test]
    fn slice_shares_memory() {
        let a = Bytes::from(vec![7u8; 100]);
        let b = Bytes::from(vec![9u8; 100]);
        let c: CompositeBytes = [a.clone(), b.clone()].into_iter().collect();
        let s = c.slice(50..150);
        assert_eq!(s.chunk_count(), 2);
        let first = s.chunks().next().unwrap();
        let a_range = a.as_ptr() as usize..a.as_ptr() as usize + a.len();
        assert!(a_range.contains(&(first.as_ptr() as usize)));
        assert_eq!(first.as_ptr() as usize, a.as_ptr() as usize + 50);
        assert_eq!(s.chunks().nth(1).unwrap().as_ptr(), b.as_ptr());
    }

    #[test]
    fn empty_chunks_are_not_stored() {
        let mut c = CompositeBytes::new();
        c.push(Bytes::new());
        c.push_front(Bytes::new());
        assert_eq!(c.chunk_count(), 0);
        assert!(c.is_empty());
        assert_eq!(c.chunk(), &[] as &[u8]);
    }

    #[test]
    fn appending_a_million_chunks_is_linear() {
        // Count the work, not the time: each time the chunk list grows it
        // moves what it holds. Appends are amortised O(1) exactly when the
        // chunks moved over N appends stay within a constant times N.
        const N: usize = 1_000_000;
        let chunk = Bytes::from_static(b"x");
        for front in [false, true] {
            let mut c = CompositeBytes::new();
            let mut moved = 0;
            let mut cap = c.chunks.capacity();
            for held in 0..N {
                if front {
                    c.push_front(chunk.clone());
                } else {
                    c.push(chunk.clone());
                }
                if c.chunks.capacity() != cap {
                    moved += held;
                    cap = c.chunks.capacity();
                }
            }
            assert_eq!(c.len(), N);
            assert!(moved <= 2 * N, "{moved} chunks moved for {N} appends");
        }
    }

    #[test]
    fn debug_shows_no_data() {
        let c = CompositeBytes::from(Bytes::from_static(b"secret"));
        let s = format!("{c:?}");
        assert!(!s.contains("secret"));
        assert!(s.contains("len: 6"));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(Vec<u8>),
        PushFront(Vec<u8>),
        Slice(usize, usize),
        SplitTo(usize),
        SplitOff(usize),
        Advance(usize),
        CopyToBytes(usize),
        Append(Vec<Vec<u8>>),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Op::Push),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Op::PushFront),
            (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Slice(a, b)),
            any::<usize>().prop_map(Op::SplitTo),
            any::<usize>().prop_map(Op::SplitOff),
            any::<usize>().prop_map(Op::Advance),
            any::<usize>().prop_map(Op::CopyToBytes),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8), 0..4)
                .prop_map(Op::Append),
        ]
    }

    proptest! {
        #[test]
        fn matches_flat_model(ops in proptest::collection::vec(op(), 0..40)) {
            let mut c = CompositeBytes::new();
            let mut m: Vec<u8> = Vec::new();
            for op in ops {
                match op {
                    Op::Push(v) => { c.push(Bytes::from(v.clone())); m.extend(v); }
                    Op::PushFront(v) => { c.push_front(Bytes::from(v.clone())); m.splice(0..0, v); }
                    Op::Slice(a, b) => {
                        let len = m.len() + 1;
                        let (a, b) = (a % len, b % len);
                        let (a, b) = (a.min(b), a.max(b));
                        let s = c.slice(a..b);
                        prop_assert_eq!(flat(&s), m[a..b].to_vec());
                        prop_assert_eq!(s.len(), b - a);
                    }
                    Op::SplitTo(at) => {
                        let at = at % (m.len() + 1);
                        let head = c.split_to(at);
                        let mh: Vec<u8> = m.drain(..at).collect();
                        prop_assert_eq!(flat(&head), mh);
                    }
                    Op::SplitOff(at) => {
                        let at = at % (m.len() + 1);
                        let tail = c.split_off(at);
                        let mt = m.split_off(at);
                        prop_assert_eq!(flat(&tail), mt);
                    }
                    Op::Advance(n) => {
                        let n = n % (m.len() + 1);
                        c.advance(n);
                        m.drain(..n);
                    }
                    Op::CopyToBytes(n) => {
                        let n = n % (m.len() + 1);
                        let b = c.copy_to_bytes(n);
                        let mb: Vec<u8> = m.drain(..n).collect();
                        prop_assert_eq!(&b[..], &mb[..]);
                    }
                    Op::Append(vs) => {
                        let other: CompositeBytes = vs.iter().cloned().map(Bytes::from).collect();
                        for v in vs { m.extend(v); }
                        c.append(other);
                    }
                }
                prop_assert_eq!(c.len(), m.len());
                prop_assert_eq!(c.remaining(), m.len());
                prop_assert!(c.chunks().all(|ch| !ch.is_empty()));
                prop_assert_eq!(flat(&c), m.clone());
                prop_assert!(c == m);
                prop_assert_eq!(&c.to_bytes()[..], &m[..]);
                let mut io = vec![IoSlice::new(&[]); c.chunk_count() + 1];
                let n = c.chunks_vectored(&mut io);
                prop_assert_eq!(n, c.chunk_count());
                let joined: Vec<u8> = io[..n].iter().flat_map(|s| s.iter().copied()).collect();
                prop_assert_eq!(joined, m.clone());
            }
        }
    }
}
