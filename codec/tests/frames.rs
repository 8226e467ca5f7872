//! Frame decoders through EmbeddedChannel: splits, Netty's worked examples,
//! too-long recovery, zero-copy, tokio-util interop, random input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use weft_codec::{
    ByteOrder, Decoder, DecoderHandler, DelimiterBasedFrameDecoder, FixedLengthFrameDecoder,
    LengthFieldBasedFrameDecoder, LengthFieldPrepender, LineBasedFrameDecoder,
};
use weft_core::{CompositeBytes, EmbeddedChannel, Error};

/// Feeds `input` cut at `cuts` and returns the frames and the errors.
fn run<D: Decoder<Item = Bytes>>(dec: D, input: &[u8], cuts: &[usize]) -> (Vec<Bytes>, Vec<Error>) {
    let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(dec).close_on_error(false));
    let mut pos = 0;
    for &c in cuts.iter().chain(std::iter::once(&input.len())) {
        let c = c.clamp(pos, input.len());
        if c > pos {
            ch.write_inbound(Bytes::copy_from_slice(&input[pos..c]));
        }
        pos = c;
    }
    let mut frames = Vec::new();
    while let Some(f) = ch.read_inbound::<Bytes>() {
        frames.push(f);
    }
    let mut errors = Vec::new();
    while let Err(e) = ch.check_exception() {
        errors.push(e);
    }
    (frames, errors)
}

fn seeded_cuts(seed: u64, len: usize) -> Vec<usize> {
    let mut x = seed | 1;
    let mut cuts = Vec::new();
    let mut pos = 0;
    while pos < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pos += 1 + (x % 23) as usize;
        cuts.push(pos);
    }
    cuts
}

/// The same frames (and the same errors) for every way of splitting.
fn same_for_every_split<D: Decoder<Item = Bytes> + Clone>(dec: D, input: &[u8]) -> Vec<Bytes> {
    let (whole, whole_err) = run(dec.clone(), input, &[]);
    let one_at_a_time: Vec<usize> = (1..input.len()).collect();
    let (bytewise, bytewise_err) = run(dec.clone(), input, &one_at_a_time);
    assert_eq!(whole, bytewise, "one byte at a time");
    assert_eq!(
        whole_err.len(),
        bytewise_err.len(),
        "errors, one byte at a time"
    );
    for seed in 1..20 {
        let (split, split_err) = run(dec.clone(), input, &seeded_cuts(seed, input.len()));
        assert_eq!(whole, split, "random split {seed}");
        assert_eq!(
            whole_err.len(),
            split_err.len(),
            "errors, random split {seed}"
        );
    }
    whole
}

#[test]
fn every_decoder_is_split_independent() {
    let mut lf = Vec::new();
    for i in 0..50u32 {
        let payload = format!("frame-{i}-{}", "x".repeat((i * 7 % 40) as usize));
        lf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        lf.extend_from_slice(payload.as_bytes());
    }
    let dec = LengthFieldBasedFrameDecoder::new(1024, 0, 4, 0, 4).unwrap();
    assert_eq!(same_for_every_split(dec, &lf).len(), 50);

    let text = b"alpha\r\nbeta\ngamma\r\n\ndelta\n".repeat(5);
    let frames = same_for_every_split(LineBasedFrameDecoder::new(64), &text);
    assert_eq!(frames.len(), 25);
    assert_eq!(frames[0], "alpha");
    assert_eq!(frames[3], "");

    let d = DelimiterBasedFrameDecoder::new(64, [&b"||"[..], &b";"[..]]).unwrap();
    let frames = same_for_every_split(d, &b"a||bb;ccc||;dddd".repeat(4));
    assert_eq!(frames.len(), 16);

    let frames = same_for_every_split(FixedLengthFrameDecoder::new(7).unwrap(), &[9u8; 100]);
    assert_eq!(frames.len(), 14);
}

