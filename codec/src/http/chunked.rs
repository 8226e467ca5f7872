//! The chunked transfer coding (RFC 9112 §7.1), decoded strictly and
//! incrementally.
//!
//! Contract:
//! - a chunk size is `1*HEXDIG` that fits 64 bits; extensions (`;name` or
//!   `;name=value`) are allowed but skipped, and the whole size line is
//!   bounded; every line ends with exactly CRLF — a lone LF or a CR not
//!   followed by LF is an error;
//! - chunk data is handed on as slices of the received bytes, as soon as
//!   they arrive (a chunk larger than a read is several slices), and must
//!   be followed by exactly CRLF;
//! - after the last chunk come trailer fields, each checked like a header
//!   field, bounded in total size and count, kept apart from the header
//!   section (never merged into it), and ended by an empty line.

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::error::{HttpError, HttpErrorKind};
use crate::Cumulation;

/// What one step of decoding yields.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ChunkedItem {
    /// Bytes of the body.
    Data(Bytes),
    /// The body is over; these are its trailers (often empty).
    End(HeaderMap),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading a size line.
    Size,
    /// Reading this many more bytes of chunk data.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// Reading trailer lines after the last chunk.
    Trailers,
    /// The body is over.
    Done,
}

/// Decodes one chunked body.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    max_line: usize,
    max_trailers: usize,
    trailer_bytes: usize,
    trailers: HeaderMap,
}

/// Most trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 64;

fn chunked_error(detail: impl Into<String>) -> HttpError {
    HttpError::new(HttpErrorKind::Chunked, detail)
}

/// The position of the first LF in `b`, checking that it is preceded by CR
/// and that no other CR comes before it; `Ok(None)` if no LF yet.
fn find_crlf(b: &[u8], limit: usize) -> Result<Option<usize>, HttpError> {
    let window = &b[..b.len().min(limit + 2)];
    match window.iter().position(|&c| c == b'\n') {
        Some(i) => {
            if i == 0 || window[i - 1] != b'\r' {
                return Err(chunked_error("a line ends with a lone LF"));
            }
            if window[..i - 1].contains(&b'\r') {
                return Err(chunked_error("a CR not followed by LF"));
            }
            Ok(Some(i - 1))
        }
        None if window.len() > limit + 1 => Err(chunked_error("a line is longer than the limit")),
        None => {
            if window[..window.len().saturating_sub(1)].contains(&b'\r') {
                return Err(chunked_error("a CR not followed by LF"));
            }
            Ok(None)
        }
    }
}

/// Checks a chunk extension list (`*( BWS ";" BWS name [ BWS "=" BWS value ] )`)
/// loosely enough for real clients and strictly enough to refuse garbage.
fn check_extensions(ext: &[u8]) -> Result<(), HttpError> {
    if ext.is_empty() {
        return Ok(());
    }
    if ext[0] != b';' && ext[0] != b' ' && ext[0] != b'\t' {
        return Err(chunked_error("a chunk size is not hexadecimal"));
    }
    let ok = ext
        .iter()
        .all(|&c| c == b'\t' || (0x20..0x7f).contains(&c) || c >= 0x80);
    if !ok || !ext.contains(&b';') {
        return Err(chunked_error("malformed chunk extensions"));
    }
    Ok(())
}

