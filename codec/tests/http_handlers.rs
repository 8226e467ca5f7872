//! The handlers around the HTTP server codec, through `EmbeddedChannel`:
//! the aggregator (whole requests, 413, trailers, no copy of a one-read
//! body) and `Expect: 100-continue` (100 only for a body that will be
//! read, 413, 417).
#![cfg(feature = "http")]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use weft_codec::http::http::{Request, Response};
use weft_codec::http::{
    HttpExpectContinue, HttpObjectAggregator, HttpRequestPart, HttpServerCodec, Trailers,
};
use weft_core::{from_fn, Context, EmbeddedChannel, Msg};

type Seen = Arc<Mutex<Vec<Request<Bytes>>>>;

/// Codec, aggregator with `max`, and an application answering `ok` to
/// each whole request.
fn aggregating(max: usize) -> (EmbeddedChannel, Seen) {
    let seen: Seen = Arc::default();
    let s2 = seen.clone();
    let app = from_fn(move |ctx: &mut Context<'_>, req: Request<Bytes>| {
        s2.lock().unwrap().push(req);
        ctx.write_and_flush(Msg::user(Response::new(Bytes::from_static(b"ok"))));
    });
    let ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("whole", HttpObjectAggregator::new(max))
        .add_last("app", app)
        .build();
    (ch, seen)
}

fn text(ch: &mut EmbeddedChannel) -> String {
    String::from_utf8_lossy(&ch.read_outbound_bytes()).into_owned()
}

fn statuses(out: &str) -> Vec<&str> {
    out.match_indices("HTTP/1.1 ")
        .map(|(i, _)| &out[i + 9..i + 12])
        .collect()
}

#[test]
fn a_body_in_several_reads_is_joined() {
    let (mut ch, seen) = aggregating(1024);
    ch.write_inbound(&b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhel"[..]);
    ch.write_inbound(&b"lo w"[..]);
    assert!(seen.lock().unwrap().is_empty(), "not before the end");
    ch.write_inbound(&b"orld"[..]);
    ch.write_inbound(&b"GET /b HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body(), "hello worl");
    assert_eq!(seen[0].uri(), "/a");
    assert!(seen[1].body().is_empty());
    assert_eq!(statuses(&text(&mut ch)), ["200", "200"]);
}

#[test]
fn a_body_in_one_read_is_not_copied() {
    let (mut ch, seen) = aggregating(1024);
    let input = Bytes::from_static(b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody");
    ch.write_inbound(input.clone());
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].body().as_ptr(), input[input.len() - 4..].as_ptr());
}

#[test]
fn chunked_trailers_are_kept_apart_from_the_head() {
    let (mut ch, seen) = aggregating(1024);
    ch.write_inbound(
        &b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
           2\r\nab\r\n1\r\nc\r\n0\r\nX-Sum: 3\r\n\r\n"[..],
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0].body(), "abc");
    assert!(seen[0].headers().get("x-sum").is_none());
    let t = seen[0].extensions().get::<Trailers>().expect("trailers");
    assert_eq!(t.0["x-sum"], "3");
}

/// A declared length over the limit: 413 with `Connection: close` at the
/// head, nothing of the body held, nothing after it decoded.
#[test]
fn a_declared_length_over_the_limit_is_413_and_the_end() {
    let (mut ch, seen) = aggregating(16);
    ch.write_inbound(
        &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n0123456789abcdefg\
           GET /after HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    );
    let out = text(&mut ch);
    assert_eq!(statuses(&out), ["413"], "{out}");
    assert!(out.contains("connection: close\r\n"), "{out}");
    assert!(seen.lock().unwrap().is_empty());
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_some());
}

