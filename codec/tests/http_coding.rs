//! Content codings through `EmbeddedChannel`: the compressor (choice by
//! Accept-Encoding, threshold, types, files, HEAD, streams, pipelining) and
//! the decompressor on both sides (inflating, the bound, refusals).
#![cfg(feature = "http")]

use std::io::{Read, Write};

use bytes::Bytes;
use weft_codec::http::http::{Method, Request, Response};
use weft_codec::http::{
    BodyKind, HttpClientCodec, HttpContentCompressor, HttpContentDecompressor, HttpErrorKind,
    HttpRequestPart, HttpResponseIn, HttpResponsePart, HttpServerCodec,
};
use weft_core::{EmbeddedChannel, Msg};

fn server(compressor: HttpContentCompressor) -> EmbeddedChannel {
    EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("compress", compressor)
        .build()
}

/// Splits one answer into its head (lower-cased) and its body.
fn split(out: &[u8]) -> (String, Vec<u8>) {
    let end = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&out[..end]).to_ascii_lowercase(),
        out[end..].to_vec(),
    )
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn unbrotli(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::Decompressor::new(b, 4096)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn text() -> Bytes {
    Bytes::from("weft compresses what the client accepts. ".repeat(200))
}

fn ask(ch: &mut EmbeddedChannel, method: &str, accept: &str) {
    let req = format!("{method} / HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n");
    ch.write_inbound(Bytes::from(req));
}

#[test]
fn brotli_or_gzip_as_the_client_accepts() {
    for (accept, coding) in [
        ("gzip", "gzip"),
        ("gzip, br", "br"),
        ("br;q=0.1, gzip", "gzip"),
    ] {
        let mut ch = server(HttpContentCompressor::new());
        ask(&mut ch, "GET", accept);
        ch.write_outbound(Msg::user(Response::new(text())));
        let (head, body) = split(&ch.read_outbound_bytes());
        assert!(
            head.contains(&format!("content-encoding: {coding}\r\n")),
            "{head}"
        );
        assert!(head.contains("vary: accept-encoding\r\n"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}\r\n", body.len())),
            "{head}"
        );
        let plain = if coding == "gzip" {
            gunzip(&body)
        } else {
            unbrotli(&body)
        };
        assert_eq!(plain, text());
        assert!(body.len() < text().len() / 5);
    }
}

#[test]
fn small_precompressed_and_unasked_answers_pass_untouched() {
    let cases: Vec<(&str, &str, Response<Bytes>)> = vec![
        ("GET", "gzip", Response::new(Bytes::from_static(b"tiny"))),
        ("GET", "gzip", {
            let mut r = Response::new(text());
            r.headers_mut()
                .insert("content-type", "image/png".parse().unwrap());
            r
        }),
        ("GET", "identity", Response::new(text())),
    ];
    for (method, accept, resp) in cases {
        let mut ch = server(HttpContentCompressor::new());
        ask(&mut ch, method, accept);
        let len = resp.body().len();
        ch.write_outbound(Msg::user(resp));
        let (head, _) = split(&ch.read_outbound_bytes());
        assert!(
            !head.contains("content-encoding"),
            "{method} {accept}: {head}"
        );
        assert!(
            head.contains(&format!("content-length: {len}\r\n")),
            "{head}"
        );
    }
}

/// The head of an answer, without its date (which may tick between two).
fn head_of(ch: &mut EmbeddedChannel) -> String {
    let (head, _) = split(&ch.read_outbound_bytes());
    head.lines()
        .filter(|l| !l.starts_with("date:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// RFC 9110 §9.3.2: a HEAD gets the header fields its GET would — the
/// coding and the compressed length (issue 34, D7: HEAD reported the
/// identity length while GET sent gzip).
#[test]
fn head_gets_the_fields_its_get_would() {
    let mut heads = Vec::new();
    for method in ["GET", "HEAD"] {
        let mut ch = server(HttpContentCompressor::new());
        ask(&mut ch, method, "gzip");
        ch.write_outbound(Msg::user(Response::new(text())));
        heads.push(head_of(&mut ch));
    }
    assert!(heads[0].contains("content-encoding: gzip"), "{}", heads[0]);
    assert_eq!(heads[0], heads[1]);
}

/// Every answer for a resource that could be compressed varies on
/// `Accept-Encoding` — the identity one, a 206, a 304 — so a cache never
/// hands a gzip body to a client that did not ask for it (D7). A type that
/// is never compressed does not vary.
#[test]
fn every_answer_of_a_negotiable_resource_varies_on_accept_encoding() {
    for (accept, status) in [("identity", 200), ("gzip", 206), ("gzip", 304), ("", 200)] {
        let mut ch = server(HttpContentCompressor::new());
        ask(&mut ch, "GET", accept);
        let mut r = Response::new(if status == 304 { Bytes::new() } else { text() });
        *r.status_mut() = weft_codec::http::http::StatusCode::from_u16(status).unwrap();
        ch.write_outbound(Msg::user(r));
        let head = head_of(&mut ch);
        assert!(
            !head.contains("content-encoding"),
            "{accept} {status}: {head}"
        );
        assert_eq!(
            head.matches("vary: accept-encoding").count(),
            1,
            "{accept} {status}: {head}"
        );
    }
    let mut ch = server(HttpContentCompressor::new());
    ask(&mut ch, "GET", "gzip");
    let mut r = Response::new(text());
    r.headers_mut()
        .insert("content-type", "image/png".parse().unwrap());
    ch.write_outbound(Msg::user(r));
    assert!(!head_of(&mut ch).contains("vary"));
}

/// Compressing costs the event loop, so it has a budget (issue 34, D5:
/// 27-42 ms of CPU per request for a 1 MiB file, nothing cached): bodies
/// past the connection's bytes per second leave uncompressed, and a file
/// compressed once is served from the cache, costing nothing.
#[test]
fn compression_has_a_budget_and_files_are_compressed_once() {
    let big = || Bytes::from("compressible text, over and over. ".repeat(30_000)); // ~1 MiB
    let mut ch = server(HttpContentCompressor::new().budget(1 << 20, 1 << 30));
    let mut coded = 0;
    for _ in 0..5 {
        ask(&mut ch, "GET", "br");
        ch.write_outbound(Msg::user(Response::new(big())));
        if head_of(&mut ch).contains("content-encoding: br") {
            coded += 1;
        }
    }
    assert_eq!(
        coded, 1,
        "one 1 MiB body fits a 1 MiB/s budget at once, not five"
    );

    let dir = std::env::temp_dir().join(format!("weft-budget-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.txt");
    std::fs::write(&path, big()).unwrap();
    let mut ch = server(
        HttpContentCompressor::new()
            .compress_files(2 << 20)
            .budget(1 << 20, 1 << 30),
    );
    let mut bodies = Vec::new();
    for _ in 0..5 {
        ask(&mut ch, "GET", "br");
        let region = weft_core::FileRegion::open(&path).unwrap();
        ch.write_outbound(Msg::user(Response::new(region)));
        let (head, body) = split(&ch.read_outbound_bytes());
        assert!(head.contains("content-encoding: br"), "{head}");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(unbrotli(&bodies[0]), big());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn files_pass_by_sendfile_unless_asked() {
    let dir = std::env::temp_dir().join(format!("weft-coding-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("f.txt");
    std::fs::write(&path, text()).unwrap();
    let region = || weft_core::FileRegion::open(&path).unwrap();
    let mut ch = server(HttpContentCompressor::new());
    ask(&mut ch, "GET", "gzip");
    ch.write_outbound(Msg::user(Response::new(region())));
    assert!(ch.read_outbound_msg().is_some());
    assert!(
        matches!(ch.read_outbound_msg(), Some(Msg::File(_))),
        "the body is still a FileRegion"
    );
    let mut ch = server(HttpContentCompressor::new().compress_files(1 << 20));
    ask(&mut ch, "GET", "gzip");
    ch.write_outbound(Msg::user(Response::new(region())));
    let (head, body) = split(&ch.read_outbound_bytes());
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(gunzip(&body), text());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_streamed_answer_is_compressed_piece_by_piece_and_pipelined_choices_hold() {
    let mut ch = server(HttpContentCompressor::new());
    ask(&mut ch, "GET", "gzip");
    ask(&mut ch, "GET", "identity");
    ch.write_outbound(Msg::user(HttpResponsePart::Head(Response::new(()))));
    let t = text();
    ch.write_outbound(Msg::Bytes(t.slice(..3000)));
    ch.write_outbound(Msg::Bytes(t.slice(3000..)));
    ch.write_outbound(Msg::user(HttpResponsePart::End(Default::default())));
    let (head, body) = split(&ch.read_outbound_bytes());
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    // Undo the chunked coding, then the gzip.
    let mut coded = Vec::new();
    let mut rest = &body[..];
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let n = usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
        rest = &rest[line_end + 2..];
        if n == 0 {
            break;
        }
        coded.extend_from_slice(&rest[..n]);
        rest = &rest[n + 2..];
    }
    assert_eq!(gunzip(&coded), t);
    // The second request did not ask: its answer is plain.
    ch.write_outbound(Msg::user(Response::new(text())));
    let (head, _) = split(&ch.read_outbound_bytes());
    assert!(!head.contains("content-encoding"), "{head}");
}

fn inflating_server(max: u64) -> EmbeddedChannel {
    EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("inflate", HttpContentDecompressor::with_max_inflated(max))
        .build()
}

fn put(coding: &str, body: &[u8]) -> Bytes {
    let mut r = format!(
        "PUT /u HTTP/1.1\r\nHost: x\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    Bytes::from(r)
}

#[test]
fn a_gzip_upload_is_inflated_for_the_application() {
    let mut ch = inflating_server(1 << 20);
    ch.write_inbound(put("gzip", &gzip(&text())));
    let Some(HttpRequestPart::Head { request, body }) = ch.read_inbound() else {
        panic!()
    };
    assert_eq!(body, BodyKind::Chunked);
    assert!(request.headers().get("content-encoding").is_none());
    let mut got = Vec::new();
    while let Some(p) = ch.read_inbound::<HttpRequestPart>() {
        match p {
            HttpRequestPart::Data(b) | HttpRequestPart::End { data: b, .. } => {
                got.extend_from_slice(&b)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, text());
}

/// A 64 MiB run of zeros gzips to about 64 KiB: past a 1 MiB bound it is
/// refused while inflating (413), never held.
#[test]
fn a_decompression_bomb_is_refused_and_bad_codings_too() {
    let bomb = gzip(&vec![0u8; 64 << 20]);
    assert!(bomb.len() < 128 * 1024);
    let mut ch = inflating_server(1 << 20);
    ch.write_inbound(put("gzip", &bomb));
    let out = String::from_utf8_lossy(&ch.read_outbound_bytes()).into_owned();
    assert!(out.starts_with("HTTP/1.1 413 "), "{out}");
    assert!(out.contains("connection: close\r\n"), "{out}");
    for (coding, body, status) in [
        ("gzip", &b"not gzip at all"[..], "400"),
        ("lzma", &b"x"[..], "415"),
        ("gzip, br", &b"x"[..], "415"),
    ] {
        let mut ch = inflating_server(1 << 20);
        ch.write_inbound(put(coding, body));
        let out = String::from_utf8_lossy(&ch.read_outbound_bytes()).into_owned();
        assert!(
            out.starts_with(&format!("HTTP/1.1 {status} ")),
            "{coding}: {out}"
        );
    }
}

#[test]
fn the_client_side_inflates_and_bounds_too() {
    let client = || {
        EmbeddedChannel::builder()
            .add_last("http", HttpClientCodec::new())
            .add_last(
                "inflate",
                HttpContentDecompressor::with_max_inflated(1 << 20),
            )
            .build()
    };
    let answer = |coded: &[u8]| {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
            coded.len()
        )
        .into_bytes();
        r.extend_from_slice(coded);
        Bytes::from(r)
    };
    let mut ch = client();
    ch.write_outbound(Msg::user(Request::get("http://h/").body(()).unwrap()));
    ch.write_inbound(answer(&gzip(&text())));
    let mut got = Vec::new();
    while let Some(p) = ch.read_inbound::<HttpResponseIn>() {
        match p {
            HttpResponseIn::Head { body, .. } => assert_eq!(body, BodyKind::Chunked),
            HttpResponseIn::Data(b) | HttpResponseIn::End { data: b, .. } => {
                got.extend_from_slice(&b)
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, text());

    let mut ch = client();
    let req = Request::builder()
        .method(Method::GET)
        .uri("http://h/")
        .body(())
        .unwrap();
    ch.write_outbound(Msg::user(req));
    ch.write_inbound(answer(&gzip(&vec![0u8; 8 << 20])));
    let mut last = None;
    while let Some(p) = ch.read_inbound::<HttpResponseIn>() {
        last = Some(p);
    }
    let Some(HttpResponseIn::Invalid(e)) = last else {
        panic!("{last:?}")
    };
    assert_eq!(e.kind(), &HttpErrorKind::BodyTooLarge);
}
