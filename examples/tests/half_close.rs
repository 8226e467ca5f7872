//! Clients that send their request and shut their output down at once
//! (`shutdown(SHUT_WR)`, as `nc -N` and many scripts do) receive every byte
//! of the answer from every example. The first version closed on the end of
//! input and cut the answers short (4.4 of 50 MB from http-file-server, 0 of
//! 1,000 B through the proxy).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use common::{random_bytes, start, TempDir};

/// Sends `request`, shuts the output down, reads to the end of the stream.
fn ask_and_half_close(addr: &str, request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    // A stall detector, not a speed requirement.
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut w = s.try_clone().unwrap();
    let request = request.to_vec();
    // Written from a thread: a large request and a large answer must flow
    // at the same time.
    let writer = std::thread::spawn(move || {
        w.write_all(&request).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("stalled after {} bytes: {e}", got.len()));
    writer.join().unwrap();
    got
}

#[test]
fn http_file_server_sends_the_whole_body() {
    let root = TempDir::new("half-http");
    let content = random_bytes(1, 50_000_000);
    std::fs::write(root.0.join("big.bin"), &content).unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap()],
    );
    let got = ask_and_half_close(&s.addr, b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n");
    let head_end = got
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert!(got.starts_with(b"HTTP/1.1 200"));
    assert_eq!(got.len() - head_end, content.len(), "body length");
    assert!(got[head_end..] == content[..], "body bytes differ");
}

#[test]
fn file_server_sends_the_whole_file() {
    let root = TempDir::new("half-file");
    let content = random_bytes(2, 100_000_000);
    std::fs::write(root.0.join("big.bin"), &content).unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_file-server"),
        &["--root", root.0.to_str().unwrap()],
    );
    let got = ask_and_half_close(&s.addr, b"big.bin\n");
    assert_eq!(got.len(), 8 + content.len());
    assert_eq!(&got[..8], &(content.len() as i64).to_be_bytes());
    assert!(got[8..] == content[..], "file bytes differ");
}

#[test]
fn resp_server_sends_the_whole_reply() {
    let s = start(env!("CARGO_BIN_EXE_resp-server"), &[]);
    let value = random_bytes(3, 50_000_000);
    let mut cmd = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", value.len()).into_bytes();
    cmd.extend_from_slice(&value);
    cmd.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
    let got = ask_and_half_close(&s.addr, &cmd);
    let mut want = format!("${}\r\n", value.len()).into_bytes();
    want.extend_from_slice(&value);
    want.extend_from_slice(b"\r\n+PONG\r\n");
    assert_eq!(got.len(), want.len());
    assert!(got == want, "reply bytes differ");
}

#[test]
fn rpc_server_answers_every_call() {
    let s = start(env!("CARGO_BIN_EXE_rpc-server"), &[]);
    // Ten pipelined `echo` calls of 1,000,000 bytes each: 10 MB.
    let mut req = Vec::new();
    let mut payloads = Vec::new();
    for id in 0..10u64 {
        let p = random_bytes(10 + id, 1_000_000);
        let body_len = 8 + 1 + 4 + p.len();
        req.extend_from_slice(&(body_len as u32).to_be_bytes());
        req.extend_from_slice(&id.to_be_bytes());
        req.push(4);
        req.extend_from_slice(b"echo");
        req.extend_from_slice(&p);
        payloads.push(p);
    }
    let got = ask_and_half_close(&s.addr, &req);
    let mut at = 0;
    for (id, p) in payloads.iter().enumerate() {
        let len = u32::from_be_bytes(got[at..at + 4].try_into().unwrap()) as usize;
        let frame = &got[at + 4..at + 4 + len];
        assert_eq!(&frame[..8], &(id as u64).to_be_bytes());
        assert_eq!(frame[8], 0, "status ok");
        assert!(frame[9..] == p[..], "payload {id} differs");
        at += 4 + len;
    }
    assert_eq!(at, got.len(), "nothing after the ten answers");
}

#[test]
fn proxy_relays_the_whole_answer() {
    let echo = start(env!("CARGO_BIN_EXE_echo-server"), &[]);
    let proxy = start(env!("CARGO_BIN_EXE_proxy"), &["--upstream", &echo.addr]);
    for len in [1_000, 10_000_000] {
        let data = random_bytes(len as u64, len);
        let got = ask_and_half_close(&proxy.addr, &data);
        assert_eq!(got.len(), len);
        assert!(got == data, "relayed bytes differ");
    }
}
