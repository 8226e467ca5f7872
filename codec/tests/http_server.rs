//! `HttpServerCodec` through `EmbeddedChannel`: response framing for every
//! kind of body and request, order under pipelining, the in-flight bound,
//! and the connection's end.
#![cfg(feature = "http")]

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use weft_codec::http::http::{Method, Response, StatusCode};
use weft_codec::http::{BodyKind, HttpRequestPart, HttpResponsePart, HttpServerCodec};
use weft_core::{from_fn, Context, EmbeddedChannel, Msg};

mod malformed;

/// Answers each request head with what `answer` makes of its method and
/// path; records the paths seen.
fn server(
    codec: HttpServerCodec,
    answer: impl Fn(&Method, &str) -> Vec<Msg> + Send + 'static,
) -> (EmbeddedChannel, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let app = from_fn(move |ctx: &mut Context<'_>, part: HttpRequestPart| {
        if let HttpRequestPart::Head { request, .. } = part {
            s2.lock().unwrap().push(request.uri().path().to_string());
            for m in answer(request.method(), request.uri().path()) {
                ctx.write(m);
            }
            ctx.flush();
        }
    });
    let ch = EmbeddedChannel::builder()
        .add_last("http", codec)
        .add_last("app", app)
        .build();
    (ch, seen)
}

/// Writes an answer from the tail, as an application task would.
fn answer(ch: &mut EmbeddedChannel, msg: Msg) {
    ch.pipeline_mut().write(msg);
    ch.pipeline_mut().flush();
    ch.run_pending_tasks();
}

fn text(b: &Bytes) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn hello(_: &Method, path: &str) -> Vec<Msg> {
    vec![Msg::user(Response::new(Bytes::from(format!(
        "hello {path}"
    ))))]
}

#[test]
fn a_full_response_has_its_length_and_a_date() {
    let (mut ch, _) = server(HttpServerCodec::new(), hello);
    ch.write_inbound(&b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("\r\ndate: "), "{out}");
    assert!(out.ends_with("content-length: 8\r\n\r\nhello /a"), "{out}");
}

#[test]
fn head_204_and_304_carry_no_body() {
    let (mut ch, _) = server(HttpServerCodec::new(), |m, path| {
        let status = match path {
            "/204" => StatusCode::NO_CONTENT,
            "/304" => StatusCode::NOT_MODIFIED,
            _ => StatusCode::OK,
        };
        let _ = m;
        let mut r = Response::new(Bytes::from_static(b"twelve bytes"));
        *r.status_mut() = status;
        vec![Msg::user(r)]
    });
    ch.write_inbound(&b"HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert!(
        out.ends_with("content-length: 12\r\n\r\n"),
        "HEAD keeps the length: {out}"
    );
    for path in ["/204", "/304"] {
        ch.write_inbound(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes());
        let out = text(&ch.read_outbound_bytes());
        assert!(out.ends_with("\r\n\r\n"), "{path}: {out}");
        assert!(!out.contains("twelve"), "{path}: {out}");
        assert!(!out.contains("content-length"), "{path}: {out}");
    }
}

fn streamed(_: &Method, _: &str) -> Vec<Msg> {
    vec![
        Msg::user(HttpResponsePart::Head(Response::new(()))),
        Msg::Bytes(Bytes::from_static(b"hello ")),
        Msg::Bytes(Bytes::from_static(b"world")),
        Msg::user(HttpResponsePart::End(Default::default())),
    ]
}

#[test]
fn a_streamed_body_of_unknown_length_is_chunked_for_http_1_1() {
    let (mut ch, _) = server(HttpServerCodec::new(), streamed);
    ch.write_inbound(&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert!(out.contains("transfer-encoding: chunked\r\n"), "{out}");
    assert!(
        out.ends_with("\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n"),
        "{out}"
    );
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_none());
}

