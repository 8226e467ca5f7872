//! `HttpClientCodec` through `EmbeddedChannel`: request encoding, and
//! response framing as RFC 9112 §6.3 has it (HEAD, 1xx, 101, CONNECT,
//! close-delimited bodies, cut-short ones, strict framing).
#![cfg(feature = "http")]

use bytes::Bytes;
use weft_codec::http::http::{Method, Request};
use weft_codec::http::{BodyKind, HttpClientCodec, HttpResponseIn};
use weft_core::{EmbeddedChannel, InputShutdown, Msg};

fn client() -> EmbeddedChannel {
    EmbeddedChannel::with_handler(HttpClientCodec::new())
}

fn send(ch: &mut EmbeddedChannel, method: Method, uri: &str) {
    let req = Request::builder().method(method).uri(uri).body(()).unwrap();
    assert!(ch.write_outbound(Msg::user(req)));
    ch.read_outbound_bytes();
}

/// `H status body`, `D n`, `E n trailers`, `X kind`.
fn summary(ch: &mut EmbeddedChannel) -> Vec<String> {
    let mut v = Vec::new();
    let mut data = 0;
    while let Some(p) = ch.read_inbound::<HttpResponseIn>() {
        match p {
            HttpResponseIn::Head { response, body } => {
                v.push(format!("H {} {body:?}", response.status().as_u16()))
            }
            HttpResponseIn::Data(b) => data += b.len(),
            HttpResponseIn::End { data: d, trailers } => {
                v.push(format!("E {} {}", data + d.len(), trailers.len()));
                data = 0;
            }
            HttpResponseIn::Invalid(e) => v.push(format!("X {:?}", e.kind())),
        }
    }
    v
}

#[test]
fn requests_are_encoded_with_host_and_length() {
    let mut ch = client();
    let req = Request::post("http://h.test:8080/up?x=1")
        .body(Bytes::from_static(b"data"))
        .unwrap();
    ch.write_outbound(Msg::user(req));
    assert_eq!(
        ch.read_outbound_bytes(),
        "POST /up?x=1 HTTP/1.1\r\nhost: h.test:8080\r\ncontent-length: 4\r\n\r\ndata"
    );
    let req = Request::put("/empty").header("host", "h").body(()).unwrap();
    ch.write_outbound(Msg::user(req));
    assert_eq!(
        ch.read_outbound_bytes(),
        "PUT /empty HTTP/1.1\r\nhost: h\r\ncontent-length: 0\r\n\r\n"
    );
    // Neither Host nor an absolute URI: refused, nothing written.
    let req = Request::get("/nohost").body(()).unwrap();
    assert!(!ch.write_outbound(Msg::user(req)));
    assert!(ch.read_outbound_bytes().is_empty());
}

#[test]
fn head_answers_have_no_body_and_pipelined_answers_follow() {
    let mut ch = client();
    send(&mut ch, Method::HEAD, "http://h/a");
    send(&mut ch, Method::GET, "http://h/b");
    ch.write_inbound(
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n\
           HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"[..],
    );
    assert_eq!(
        summary(&mut ch),
        ["H 200 Empty", "H 200 Length(2)", "E 2 0"]
    );
}

#[test]
fn interim_answers_are_skipped_but_101_ends_decoding() {
    let mut ch = client();
    send(&mut ch, Method::GET, "http://h/");
    ch.write_inbound(
        &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n\
           HTTP/1.1 204 No Content\r\n\r\n"[..],
    );
    assert_eq!(summary(&mut ch), ["H 204 Empty"]);

    let upgrade = Request::builder()
        .uri("http://h/ws")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .body(())
        .unwrap();
    assert!(ch.write_outbound(Msg::user(upgrade)));
    ch.read_outbound_bytes();
    ch.write_inbound(
        &b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x02hi"[..],
    );
    assert_eq!(summary(&mut ch), ["H 101 Empty"]);
}

