//! Limits at their boundary (issue 34: a trailer line of exactly the limit
//! once wrapped the room left and the decoder waited for ever). For each
//! decoder, inputs whose limited part is `limit - 1`, `limit` and
//! `limit + 1` bytes long, cut into random pieces: the verdict is the one
//! the limit's documentation gives (fits, or refused with its error or
//! status), it comes without waiting for more input than the limit, and
//! what the decoder holds never passes the limit by more than the framing
//! around it.

use bytes::Bytes;
use proptest::prelude::*;
use weft_codec::{
    Cumulation, Decoder, DelimiterBasedFrameDecoder, LengthFieldBasedFrameDecoder,
    LineBasedFrameDecoder,
};

/// What driving a decoder gave: its items and errors in order, and the
/// most it held buffered between two pieces.
struct Run<T> {
    items: Vec<T>,
    errors: usize,
    first_is_error: Option<bool>,
    most_held: usize,
}

/// Feeds `input` cut at `cuts` to `dec`, decoding after each piece as
/// `DecoderHandler` does (an error does not stop it).
fn drive<D: Decoder>(mut dec: D, input: &[u8], cuts: &[usize]) -> Run<D::Item> {
    let mut cuts = cuts.to_vec();
    cuts.sort_unstable();
    let mut cum = Cumulation::new();
    let mut run = Run {
        items: Vec::new(),
        errors: 0,
        first_is_error: None,
        most_held: 0,
    };
    let mut pos = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let c = c.clamp(pos, input.len());
        if c == pos {
            continue;
        }
        cum.push(Bytes::copy_from_slice(&input[pos..c]));
        pos = c;
        loop {
            let before = cum.len();
            match dec.decode(&mut cum) {
                Ok(Some(item)) => {
                    run.first_is_error.get_or_insert(false);
                    run.items.push(item);
                }
                Ok(None) if cum.len() < before && !cum.is_empty() => {}
                Ok(None) => break,
                Err(_) => {
                    run.first_is_error.get_or_insert(true);
                    run.errors += 1;
                    if cum.len() == before || cum.is_empty() {
                        break;
                    }
                }
            }
        }
        run.most_held = run.most_held.max(cum.len());
    }
    run
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A line of `limit - 1`, `limit`, `limit + 1` bytes (before its
    /// `\n`), then a short one: the first is a frame iff it fits, else a
    /// too-long error; the short line after it is decoded either way.
    #[test]
    fn lines_at_the_limit(
        limit in 2usize..300,
        delta in 0usize..3,
        fail_fast in any::<bool>(),
        cuts in proptest::collection::vec(0usize..400, 0..6),
    ) {
        let len = (limit + delta).saturating_sub(1);
        let mut input = vec![b'a'; len];
        input.extend_from_slice(b"\nok\n");
        let dec = LineBasedFrameDecoder::new(limit).fail_fast(fail_fast);
        let run = drive(dec, &input, &cuts);
        let fits = len <= limit;
        prop_assert_eq!(run.first_is_error, Some(!fits), "a line of {} for a limit of {}", len, limit);
        prop_assert_eq!(run.errors, usize::from(!fits));
        prop_assert_eq!(run.items.last().map(|b| &b[..]), Some(&b"ok"[..]));
        if fits {
            prop_assert_eq!(run.items[0].len(), len);
        }
        // Held: at most the limit, its line ending, and one piece's worth
        // that decoding could not take yet (the pieces are at most 400).
        prop_assert!(run.most_held <= limit + 2 + 400, "held {}", run.most_held);
    }

    /// The same with a delimiter of two bytes.
    #[test]
    fn delimited_frames_at_the_limit(
        limit in 2usize..300,
        delta in 0usize..3,
        cuts in proptest::collection::vec(0usize..400, 0..6),
    ) {
        let len = (limit + delta).saturating_sub(1);
        let mut input = vec![b'a'; len];
        input.extend_from_slice(b"##ok##");
        let dec = DelimiterBasedFrameDecoder::new(limit, [&b"##"[..]]).unwrap();
        let run = drive(dec, &input, &cuts);
        let fits = len <= limit;
        prop_assert_eq!(run.first_is_error, Some(!fits), "{} bytes, limit {}", len, limit);
        prop_assert_eq!(run.items.last().map(|b| &b[..]), Some(&b"ok"[..]));
    }

    /// A length-prefixed frame (4-byte field counting the payload) whose
    /// whole length, header included, is `limit - 1`, `limit`, `limit + 1`:
    /// a frame iff it fits (Netty's `maxFrameLength` counts the header),
    /// else a too-long error and the payload discarded, never buffered.
    #[test]
    fn length_prefixed_frames_at_the_limit(
        limit in 6usize..600,
        delta in 0usize..3,
        fail_fast in any::<bool>(),
        cuts in proptest::collection::vec(0usize..700, 0..6),
    ) {
        let total = (limit + delta).saturating_sub(1).max(4);
        let payload = total - 4;
        let mut input = (payload as u32).to_be_bytes().to_vec();
        input.resize(total, b'p');
        input.extend_from_slice(&2u32.to_be_bytes());
        input.extend_from_slice(b"ok");
        let dec = LengthFieldBasedFrameDecoder::builder()
            .max_frame_length(limit)
            .length_field_length(4)
            .initial_bytes_to_strip(4)
            .fail_fast(fail_fast)
            .build()
            .unwrap();
        let run = drive(dec, &input, &cuts);
        let fits = total <= limit;
        prop_assert_eq!(run.first_is_error, Some(!fits), "{} bytes, limit {}", total, limit);
        prop_assert_eq!(run.items.last().map(|b| &b[..]), Some(&b"ok"[..]));
        prop_assert!(run.most_held <= limit + 700, "held {}", run.most_held);
    }
}

