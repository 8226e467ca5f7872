//! [`LineBasedFrameDecoder`]: frames ending in `\n` or `\r\n`.
//!
//! Contract: each line is a slice of the received bytes, with or without
//! its line ending (`strip_delimiter`, default: stripped). A line longer
//! than `max_length` is discarded up to and including its line ending, with
//! a too-long-frame error: at once when `fail_fast` (default: off, as in
//! Netty), after its end otherwise; decoding resumes with the next line.
//! Bytes already searched are not searched again when more arrive.

use bytes::Bytes;
use weft_core::Error;

use crate::{Cumulation, Decoder};

/// Default longest line: 8 KiB.
pub const DEFAULT_MAX_LINE_LENGTH: usize = 8 * 1024;

/// Splits lines.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{DecoderHandler, LineBasedFrameDecoder};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(LineBasedFrameDecoder::new(80)));
/// ch.write_inbound(&b"first\r\nsec"[..]);
/// ch.write_inbound(&b"ond\n"[..]);
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "first");
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "second");
/// ```
#[derive(Clone, Debug)]
pub struct LineBasedFrameDecoder {
    max_length: usize,
    strip: bool,
    fail_fast: bool,
    discarding: bool,
    discarded: usize,
    scanned: usize,
}

impl Default for LineBasedFrameDecoder {
    fn default() -> Self {
        LineBasedFrameDecoder::new(DEFAULT_MAX_LINE_LENGTH)
    }
}

impl LineBasedFrameDecoder {
    /// Lines of at most `max_length` bytes (line ending excluded), stripped,
    /// not fail-fast.
    pub fn new(max_length: usize) -> LineBasedFrameDecoder {
        LineBasedFrameDecoder {
            max_length,
            strip: true,
            fail_fast: false,
            discarding: false,
            discarded: 0,
            scanned: 0,
        }
    }

    /// Whether the line ending is removed from each frame (default: yes).
    pub fn strip_delimiter(mut self, on: bool) -> Self {
        self.strip = on;
        self
    }

    /// Whether a too-long line is reported as soon as it is detected.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }

    /// Index of the line ending (`\r` of `\r\n`, or `\n`) and its length.
    fn find_eol(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        let from = self.scanned.min(buf.len());
        match buf[from..].iter().position(|&b| b == b'\n') {
            Some(i) => {
                let i = from.saturating_add(i);
                self.scanned = 0;
                match i.checked_sub(1) {
                    Some(cr) if buf[cr] == b'\r' => Some((cr, 2)),
                    _ => Some((i, 1)),
                }
            }
            None => {
                self.scanned = buf.len();
                None
            }
        }
    }

    fn too_long(&self, len: usize) -> Error {
        Error::too_long_frame(format!(
            "line of {len} bytes exceeds the limit of {} bytes",
            self.max_length
        ))
    }
}

impl Decoder for LineBasedFrameDecoder {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<Bytes>, Error> {
        let eol = self.find_eol(src);
        if !self.discarding {
            match eol {
                Some((at, dlen)) => {
                    if at > self.max_length {
                        src.advance(at.saturating_add(dlen));
                        return Err(self.too_long(at));
                    }
                    if self.strip {
                        let frame = src.split_to(at);
                        src.advance(dlen);
                        Ok(Some(frame))
                    } else {
                        Ok(Some(src.split_to(at.saturating_add(dlen))))
                    }
                }
                None => {
                    let len = src.len();
                    if len > self.max_length {
                        self.discarded = len;
                        src.advance(len);
                        self.scanned = 0;
                        self.discarding = true;
                        if self.fail_fast {
                            return Err(Error::too_long_frame(format!(
                                "line of over {len} bytes exceeds the limit of {} bytes",
                                self.max_length
                            )));
                        }
                    }
                    Ok(None)
                }
            }
        } else {
            match eol {
                Some((at, dlen)) => {
                    let len = self.discarded.saturating_add(at);
                    src.advance(at.saturating_add(dlen));
                    self.discarded = 0;
                    self.discarding = false;
                    if !self.fail_fast {
                        return Err(self.too_long(len));
                    }
                    Ok(None)
                }
                None => {
                    self.discarded = self.discarded.saturating_add(src.len());
                    src.advance(src.len());
                    self.scanned = 0;
                    Ok(None)
                }
            }
        }
    }
}