/// The seven worked examples of Netty's LengthFieldBasedFrameDecoder docs.
#[test]
fn netty_documentation_examples() {
    let hello = b"HELLO, WORLD";
    let cat = |parts: &[&[u8]]| parts.concat();
    #[allow(clippy::type_complexity)]
    let cases: [(usize, usize, i64, usize, Vec<u8>, Vec<u8>); 7] = [
        // offset, length, adjustment, strip, input, expected frame
        (
            0,
            2,
            0,
            0,
            cat(&[b"\x00\x0C", hello]),
            cat(&[b"\x00\x0C", hello]),
        ),
        (0, 2, 0, 2, cat(&[b"\x00\x0C", hello]), hello.to_vec()),
        (
            0,
            2,
            -2,
            0,
            cat(&[b"\x00\x0E", hello]),
            cat(&[b"\x00\x0E", hello]),
        ),
        (
            2,
            3,
            0,
            0,
            cat(&[b"\xCA\xFE\x00\x00\x0C", hello]),
            cat(&[b"\xCA\xFE\x00\x00\x0C", hello]),
        ),
        (
            0,
            3,
            2,
            0,
            cat(&[b"\x00\x00\x0C\xCA\xFE", hello]),
            cat(&[b"\x00\x00\x0C\xCA\xFE", hello]),
        ),
        (
            1,
            2,
            1,
            3,
            cat(&[b"\xCA\x00\x0C\xFE", hello]),
            cat(&[b"\xFE", hello]),
        ),
        (
            1,
            2,
            -3,
            3,
            cat(&[b"\xCA\x00\x10\xFE", hello]),
            cat(&[b"\xFE", hello]),
        ),
    ];
    for (i, (off, len, adj, strip, input, want)) in cases.into_iter().enumerate() {
        let dec = LengthFieldBasedFrameDecoder::new(1024, off, len, adj, strip).unwrap();
        let frames = same_for_every_split(dec, &input);
        assert_eq!(frames.len(), 1, "example {}", i + 1);
        assert_eq!(&frames[0][..], &want[..], "example {}", i + 1);
    }
}

#[test]
fn length_field_sizes_and_byte_orders() {
    for (len, order) in [
        (1, ByteOrder::BigEndian),
        (2, ByteOrder::LittleEndian),
        (3, ByteOrder::BigEndian),
        (4, ByteOrder::LittleEndian),
        (8, ByteOrder::BigEndian),
    ] {
        let pre = LengthFieldPrepender::builder()
            .length_field_length(len)
            .byte_order(order)
            .build()
            .unwrap();
        let header = pre.header(5).unwrap();
        assert_eq!(header.len(), len);
        let dec = LengthFieldBasedFrameDecoder::builder()
            .length_field_length(len)
            .byte_order(order)
            .initial_bytes_to_strip(len)
            .build()
            .unwrap();
        let input = [&header[..], b"hello"].concat();
        assert_eq!(
            same_for_every_split(dec, &input),
            vec![Bytes::from_static(b"hello")]
        );
    }
    assert!(
        LengthFieldBasedFrameDecoder::builder()
            .length_field_length(5)
            .build()
            .unwrap_err()
            .kind()
            == weft_core::ErrorKind::InvalidArgument
    );
    assert!(
        LengthFieldBasedFrameDecoder::builder()
            .max_frame_length(3)
            .build()
            .unwrap_err()
            .kind()
            == weft_core::ErrorKind::InvalidArgument
    );
    let one = LengthFieldPrepender::new(1).unwrap();
    assert!(one.header(256).unwrap_err().is_codec());
    let incl = LengthFieldPrepender::builder()
        .length_field_length(2)
        .length_includes_length_field(true)
        .build()
        .unwrap();
    assert_eq!(&incl.header(3).unwrap()[..], b"\x00\x05");
}

#[test]
fn corrupted_lengths() {
    // 8-byte negative length.
    let dec = LengthFieldBasedFrameDecoder::builder()
        .length_field_length(8)
        .build()
        .unwrap();
    let (frames, errs) = run(dec, &(-5i64).to_be_bytes(), &[]);
    assert!(frames.is_empty());
    assert!(
        errs[0].kind() == weft_core::ErrorKind::CorruptedFrame,
        "{}",
        errs[0]
    );
    // Adjusted length shorter than the header.
    let dec = LengthFieldBasedFrameDecoder::new(100, 0, 2, -5, 0).unwrap();
    let (_, errs) = run(dec, b"\x00\x01xyz", &[]);
    assert!(
        errs[0].kind() == weft_core::ErrorKind::CorruptedFrame,
        "{}",
        errs[0]
    );
}

