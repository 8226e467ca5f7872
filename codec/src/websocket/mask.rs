//! Masking (RFC 6455 §5.3): every byte of a client's payload is XORed with
//! a byte of a 4-byte key, in turn.
//!
//! Contract: [`apply_mask`] works eight bytes at a time, then byte by byte
//! for the last few; [`unmask`] unmasks in place when the payload's buffer
//! is uniquely owned (the readiness transport hands a large read on as a
//! buffer of its own, so a large frame alone in a read is unmasked where
//! it lies), and otherwise unmasks a copy (a shared read buffer is never
//! written), a short one (up to 1 KiB) in the thread's small-bytes chunk
//! ([`small_bytes`]).

use bytes::{Bytes, BytesMut};
use weft_core::small_bytes;

/// Payloads up to this size are unmasked into a small-bytes piece: the
/// codec copies payloads this short when it encodes them
/// (`COPY_PAYLOAD_MAX`), so a piece never waits in an outbound buffer.
pub(crate) const UNMASK_SMALL_MAX: usize = 1024;

/// XORs `buf` with `key`, the key's first byte lining up with `buf[0]`.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    let key64 = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let w = u64::from_ne_bytes((&*c).try_into().expect("eight bytes")) ^ key64;
        c.copy_from_slice(&w.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        // The remainder starts at a multiple of 8, so at key index 0.
        *b ^= key[i & 3];
    }
}

/// The payload unmasked: in place if `payload` is the only reference to
/// its buffer, else into a new buffer in one pass.
pub(crate) fn unmask(payload: Bytes, key: [u8; 4]) -> Bytes {
    if payload.is_empty() {
        return payload;
    }
    match payload.try_into_mut() {
        Ok(mut m) => {
            apply_mask(&mut m, key);
            m.freeze()
        }
        // A short payload is carved from the thread's small-bytes chunk:
        // short ones are copied again when echoed or relayed (see the
        // codec's encode), so no outbound queue keeps the chunk; a longer
        // one may be sent on by reference and gets a buffer of its own.
        Err(shared) if shared.len() <= UNMASK_SMALL_MAX => small_bytes(shared.len(), |m| {
            m.extend_from_slice(&shared);
            apply_mask(m, key);
        }),
        Err(shared) => {
            let mut m = BytesMut::from(&shared[..]);
            apply_mask(&mut m, key);
            m.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &mut [u8], key: [u8; 4]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }

    #[test]
    fn word_at_a_time_equals_byte_at_a_time_for_every_length() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            let data: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask(&mut fast, key);
            naive(&mut slow, key);
            assert_eq!(fast, slow, "length {len}");
        }
    }

    #[test]
    fn a_shared_buffer_is_left_alone() {
        let key = [1, 2, 3, 4];
        let read = Bytes::from(vec![9u8; 32]);
        let payload = read.slice(4..20);
        let out = unmask(payload, key);
        assert_eq!(read[..], [9u8; 32][..], "the read buffer is untouched");
        assert_eq!(out[0], 9 ^ 1);
    }

    #[test]
    fn a_unique_buffer_is_unmasked_in_place() {
        let key = [1, 2, 3, 4];
        let payload = Bytes::from(vec![0u8; 16]);
        let ptr = payload.as_ptr();
        let out = unmask(payload, key);
        assert_eq!(out.as_ptr(), ptr, "no copy");
        assert_eq!(&out[..4], &key);
    }
}
