//! websocket-chat over loopback with real clients: headless Chromium, Python's `websockets`
//! as room members and as an echo client (large, fragmented, ping, close),
//! and a raw socket whose first frame rides in the same write as its
//! upgrade request.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{run_bounded, start};

/// An upgrade request for the echo endpoint (RFC 6455's example key).
const UPGRADE_ECHO: &[u8] = b"GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
    Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn chat() -> common::Running {
    start(env!("CARGO_BIN_EXE_websocket-chat"), &["--threads", "2"])
}

fn python(script: &str) -> String {
    let (ok, out) = run_bounded(Command::new("python3").args(["-c", script]), 60);
    assert!(ok && out.trim_end().ends_with("ok"), "{out}");
    out
}

#[test]
fn a_line_sent_by_one_member_reaches_every_member() {
    let server = chat();
    let script = format!(
        r#"
import asyncio, websockets
async def main():
    url = "ws://{addr}/ws"
    # Each member is in the room once its 101 has arrived.
    async with websockets.connect(url) as a, websockets.connect(url) as b:
        await a.send("hello from a")
        got_b = await asyncio.wait_for(b.recv(), 10)
        got_a = await asyncio.wait_for(a.recv(), 10)
        assert got_b == "hello from a", got_b
        assert got_a == "hello from a", got_a
    print("ok")
asyncio.run(main())
"#,
        addr = server.addr
    );
    python(&script);
}

#[test]
fn the_echo_endpoint_answers_large_fragmented_and_control_frames() {
    let server = chat();
    let script = format!(
        r#"
import asyncio, os, websockets
async def main():
    async with websockets.connect("ws://{addr}/echo", max_size=None) as ws:
        big = os.urandom(3 << 20)
        await ws.send(big)
        assert await asyncio.wait_for(ws.recv(), 20) == big
        async def parts():
            for p in ["frag", "ment", "ed €"]:
                yield p
        await ws.send(parts())
        assert await asyncio.wait_for(ws.recv(), 10) == "fragmented €"
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 10)
        await ws.close(code=1000, reason="done")
        assert ws.close_code == 1000, ws.close_code
    print("ok")
asyncio.run(main())
"#,
        addr = server.addr
    );
    python(&script);
}

#[test]
fn the_page_is_served_over_http_on_the_same_port() {
    let server = chat();
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.contains("new WebSocket("), "{out}");
}

#[test]
fn a_first_frame_in_the_same_write_as_the_upgrade_is_answered() {
    let server = chat();
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut write = UPGRADE_ECHO.to_vec();
    let key = [1u8, 2, 3, 4];
    let payload = b"riding along";
    write.extend([0x81, 0x80 | payload.len() as u8]);
    write.extend(key);
    write.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    s.write_all(&write).unwrap();
    // The 101, then the echo: read until both are in.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            if got.len() >= i + 4 + 2 + payload.len() {
                break i + 4;
            }
        }
    };
    let head = String::from_utf8_lossy(&got[..head_end]);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "the accept of RFC 6455's example key: {head}"
    );
    let frame = &got[head_end..];
    assert_eq!(frame[0], 0x81);
    assert_eq!(
        frame[1] as usize,
        payload.len(),
        "unmasked, from the server"
    );
    assert_eq!(&frame[2..2 + payload.len()], payload);
}

/// weft's own client (HttpClientCodec + WebSocketClientHandshake on a
/// Bootstrap, multi-thread runtime) against the echo endpoint.
#[test]
fn the_weft_client_upgrades_and_is_echoed() {
    use weft_codec::http::HttpClientCodec;
    use weft_codec::websocket::{ClientHandshakeComplete, Frame, OpCode, WebSocketClientHandshake};
    use weft_core::{Context, Handler, Msg, UserEvent};

    struct App(Option<tokio::sync::oneshot::Sender<Frame>>);
    #[weft_core::handler]
    impl Handler for App {
        fn user_event(&mut self, ctx: &mut Context<'_>, e: UserEvent) {
            if e.is::<ClientHandshakeComplete>() {
                ctx.write_and_flush(Frame::text("through weft's client"));
            }
        }
        fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
            if let Ok(f) = msg.downcast::<Frame>() {
                if let Some(tx) = self.0.take() {
                    let _ = tx.send(f);
                }
            }
        }
    }

    let server = chat();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let uri: weft_codec::http::http::Uri =
            format!("ws://{}/echo", server.addr).parse().unwrap();
        let ch = weft_transport::Bootstrap::new()
            .handler(move |p| {
                p.add_last("http", HttpClientCodec::new())?;
                p.add_last("handshake", WebSocketClientHandshake::new(uri.clone()))?;
                p.add_last("app", App(tx.lock().unwrap().take()))
            })
            .connect(server.addr.as_str())
            .await
            .unwrap();
        let f = tokio::time::timeout(Duration::from_secs(10), rx)
            .await
            .expect("an echo in time")
            .unwrap();
        assert_eq!(f.opcode, OpCode::Text);
        assert_eq!(f.payload, "through weft's client");
        ch.write_and_flush(Frame::close(weft_codec::websocket::CloseCode::NORMAL, ""))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), ch.closed())
            .await
            .expect("the server ends the connection after the close handshake");
    });
}

#[test]
fn a_client_that_half_closes_after_its_frames_still_gets_their_echoes() {
    let server = chat();
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut write = UPGRADE_ECHO.to_vec();
    for i in 0..100u8 {
        // Masked with a zero key: the payload goes as it is.
        write.extend([0x82, 0x80 | 1, 0, 0, 0, 0, i]);
    }
    s.write_all(&write).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the server closes after answering");
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(got.starts_with(b"HTTP/1.1 101 "));
    let echoes: Vec<u8> = got[head_end..]
        .chunks(3)
        .map(|f| {
            assert_eq!(&f[..2], [0x82, 1], "an unmasked one-byte binary frame");
            f[2]
        })
        .collect();
    assert_eq!(
        echoes,
        (0..100u8).collect::<Vec<_>>(),
        "every frame echoed, in order"
    );
}

/// The websocket-client example: messages given on its command line come
/// back from the echo endpoint, in order, and it closes cleanly.
#[test]
fn the_websocket_client_example_sends_and_prints_the_echoes() {
    let server = chat();
    let url = format!("ws://{}/echo", server.addr);
    let (ok, out) = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_websocket-client")).args(["send", &url, "one", "two €"]),
        30,
    );
    assert!(ok, "{out}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two €"], "{out}");
}

/// The page in a real browser: headless Chromium (Debian's, installed by
/// test.sh) joins the room, shows a line a Python member sends, and sends
/// one through its own form (examples/tests/browser_chat.py drives it over
/// the DevTools protocol). Its screenshot is left in the test's target
/// directory (docs/websocket-chat.png is one).
#[test]
fn the_chat_page_works_in_headless_chromium() {
    let server = chat();
    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("websocket-chat.png");
    let _ = std::fs::remove_file(&shot);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser_chat.py");
    let (ok, out) = run_bounded(
        Command::new("python3")
            .arg(script)
            .arg("chromium")
            .arg(&server.addr)
            .arg(&shot),
        120,
    );
    assert!(ok && out.trim_end().ends_with("ok"), "{out}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
}
