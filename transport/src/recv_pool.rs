//! A per-thread pool of read buffers.
//!
//! Contract: a connection takes a buffer when its socket becomes readable
//! and gives it back when the burst of reads ends, so an idle connection
//! holds no read buffer. A buffer given back may still share its memory
//! with frames the pipeline holds (an echo's pending write, a decoder's
//! partial frame); it is reused only once that memory is its own again
//! (`BytesMut::try_reclaim`), else it is dropped and the frames keep the
//! memory alive. In steady state a connection's reads therefore allocate
//! nothing. The pool keeps at most [`MAX_POOLED`] buffers and
//! [`MAX_POOLED_BYTES`] bytes per thread.

use std::cell::RefCell;

use bytes::BytesMut;

/// Most buffers kept per thread.
pub(crate) const MAX_POOLED: usize = 64;
/// Most bytes of capacity kept per thread.
pub(crate) const MAX_POOLED_BYTES: usize = 1024 * 1024;

thread_local! {
    static POOL: RefCell<(Vec<BytesMut>, usize)> = const { RefCell::new((Vec::new(), 0)) };
}

/// A buffer with room for at least `size` bytes.
pub(crate) fn take(size: usize) -> BytesMut {
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        while let Some(mut b) = p.0.pop() {
            p.1 -= b.capacity();
            // Reusable only if its memory is no longer shared with frames.
            if b.try_reclaim(size) {
                return b;
            }
        }
        BytesMut::with_capacity(size)
    })
}

/// Gives a buffer back after a burst of reads.
pub(crate) fn give(b: BytesMut) {
    if !b.is_empty() || b.capacity() == 0 {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.0.len() < MAX_POOLED && p.1 + b.capacity() <= MAX_POOLED_BYTES {
            p.1 += b.capacity();
            p.0.push(b);
        }
    });
}
