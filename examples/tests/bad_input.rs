//! Bad input to every example server: random bytes from a seeded generator
//! get a protocol error or a closed connection, never a crash, and the
//! server still answers a well-formed request afterwards. Plus slowloris.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{random_bytes, start, TempDir};

/// Sends `garbage`, then reads until the server closes or goes quiet.
fn throw(addr: &str, garbage: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let _ = s.write_all(garbage);
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

fn request(addr: &str, req: &[u8], expect_prefix: &[u8]) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    let mut buf = vec![0u8; expect_prefix.len()];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(
        buf, expect_prefix,
        "a well-formed request after the garbage"
    );
}

fn garbage(seed: u64) -> Vec<u8> {
    let len = 1 + (random_bytes(seed, 2)[0] as usize * 97) % 20_000;
    random_bytes(seed + 1, len)
}

#[test]
fn random_bytes_to_every_server() {
    let dir = TempDir::new("bad-input");
    std::fs::write(dir.0.join("f.txt"), b"content").unwrap();
    let root = dir.0.to_str().unwrap();
    let servers = [
        (
            start(env!("CARGO_BIN_EXE_resp-server"), &[]),
            &b"*1\r\n$4\r\nPING\r\n"[..],
            &b"+PONG\r\n"[..],
        ),
        (
            start(env!("CARGO_BIN_EXE_http-file-server"), &["--root", root]),
            &b"GET /f.txt HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK"[..],
        ),
        (
            start(env!("CARGO_BIN_EXE_file-server"), &["--root", root]),
            &b"f.txt\n"[..],
            &7i64.to_be_bytes()[..],
        ),
        (
            start(env!("CARGO_BIN_EXE_rpc-server"), &[]),
            // length 13: id 1, method "echo", payload ""
            &b"\x00\x00\x00\x0d\x00\x00\x00\x00\x00\x00\x00\x01\x04echo"[..],
            &b"\x00\x00\x00\x09\x00\x00\x00\x00\x00\x00\x00\x01\x00"[..],
        ),
    ];
    for (i, (server, good, answer)) in servers.iter().enumerate() {
        for seed in 0..20u64 {
            let _ = throw(&server.addr, &garbage(seed * 31 + i as u64));
        }
        // Garbage with newlines and CRLFs, closer to the protocols.
        for seed in 0..10u64 {
            let mut g = garbage(seed + 1000);
            for (j, b) in g.iter_mut().enumerate() {
                if j % 17 == 0 {
                    *b = b'\n';
                }
            }
            let _ = throw(&server.addr, &g);
        }
        request(&server.addr, good, answer);
    }
    // Every server process is still running.
    for (mut server, _, _) in servers {
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "{} exited",
            server.addr
        );
    }
}

#[test]
fn resp_protocol_error_is_answered() {
    let s = start(env!("CARGO_BIN_EXE_resp-server"), &[]);
    let out = throw(&s.addr, b"*2\r\n$3\r\nGET\r\n+oops\r\n");
    assert!(
        out.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&out)
    );
}

#[test]
fn slowloris_is_closed_by_the_header_timeout() {
    let dir = TempDir::new("slowloris");
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", dir.0.to_str().unwrap(), "--header-timeout", "1"],
    );
    let mut sock = TcpStream::connect(&s.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let start_at = Instant::now();
    let head = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut closed = false;
    for b in head.iter().chain(std::iter::repeat(&b'a')).take(200) {
        if sock.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 64];
        match sock.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("a reply to an incomplete head"),
            Err(_) => {} // nothing yet: one more byte
        }
        // One header byte every ~100 ms (the read timeout paces the loop).
    }
    let took = start_at.elapsed();
    assert!(closed, "the slow client was never disconnected");
    assert!(took < Duration::from_secs(10), "closed after {took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "closed too early: {took:?}"
    );
}