#[cfg(feature = "http")]
mod http {
    use super::*;
    use weft_codec::http::{HttpRequestDecoder, HttpRequestPart};

    /// The status of the first part: 0 for a head, else the refusal's.
    fn verdict(run: &Run<HttpRequestPart>) -> Option<u16> {
        run.items.first().map(|p| match p {
            HttpRequestPart::Head { .. } => 0,
            HttpRequestPart::Invalid(e) => e.status().as_u16(),
            _ => 1,
        })
    }

    /// A request line of exactly `len` bytes (before its CRLF).
    fn request_line(len: usize) -> Vec<u8> {
        let fixed = "GET / HTTP/1.1".len();
        let mut line = b"GET /".to_vec();
        line.resize(len.max(fixed) - " HTTP/1.1".len(), b'a');
        line.extend_from_slice(b" HTTP/1.1\r\n");
        line
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A request line of `limit - 1`, `limit`, `limit + 1` bytes: a
        /// head iff it fits, else 414, decided within the limit's bytes.
        #[test]
        fn request_lines_at_the_limit(
            limit in 20usize..400,
            delta in 0usize..3,
            cuts in proptest::collection::vec(0usize..500, 0..6),
        ) {
            let len = limit + delta - 1;
            let mut input = request_line(len);
            input.extend_from_slice(b"Host: x\r\n\r\n");
            let dec = HttpRequestDecoder::new().max_request_line(limit).max_head(4096);
            let run = drive(dec, &input, &cuts);
            let want = if len <= limit { 0 } else { 414 };
            prop_assert_eq!(verdict(&run), Some(want), "a line of {} for {}", len, limit);
        }

        /// A head of `limit - 1`, `limit`, `limit + 1` bytes, final CRLF
        /// included: a head iff it fits, else 431; the decoder never holds
        /// more than the limit and one piece while it waits.
        #[test]
        fn heads_at_the_limit(
            limit in 64usize..2000,
            delta in 0usize..3,
            cuts in proptest::collection::vec(0usize..2100, 0..6),
        ) {
            let len = limit + delta - 1;
            let mut input = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ".to_vec();
            let pad = len - input.len() - 4;
            input.resize(input.len() + pad, b'p');
            input.extend_from_slice(b"\r\n\r\n");
            prop_assert_eq!(input.len(), len);
            let dec = HttpRequestDecoder::new().max_head(limit);
            let run = drive(dec, &input, &cuts);
            let want = if len <= limit { 0 } else { 431 };
            prop_assert_eq!(verdict(&run), Some(want), "a head of {} for {}", len, limit);
            prop_assert!(run.most_held <= limit + 2100, "held {}", run.most_held);
        }

        /// `limit - 1`, `limit`, `limit + 1` header fields: a head iff
        /// they fit, else 431.
        #[test]
        fn header_counts_at_the_limit(
            limit in 2usize..120,
            delta in 0usize..3,
            cuts in proptest::collection::vec(0usize..2000, 0..6),
        ) {
            let n = limit + delta - 1;
            // Host is one of them (HTTP/1.1 needs it).
            let mut input = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
            for i in 1..n {
                input.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
            }
            input.extend_from_slice(b"\r\n");
            let dec = HttpRequestDecoder::new().max_headers(limit);
            let run = drive(dec, &input, &cuts);
            let want = if n <= limit { 0 } else { 431 };
            prop_assert_eq!(verdict(&run), Some(want), "{} fields for {}", n, limit);
        }
    }
}
