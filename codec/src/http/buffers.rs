//! A per-thread pool of encode buffers: where answers' heads are written.
//!
//! Contract: a batch of answers is encoded into a buffer taken from the
//! pool ([`take`]); when the batch is handed on, the encoded bytes are
//! split off (they share the buffer's memory, no copy) and the rest of the
//! buffer, its spare room, goes back ([`give`]). So a connection holds a
//! buffer only while it encodes a batch, and in the steady state no answer
//! allocates: the buffer's memory is reused in place once the bytes split
//! off it have been written and dropped (`BytesMut::reserve` reclaims a
//! buffer nothing else shares). The pool keeps at most [`MAX_POOLED`]
//! buffers, each with at least [`MIN_SPARE`] bytes of room and at most
//! [`MAX_SPARE`].

use std::cell::RefCell;

use bytes::BytesMut;

/// Most buffers kept per thread.
pub(crate) const MAX_POOLED: usize = 16;
/// A buffer with less room than this is let go (an answer's head needs
/// about that much).
pub(crate) const MIN_SPARE: usize = 512;
/// A buffer with more room than this is let go (a large batch grew it).
pub(crate) const MAX_SPARE: usize = 64 * 1024;

thread_local! {
    static POOL: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// An empty buffer: a pooled one (with room) when there is one, else an
/// empty one that allocates when written to.
pub(crate) fn take() -> BytesMut {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default()
}

/// Gives an emptied buffer's spare room back.
pub(crate) fn give(buf: BytesMut) {
    debug_assert!(buf.is_empty());
    let room = buf.capacity();
    if !(MIN_SPARE..=MAX_SPARE).contains(&room) {
        return;
    }
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < MAX_POOLED {
            p.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn a_buffer_given_back_is_reused_in_place_once_its_bytes_are_dropped() {
        POOL.with(|p| p.borrow_mut().clear());
        let mut buf = take();
        buf.reserve(1024);
        buf.put_slice(&[b'a'; 300]);
        let first = buf.split().freeze();
        give(buf);
        let mut again = take();
        assert!(again.is_empty() && again.capacity() >= 512);
        again.put_slice(&[b'b'; 100]);
        // Right behind the first batch, in the same memory.
        assert_eq!(again.as_ptr(), first.as_ptr().wrapping_add(300));
        let second = again.split().freeze();
        give(again);
        drop((first, second));
        // Nothing shares the memory now: a larger reserve reuses it whole.
        let mut third = take();
        let base = third.as_ptr().wrapping_sub(400);
        third.reserve(900);
        assert_eq!(third.as_ptr(), base, "reclaimed, not reallocated");
    }

    #[test]
    fn the_pool_is_bounded_in_buffers_and_in_their_room() {
        POOL.with(|p| p.borrow_mut().clear());
        give(BytesMut::with_capacity(MIN_SPARE - 1));
        give(BytesMut::with_capacity(MAX_SPARE + 1));
        assert_eq!(POOL.with(|p| p.borrow().len()), 0);
        for _ in 0..MAX_POOLED + 4 {
            give(BytesMut::with_capacity(MIN_SPARE));
        }
        assert_eq!(POOL.with(|p| p.borrow().len()), MAX_POOLED);
    }
}