impl ChunkedDecoder {
    /// A decoder whose size lines (with extensions) are at most `max_line`
    /// bytes and whose trailer section is at most `max_trailers` bytes.
    pub(crate) fn new(max_line: usize, max_trailers: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::Size,
            max_line,
            max_trailers,
            trailer_bytes: 0,
            trailers: HeaderMap::new(),
        }
    }

    /// Decodes what `src` allows; `Ok(None)` when more bytes are needed.
    pub(crate) fn decode(
        &mut self,
        src: &mut Cumulation,
    ) -> Result<Option<ChunkedItem>, HttpError> {
        loop {
            match self.state {
                State::Size => {
                    let Some(end) = find_crlf(src, self.max_line)? else {
                        return Ok(None);
                    };
                    let line = &src[..end];
                    let digits = line.iter().take_while(|c| c.is_ascii_hexdigit()).count();
                    if digits == 0 {
                        return Err(chunked_error("a chunk size is missing"));
                    }
                    check_extensions(&line[digits..])?;
                    let size = line[..digits].iter().try_fold(0u64, |n, &c| {
                        let d = (c as char).to_digit(16)? as u64;
                        n.checked_mul(16)?.checked_add(d)
                    });
                    let size = size.ok_or_else(|| chunked_error("a chunk size overflows"))?;
                    src.advance(end + 2);
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(src.len() as u64) as usize;
                    let data = src.split_to(n);
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(ChunkedItem::Data(data)));
                }
                State::DataEnd => {
                    if src.len() < 2 {
                        if src.first().is_some_and(|&c| c != b'\r') {
                            return Err(chunked_error("chunk data is not followed by CRLF"));
                        }
                        return Ok(None);
                    }
                    if &src[..2] != b"\r\n" {
                        return Err(chunked_error("chunk data is not followed by CRLF"));
                    }
                    src.advance(2);
                    self.state = State::Size;
                }
                State::Trailers => {
                    let room = self.max_trailers - self.trailer_bytes;
                    let Some(end) = find_crlf(src, room).map_err(|e| {
                        if e.detail().contains("longer") {
                            HttpError::new(
                                HttpErrorKind::HeadersTooLarge,
                                "the trailer section is larger than the limit",
                            )
                        } else {
                            e
                        }
                    })?
                    else {
                        return Ok(None);
                    };
                    if end == 0 {
                        src.advance(2);
                        self.state = State::Done;
                        return Ok(Some(ChunkedItem::End(std::mem::take(&mut self.trailers))));
                    }
                    self.add_trailer(&src[..end])?;
                    self.trailer_bytes += end + 2;
                    src.advance(end + 2);
                }
                State::Done => return Ok(None),
            }
        }
    }

    fn add_trailer(&mut self, line: &[u8]) -> Result<(), HttpError> {
        let bad = || HttpError::new(HttpErrorKind::Field, "a malformed trailer field");
        let colon = line.iter().position(|&c| c == b':').ok_or_else(bad)?;
        // HeaderName accepts tokens only: no space, no separator.
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if self.trailers.len() >= MAX_TRAILER_FIELDS {
            return Err(HttpError::new(
                HttpErrorKind::HeadersTooLarge,
                "too many trailer fields",
            ));
        }
        let name = HeaderName::from_bytes(name).map_err(|_| bad())?;
        let value = HeaderValue::from_bytes(value).map_err(|_| bad())?;
        self.trailers.append(name, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes; returns the body, the
    /// trailers, or the error.
    fn run(input: &[u8], step: usize) -> Result<(Vec<u8>, HeaderMap), HttpErrorKind> {
        let mut d = ChunkedDecoder::new(64, 256);
        let mut src = Cumulation::new();
        let mut body = Vec::new();
        for piece in input.chunks(step.max(1)) {
            src.push(Bytes::copy_from_slice(piece));
            while let Some(item) = d.decode(&mut src).map_err(|e| e.kind().clone())? {
                match item {
                    ChunkedItem::Data(b) => body.extend_from_slice(&b),
                    ChunkedItem::End(t) => return Ok((body, t)),
                }
            }
        }
        Err(HttpErrorKind::RequestLine) // incomplete: not a chunked error
    }

    #[test]
    fn bodies_decode_whatever_the_pieces() {
        let input = b"5\r\nhello\r\n1;name=value\r\n \r\n0\r\nX-Sum: 42\r\n\r\n";
        for step in 1..input.len() {
            let (body, trailers) = run(input, step).unwrap();
            assert_eq!(body, b"hello ", "step {step}");
            assert_eq!(trailers["x-sum"], "42");
        }
    }

    #[test]
    fn data_is_a_slice_of_the_input() {
        let input = Bytes::from_static(b"a\r\n0123456789\r\n0\r\n\r\n");
        let mut d = ChunkedDecoder::new(64, 256);
        let mut src = Cumulation::new();
        src.push(input.clone());
        let Some(ChunkedItem::Data(b)) = d.decode(&mut src).unwrap() else {
            panic!("no data");
        };
        assert_eq!(b.as_ptr(), input[3..].as_ptr());
    }

    #[test]
    fn every_broken_grammar_is_an_error() {
        use HttpErrorKind::{Chunked, Field};
        let cases: &[(&[u8], HttpErrorKind)] = &[
            (b"5\nhello\r\n0\r\n\r\n", Chunked), // lone LF after the size
            (b"5\r\nhello\n0\r\n\r\n", Chunked), // lone LF after data
            (b"5\r\nhelloXX0\r\n\r\n", Chunked), // data not followed by CRLF
            (b"5\rx\r\nhello\r\n0\r\n\r\n", Chunked), // bare CR in the size line
            (b"g\r\n", Chunked),                 // not hexadecimal
            (b"\r\n", Chunked),                  // no size
            (b"-5\r\n", Chunked),                // sign
            (b"0x5\r\n", Chunked),               // prefix
            (b"5 x\r\nhello\r\n", Chunked),      // junk after the size
            (b"11111111111111111\r\n", Chunked), // 17 hex digits: overflow
            (
                b"1;aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                Chunked,
            ),
            (b"0\r\nbad trailer\r\n\r\n", Field),  // no colon
            (b"0\r\nBad Name: x\r\n\r\n", Field),  // space in the name
            (b"0\r\nX: a\nY: b\r\n\r\n", Chunked), // lone LF in trailers
        ];
        for (input, want) in cases {
            for step in [1, 3, input.len()] {
                assert_eq!(
                    run(input, step).map(|_| ()).as_ref(),
                    Err(want),
                    "{:?} in pieces of {step}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn trailers_are_bounded() {
        let mut input = b"0\r\n".to_vec();
        for i in 0..40 {
            input.extend_from_slice(format!("X-T{i}: value\r\n").as_bytes());
        }
        input.extend_from_slice(b"\r\n");
        assert_eq!(
            run(&input, 7).map(|_| ()),
            Err(HttpErrorKind::HeadersTooLarge)
        );
    }
}
