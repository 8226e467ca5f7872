//! Length-prefixed frames: [`LengthFieldBasedFrameDecoder`] and
//! [`LengthFieldPrepender`].
//!
//! Contract (decoder), with Netty's option names and semantics:
//! - the length field is `length_field_length` bytes (1, 2, 3, 4 or 8) at
//!   `length_field_offset`, big or little endian; the frame's total length
//!   is `length + length_adjustment + length_field_offset +
//!   length_field_length`; `initial_bytes_to_strip` bytes are dropped from
//!   the front of each frame; frames are slices of the received bytes;
//! - a frame longer than `max_frame_length` is discarded, across reads if
//!   need be, with a too-long-frame error: at once when `fail_fast`, after
//!   the last discarded byte otherwise; decoding resumes with the next frame;
//! - a negative length (8-byte field) or a total shorter than the header is
//!   a corrupted-frame error; the header is skipped.
//!
//! Contract (prepender): the header and the payload go out as one
//! [`CompositeBytes`], the payload by reference; a length that does not fit
//! the field is an encode error.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use weft_core::{CompositeBytes, Context, Error, Handler, Msg, Promise};

use crate::{Cumulation, Decoder};

/// Byte order of a length field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ByteOrder {
    /// Most significant byte first (network order).
    #[default]
    BigEndian,
    /// Least significant byte first.
    LittleEndian,
}

/// A length field's shape, shared by the decoder and the prepender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Field {
    len: usize,
    order: ByteOrder,
}

impl Field {
    /// Netty's default: 4 bytes, big endian.
    const DEFAULT: Field = Field {
        len: 4,
        order: ByteOrder::BigEndian,
    };

    fn validate(self) -> Result<Field, Error> {
        if !matches!(self.len, 1 | 2 | 3 | 4 | 8) {
            return Err(Error::invalid_argument(format!(
                "length_field_length must be 1, 2, 3, 4 or 8 (got {})",
                self.len
            )));
        }
        Ok(self)
    }

    /// The field's value (`b` holds exactly the field).
    fn read(self, mut b: &[u8]) -> u64 {
        match self.order {
            ByteOrder::BigEndian => b.get_uint(self.len),
            ByteOrder::LittleEndian => b.get_uint_le(self.len),
        }
    }

    /// Largest value the field holds (8-byte fields are signed in Netty).
    fn max(self) -> u64 {
        match self.len {
            1 => 0xff,
            2 => 0xffff,
            3 => 0xff_ffff,
            4 => 0xffff_ffff,
            _ => i64::MAX as u64, // 8: `validate` allows nothing else
        }
    }

    /// The field holding `v` (at most [`max`](Self::max)), in a buffer of
    /// its own: it may wait in a slow reader's outbound buffer, where a
    /// [`small_bytes`](weft_core::small_bytes) piece would keep its whole
    /// chunk.
    fn encode(self, v: u64) -> Bytes {
        let mut h = BytesMut::with_capacity(self.len);
        match self.order {
            ByteOrder::BigEndian => h.put_uint(v, self.len),
            ByteOrder::LittleEndian => h.put_uint_le(v, self.len),
        }
        h.freeze()
    }
}

/// Default largest frame: 1 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: usize = 1024 * 1024;

/// Splits frames on a length field.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::{DecoderHandler, LengthFieldBasedFrameDecoder};
/// use weft_core::EmbeddedChannel;
///
/// // A 2-byte length, then the payload; strip the length.
/// let dec = LengthFieldBasedFrameDecoder::builder()
///     .length_field_length(2)
///     .initial_bytes_to_strip(2)
///     .build()
///     .unwrap();
/// let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(dec));
/// ch.write_inbound(&b"\x00\x05hello\x00\x01!"[..]);
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "hello");
/// assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "!");
/// ```
#[derive(Clone)]
pub struct LengthFieldBasedFrameDecoder {
    max_frame_length: usize,
    offset: usize,
    field: Field,
    adjustment: i64,
    strip: usize,
    fail_fast: bool,
    // Discard mode.
    discarding: bool,
    too_long_frame_length: u64,
    bytes_to_discard: u64,
}

/// Builds a [`LengthFieldBasedFrameDecoder`], validating its options.
#[derive(Clone, Debug)]
pub struct LengthFieldBasedFrameDecoderBuilder {
    max_frame_length: usize,
    offset: usize,
    field: Field,
    adjustment: i64,
    strip: usize,
    fail_fast: bool,
}

impl LengthFieldBasedFrameDecoder {
    /// A builder with Netty's defaults where it has them: a 4-byte
    /// big-endian length at offset 0, no adjustment, nothing stripped,
    /// fail-fast, and a 1 MiB limit.
    pub fn builder() -> LengthFieldBasedFrameDecoderBuilder {
        LengthFieldBasedFrameDecoderBuilder {
            max_frame_length: DEFAULT_MAX_FRAME_LENGTH,
            offset: 0,
            field: Field::DEFAULT,
            adjustment: 0,
            strip: 0,
            fail_fast: true,
        }
    }

