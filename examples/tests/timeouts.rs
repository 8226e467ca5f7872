//! Timeouts that mean what they say: http-file-server's header timeout
//! never cuts a response that is still being written (the first version cut
//! a 100 MB download read at 2.5 MB/s after 78 MB), and still closes a peer
//! that neither sends nor takes its answer.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::{random_bytes, start, TempDir};

/// A client with a small receive buffer, so that its pace is the pace at
/// which the server's output moves.
fn slow_client(addr: &str) -> std::net::TcpStream {
    common::client_with_recv_buffer(addr, 65536)
}

#[test]
fn a_slow_download_outlives_the_header_timeout_and_a_stuck_one_does_not() {
    let root = TempDir::new("timeouts");
    let content = random_bytes(1, 50_000_000);
    std::fs::write(root.0.join("big.bin"), &content).unwrap();
    let s = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap(), "--header-timeout", "3"],
    );

    // Read at 4 MB/s: about 12.5 s, four times the header timeout.
    let mut c = slow_client(&s.addr);
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    c.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let t0 = Instant::now();
    let mut got = Vec::with_capacity(content.len() + 512);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = c
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("cut after {} bytes: {e}", got.len()));
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        // The pace: never ahead of 4 MB/s.
        let due = Duration::from_secs_f64(got.len() as f64 / 4e6);
        if let Some(wait) = due.checked_sub(t0.elapsed()) {
            std::thread::sleep(wait);
        }
    }
    let head_end = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        got.len() - head_end,
        content.len(),
        "the whole body arrived"
    );
    assert!(got[head_end..] == content[..]);
    println!(
        "50 MB read at 4 MB/s in {:?} with a 3 s header timeout",
        t0.elapsed()
    );

    // A client that asks and then takes nothing is closed by the timeout.
    let mut stuck = slow_client(&s.addr);
    stuck
        .write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let t1 = Instant::now();
    // Wait (bounded) until the server's side of this connection has left
    // ESTABLISHED: the timeout closed it. Detection takes one to two
    // periods, as the timer samples the output's progress.
    let my_port = stuck.local_addr().unwrap().port();
    while server_side_established(s.port(), my_port) {
        assert!(
            t1.elapsed() < Duration::from_secs(30),
            "the stuck connection was not closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("the stuck client was closed after {:?}", t1.elapsed());
    stuck
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut total = 0;
    let ended = loop {
        match stuck.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => total += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(ended, "the stuck connection was not closed");
    assert!(total < content.len(), "it did not get the whole body");
}

/// Whether the server's end (local port `server`) of the connection to
/// `client` is still ESTABLISHED, from `/proc/net/tcp`.
fn server_side_established(server: u16, client: u16) -> bool {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines().skip(1).any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let port = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap_or(""), 16).ok();
        f.len() > 3 && port(f[1]) == Some(server) && port(f[2]) == Some(client) && f[3] == "01"
    })
}
