//! [`DelimiterBasedFrameDecoder`]: frames ending in one of several delimiters.
//!
//! Contract: at each step the delimiter that yields the shortest frame wins
//! (as in Netty). Frames are slices of the received bytes, with or without
//! the delimiter (`strip_delimiter`, default: stripped). A frame longer
//! than `max_frame_length` is discarded up to and including its delimiter,
//! with a too-long-frame error: at once when `fail_fast` (default: on), after
//! its delimiter otherwise. A frame of exactly `max_frame_length` bytes
//! fits, whichever reads its delimiter is cut across: while no delimiter is
//! found, the last bytes that could begin one (the longest delimiter's
//! length less one) are kept, also while a too-long frame is discarded.

use bytes::Bytes;
use weft_core::Error;

use crate::{Cumulation, Decoder};

/// Splits frames on delimiters.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{DecoderHandler, DelimiterBasedFrameDecoder};
/// use weft_core::EmbeddedChannel;
///
/// let dec = DelimiterBasedFrameDecoder::new(64, [&b";"[..], &b"||"[..]]).unwrap();
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(dec));
/// ch.write_inbound(&b"a;bb||c"[..]);
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "a");
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "bb");
/// assert!(ch.read_inbound::<Bytes>().is_none());
/// ```
#[derive(Clone, Debug)]
pub struct DelimiterBasedFrameDecoder {
    delimiters: Vec<Bytes>,
    max_frame_length: usize,
    strip: bool,
    fail_fast: bool,
    discarding: bool,
    too_long_length: usize,
    /// Bytes at the end that may be the start of a delimiter.
    keep: usize,
}

impl DelimiterBasedFrameDecoder {
    /// Frames of at most `max_frame_length` bytes ending in any of
    /// `delimiters` (none may be empty).
    pub fn new<I, D>(max_frame_length: usize, delimiters: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = D>,
        D: AsRef<[u8]>,
    {
        let delimiters: Vec<Bytes> = delimiters
            .into_iter()
            .map(|d| Bytes::copy_from_slice(d.as_ref()))
            .collect();
        if delimiters.is_empty() || delimiters.iter().any(|d| d.is_empty()) {
            return Err(Error::invalid_argument(
                "DelimiterBasedFrameDecoder needs at least one delimiter, none empty",
            ));
        }
        if max_frame_length == 0 {
            return Err(Error::invalid_argument("max_frame_length must be positive"));
        }
        let keep = delimiters
            .iter()
            .map(|d| d.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        Ok(DelimiterBasedFrameDecoder {
            keep,
            delimiters,
            max_frame_length,
            strip: true,
            fail_fast: true,
            discarding: false,
            too_long_length: 0,
        })
    }

    /// Whether the delimiter is removed from each frame (default: yes).
    pub fn strip_delimiter(mut self, on: bool) -> Self {
        self.strip = on;
        self
    }

    /// Whether a too-long frame is reported as soon as it is detected
    /// (default: yes).
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    fn too_long(&self, len: usize) -> Error {
        Error::too_long_frame(format!(
            "frame of {len} bytes exceeds the limit of {} bytes",
            self.max_frame_length
        ))
    }
}

fn index_of(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() == 1 {
        return hay.iter().position(|&b| b == needle[0]);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

impl Decoder for DelimiterBasedFrameDecoder {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<Bytes>, Error> {
        let mut best: Option<(usize, usize)> = None;
        for d in &self.delimiters {
            if let Some(i) = index_of(src, d) {
                if best.is_none_or(|(b, _)| i < b) {
                    best = Some((i, d.len()));
                }
            }
        }
        match best {
            Some((len, dlen)) => {
                if self.discarding {
                    self.discarding = false;
                    src.advance(len.saturating_add(dlen));
                    let total = self.too_long_length;
                    self.too_long_length = 0;
                    if !self.fail_fast {
                        return Err(self.too_long(total));
                    }
                    return Ok(None);
                }
                if len > self.max_frame_length {
                    src.advance(len.saturating_add(dlen));
                    return Err(self.too_long(len));
                }
                if self.strip {
                    let f = src.split_to(len);
                    src.advance(dlen);
                    Ok(Some(f))
                } else {
                    Ok(Some(src.split_to(len.saturating_add(dlen))))
                }
            }
            None => {
                // The frame is at least `n - keep` bytes: its delimiter may
                // begin in the last `keep` bytes, which are kept.
                let n = src.len();
                let sure = n.saturating_sub(self.keep);
                if !self.discarding {
                    if sure > self.max_frame_length {
                        self.too_long_length = sure;
                        src.advance(sure);
                        self.discarding = true;
                        if self.fail_fast {
                            return Err(self.too_long(sure));
                        }
                    }
                } else {
                    self.too_long_length = self.too_long_length.saturating_add(sure);
                    src.advance(sure);
                }
                Ok(None)
            }
        }
    }
}
