//! Text codecs: [`StringDecoder`], [`StringEncoder`], [`LineEncoder`].
//!
//! Contract: text is UTF-8. Invalid UTF-8 is a decode error unless lossy
//! decoding was asked for (invalid sequences become U+FFFD). Encoding a
//! `String` never copies it: its buffer becomes the `Bytes`.

use bytes::Bytes;
use weft_core::{CompositeBytes, Error, Msg};

use crate::{MessageDecoder, MessageEncoder};

/// `Bytes` → `String` (put it after a frame decoder).
///
/// ```
/// use weft_codec::{MessageDecoderHandler, StringDecoder};
/// use weft_core::EmbeddedChannel;
///
/// let mut ch = EmbeddedChannel::with_handler(MessageDecoderHandler::new(StringDecoder::new()));
/// ch.write_inbound("héllo");
/// assert_eq!(ch.read_inbound::<String>().unwrap(), "héllo");
/// ch.write_inbound(&b"\xff"[..]);
/// assert!(ch.check_exception().unwrap_err().is_codec());
/// ```
#[derive(Clone, Debug, Default)]
pub struct StringDecoder {
    lossy: bool,
}

impl StringDecoder {
    /// A strict decoder.
    pub fn new() -> StringDecoder {
        StringDecoder { lossy: false }
    }

    /// A decoder that replaces invalid sequences with U+FFFD.
    pub fn lossy() -> StringDecoder {
        StringDecoder { lossy: true }
    }
}

impl MessageDecoder for StringDecoder {
    type In = Bytes;
    fn decode(&mut self, msg: Bytes, out: &mut Vec<Msg>) -> Result<(), Error> {
        let s = match std::str::from_utf8(&msg) {
            Ok(s) => s.to_owned(),
            Err(e) if !self.lossy => {
                return Err(Error::decode(format!("invalid UTF-8: {e}")));
            }
            Err(_) => String::from_utf8_lossy(&msg).into_owned(),
        };
        out.push(Msg::user(s));
        Ok(())
    }
}

/// `String` → `Bytes`, without a copy.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{MessageEncoderHandler, StringEncoder};
/// use weft_core::{EmbeddedChannel, Msg};
///
/// let mut ch = EmbeddedChannel::with_handler(MessageEncoderHandler::new(StringEncoder));
/// ch.write_outbound(Msg::user(String::from("hi")));
/// assert_eq!(ch.read_outbound::<Bytes>().unwrap(), "hi");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct StringEncoder;

impl MessageEncoder for StringEncoder {
    type In = String;
    fn encode(&mut self, msg: String, out: &mut Vec<Msg>) -> Result<(), Error> {
        out.push(Msg::Bytes(Bytes::from(msg)));
        Ok(())
    }
}

/// `String` → the string and a line ending, as a two-chunk composite (no copy).
///
/// ```
/// use weft_codec::{LineEncoder, MessageEncoderHandler};
/// use weft_core::{EmbeddedChannel, Msg};
///
/// let mut ch = EmbeddedChannel::with_handler(MessageEncoderHandler::new(LineEncoder::crlf()));
/// ch.write_outbound(Msg::user(String::from("hi")));
/// assert_eq!(ch.read_outbound_bytes(), &b"hi\r\n"[..]);
/// // A String is text wherever it is written from: `Msg::from` keeps it one.
/// ch.write_outbound(format!("{} apples", 3));
/// assert_eq!(ch.read_outbound_bytes(), &b"3 apples\r\n"[..]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LineEncoder {
    ending: &'static [u8],
}

impl Default for LineEncoder {
    fn default() -> Self {
        LineEncoder::lf()
    }
}

impl LineEncoder {
    /// Lines end with `\n`.
    pub fn lf() -> LineEncoder {
        LineEncoder { ending: b"\n" }
    }
    /// Lines end with `\r\n`.
    pub fn crlf() -> LineEncoder {
        LineEncoder { ending: b"\r\n" }
    }
}

impl MessageEncoder for LineEncoder {
    type In = String;
    fn encode(&mut self, msg: String, out: &mut Vec<Msg>) -> Result<(), Error> {
        let mut c = CompositeBytes::with_capacity(2);
        c.push(Bytes::from(msg));
        c.push(Bytes::from_static(self.ending));
        out.push(Msg::Composite(c));
        Ok(())
    }
}
