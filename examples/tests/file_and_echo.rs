//! file-server against the peers' check.py; echo-server against echo-load --verify.

mod common;

use std::process::Command;

use common::{loadgen, peers_dir, random_bytes, run_bounded, start, TempDir};

#[test]
fn file_server_passes_check_py() {
    let dir = TempDir::new("file-root");
    let path = dir.0.join("data.bin");
    std::fs::write(&path, random_bytes(3, 10 * 1024 * 1024 + 7)).unwrap();
    let server = start(
        env!("CARGO_BIN_EXE_file-server"),
        &["--root", dir.0.to_str().unwrap()],
    );
    let check = peers_dir().join("netty/check.py");
    let (ok, out) = run_bounded(
        Command::new("python3")
            .arg(&check)
            .args(["file", &server.port().to_string(), "data.bin"])
            .arg(&path),
        60,
    );
    assert!(ok, "check.py failed: {out}");
    assert!(out.contains("file OK"), "{out}");
}

#[test]
fn echo_server_passes_check_py_and_echo_load_verify() {
    let server = start(env!("CARGO_BIN_EXE_echo-server"), &["--threads", "2"]);
    let check = peers_dir().join("netty/check.py");
    let (ok, out) = run_bounded(
        Command::new("python3")
            .arg(&check)
            .args(["echo", &server.port().to_string()]),
        60,
    );
    assert!(ok, "check.py failed: {out}");
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
