//! [`small_bytes`]: short-lived byte messages carved from a per-thread
//! chunk, so that a decoder's short copies (an unmasked WebSocket payload)
//! allocate nothing.
//!
//! Contract:
//! - a call with a capacity of at most [`SMALL_MAX`] writes into the
//!   current thread's chunk (16 KiB) and returns what was written as a
//!   [`Bytes`] slice of it; the chunk is handed out piece by piece and
//!   reused whole once every piece of it has been dropped, so a steady
//!   stream of short-lived messages (payloads on their way to a handler
//!   that drops them) allocates once per chunk at most, and usually never;
//! - a piece keeps its chunk alive: a message kept for long (a chat
//!   history) should be copied out (`Bytes::copy_from_slice`) rather than
//!   pin 16 KiB for a few bytes; when a chunk still has pieces out, the
//!   next one is a new chunk and the old one is freed with its last piece;
//! - so it is for bytes that are dropped soon and whose lifetime the peer
//!   does not decide. Never carve what is written to a socket: a peer that
//!   stops reading keeps the pieces in its outbound buffer, each holding a
//!   chunk shared with every other connection of the thread, and the
//!   buffer's cap counts the pieces, not the chunks they hold (weft's
//!   encoders allocate what they write, exactly sized);
//! - a larger capacity, or a call made from inside another call's `fill`,
//!   gets a buffer of its own, exactly as `BytesMut::with_capacity` would;
//! - `fill` may write more than the capacity it asked for: the buffer
//!   grows (possibly onto a new allocation), the result is the same bytes.
//!
//! No thread holds more than one chunk, and an idle thread's chunk is the
//! only memory this keeps.

use std::cell::RefCell;

use bytes::{Bytes, BytesMut};

/// The largest capacity served from the per-thread chunk.
pub const SMALL_MAX: usize = 2048;

/// The size of a per-thread chunk.
const CHUNK: usize = 16 * 1024;

thread_local! {
    static CHUNK_BUF: RefCell<BytesMut> = RefCell::new(BytesMut::new());
}

/// The bytes `fill` writes into a buffer of at least `capacity` bytes,
/// carved from the current thread's chunk when `capacity` is small (see the
/// module contract).
///
/// ```
/// use bytes::BufMut;
/// use weft_core::small_bytes;
///
/// // A decoder's unmasked copy of a short payload, handed to the next
/// // handler and dropped once it is handled.
/// let masked = [0x01 ^ 0x37, 0x02 ^ 0xfa];
/// let plain = small_bytes(masked.len(), |b| {
///     b.put_slice(&masked);
///     b[0] ^= 0x37;
///     b[1] ^= 0xfa;
/// });
/// assert_eq!(&plain[..], &[1, 2]);
/// ```
pub fn small_bytes(capacity: usize, fill: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut fill = Some(fill);
    if capacity <= SMALL_MAX {
        let carved = CHUNK_BUF.try_with(|cell| {
            let mut chunk = cell.try_borrow_mut().ok()?;
            // Empty unless a fill panicked half-way: its bytes are dropped.
            chunk.clear();
            if chunk.capacity() < capacity {
                // Reclaims the chunk in place when no piece of it is alive
                // any more, else starts a new one (the old one goes with
                // its last piece).
                chunk.reserve(CHUNK);
            }
            let fill = fill.take()?;
            fill(&mut chunk);
            Some(chunk.split().freeze())
        });
        if let Ok(Some(b)) = carved {
            return b;
        }
        // Called from inside a fill, or while the thread is exiting: a
        // buffer of its own (`fill` has not run).
    }
    let mut b = BytesMut::with_capacity(capacity);
    if let Some(fill) = fill {
        fill(&mut b);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn pieces_of_a_chunk_are_consecutive_and_independent() {
        let a = small_bytes(3, |b| b.put_slice(b"abc"));
        let b = small_bytes(3, |b| b.put_slice(b"def"));
        assert_eq!(&a[..], b"abc");
        assert_eq!(&b[..], b"def");
        // Carved one after the other from the same chunk.
        assert_eq!(distance(&a, &b), 3);
    }

    /// How far `b` starts after `a`, by address.
    fn distance(a: &Bytes, b: &Bytes) -> usize {
        (b.as_ptr() as usize).wrapping_sub(a.as_ptr() as usize)
    }

    #[test]
    fn a_chunk_whose_pieces_are_gone_is_reused_without_allocating() {
        // Fill the rest of the current chunk and drop every piece.
        let first = small_bytes(1, |b| b.put_u8(1));
        let base = first.as_ptr() as usize;
        drop(first);
        let mut pieces = 0;
        loop {
            let p = small_bytes(SMALL_MAX, |b| b.put_bytes(7, SMALL_MAX));
            let at = p.as_ptr() as usize;
            drop(p);
            pieces += 1;
            if at < base || at >= base + CHUNK {
                panic!("a new chunk while every piece was dropped");
            }
            if at == base {
                break; // back at the start: reclaimed in place
            }
            assert!(pieces < 2 * CHUNK / SMALL_MAX, "never came back");
        }
    }

    #[test]
    fn a_piece_still_alive_keeps_its_bytes() {
        let kept = small_bytes(4, |b| b.put_slice(b"keep"));
        let mut others = Vec::new();
        for i in 0..(3 * CHUNK / 100) {
            others.push(small_bytes(100, |b| b.put_bytes(i as u8, 100)));
        }
        assert_eq!(&kept[..], b"keep");
        for (i, o) in others.iter().enumerate() {
            assert!(o.iter().all(|&c| c == i as u8));
        }
    }

    #[test]
    fn large_or_nested_calls_get_their_own_buffer() {
        let big = small_bytes(SMALL_MAX + 1, |b| b.put_bytes(1, SMALL_MAX + 1));
        assert_eq!(big.len(), SMALL_MAX + 1);
        let outer = small_bytes(8, |b| {
            let inner = small_bytes(2, |i| i.put_slice(b"in"));
            b.put_slice(&inner);
            b.put_slice(b"out");
        });
        assert_eq!(&outer[..], b"inout");
    }

    #[test]
    fn writing_past_the_capacity_asked_for_is_still_correct() {
        let mut keep = Vec::new();
        for _ in 0..20 {
            keep.push(small_bytes(1, |b| b.put_bytes(9, 5000)));
        }
        assert!(keep
            .iter()
            .all(|k| k.len() == 5000 && k.iter().all(|&c| c == 9)));
    }
}