#[test]
fn a_streamed_body_for_http_1_0_ends_with_the_connection() {
    let (mut ch, _) = server(HttpServerCodec::new(), streamed);
    ch.write_inbound(&b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert!(!out.contains("chunked"), "{out}");
    assert!(out.contains("connection: close\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello world"), "{out}");
    ch.run_pending_tasks();
    assert!(
        ch.pipeline_mut().transport().take_due_shutdown().is_some(),
        "the output is shut down after the body"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (mut ch, seen) = server(HttpServerCodec::new(), hello);
    ch.write_inbound(
        &b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nHEAD /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    );
    assert_eq!(*seen.lock().unwrap(), ["/1", "/2", "/3"]);
    let out = text(&ch.read_outbound_bytes());
    let bodies: Vec<&str> = out.split("HTTP/1.1 200 OK").skip(1).collect();
    assert_eq!(bodies.len(), 3, "{out}");
    assert!(bodies[0].ends_with("hello /1"));
    assert!(
        bodies[1].ends_with("\r\n\r\n"),
        "the HEAD answer has no body"
    );
    assert!(bodies[2].ends_with("hello /3"));
}

#[test]
fn answers_written_between_flushes_leave_as_one_message() {
    // The app answers every head and flushes once per read, as a
    // pipelining server does: the batch reaches the transport as one
    // message (one segment), a promise still completes with its answer,
    // and a body written by reference is not copied into the batch.
    let app = from_fn(|ctx: &mut Context<'_>, part: HttpRequestPart| {
        if let HttpRequestPart::Head { request, .. } = part {
            match request.uri().path() {
                "/big" => ctx.write(Msg::user(Response::new(Bytes::from(vec![b'x'; 4096])))),
                path => {
                    let body = Bytes::from(format!("hello {path}"));
                    ctx.write(Msg::user(Response::new(body)));
                }
            }
        }
    });
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("app", app)
        .build();
    ch.write_inbound(
        &b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    );
    assert!(
        ch.read_outbound::<Bytes>().is_none(),
        "nothing leaves before the flush"
    );
    ch.pipeline_mut().flush();
    ch.run_pending_tasks();
    let batch = ch.read_outbound::<Bytes>().expect("the batch");
    assert!(
        ch.read_outbound::<Msg>().is_none(),
        "one message for three answers"
    );
    let out = text(&batch);
    assert_eq!(out.matches("HTTP/1.1 200 OK").count(), 3, "{out}");
    assert!(out.ends_with("hello /3"), "{out}");

    // A body past the copy limit follows its head by reference.
    ch.write_inbound(
        &b"GET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /big HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    );
    ch.pipeline_mut().flush();
    ch.run_pending_tasks();
    let heads = ch.read_outbound::<Bytes>().expect("the heads");
    assert!(text(&heads).contains("hello /2"));
    assert!(text(&heads).ends_with("content-length: 4096\r\n\r\n"));
    let body = ch.read_outbound::<Bytes>().expect("the body");
    assert_eq!(body.len(), 4096);
}

#[test]
fn the_in_flight_bound_holds_requests_back_until_answers_complete() {
    // An application that answers nothing by itself.
    let (mut ch, seen) = server(HttpServerCodec::new().max_in_flight(2), |_, _| Vec::new());
    let many: String = (0..50)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    ch.write_inbound(many.into_bytes());
    assert_eq!(seen.lock().unwrap().len(), 2, "two requests decoded ahead");
    assert!(!ch.channel().is_auto_read(), "reads held back");
    answer(
        &mut ch,
        Msg::user(Response::new(Bytes::from_static(b"one"))),
    );
    ch.run_pending_tasks();
    assert_eq!(
        seen.lock().unwrap().len(),
        3,
        "one answer lets one request in"
    );
    for _ in 0..47 {
        answer(&mut ch, Msg::user(Response::new(())));
    }
    ch.run_pending_tasks();
    assert_eq!(seen.lock().unwrap().len(), 50);
    for _ in 0..2 {
        answer(&mut ch, Msg::user(Response::new(())));
    }
    assert!(
        ch.channel().is_auto_read(),
        "reads resume when answers catch up"
    );
}

#[test]
fn a_batch_of_exactly_the_bound_holds_no_reads_until_more_bytes_wait() {
    let (mut ch, seen) = server(HttpServerCodec::new().max_in_flight(4), |_, _| Vec::new());
    let batch: String = (0..4)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    ch.write_inbound(batch.into_bytes());
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert!(ch.channel().is_auto_read(), "nothing waits: reads go on");
    // The next read's bytes wait behind the bound: now reads stop.
    ch.write_inbound(&b"GET /4 HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    assert_eq!(seen.lock().unwrap().len(), 4, "the bound holds");
    assert!(!ch.channel().is_auto_read(), "bytes wait: reads held back");
    answer(&mut ch, Msg::user(Response::new(())));
    ch.run_pending_tasks();
    assert_eq!(seen.lock().unwrap().len(), 5);
    assert!(ch.channel().is_auto_read(), "nothing waits again");
}

#[test]
fn connection_close_is_echoed_and_ends_the_output_after_the_answer() {
    let (mut ch, seen) = server(HttpServerCodec::new(), hello);
    ch.write_inbound(
        &b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n"[..],
    );
    assert_eq!(*seen.lock().unwrap(), ["/last"]);
    let out = text(&ch.read_outbound_bytes());
    assert!(out.contains("connection: close\r\n"), "{out}");
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_some());
}

#[test]
fn a_file_body_stays_a_file_region() {
    let path = std::env::temp_dir().join(format!("weft-http-codec-{}", std::process::id()));
    std::fs::write(&path, b"file body").unwrap();
    let p2 = path.clone();
    let (mut ch, _) = server(HttpServerCodec::new(), move |_, _| {
        vec![Msg::user(Response::new(
            weft_core::FileRegion::open(&p2).unwrap(),
        ))]
    });
    ch.write_inbound(&b"GET /f HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let head = ch.read_outbound::<Bytes>().unwrap();
    assert!(text(&head).ends_with("content-length: 9\r\n\r\n"));
    assert!(
        ch.read_outbound::<weft_core::FileRegion>().is_some(),
        "sent as a region"
    );
    let _ = std::fs::remove_file(&path);
}

/// Every malformed request of the table, behind a valid one and ahead of
/// another: the valid one is answered, then the bad one with its status and
/// `Connection: close`, the output is shut down, and the request after it
/// never reaches the application.
#[test]
fn every_malformed_request_is_answered_with_its_status_then_the_connection_ends() {
    for case in malformed::malformed() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        // Answers the requests without a body: a bad chunked body's head
        // is valid, and its request never ends.
        let app = from_fn(move |ctx: &mut Context<'_>, part: HttpRequestPart| {
            if let HttpRequestPart::Head { request, body } = part {
                s2.lock().unwrap().push(request.uri().path().to_string());
                if body == BodyKind::Empty {
                    ctx.write_and_flush(Msg::user(Response::new(())));
                }
            }
        });
        let mut ch = EmbeddedChannel::builder()
            .add_last("http", HttpServerCodec::new())
            .add_last("app", app)
            .build();
        let input = format!(
            "GET /before HTTP/1.1\r\nHost: x\r\n\r\n{}GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
            case.head
        );
        ch.write_inbound(Bytes::from(input));
        let out = text(&ch.read_outbound_bytes());
        let statuses: Vec<&str> = out
            .match_indices("HTTP/1.1 ")
            .map(|(i, _)| &out[i + 9..i + 12])
            .collect();
        let want = case.status.to_string();
        assert_eq!(statuses, ["200", want.as_str()], "{}: {out}", case.why);
        assert!(out.contains("connection: close\r\n"), "{}: {out}", case.why);
        assert!(
            !seen.lock().unwrap().iter().any(|p| p == "/smuggled"),
            "{}: a request after the error reached the application",
            case.why
        );
        assert!(
            ch.pipeline_mut().transport().take_due_shutdown().is_some(),
            "{}: the output is shut down after the answer",
            case.why
        );
    }
}

/// Pipelined behind a request the application answers later, the invalid
/// one waits for its turn: answers stay in request order.
#[test]
fn an_invalid_request_is_answered_in_its_turn() {
    let (mut ch, _) = server(HttpServerCodec::new(), |_, _| Vec::new());
    ch.write_inbound(&b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/9.0\r\n\r\n"[..]);
    assert!(
        ch.read_outbound_bytes().is_empty(),
        "nothing before /slow's answer"
    );
    answer(
        &mut ch,
        Msg::user(Response::new(Bytes::from_static(b"late"))),
    );
    let out = text(&ch.read_outbound_bytes());
    let first = out
        .find("200 OK")
        .unwrap_or_else(|| panic!("the first answer: {out}"));
    let second = out
        .find("505 HTTP Version Not Supported")
        .expect("the error answer");
    assert!(first < second, "{out}");
}

/// With `answer_invalid(false)` the application answers, and its answer is
/// the connection's last.
#[test]
fn the_application_may_answer_invalid_requests_itself() {
    let app = from_fn(|ctx: &mut Context<'_>, part: HttpRequestPart| {
        if let HttpRequestPart::Invalid(e) = part {
            let mut r = Response::new(Bytes::from(format!("custom: {:?}", e.kind())));
            *r.status_mut() = e.status();
            ctx.write_and_flush(Msg::user(r));
        }
    });
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new().answer_invalid(false))
        .add_last("app", app)
        .build();
    ch.write_inbound(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    assert!(
        out.ends_with("custom: Host"),
        "one answer, the application's: {out}"
    );
    assert!(out.contains("connection: close\r\n"), "{out}");
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_some());
}