/// A chunked body is refused as soon as it passes the limit.
#[test]
fn a_chunked_body_over_the_limit_is_413_as_soon_as_it_passes() {
    let (mut ch, seen) = aggregating(16);
    ch.write_inbound(&b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
    ch.write_inbound(&b"10\r\n0123456789abcdef\r\n"[..]);
    assert!(text(&mut ch).is_empty(), "16 bytes are within the limit");
    ch.write_inbound(&b"1\r\nX\r\n"[..]);
    assert_eq!(statuses(&text(&mut ch)), ["413"]);
    ch.write_inbound(&b"0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    assert!(seen.lock().unwrap().is_empty());
    assert!(text(&mut ch).is_empty(), "nothing after the refusal");
}

#[test]
fn continue_is_sent_only_for_a_body_that_will_be_read() {
    // Within the limit: 100, then the answer once the body is in.
    let (mut ch, seen) = aggregating(16);
    ch.write_inbound(
        &b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"[..],
    );
    assert_eq!(statuses(&text(&mut ch)), ["100"]);
    ch.write_inbound(&b"abc"[..]);
    assert_eq!(statuses(&text(&mut ch)), ["200"]);
    assert_eq!(seen.lock().unwrap()[0].body(), "abc");

    // Over it: 413 and no 100.
    let (mut ch, _) = aggregating(2);
    ch.write_inbound(
        &b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"[..],
    );
    assert_eq!(statuses(&text(&mut ch)), ["413"]);

    // Another expectation: 417.
    let (mut ch, seen) = aggregating(16);
    ch.write_inbound(
        &b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 3\r\n\r\nabc"[..],
    );
    assert_eq!(statuses(&text(&mut ch)), ["417"]);
    assert!(seen.lock().unwrap().is_empty());

    // HTTP/1.0: the expectation is ignored.
    let (mut ch, _) = aggregating(16);
    ch.write_inbound(
        &b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"[..],
    );
    let out = text(&mut ch);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
}

/// The stand-alone handler, for a pipeline that streams bodies.
#[test]
fn the_expect_handler_continues_streamed_bodies_and_refuses_the_rest() {
    let parts = Arc::new(Mutex::new(0usize));
    let p2 = parts.clone();
    let app = from_fn(move |_ctx: &mut Context<'_>, _part: HttpRequestPart| {
        *p2.lock().unwrap() += 1;
    });
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("expect", HttpExpectContinue::new().max_content_length(8))
        .add_last("app", app)
        .build();
    ch.write_inbound(
        &b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"[..],
    );
    assert_eq!(statuses(&text(&mut ch)), ["100"]);
    ch.write_inbound(&b"abc"[..]);
    assert_eq!(
        *parts.lock().unwrap(),
        2,
        "head and end reach the application"
    );

    ch.pipeline_mut()
        .write(Msg::user(Response::new(Bytes::from_static(b"stored"))));
    ch.pipeline_mut().flush();
    ch.run_pending_tasks();
    assert_eq!(statuses(&text(&mut ch)), ["200"]);

    ch.write_inbound(
        &b"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 9\r\n\r\n"[..],
    );
    let out = text(&mut ch);
    assert_eq!(statuses(&out), ["413"], "{out}");
    assert_eq!(*parts.lock().unwrap(), 2, "the refused request is not seen");
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_some());
}

/// Bodies being aggregated, all connections together, count in one budget
/// (issue 34, item 3): the request whose piece would pass it gets 503 with
/// Retry-After and the connection ends; a whole request gives its bytes
/// back.
#[test]
fn bodies_being_aggregated_share_one_budget() {
    let budget = Arc::new(weft_core::MemoryBudget::new("test bodies", 1000));
    let channel = || {
        EmbeddedChannel::builder()
            .add_last("http", HttpServerCodec::new())
            .add_last(
                "whole",
                HttpObjectAggregator::new(100_000).memory_budget(budget.clone()),
            )
            .add_last(
                "app",
                from_fn(|ctx: &mut Context<'_>, _req: Request<Bytes>| {
                    ctx.write_and_flush(Msg::user(Response::new(Bytes::from_static(b"ok"))));
                }),
            )
            .build()
    };
    let head = &b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\n"[..];
    let mut a = channel();
    a.write_inbound(head);
    a.write_inbound(vec![b'a'; 700]);
    assert_eq!(budget.used(), 700);
    let mut b = channel();
    b.write_inbound(head);
    b.write_inbound(vec![b'b'; 400]);
    let out = text(&mut b);
    assert_eq!(statuses(&out), ["503"], "{out}");
    assert!(
        out.to_ascii_lowercase().contains("retry-after: 1\r\n"),
        "{out}"
    );
    assert_eq!(budget.used(), 700, "the refused body holds nothing");
    a.write_inbound(vec![b'a'; 200]);
    assert_eq!(statuses(&text(&mut a)), ["200"]);
    assert_eq!(budget.used(), 0, "a whole request gives its bytes back");
}
