//! `HttpServerCodec` over real loopback sockets: curl, and a raw client
//! that pipelines a thousand requests in one write.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use bytes::Bytes;
use common::bounded;
use weft_codec::http::http::Response;
use weft_codec::http::{HttpRequestPart, HttpServerCodec};
use weft_core::{Context, Handler, Msg};
use weft_transport::ServerBootstrap;

async fn hello_server() -> weft_transport::Server {
    ServerBootstrap::new()
        .child_handler(|p| {
            p.add_last("http", HttpServerCodec::new())?;
            p.add_last("hello", Hello)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

/// Answers every request head; flushes at the end of each read burst.
struct Hello;

#[weft_core::handler]
impl Handler for Hello {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if let Ok(HttpRequestPart::Head { request, .. }) = msg.downcast::<HttpRequestPart>() {
            let body = Bytes::from(format!("hello {}", request.uri().path()));
            ctx.write(Msg::user(Response::new(body)));
        }
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_gets_an_answer() {
    bounded(async {
        let server = hello_server().await;
        let url = format!("http://{}/curl", server.local_addr());
        let out = tokio::task::spawn_blocking(move || {
            Command::new("curl")
                .args(["-s", "-i", "--max-time", "20", &url])
                .output()
                .expect("curl is installed by ./test.sh")
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.ends_with("hello /curl"), "{text}");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_pipelined_requests_get_a_thousand_answers_in_order() {
    bounded(async {
        let server = hello_server().await;
        let addr = server.tcp_addr().unwrap();
        tokio::task::spawn_blocking(move || pipeline_and_check(addr, 1000))
            .await
            .unwrap();
    })
    .await
}

/// Answers from another task: each connection's requests go, in order, to
/// a task of its own, which answers through the channel handle.
struct Remote(Option<tokio::sync::mpsc::UnboundedSender<String>>);

#[weft_core::handler]
impl Handler for Remote {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        self.0 = Some(tx);
        let ch = ctx.channel().clone();
        tokio::spawn(async move {
            while let Some(path) = rx.recv().await {
                // Answer later than the read that carried the request.
                tokio::task::yield_now().await;
                let body = Bytes::from(format!("hello {path}"));
                drop(ch.write_and_flush(Msg::user(Response::new(body))));
            }
        });
        ctx.fire_active();
    }
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        if let Ok(HttpRequestPart::Head { request, .. }) = msg.downcast::<HttpRequestPart>() {
            if let Some(tx) = &self.0 {
                let _ = tx.send(request.uri().path().to_string());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_from_another_task_let_held_requests_in_until_all_are_answered() {
    // Four requests in flight at most, answered from another task: the
    // codec stops at the bound with bytes waiting, holds reads, and each
    // answer from the other task lets the next request in.
    bounded(async {
        let server = ServerBootstrap::new()
            .child_handler(|p| {
                p.add_last("http", HttpServerCodec::new().max_in_flight(4))?;
                p.add_last("remote", Remote(None))
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        tokio::task::spawn_blocking(move || pipeline_and_check(addr, 300))
            .await
            .unwrap();
    })
    .await
}

/// Sends `n` requests and a last one with `Connection: close` in one
/// write, reads until the server ends its output, and checks every answer
/// came, in order.
fn pipeline_and_check(addr: std::net::SocketAddr, n: usize) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut reqs = String::new();
    for i in 0..n {
        reqs.push_str(&format!("GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    reqs.push_str("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(reqs.as_bytes()).unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap(); // ends: the server shuts its output
    let bodies: Vec<&str> = all
        .split("HTTP/1.1 200 OK")
        .skip(1)
        .map(|r| r.rsplit("\r\n\r\n").next().unwrap())
        .collect();
    assert_eq!(bodies.len(), n + 1);
    for (i, b) in bodies.iter().take(n).enumerate() {
        assert_eq!(*b, format!("hello /{i}"));
    }
    assert_eq!(bodies[n], "hello /last");
}