fn lf_frame(payload: &[u8]) -> Vec<u8> {
    [&(payload.len() as u32).to_be_bytes()[..], payload].concat()
}

#[test]
fn too_long_length_field_frame_is_discarded_then_decoding_resumes() {
    let mut input = lf_frame(&[1u8; 100]); // too long
    input.extend(lf_frame(b"ok"));
    for fail_fast in [true, false] {
        for cuts in [vec![], (1..input.len()).collect::<Vec<_>>(), vec![10, 50]] {
            let dec = LengthFieldBasedFrameDecoder::builder()
                .max_frame_length(20)
                .initial_bytes_to_strip(4)
                .fail_fast(fail_fast)
                .build()
                .unwrap();
            let (frames, errs) = run(dec, &input, &cuts);
            assert_eq!(
                frames,
                vec![Bytes::from_static(b"ok")],
                "fail_fast={fail_fast} cuts={cuts:?}"
            );
            assert_eq!(errs.len(), 1, "fail_fast={fail_fast}");
            assert!(errs[0].kind() == weft_core::ErrorKind::TooLongFrame);
        }
    }
}

#[test]
fn fail_fast_reports_before_the_frame_is_discarded() {
    let frame = lf_frame(&[1u8; 100]);
    let dec = LengthFieldBasedFrameDecoder::builder()
        .max_frame_length(20)
        .build()
        .unwrap();
    let (_, errs) = run(dec.clone(), &frame[..10], &[]);
    assert_eq!(errs.len(), 1, "fail-fast: reported with the first bytes");
    let slow = LengthFieldBasedFrameDecoder::builder()
        .max_frame_length(20)
        .fail_fast(false)
        .build()
        .unwrap();
    let (_, errs) = run(slow, &frame[..10], &[]);
    assert!(errs.is_empty(), "not fail-fast: reported once discarded");
}

#[test]
fn too_long_line_then_good_lines() {
    let input = [&b"x".repeat(50)[..], b"\r\nshort\nalso\r\n"].concat();
    for strip in [true, false] {
        for fail_fast in [true, false] {
            for cuts in [vec![], (1..input.len()).collect::<Vec<_>>(), vec![20, 51]] {
                let dec = LineBasedFrameDecoder::new(10)
                    .strip_delimiter(strip)
                    .fail_fast(fail_fast);
                let (frames, errs) = run(dec, &input, &cuts);
                let want: Vec<&[u8]> = if strip {
                    vec![b"short", b"also"]
                } else {
                    vec![b"short\n", b"also\r\n"]
                };
                assert_eq!(
                    frames, want,
                    "strip={strip} fail_fast={fail_fast} cuts={cuts:?}"
                );
                assert_eq!(errs.len(), 1);
                assert!(errs[0].kind() == weft_core::ErrorKind::TooLongFrame);
            }
        }
    }
    // Delimiter-based, too.
    for fail_fast in [true, false] {
        let d = DelimiterBasedFrameDecoder::new(10, [b";"])
            .unwrap()
            .fail_fast(fail_fast);
        let (frames, errs) = run(d, &[&b"y".repeat(30)[..], b";ok;"].concat(), &[5, 15, 25]);
        assert_eq!(frames, vec![Bytes::from_static(b"ok")]);
        assert_eq!(errs.len(), 1);
    }
}

#[test]
fn frames_are_slices_of_the_read() {
    let read = Bytes::from([lf_frame(b"first"), lf_frame(b"second")].concat());
    let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(
        LengthFieldBasedFrameDecoder::new(100, 0, 4, 0, 4).unwrap(),
    ));
    ch.write_inbound(read.clone());
    let range = read.as_ptr() as usize..read.as_ptr() as usize + read.len();
    for want in ["first", "second"] {
        let f: Bytes = ch.read_inbound().unwrap();
        assert_eq!(f, want);
        assert!(
            range.contains(&(f.as_ptr() as usize)),
            "frame copied out of the read"
        );
    }
}

