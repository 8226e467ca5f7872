//! Helpers for the example tests: start a binary on port 0, find the peers.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub use weft_test_support::{client_with_recv_buffer, random_bytes, send_queues_on_port, TempDir};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running example binary, killed on drop.
pub struct Running {
    pub child: Child,
    pub addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }
}

/// Starts `exe` with `args` (plus `--addr 127.0.0.1:0`) and waits for its
/// `listening on ADDR` line.
pub fn start(exe: &str, args: &[&str]) -> Running {
    let mut cmd = Command::new(exe);
    cmd.args(args).stderr(Stdio::inherit());
    start_command(cmd)
}

/// [`start`] for a command set up by the caller (environment, stderr,
/// limits): adds `--addr 127.0.0.1:0`, starts it and waits for its
/// `listening on ADDR` line.
pub fn start_command(mut cmd: Command) -> Running {
    let mut child = cmd
        .args(["--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server did not print its address in time");
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    Running { child, addr }
}

/// A load generator of ours (`benches/src/bin`), built in release mode
/// into `target/tools` on first use, so that a fresh clone runs the suite
/// with nothing to prepare. (A separate target directory: the `cargo test`
/// that runs this holds the lock of the workspace's own.)
pub fn loadgen(name: &str) -> PathBuf {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _once = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = repo.join("target/tools");
    let p = target.join("release").join(name);
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "weft-benches",
            "--bin",
            name,
        ])
        .arg("--manifest-path")
        .arg(repo.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cannot run cargo to build the load generator");
    assert!(status.success(), "building {name} failed");
    assert!(p.exists(), "{} is missing", p.display());
    p
}

/// Runs a command with a time bound; returns (success, stdout + stderr).
pub fn run_bounded(cmd: &mut Command, secs: u64) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.success(), text);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} took more than {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The resident memory of process `pid` (VmRSS), 0 once it is gone.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}
