//! chat-server with two clients; the proxy in front of echo-server with
//! echo-load --verify; rpc-server with rpc-client.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::time::Duration;

use common::{loadgen, run_bounded, start};

fn line(r: &mut BufReader<std::net::TcpStream>) -> String {
    let mut s = String::new();
    r.read_line(&mut s).unwrap();
    s
}

#[test]
fn chat_lines_reach_the_other_client() {
    let s = start(env!("CARGO_BIN_EXE_chat-server"), &[]);
    let connect = || {
        let c = std::net::TcpStream::connect(&s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut r = BufReader::new(c.try_clone().unwrap());
        assert_eq!(line(&mut r), "welcome\n");
        (c, r)
    };
    let (mut a, mut ra) = connect();
    let (mut b, mut rb) = connect();
    assert!(line(&mut ra).ends_with("joined\n"), "a hears b join");
    a.write_all(b"hello from a\n").unwrap();
    let got = line(&mut rb);
    assert!(got.ends_with("] hello from a\n"), "{got:?}");
    b.write_all(b"hi a\n").unwrap();
    assert!(line(&mut ra).ends_with("] hi a\n"));
}

#[test]
fn chat_drops_idle_clients() {
    let s = start(env!("CARGO_BIN_EXE_chat-server"), &["--idle-timeout", "1"]);
    let c = std::net::TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = BufReader::new(c);
    assert_eq!(line(&mut r), "welcome\n");
    assert_eq!(line(&mut r), "idle for too long, bye\n");
    assert_eq!(line(&mut r), "", "then the server closes");
}

#[test]
fn proxy_relays_echo_load_verified() {
    let echo = start(env!("CARGO_BIN_EXE_echo-server"), &[]);
    let proxy = start(env!("CARGO_BIN_EXE_proxy"), &["--upstream", &echo.addr]);
    let (ok, out) = run_bounded(
        Command::new(loadgen("echo-load")).args([
            "--addr",
            &proxy.addr,
            "--conns",
            "10",
            "--msg-size",
            "1024",
            "--pipeline",
            "8",
            "--secs",
            "1",
            "--verify",
        ]),
        60,
    );
    assert!(
        ok && out.contains("errors=0"),
        "echo-load through the proxy: {out}"
    );
}

#[test]
fn rpc_client_calls_rpc_server() {
    let s = start(env!("CARGO_BIN_EXE_rpc-server"), &[]);
    let exe = env!("CARGO_BIN_EXE_rpc-client");
    let (ok, out) = run_bounded(
        Command::new(exe).args(["--addr", &s.addr, "--method", "upper", "--payload", "abc"]),
        30,
    );
    assert!(ok && out.contains("ok: ABC"), "{out}");
    let (ok, out) = run_bounded(
        Command::new(exe).args(["--addr", &s.addr, "--method", "nope"]),
        30,
    );
    assert!(!ok && out.contains("unknown method"), "{out}");
    let (ok, out) = run_bounded(
        Command::new(exe).args(["--addr", &s.addr, "--count", "10000"]),
        60,
    );
    assert!(
        ok && out.contains("10000 calls") && out.contains(" 0 errors"),
        "{out}"
    );
}

/// A server that reads the first request and closes: rpc-client reports
/// the ended connection and exits non-zero, at once (the first version
/// waited for ever: its map of pending calls kept their senders alive).
#[test]
fn rpc_client_exits_when_the_server_closes_early() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut first = [0u8; 16];
        let _ = std::io::Read::read(&mut s, &mut first);
        drop(s);
    });
    let (ok, out) = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rpc-client")).args(["--addr", &addr, "--count", "100"]),
        30,
    );
    assert!(!ok && out.contains("connection ended"), "{out}");
    server.join().unwrap();
}

/// The proxy in front of echo-server: 50 round trips of 1 to 4 MB, each
/// after a pause in which both relays go idle. The relayed writes come from
/// the other side's task through a `Channel` handle; with the first
/// version's lost wake-up a relay could stall for good after such a pause.
#[test]
fn proxy_relays_large_round_trips_after_pauses() {
    use std::io::Read;
    let echo = start(env!("CARGO_BIN_EXE_echo-server"), &["--threads", "2"]);
    let proxy = start(
        env!("CARGO_BIN_EXE_proxy"),
        &["--upstream", &echo.addr, "--threads", "2"],
    );
    let mut s = std::net::TcpStream::connect(&proxy.addr).unwrap();
    // A stall detector, not a speed requirement.
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut done = 0;
    for i in 0..50u64 {
        // The pause: nothing flows, both connection tasks park.
        std::thread::sleep(Duration::from_millis(20));
        let len = (1 << 20) + ((i * 977 * 1024) % (3 << 20)) as usize;
        let data = common::random_bytes(100 + i, len);
        let mut w = s.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
        let mut back = vec![0u8; len];
        s.read_exact(&mut back)
            .unwrap_or_else(|e| panic!("round trip {i} ({len} bytes) stalled: {e}"));
        writer.join().unwrap();
        assert!(back == data, "round trip {i}: bytes differ");
        done += 1;
    }
    assert_eq!(done, 50);
}