#[test]
fn prepender_payload_is_the_input() {
    let mut ch = EmbeddedChannel::with_handler(LengthFieldPrepender::new(4).unwrap());
    let payload = Bytes::from(vec![5u8; 1000]);
    ch.write_outbound(payload.clone());
    let out: CompositeBytes = ch.read_outbound().unwrap();
    assert_eq!(out.chunk_count(), 2);
    let chunk = out.chunks().nth(1).unwrap();
    assert_eq!(chunk.as_ptr(), payload.as_ptr());
    assert_eq!(chunk.len(), payload.len());
    assert_eq!(&out.chunks().next().unwrap()[..], &1000u32.to_be_bytes());
}

#[test]
fn decoder_removed_hands_leftover_on() {
    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "lines",
            DecoderHandler::new(LineBasedFrameDecoder::new(100)),
        )
        .build();
    ch.write_inbound(&b"line\nrest-of-stream"[..]);
    assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "line");
    ch.pipeline_mut().remove("lines").unwrap();
    assert_eq!(ch.read_inbound::<Bytes>().unwrap(), "rest-of-stream");
}

#[test]
fn decode_error_closes_by_default() {
    let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(LineBasedFrameDecoder::new(4)));
    ch.write_inbound(&b"much too long\n"[..]);
    assert!(ch.check_exception().unwrap_err().kind() == weft_core::ErrorKind::TooLongFrame);
    assert!(!ch.is_open());
}

#[test]
fn a_decoder_that_consumes_nothing_is_an_error_not_a_loop() {
    struct Stuck;
    impl Decoder for Stuck {
        type Item = u8;
        fn decode(&mut self, src: &mut weft_codec::Cumulation) -> Result<Option<u8>, Error> {
            Ok(src.first().copied())
        }
    }
    let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(Stuck));
    ch.write_inbound(&b"x"[..]);
    let e = ch.check_exception().unwrap_err();
    assert!(
        e.is_codec() && e.to_string().contains("without consuming"),
        "{e}"
    );
}

#[test]
fn tokio_util_codecs_in_a_pipeline() {
    use tokio_util::codec::{LengthDelimitedCodec, LinesCodec};
    use weft_codec::tokio_util_codec::{TokioDecoder, TokioEncoder};
    use weft_codec::EncoderHandler;

    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "dec",
            DecoderHandler::new(TokioDecoder::new(LinesCodec::new())),
        )
        .add_last(
            "enc",
            EncoderHandler::new(TokioEncoder::<_, String>::new(LinesCodec::new())),
        )
        .build();
    ch.write_inbound(&b"hello\nwor"[..]);
    ch.write_inbound(&b"ld\n"[..]);
    assert_eq!(ch.read_inbound::<String>().unwrap(), "hello");
    assert_eq!(ch.read_inbound::<String>().unwrap(), "world");
    ch.write_outbound(weft_core::Msg::user(String::from("out")));
    assert_eq!(ch.read_outbound_bytes(), &b"out\n"[..]);

    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "dec",
            DecoderHandler::new(TokioDecoder::new(LengthDelimitedCodec::new())),
        )
        .add_last(
            "enc",
            EncoderHandler::new(TokioEncoder::<_, Bytes>::new(LengthDelimitedCodec::new())),
        )
        .build();
    let mut input = Vec::new();
    input.extend_from_slice(&3u32.to_be_bytes());
    input.extend_from_slice(b"abc");
    for b in input {
        ch.write_inbound(Bytes::copy_from_slice(&[b]));
    }
    assert_eq!(&ch.read_inbound::<BytesMut>().unwrap()[..], b"abc");
    ch.write_outbound(Bytes::from_static(b"xy"));
    assert_eq!(ch.read_outbound_bytes(), &b"\x00\x00\x00\x02xy"[..]);
}

