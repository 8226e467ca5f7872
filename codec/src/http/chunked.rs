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
/// and that no other CR comes before it; `Ok(None)` if no LF yet. A line
/// holds at most `limit` bytes before its CRLF (any `limit`, even
/// `usize::MAX`: nothing here can wrap).
fn find_crlf(b: &[u8], limit: usize) -> Result<Option<usize>, HttpError> {
    let window = &b[..b.len().min(limit.saturating_add(2))];
    match memchr::memchr(b'\n', window) {
        Some(0) => Err(chunked_error("a line ends with a lone LF")),
        Some(lf) => {
            let (line, cr) = window[..lf].split_at(lf.saturating_sub(1));
            if cr != b"\r" {
                return Err(chunked_error("a line ends with a lone LF"));
            }
            if line.contains(&b'\r') {
                return Err(chunked_error("a CR not followed by LF"));
            }
            Ok(Some(line.len()))
        }
        None if window.len() > limit.saturating_add(1) => {
            Err(chunked_error("a line is longer than the limit"))
        }
        None => {
            // A CR as the last byte may yet be followed by its LF.
            let before_last = window.split_last().map_or(&[][..], |(_, rest)| rest);
            if before_last.contains(&b'\r') {
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

/// A line's length with its CRLF: a line found in a buffer is shorter than
/// the buffer, so this cannot saturate in practice, and cannot wrap at all.
fn with_crlf(len: usize) -> usize {
    len.saturating_add(2)
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
                        let d = u64::from((c as char).to_digit(16)?);
                        n.checked_mul(16)?.checked_add(d)
                    });
                    let size = size.ok_or_else(|| chunked_error("a chunk size overflows"))?;
                    src.advance(with_crlf(end));
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
                    // At most what is buffered, so it fits a usize.
                    let n = usize::try_from(left).map_or(src.len(), |l| l.min(src.len()));
                    let data = src.split_to(n);
                    self.state = match left.checked_sub(n as u64) {
                        Some(0) | None => State::DataEnd,
                        Some(left) => State::Data(left),
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
                    // The section's lines, each with its CRLF, fit in
                    // `max_trailers`: this line may take what is left but
                    // its own CRLF.
                    let room = self.max_trailers.saturating_sub(self.trailer_bytes);
                    let Some(end) = find_crlf(src, room.saturating_sub(2)).map_err(|e| {
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
                    self.trailer_bytes = self.trailer_bytes.saturating_add(with_crlf(end));
                    src.advance(with_crlf(end));
                }
                State::Done => return Ok(None),
            }
        }
    }

    fn add_trailer(&mut self, line: &[u8]) -> Result<(), HttpError> {
        let bad = || HttpError::new(HttpErrorKind::Field, "a malformed trailer field");
        let colon = line.iter().position(|&c| c == b':').ok_or_else(bad)?;
        // HeaderName accepts tokens only: no space, no separator.
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii();
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

    /// What one decoder made of `input` fed in pieces of `step`: `Some`
    /// verdict (the end, or an error), or `None` if it still waited after
    /// all of it.
    fn verdict(
        max_line: usize,
        max_trailers: usize,
        input: &[u8],
        step: usize,
    ) -> Option<Result<(), HttpErrorKind>> {
        let mut d = ChunkedDecoder::new(max_line, max_trailers);
        let mut src = Cumulation::new();
        for piece in input.chunks(step.max(1)) {
            src.push(Bytes::copy_from_slice(piece));
            loop {
                match d.decode(&mut src) {
                    Ok(Some(ChunkedItem::End(_))) => return Some(Ok(())),
                    Ok(Some(ChunkedItem::Data(_))) => {}
                    Ok(None) => break,
                    Err(e) => return Some(Err(e.kind().clone())),
                }
            }
        }
        None
    }

    /// The trailer line that measured the wrap (issue 34, D1): one field
    /// line of exactly the section's limit used to wrap the room left,
    /// and the decoder then waited for ever, keeping every byte sent
    /// after it.
    #[test]
    fn a_trailer_line_of_exactly_the_limit_is_refused_not_awaited() {
        let limit = 8192;
        for line in [limit - 3, limit - 2, limit - 1, limit, limit + 1, limit + 2] {
            let mut input = b"0\r\nX-T: ".to_vec();
            input.resize(3 + line, b'a');
            input.extend_from_slice(b"\r\n\r\n");
            // What a peer sends after it: never part of the verdict.
            input.extend(std::iter::repeat_n(b'z', 3 * limit));
            let got = verdict(4096, limit, &input, 1000);
            let want = if line + 2 <= limit {
                Ok(())
            } else {
                Err(HttpErrorKind::HeadersTooLarge)
            };
            assert_eq!(got, Some(want), "a trailer line of {line} bytes");
        }
    }

    proptest::proptest! {
        /// Lines at `limit - 1`, `limit` and `limit + 1` (a size line with
        /// extensions, one trailer line, or a section of several), in any
        /// pieces, with bytes after them: the decoder always reaches a
        /// verdict, and it is the right one, before it has been given
        /// more than the limit and a line ending beyond what it needs.
        #[test]
        fn lines_at_the_limit_get_a_verdict(
            limit in 4usize..300,
            delta in 0usize..3,
            trailer in proptest::bool::ANY,
            fields in 1usize..4,
            step in 1usize..64,
        ) {
            let len = (limit + delta).saturating_sub(1); // limit - 1, limit, limit + 1
            let (input, fits) = if trailer {
                // `fields` lines sharing `len` bytes, CRLFs counted.
                let mut input = b"0\r\n".to_vec();
                let per = (len / fields).max(6);
                let mut total = 0;
                for f in 0..fields {
                    let mut l = format!("X-{f}: ").into_bytes();
                    l.resize(per.saturating_sub(2).max(l.len()), b'v');
                    total += l.len() + 2;
                    input.extend_from_slice(&l);
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(b"\r\n");
                (input, total <= limit)
            } else {
                let mut l = b"1;".to_vec();
                l.resize(len.max(2), b'e');
                let fits = l.len() <= limit;
                let mut input = l;
                input.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
                (input, fits)
            };
            let mut fed = input.clone();
            fed.extend(std::iter::repeat_n(b'z', limit + 3));
            let got = verdict(limit, limit, &fed, step);
            proptest::prop_assert!(got.is_some(), "no verdict for {} bytes", input.len());
            proptest::prop_assert_eq!(got.unwrap().is_ok(), fits);
        }
    }
}
