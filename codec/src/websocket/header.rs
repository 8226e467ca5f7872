//! The frame header on the wire (RFC 6455 §5.2): two bytes, an extended
//! length of 2 or 8 bytes, and a 4-byte masking key when masked.
//!
//! Contract: [`parse`] reads the structure only (the codec judges it);
//! [`encode`] writes the shortest length encoding, as the RFC requires of
//! a sender.

use bytes::BufMut;

/// A header as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1, RSV2, RSV3 as the three low bits (RSV1 = 0b100).
    pub(crate) rsv: u8,
    /// The raw opcode (reserved ones included).
    pub(crate) opcode: u8,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) len: u64,
    /// The header's own length on the wire.
    pub(crate) size: usize,
}

/// The header at the front of `buf`, or `None` until it is all there.
pub(crate) fn parse(buf: &[u8]) -> Option<Header> {
    let (&b0, rest) = buf.split_first()?;
    let &b1 = rest.first()?;
    let masked = b1 & 0x80 != 0;
    let (len, mut size) = match b1 & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes(buf.get(2..4)?.try_into().ok()?)),
            4,
        ),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().ok()?), 10),
        n => (u64::from(n), 2),
    };
    let mask = if masked {
        // `size` is 2, 4 or 10 here.
        let key: [u8; 4] = buf.get(size..)?.get(..4)?.try_into().ok()?;
        size = size.saturating_add(4);
        Some(key)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0x07,
        opcode: b0 & 0x0F,
        mask,
        len,
        size,
    })
}

/// The bytes a header takes for a payload of `len` bytes.
pub(crate) fn size(len: usize, masked: bool) -> usize {
    let length = match len {
        0..126 => 0,
        126..=0xFFFF => 2,
        _ => 8,
    };
    let key = if masked { 4 } else { 0 };
    // At most 14: nothing to wrap.
    2usize.saturating_add(length).saturating_add(key)
}

/// Writes a header for a payload of `len` bytes.
pub(crate) fn encode(
    buf: &mut impl BufMut,
    fin: bool,
    rsv1: bool,
    opcode: u8,
    mask: Option<[u8; 4]>,
    len: usize,
) {
    buf.put_u8(u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode);
    let m = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        buf.put_u8(m | len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        buf.put_u8(m | 126);
        buf.put_u16(n);
    } else {
        buf.put_u8(m | 127);
        buf.put_u64(len as u64);
    }
    if let Some(key) = mask {
        buf.put_slice(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_encoding_round_trips() {
        for (len, size) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 40, 10),
        ] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let mut b = bytes::BytesMut::new();
                encode(&mut b, true, false, 0x2, mask, len);
                assert_eq!(super::size(len, mask.is_some()), b.len());
                let h = parse(&b).expect("whole header");
                let extra = if mask.is_some() { 4 } else { 0 };
                assert_eq!((h.len, h.size), (len as u64, size + extra));
                assert_eq!(h.mask, mask);
                assert!(h.fin && h.opcode == 2 && h.rsv == 0);
                // Any shorter prefix is incomplete.
                for cut in 0..b.len() {
                    assert_eq!(parse(&b[..cut]), None, "{len} cut at {cut}");
                }
            }
        }
    }
}