/// A 101 to a request that asked for no upgrade is an invalid answer, not
/// a switch (issue 34, D9).
#[test]
fn an_unasked_101_is_invalid() {
    let mut ch = client();
    send(&mut ch, Method::GET, "http://h/");
    ch.write_inbound(&b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"[..]);
    assert_eq!(summary(&mut ch), ["X StatusLine"]);
}

#[test]
fn a_connect_tunnel_ends_decoding() {
    let mut ch = client();
    send(&mut ch, Method::CONNECT, "h.test:443");
    ch.write_inbound(&b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01"[..]);
    assert_eq!(summary(&mut ch), ["H 200 Empty"]);
}

#[test]
fn chunked_and_close_delimited_bodies() {
    let mut ch = client();
    send(&mut ch, Method::GET, "http://h/1");
    send(&mut ch, Method::GET, "http://h/2");
    ch.write_inbound(
        &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n\
           HTTP/1.1 200 OK\r\n\r\nuntil"[..],
    );
    ch.write_inbound(&b" the end"[..]);
    ch.fire_user_event(InputShutdown);
    assert_eq!(
        summary(&mut ch),
        ["H 200 Chunked", "E 3 1", "H 200 UntilClose", "E 13 0"]
    );
}

#[test]
fn a_body_cut_short_is_an_error() {
    let mut ch = client();
    send(&mut ch, Method::GET, "http://h/");
    ch.write_inbound(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..]);
    ch.fire_user_event(InputShutdown);
    assert_eq!(summary(&mut ch), ["H 200 Length(10)", "X Incomplete"]);
}

#[test]
fn malformed_responses_are_errors_and_end_decoding() {
    let cases: [(&[u8], &str); 5] = [
        (b"HTTP/1.1 200 OK\nContent-Length: 0\n\n", "LineEnding"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "TransferEncoding",
        ),
        (b"HTTP/1.1 20 OK\r\n\r\n", "StatusLine"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
            "ContentLength",
        ),
        (b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n", "Field"),
    ];
    for (input, kind) in cases {
        let mut ch = client();
        send(&mut ch, Method::GET, "http://h/");
        send(&mut ch, Method::GET, "http://h/");
        let mut all = input.to_vec();
        all.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        ch.write_inbound(Bytes::from(all));
        let got = summary(&mut ch);
        assert_eq!(
            got,
            [format!("X {kind}")],
            "{}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn body_slices_share_the_read_buffer() {
    let mut ch = client();
    send(&mut ch, Method::GET, "http://h/");
    let input = Bytes::from_static(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody");
    ch.write_inbound(input.clone());
    assert!(matches!(
        ch.read_inbound::<HttpResponseIn>(),
        Some(HttpResponseIn::Head {
            body: BodyKind::Length(4),
            ..
        })
    ));
    let Some(HttpResponseIn::End { data, .. }) = ch.read_inbound::<HttpResponseIn>() else {
        panic!()
    };
    assert_eq!(data.as_ptr(), input[input.len() - 4..].as_ptr());
}

#[test]
fn a_request_written_while_a_response_is_read_is_framed_by_its_own_method() {
    // The application sends a HEAD as soon as the first response's head
    // arrives: the codec's encoding half takes it at once (the halves are
    // called apart), and the HEAD's answer, with no body, is framed right.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent2 = sent.clone();
    let app = weft_core::from_fn(
        move |ctx: &mut weft_core::Context<'_>, part: HttpResponseIn| {
            if let HttpResponseIn::Head { .. } = &part {
                if !sent2.swap(true, std::sync::atomic::Ordering::Relaxed) {
                    let req = http::Request::head("http://x/b").body(()).unwrap();
                    ctx.write_and_flush(Msg::user(req));
                }
            }
            ctx.fire_read(Msg::user(part));
        },
    );
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpClientCodec::new())
        .add_last("app", app)
        .build();
    send(&mut ch, Method::GET, "http://x/a");
    ch.write_inbound(&b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"[..]);
    assert!(ch.read_outbound_bytes().starts_with(b"HEAD /b"));
    // Framed as a GET's, the second answer would wait for 9 bytes.
    assert_eq!(
        summary(&mut ch),
        ["H 200 Length(2)", "E 2 0", "H 200 Empty"]
    );
}
