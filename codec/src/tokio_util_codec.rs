//! tokio-util interop: any `tokio_util::codec::Decoder` or `Encoder` in a
//! weft pipeline, unchanged.
//!
//! Contract: [`TokioDecoder`] runs a tokio-util decoder against the
//! cumulation's `BytesMut` (tokio-util decoders need one; the bytes are
//! copied only when they are shared), including `decode_eof` at end of
//! input; its errors become decode errors. [`TokioEncoder`] encodes items of
//! type `I` into a `BytesMut` and writes it as `Bytes`.
//!
//! ```
//! use bytes::Bytes;
//! use tokio_util::codec::LinesCodec;
//! use weft_codec::tokio_util_codec::TokioDecoder;
//! use weft_codec::DecoderHandler;
//! use weft_core::EmbeddedChannel;
//!
//! let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(TokioDecoder::new(LinesCodec::new())));
//! ch.write_inbound(&b"one\ntwo\n"[..]);
//! assert_eq!(ch.read_inbound::<String>().unwrap(), "one");
//! assert_eq!(ch.read_inbound::<String>().unwrap(), "two");
//! ```

use std::fmt;
use std::marker::PhantomData;

use bytes::BytesMut;
use weft_core::{CompositeBytes, Error};

use crate::{Cumulation, Decoder, Encoder};

/// A tokio-util decoder as a weft [`Decoder`].
pub struct TokioDecoder<D> {
    inner: D,
}

impl<D> TokioDecoder<D> {
    /// Wraps a tokio-util decoder.
    pub fn new(inner: D) -> Self {
        TokioDecoder { inner }
    }
}

fn convert<E: std::fmt::Display>(e: E) -> Error {
    Error::decode(e.to_string())
}

impl<D> Decoder for TokioDecoder<D>
where
    D: tokio_util::codec::Decoder + Send + 'static,
    D::Item: Send + 'static,
    D::Error: std::fmt::Display,
{
    type Item = D::Item;
    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<D::Item>, Error> {
        if src.is_empty() {
            return Ok(None);
        }
        self.inner.decode(src.as_bytes_mut()).map_err(convert)
    }
    fn decode_eof(&mut self, src: &mut Cumulation) -> Result<Option<D::Item>, Error> {
        self.inner.decode_eof(src.as_bytes_mut()).map_err(convert)
    }
}

/// A tokio-util encoder of `I` as a weft [`Encoder`].
pub struct TokioEncoder<E, I> {
    inner: E,
    _i: PhantomData<fn(I)>,
}

impl<E, I> TokioEncoder<E, I> {
    /// Wraps a tokio-util encoder.
    pub fn new(inner: E) -> Self {
        TokioEncoder {
            inner,
            _i: PhantomData,
        }
    }
}

impl<E, I> Encoder for TokioEncoder<E, I>
where
    E: tokio_util::codec::Encoder<I> + Send + 'static,
    E::Error: std::fmt::Display,
    I: Send + 'static,
{
    type Item = I;
    fn encode(&mut self, item: I, out: &mut CompositeBytes) -> Result<(), Error> {
        let mut buf = BytesMut::new();
        self.inner
            .encode(item, &mut buf)
            .map_err(|e| Error::encode(e.to_string()))?;
        out.push(buf.freeze());
        Ok(())
    }
}

impl<D> fmt::Debug for TokioDecoder<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioDecoder")
            .field("inner", &std::any::type_name::<D>())
            .finish()
    }
}

impl<E, I> fmt::Debug for TokioEncoder<E, I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokioEncoder")
            .field("inner", &std::any::type_name::<E>())
            .finish()
    }
}