    /// Netty's five-argument constructor.
    pub fn new(
        max_frame_length: usize,
        length_field_offset: usize,
        length_field_length: usize,
        length_adjustment: i64,
        initial_bytes_to_strip: usize,
    ) -> Result<Self, Error> {
        Self::builder()
            .max_frame_length(max_frame_length)
            .length_field_offset(length_field_offset)
            .length_field_length(length_field_length)
            .length_adjustment(length_adjustment)
            .initial_bytes_to_strip(initial_bytes_to_strip)
            .build()
    }

    fn header_len(&self) -> usize {
        // At most `max_frame_length`: checked when the decoder was built.
        self.offset.saturating_add(self.field.len)
    }

    fn discard(&mut self, src: &mut Cumulation) -> Result<(), Error> {
        let n = (self.bytes_to_discard.min(src.len() as u64)) as usize;
        src.advance(n);
        self.bytes_to_discard = self.bytes_to_discard.saturating_sub(n as u64);
        self.finish_discarding(false)
    }

    /// Leaves discard mode once every byte of the long frame is gone,
    /// reporting the error unless fail-fast already did.
    fn finish_discarding(&mut self, first: bool) -> Result<(), Error> {
        let len = self.too_long_frame_length;
        if self.bytes_to_discard == 0 {
            self.discarding = false;
            self.too_long_frame_length = 0;
            if !self.fail_fast || first {
                return Err(self.too_long(len));
            }
        } else if self.fail_fast && first {
            return Err(self.too_long(len));
        }
        Ok(())
    }

    fn too_long(&self, len: u64) -> Error {
        Error::too_long_frame(format!(
            "frame of {len} bytes exceeds the limit of {} bytes",
            self.max_frame_length
        ))
    }
}

impl LengthFieldBasedFrameDecoderBuilder {
    /// Largest frame accepted, header included (default 1 MiB).
    pub fn max_frame_length(mut self, n: usize) -> Self {
        self.max_frame_length = n;
        self
    }
    /// Where the length field starts.
    pub fn length_field_offset(mut self, n: usize) -> Self {
        self.offset = n;
        self
    }
    /// Size of the length field: 1, 2, 3, 4 or 8 bytes.
    pub fn length_field_length(mut self, n: usize) -> Self {
        self.field.len = n;
        self
    }
    /// Added to the length field's value to get the length of what follows it.
    pub fn length_adjustment(mut self, n: i64) -> Self {
        self.adjustment = n;
        self
    }
    /// Bytes dropped from the front of each frame.
    pub fn initial_bytes_to_strip(mut self, n: usize) -> Self {
        self.strip = n;
        self
    }
    /// Report a too-long frame as soon as its length is read (default) or
    /// only once it has been discarded.
    pub fn fail_fast(mut self, on: bool) -> Self {
        self.fail_fast = on;
        self
    }
    /// Byte order of the length field (default big endian).
    pub fn byte_order(mut self, order: ByteOrder) -> Self {
        self.field.order = order;
        self
    }
    /// Checks the options and builds the decoder.
    pub fn build(self) -> Result<LengthFieldBasedFrameDecoder, Error> {
        let field = self.field.validate()?;
        if self.max_frame_length == 0 {
            return Err(Error::invalid_argument("max_frame_length must be positive"));
        }
        if self
            .offset
            .checked_add(field.len)
            .is_none_or(|h| h > self.max_frame_length)
        {
            return Err(Error::invalid_argument(format!(
                "max_frame_length ({}) must be at least length_field_offset ({}) + length_field_length ({})",
                self.max_frame_length, self.offset, field.len
            )));
        }
        Ok(LengthFieldBasedFrameDecoder {
            max_frame_length: self.max_frame_length,
            offset: self.offset,
            field,
            adjustment: self.adjustment,
            strip: self.strip,
            fail_fast: self.fail_fast,
            discarding: false,
            too_long_frame_length: 0,
            bytes_to_discard: 0,
        })
    }
}

impl Decoder for LengthFieldBasedFrameDecoder {
    type Item = Bytes;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<Bytes>, Error> {
        if self.discarding {
            self.discard(src)?;
            if self.discarding {
                return Ok(None);
            }
        }
        let header = self.header_len();
        if src.len() < header {
            return Ok(None);
        }
        let raw = self.field.read(&src[self.offset..header]);
        if raw > self.field.max() {
            src.advance(header);
            return Err(Error::corrupted_frame(format!(
                "negative length field: {}",
                raw as i64
            )));
        }
        // Three values of at most 64 bits: an i128 holds their sum.
        let total = i128::from(raw)
            .saturating_add(i128::from(self.adjustment))
            .saturating_add(header as i128);
        if total < header as i128 {
            src.advance(header);
            return Err(Error::corrupted_frame(format!(
                "adjusted frame length ({total}) is shorter than the header ({header} bytes)"
            )));
        }
        if total > self.max_frame_length as i128 {
            let total = total.min(u64::MAX as i128) as u64;
            if total <= src.len() as u64 {
                src.advance(total as usize);
                return Err(self.too_long(total));
            }
            self.discarding = true;
            self.too_long_frame_length = total;
            self.bytes_to_discard = total.saturating_sub(src.len() as u64);
            src.advance(src.len());
            self.finish_discarding(true)?;
            return Ok(None);
        }
        let total = total as usize;
        if src.len() < total {
            return Ok(None);
        }
        if self.strip > total {
            src.advance(total);
            return Err(Error::corrupted_frame(format!(
                "initial_bytes_to_strip ({}) is more than the frame length ({total})",
                self.strip
            )));
        }
        src.advance(self.strip);
        Ok(Some(src.split_to(total.saturating_sub(self.strip))))
    }
}

