//! [`BodyDecoder`]: the body after a head, as both decoders (requests and
//! responses) read it — slices of the received bytes, then an end.
//!
//! Contract: a `Content-Length` body yields each read's bytes as they come
//! and ends with the last of them; a chunked body yields each chunk's data
//! and ends with the trailers; a body delimited by the connection yields
//! every read and ends only at end of input (the caller says so). Nothing
//! is copied; a framing violation is the chunked decoder's `HttpError`.

use bytes::Bytes;
use http::HeaderMap;

use super::chunked::{ChunkedDecoder, ChunkedItem};
use super::error::HttpError;
use super::framing::BodyFraming;
use super::request::BodyKind;
use crate::Cumulation;

/// One piece of a body.
#[derive(Debug)]
pub(crate) enum BodyItem {
    Data(Bytes),
    /// The body is over: its last bytes and a chunked body's trailers.
    End {
        data: Bytes,
        trailers: HeaderMap,
    },
}

/// What is left of a body.
#[derive(Debug)]
pub(crate) enum BodyDecoder {
    Length(u64),
    Chunked(Box<ChunkedDecoder>),
    UntilClose,
}

impl BodyDecoder {
    /// The decoder for a body with `framing` (`None`: no body) and the kind
    /// announced with the head.
    pub(crate) fn new(
        framing: BodyFraming,
        max_chunk_line: usize,
        max_trailers: usize,
    ) -> (Option<BodyDecoder>, BodyKind) {
        match framing {
            BodyFraming::Empty => (None, BodyKind::Empty),
            BodyFraming::Length(n) => (Some(BodyDecoder::Length(n)), BodyKind::Length(n)),
            BodyFraming::Chunked => (
                Some(BodyDecoder::Chunked(Box::new(ChunkedDecoder::new(
                    max_chunk_line,
                    max_trailers,
                )))),
                BodyKind::Chunked,
            ),
            BodyFraming::UntilClose => (Some(BodyDecoder::UntilClose), BodyKind::UntilClose),
        }
    }

    /// The next piece, `Ok(None)` when more bytes are needed.
    pub(crate) fn decode(&mut self, src: &mut Cumulation) -> Result<Option<BodyItem>, HttpError> {
        match self {
            BodyDecoder::Length(_) | BodyDecoder::UntilClose if src.is_empty() => Ok(None),
            BodyDecoder::Length(left) => {
                let n = (*left).min(src.len() as u64) as usize;
                let data = src.split_to(n);
                *left = left.saturating_sub(n as u64);
                Ok(Some(if *left == 0 {
                    // The last bytes end the body (as Netty's
                    // LastHttpContent): every item consumes input.
                    BodyItem::End {
                        data,
                        trailers: HeaderMap::new(),
                    }
                } else {
                    BodyItem::Data(data)
                }))
            }
            BodyDecoder::UntilClose => {
                let n = src.len();
                Ok(Some(BodyItem::Data(src.split_to(n))))
            }
            BodyDecoder::Chunked(c) => Ok(c.decode(src)?.map(|item| match item {
                ChunkedItem::Data(b) => BodyItem::Data(b),
                ChunkedItem::End(trailers) => BodyItem::End {
                    data: Bytes::new(),
                    trailers,
                },
            })),
        }
    }
}