/// Drives a decoder as DecoderHandler does (errors do not stop it) and
/// checks that what it keeps buffered stays bounded.
fn feed_random<D: Decoder>(mut dec: D, data: &[u8], cuts: &[usize], bound: usize) {
    let mut cum = weft_codec::Cumulation::new();
    let mut pos = 0;
    for &c in cuts.iter().chain(std::iter::once(&data.len())) {
        let c = c.clamp(pos, data.len());
        cum.push(Bytes::copy_from_slice(&data[pos..c]));
        pos = c;
        loop {
            let before = cum.len();
            let r = dec.decode(&mut cum);
            let consumed = before - cum.len();
            match r {
                Ok(Some(_)) => assert!(consumed > 0, "a frame without consuming input"),
                Ok(None) | Err(_) if consumed > 0 && !cum.is_empty() => {}
                Ok(None) | Err(_) => break,
            }
        }
        assert!(
            cum.len() <= bound + 16,
            "buffered {} bytes, limit {bound}",
            cum.len()
        );
    }
    let _ = dec.decode_eof(&mut cum);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..2048), cuts in proptest::collection::vec(0usize..2048, 0..8)) {
        let mut cuts = cuts;
        cuts.sort_unstable();
        for len in [1usize, 2, 3, 4, 8] {
            for adj in [-9i64, 0, 3] {
                let d = LengthFieldBasedFrameDecoder::builder()
                    .max_frame_length(256)
                    .length_field_offset(1)
                    .length_field_length(len)
                    .length_adjustment(adj)
                    .initial_bytes_to_strip(2)
                    .build()
                    .unwrap();
                feed_random(d, &data, &cuts, 256);
            }
        }
        feed_random(LineBasedFrameDecoder::new(64), &data, &cuts, 64);
        feed_random(LineBasedFrameDecoder::new(64).fail_fast(true).strip_delimiter(false), &data, &cuts, 64);
        feed_random(DelimiterBasedFrameDecoder::new(64, [&b"\0"[..], &b"ab"[..]]).unwrap(), &data, &cuts, 64);
        feed_random(FixedLengthFrameDecoder::new(5).unwrap(), &data, &cuts, 5);
    }
}

/// One read carrying 100 pipelined requests whose answers (40 KiB each)
/// are not taken: decoding stops once the answers pass the high watermark
/// (64 KiB, so after two), and goes on, two at a time, each time they drain.
#[test]
fn decoding_pauses_while_the_answers_wait() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let answered = Arc::new(AtomicUsize::new(0));
    let a2 = answered.clone();
    let mut ch = EmbeddedChannel::builder()
        .add_last("lines", DecoderHandler::new(LineBasedFrameDecoder::new(64)))
        .add_last(
            "answer",
            weft_core::from_fn(move |ctx: &mut weft_core::Context<'_>, _line: Bytes| {
                a2.fetch_add(1, Ordering::Relaxed);
                ctx.write(Bytes::from(vec![0u8; 40 * 1024])); // not flushed
            }),
        )
        .build();
    let requests: String = (0..100).map(|i| format!("{i}\n")).collect();
    ch.write_inbound(Bytes::from(requests));
    assert_eq!(answered.load(Ordering::Relaxed), 2);
    let mut rounds = 0;
    while answered.load(Ordering::Relaxed) < 100 {
        let before = answered.load(Ordering::Relaxed);
        ch.flush_outbound(); // the answers leave: writable again
        while ch.read_outbound::<Bytes>().is_some() {}
        let now = answered.load(Ordering::Relaxed);
        assert!(now > before, "decoding resumed");
        assert!(now - before <= 2, "at most two answers per drain");
        rounds += 1;
        assert!(rounds < 100);
    }
    assert_eq!(rounds, 49);
    // Off, everything is decoded at once.
    let all = Arc::new(AtomicUsize::new(0));
    let a3 = all.clone();
    let mut ch = EmbeddedChannel::builder()
        .add_last(
            "lines",
            DecoderHandler::new(LineBasedFrameDecoder::new(64)).pause_when_unwritable(false),
        )
        .add_last(
            "answer",
            weft_core::from_fn(move |ctx: &mut weft_core::Context<'_>, _line: Bytes| {
                a3.fetch_add(1, Ordering::Relaxed);
                ctx.write(Bytes::from(vec![0u8; 40 * 1024]));
            }),
        )
        .build();
    let requests: String = (0..100).map(|i| format!("{i}\n")).collect();
    ch.write_inbound(Bytes::from(requests));
    assert_eq!(all.load(Ordering::Relaxed), 100);
}
