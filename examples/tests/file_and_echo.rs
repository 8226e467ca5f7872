//! file-server and echo-server against clients of ours: the file
//! protocol's checks (exact bytes, two requests on one connection, a missing
//! name), and echo-load --verify.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{loadgen, random_bytes, run_bounded, start, TempDir};

/// Asks for `name` on `c`: the length (-1 when missing) and the body.
fn fetch(c: &mut TcpStream, name: &str) -> (i64, Vec<u8>) {
    c.write_all(format!("{name}\n").as_bytes()).unwrap();
    let mut len = [0u8; 8];
    c.read_exact(&mut len).unwrap();
    let len = i64::from_be_bytes(len);
    let mut body = vec![0u8; len.max(0) as usize];
    c.read_exact(&mut body).unwrap();
    (len, body)
}

#[test]
fn file_server_speaks_the_file_protocol() {
    let dir = TempDir::new("file-root");
    let content = random_bytes(3, 10 * 1024 * 1024 + 7);
    std::fs::write(dir.0.join("data.bin"), &content).unwrap();
    let server = start(
        env!("CARGO_BIN_EXE_file-server"),
        &["--root", dir.0.to_str().unwrap()],
    );
    let mut c = TcpStream::connect(&server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for _ in 0..2 {
        // Twice on one connection: answers come in order, exact.
        let (len, body) = fetch(&mut c, "data.bin");
        assert_eq!(len as usize, content.len());
        assert!(body == content, "file bytes differ");
    }
    assert_eq!(fetch(&mut c, "missing.bin").0, -1);
}

#[test]
fn echo_server_echoes_exactly_and_passes_echo_load_verify() {
    let server = start(env!("CARGO_BIN_EXE_echo-server"), &["--threads", "2"]);
    let mut c = TcpStream::connect(&server.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    for (i, size) in [1usize, 100, 65_536, 1_000_000].into_iter().enumerate() {
        let data = random_bytes(i as u64, size);
        let mut w = c.try_clone().unwrap();
        let sent = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&sent).unwrap());
        let mut back = vec![0u8; size];
        c.read_exact(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == data, "{size} bytes came back altered");
    }
    let (ok, out) = run_bounded(
        Command::new(loadgen("echo-load")).args([
            "--addr",
            &server.addr,
            "--conns",
            "20",
            "--msg-size",
            "512",
            "--pipeline",
            "8",
            "--secs",
            "1",
            "--verify",
        ]),
        60,
    );
    assert!(ok && out.contains("errors=0"), "echo-load: {out}");
}
