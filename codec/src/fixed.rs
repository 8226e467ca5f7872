//! [`FixedLengthFrameDecoder`]: frames of a fixed number of bytes.

use bytes::Bytes;
use weft_core::Error;

use crate::{Cumulation, Decoder};

/// Splits the input into frames of exactly `n` bytes, each a slice of the
/// received bytes. A trailing partial frame at end of input is dropped.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{DecoderHandler, FixedLengthFrameDecoder};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(FixedLengthFrameDecoder::new(3).unwrap()));
/// ch.write_inbound(&b"abcde"[..]);
/// ch.write_inbound(&b"f"[..]);
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "abc");
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "def");
/// ```
#[derive(Clone, Debug)]
pub struct FixedLengthFrameDecoder {
    n: usize,
}

impl FixedLengthFrameDecoder {
    /// Frames of `n` bytes (`n > 0`).
    pub fn new(n: usize) -> Result<FixedLengthFrameDecoder, Error> {
        if n == 0 {
            return Err(Error::invalid_argument("frame length must be positive"));
        }
        Ok(FixedLengthFrameDecoder { n })
    }
}

impl Decoder for FixedLengthFrameDecoder {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<Bytes>, Error> {
        if src.len() < self.n {
            return Ok(None);
        }
        Ok(Some(src.split_to(self.n)))
    }
}
