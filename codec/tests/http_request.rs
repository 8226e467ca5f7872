//! The HTTP request decoder through `EmbeddedChannel`: pipelined requests,
//! bodies as slices, and a table of malformed requests, each with its
//! status and the proof that nothing after it is parsed.
#![cfg(feature = "http")]

use bytes::Bytes;
use weft_codec::http::{BodyKind, HttpErrorKind, HttpRequestDecoder, HttpRequestPart};
use weft_codec::DecoderHandler;
use weft_core::EmbeddedChannel;

mod malformed;
use malformed::malformed;

fn channel() -> EmbeddedChannel {
    EmbeddedChannel::with_handler(DecoderHandler::new(HttpRequestDecoder::new()))
}

/// Everything the decoder yields for `input` fed in pieces of `step`.
fn parts(input: &[u8], step: usize) -> Vec<HttpRequestPart> {
    let mut ch = channel();
    let mut out = Vec::new();
    for piece in input.chunks(step.max(1)) {
        ch.write_inbound(Bytes::copy_from_slice(piece));
        while let Some(p) = ch.read_inbound::<HttpRequestPart>() {
            out.push(p);
        }
    }
    out
}

/// A compact view: `H METHOD TARGET body`, `D n`, `E n trailers`, `X status`.
fn summary(parts: &[HttpRequestPart]) -> Vec<String> {
    let mut v = Vec::new();
    let mut data = 0;
    for p in parts {
        match p {
            HttpRequestPart::Head { request, body } => {
                v.push(format!("H {} {} {body:?}", request.method(), request.uri()))
            }
            HttpRequestPart::Data(b) => data += b.len(),
            HttpRequestPart::End { data: d, trailers } => {
                v.push(format!("E {} {}", data + d.len(), trailers.len()));
                data = 0;
            }
            HttpRequestPart::Invalid(e) => v.push(format!("X {}", e.status().as_u16())),
        }
    }
    v
}

#[test]
fn pipelined_requests_with_every_framing_decode_in_any_pieces() {
    let input: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
        POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world\
        PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nX-Check: 1\r\n\r\n\
        GET /d HTTP/1.0\r\n\r\n";
    let want = [
        "H GET /a Empty",
        "H POST /b Length(11)",
        "E 11 0",
        "H PUT /c Chunked",
        "E 5 1",
        "H GET /d Empty",
    ];
    for step in [1, 2, 7, 64, input.len()] {
        assert_eq!(summary(&parts(input, step)), want, "pieces of {step}");
    }
}

#[test]
fn body_bytes_are_slices_of_the_read() {
    let mut ch = channel();
    let input = Bytes::from_static(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    ch.write_inbound(input.clone());
    assert!(matches!(
        ch.read_inbound::<HttpRequestPart>(),
        Some(HttpRequestPart::Head {
            body: BodyKind::Length(4),
            ..
        })
    ));
    let Some(HttpRequestPart::End { data, .. }) = ch.read_inbound::<HttpRequestPart>() else {
        panic!("no end");
    };
    assert_eq!(
        data.as_ptr(),
        input[input.len() - 4..].as_ptr(),
        "not copied"
    );
}

#[test]
fn connection_close_ends_parsing_after_that_request() {
    let input = b"GET /1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(summary(&parts(input, 5)), ["H GET /1 Empty"]);
    let input = b"GET /1 HTTP/1.0\r\n\r\nGET /2 HTTP/1.0\r\n\r\n";
    assert_eq!(summary(&parts(input, 5)), ["H GET /1 Empty"]);
    let input = b"GET /1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n";
    assert_eq!(
        summary(&parts(input, 5)),
        ["H GET /1 Empty", "H GET /2 Empty"]
    );
}

#[test]
fn every_malformed_request_is_answered_and_nothing_after_it_is_parsed() {
    // A valid request after the bad one: it must never come out.
    let next = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for case in malformed() {
        let input = format!("GET /before HTTP/1.1\r\nHost: x\r\n\r\n{}{next}", case.head);
        for step in [1, 13, input.len()] {
            let got = summary(&parts(input.as_bytes(), step));
            assert_eq!(
                got.first().map(String::as_str),
                Some("H GET /before Empty"),
                "{}",
                case.why
            );
            assert_eq!(
                got.last().map(String::as_str),
                Some(format!("X {}", case.status).as_str()),
                "{} (pieces of {step}): {got:?}",
                case.why
            );
            assert!(
                !got.iter().any(|s| s.contains("smuggled")),
                "{}: a request after the error was parsed",
                case.why
            );
        }
    }
}

#[test]
fn errors_name_their_kind() {
    let p = parts(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: br\r\n\r\n",
        100,
    );
    let Some(HttpRequestPart::Invalid(e)) = p.last() else {
        panic!("{p:?}");
    };
    assert_eq!(e.kind(), &HttpErrorKind::UnknownCoding);
    assert_eq!(e.status(), 501);
}

/// Each read's body bytes come out at once: nothing waits for the body's
/// end, so a consumer that writes them on holds no more than a read.
#[test]
fn a_large_body_streams_out_read_by_read() {
    let mut ch = channel();
    ch.write_inbound(&b"PUT /f HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"[..]);
    assert!(ch.read_inbound::<HttpRequestPart>().is_some());
    let piece = Bytes::from(vec![7u8; 4096]);
    let mut total = 0;
    for _ in 0..256 {
        ch.write_inbound(piece.clone());
        assert_eq!(ch.inbound_len(), 1, "one slice per read, at once");
        while let Some(p) = ch.read_inbound::<HttpRequestPart>() {
            match p {
                HttpRequestPart::Data(b) | HttpRequestPart::End { data: b, .. } => total += b.len(),
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(total, 1 << 20);
}