impl fmt::Debug for LengthFieldBasedFrameDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LengthFieldBasedFrameDecoder")
            .field("max_frame_length", &self.max_frame_length)
            .field("length_field_offset", &self.offset)
            .field("length_field_length", &self.field.len)
            .field("length_adjustment", &self.adjustment)
            .field("initial_bytes_to_strip", &self.strip)
            .field("fail_fast", &self.fail_fast)
            .field("byte_order", &self.field.order)
            .finish()
    }
}

/// Puts a length field in front of each outbound `Bytes` or
/// `CompositeBytes`, without copying the payload.
///
/// ```
/// use bytes::Bytes;
/// use weft_codec::LengthFieldPrepender;
/// use weft_core::{CompositeBytes, EmbeddedChannel};
///
/// let mut ch = EmbeddedChannel::with_handler(LengthFieldPrepender::builder().length_field_length(2).build().unwrap());
/// let payload = Bytes::from_static(b"hello");
/// ch.write_outbound(payload.clone());
/// let out: CompositeBytes = ch.read_outbound().unwrap();
/// assert_eq!(out, &b"\x00\x05hello"[..]);
/// assert_eq!(out.chunks().nth(1).unwrap().as_ptr(), payload.as_ptr()); // not copied
/// ```
#[derive(Clone, Debug)]
pub struct LengthFieldPrepender {
    field: Field,
    adjustment: i64,
    includes_itself: bool,
}

/// Builds a [`LengthFieldPrepender`], validating its options.
#[derive(Clone, Debug)]
pub struct LengthFieldPrependerBuilder {
    field: Field,
    adjustment: i64,
    includes_itself: bool,
}

impl LengthFieldPrepender {
    /// A 4-byte big-endian length of the payload alone, by default.
    pub fn builder() -> LengthFieldPrependerBuilder {
        LengthFieldPrependerBuilder {
            field: Field::DEFAULT,
            adjustment: 0,
            includes_itself: false,
        }
    }

    /// A prepender with a `field_len`-byte big-endian length.
    pub fn new(field_len: usize) -> Result<LengthFieldPrepender, Error> {
        Self::builder().length_field_length(field_len).build()
    }

    /// The header for a payload of `len` bytes.
    pub fn header(&self, len: usize) -> Result<Bytes, Error> {
        let mut v = (len as i128).saturating_add(i128::from(self.adjustment));
        if self.includes_itself {
            v = v.saturating_add(self.field.len as i128);
        }
        if v < 0 || v > self.field.max() as i128 {
            return Err(Error::encode(format!(
                "length {v} does not fit a {}-byte length field",
                self.field.len
            )));
        }
        Ok(self.field.encode(v as u64))
    }
}

impl LengthFieldPrependerBuilder {
    /// Size of the length field: 1, 2, 3, 4 or 8 bytes.
    pub fn length_field_length(mut self, n: usize) -> Self {
        self.field.len = n;
        self
    }
    /// Added to the payload length.
    pub fn length_adjustment(mut self, n: i64) -> Self {
        self.adjustment = n;
        self
    }
    /// Whether the length counts the length field too.
    pub fn length_includes_length_field(mut self, on: bool) -> Self {
        self.includes_itself = on;
        self
    }
    /// Byte order of the length field.
    pub fn byte_order(mut self, order: ByteOrder) -> Self {
        self.field.order = order;
        self
    }
    /// Checks the options and builds the prepender.
    pub fn build(self) -> Result<LengthFieldPrepender, Error> {
        Ok(LengthFieldPrepender {
            field: self.field.validate()?,
            adjustment: self.adjustment,
            includes_itself: self.includes_itself,
        })
    }
}

#[weft_core::handler]
impl Handler for LengthFieldPrepender {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        let mut out = match msg {
            Msg::Bytes(b) => CompositeBytes::from(b),
            Msg::Composite(c) => c,
            other => return ctx.write_with(other, promise),
        };
        match self.header(out.len()) {
            Ok(h) => {
                out.push_front(h);
                ctx.write_with(Msg::Composite(out), promise);
            }
            Err(e) => crate::encoder::fail_write(ctx, e, promise),
        }
    }
}