/// An answer carrying `Connection: close` ends the connection: it is the
/// last answer written (a request already decoded behind it gets none) and
/// the output is shut down after it.
#[test]
fn an_answer_with_connection_close_is_the_last() {
    let (mut ch, _) = server(HttpServerCodec::new(), |_, _| {
        let mut r = Response::new(Bytes::from_static(b"bye"));
        r.headers_mut()
            .insert("connection", "close".parse().unwrap());
        vec![Msg::user(r)]
    });
    ch.write_inbound(&b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    ch.write_inbound(&b"GET /3 HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.ends_with("\r\n\r\nbye"), "{out}");
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_some());
}

/// A body that breaks after its request was answered (an application that
/// answers at the head) gets no second answer: the connection just ends.
#[test]
fn a_body_broken_after_its_answer_ends_the_connection_silently() {
    let (mut ch, _) = server(HttpServerCodec::new(), hello);
    ch.write_inbound(&b"POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
    ch.write_inbound(&b"3\r\nabcX"[..]);
    let out = text(&ch.read_outbound_bytes());
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    assert!(out.ends_with("hello /up"), "{out}");
    assert!(ch.pipeline_mut().transport().take_due_shutdown().is_some());
}

#[test]
fn a_write_promise_completes_once_its_answer_is_written() {
    // Answers with a promise are handed on at once (with what was encoded
    // before them), so the promise completes when the bytes are written.
    let futures = Arc::new(Mutex::new(Vec::new()));
    let f = futures.clone();
    let app = from_fn(move |ctx: &mut Context<'_>, part: HttpRequestPart| {
        if let HttpRequestPart::Head { .. } = part {
            let answer = Response::new(Bytes::from_static(b"hi"));
            f.lock().unwrap().push(ctx.write_future(Msg::user(answer)));
        }
    });
    let mut ch = EmbeddedChannel::builder()
        .add_last("http", HttpServerCodec::new())
        .add_last("app", app)
        .build();
    ch.write_inbound(&b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    ch.pipeline_mut().flush();
    ch.run_pending_tasks();
    let mut futures = futures.lock().unwrap();
    assert_eq!(futures.len(), 2);
    for f in futures.iter_mut() {
        assert!(matches!(f.try_result(), Some(Ok(()))));
    }
    let out = ch.read_outbound_bytes();
    assert_eq!(text(&out).matches("HTTP/1.1 200 OK").count(), 2);
}

/// Passes everything on; notes each write that reaches it (it sits at the
/// head, so it sees what the encoder hands on).
struct Probe(Arc<Mutex<Vec<String>>>);

#[weft_core::handler]
impl weft_core::Handler for Probe {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<weft_core::Promise>) {
        let mut log = self.0.lock().unwrap();
        if log.last().map(String::as_str) != Some("out") {
            log.push("out".to_string());
        }
        drop(log);
        ctx.write_with(msg, promise);
    }
}

#[test]
fn an_answer_is_encoded_while_the_read_that_carried_its_request_is_decoded() {
    // Three requests in one read, each answered at its head with a body
    // too large to wait in the encode buffer: each answer reaches the
    // transport before the next request is decoded, not after the read.
    let log = Arc::new(Mutex::new(Vec::new()));
    let app_log = log.clone();
    let app = from_fn(move |ctx: &mut Context<'_>, part: HttpRequestPart| {
        if let HttpRequestPart::Head { request, .. } = part {
            app_log
                .lock()
                .unwrap()
                .push(request.uri().path().to_string());
            ctx.write(Msg::user(Response::new(Bytes::from(vec![b'x'; 4096]))));
        }
    });
    let mut ch = EmbeddedChannel::builder()
        .add_last("probe", Probe(log.clone()))
        .add_last("http", HttpServerCodec::new())
        .add_last("app", app)
        .build();
    assert_eq!(ch.pipeline().names(), ["probe", "http", "app"]);
    let three: String = (1..=3)
        .map(|i| format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n"))
        .collect();
    ch.write_inbound(three.into_bytes());
    assert_eq!(
        *log.lock().unwrap(),
        ["/1", "out", "/2", "out", "/3", "out"]
    );
}

#[test]
fn removing_the_codec_removes_both_its_halves() {
    let (mut ch, _) = server(HttpServerCodec::new(), hello);
    assert_eq!(ch.pipeline().names(), ["http", "app"]);
    ch.pipeline_mut().remove("http").unwrap();
    assert_eq!(ch.pipeline().names(), ["app"]);
}

#[test]
fn a_refused_upgrade_lets_http_go_on_when_its_body_comes_after_the_answer() {
    // The answer to an upgrade request comes at its head, before its body:
    // once the body is over, HTTP parsing goes on.
    let (mut ch, seen) = server(HttpServerCodec::new(), |_, path| match path {
        "/ws" => {
            let mut refused = Response::new(());
            *refused.status_mut() = StatusCode::BAD_REQUEST;
            vec![Msg::user(refused)]
        }
        _ => hello(&Method::GET, path),
    });
    ch.write_inbound(
        &b"POST /ws HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\nContent-Length: 3\r\n\r\n"[..],
    );
    assert!(text(&ch.read_outbound_bytes()).starts_with("HTTP/1.1 400 "));
    ch.write_inbound(&b"abc"[..]);
    ch.write_inbound(&b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"[..]);
    assert_eq!(*seen.lock().unwrap(), ["/ws", "/next"]);
    assert!(text(&ch.read_outbound_bytes()).ends_with("hello /next"));
}
