//! SIGTERM with clients that never read: every example server exits within
//! its shutdown timeout. Each client has a tiny receive buffer and asks for
//! far more than the kernel can hold, so the server cannot drain its
//! channels and must close them when the timeout expires; the test checks
//! from the server's own log that it did (the abort path was taken), and
//! that the process then exited.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::TempDir;

/// The servers' `--shutdown-timeout`.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after the timeout the process may take to exit: a hang
/// detector, not a speed requirement (the measured figure is printed).
const MARGIN: Duration = Duration::from_secs(5);
const CLIENTS: usize = 10;

struct Server {
    run: common::Running,
    log: std::path::PathBuf,
    _dir: TempDir,
}

/// Starts an example with its shutdown timeout set and its server log
/// (`weft_transport::server` at debug) captured.
fn start(exe: &str, args: &[&str]) -> Server {
    let dir = TempDir::new("shutdown");
    let log = dir.0.join("stderr.log");
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .arg("--shutdown-timeout")
        .arg(TIMEOUT.as_secs_f64().to_string())
        .env("RUST_LOG", "weft_transport::server=debug")
        .stderr(std::fs::File::create(&log).unwrap());
    Server {
        run: common::start_command(cmd),
        log,
        _dir: dir,
    }
}

/// A client with a 4 KiB receive buffer, which it never reads.
fn tiny_reader(addr: &str) -> TcpStream {
    common::client_with_recv_buffer(addr, 4096)
}

/// Sends `data` from a thread of its own, counting what was accepted, and
/// keeps the connection open (never reading) until `release` fires.
fn send_and_hold(
    mut s: TcpStream,
    data: Arc<Vec<u8>>,
    sent: Arc<AtomicUsize>,
    release: mpsc::Receiver<()>,
) {
    std::thread::spawn(move || {
        for chunk in data.chunks(64 * 1024) {
            if s.write_all(chunk).is_err() {
                break;
            }
            sent.fetch_add(chunk.len(), Ordering::Relaxed);
        }
        let _ = release.recv();
        drop(s);
    });
}

/// Waits until `n` server-side connections have answers stuck in the
/// kernel and `ready()` holds (bounded).
fn wait_until_stuck(port: u16, n: usize, ready: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stuck = common::send_queues_on_port(port)
            .into_iter()
            .filter(|&q| q > 0)
            .count();
        if stuck >= n && ready() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "only {stuck} of {n} connections got stuck"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGTERM, then the exit within the timeout; returns how long it took.
/// With `must_abort`, the server's log must show that the timeout closed
/// the channels (the answers could not fit the kernel's buffers, so no
/// honest drain was possible).
fn terminate(server: &mut Server, name: &str, must_abort: bool) -> Duration {
    let pid = nix::unistd::Pid::from_raw(server.run.child.id() as i32);
    let t0 = Instant::now();
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = loop {
        if let Some(s) = server.run.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < TIMEOUT + MARGIN,
            "{name} did not exit within {:?} of SIGTERM",
            TIMEOUT + MARGIN
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t0.elapsed();
    assert!(status.success(), "{name} exited with {status}");
    let log = std::fs::read_to_string(&server.log).unwrap();
    assert!(
        !must_abort || log.contains("closing the remaining channels"),
        "{name}: the clients did not hold the server past its timeout, so the \
         abort path was not exercised; log:\n{log}"
    );
    println!("{name}: exited {took:?} after SIGTERM (shutdown timeout {TIMEOUT:?})");
    took
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Clients that each send `request` and never read the answer: what
/// releases each one, and how much of its request each has sent.
fn stuck_clients(
    addr: &str,
    request: &Arc<Vec<u8>>,
) -> (Vec<mpsc::Sender<()>>, Vec<Arc<AtomicUsize>>) {
    let mut releases = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..CLIENTS {
        let (tx, rx) = mpsc::channel();
        let n = Arc::new(AtomicUsize::new(0));
        send_and_hold(tiny_reader(addr), request.clone(), n.clone(), rx);
        releases.push(tx);
        sent.push(n);
    }
    (releases, sent)
}

#[test]
fn echo_server_exits_on_sigterm_with_clients_that_never_read() {
    let mut server = start(env!("CARGO_BIN_EXE_echo-server"), &["--threads", "2"]);
    // Far more than the kernel buffers can hold. The server stops reading
    // while its echo waits (its own backpressure), so a client may block
    // early: wait for the answers to be stuck.
    let data = Arc::new(common::random_bytes(1, 16 << 20));
    let (releases, sent) = stuck_clients(&server.run.addr, &data);
    wait_until_stuck(port_of(&server.run.addr), CLIENTS, || {
        sent.iter().all(|n| n.load(Ordering::Relaxed) >= 1 << 20)
    });
    terminate(&mut server, "echo-server", true);
    drop(releases);
}

#[test]
fn resp_server_exits_on_sigterm_with_clients_that_never_read() {
    let mut server = start(env!("CARGO_BIN_EXE_resp-server"), &["--threads", "2"]);
    // ECHO of 16 MiB: the answer cannot fit the kernel's buffers.
    let value = common::random_bytes(2, 16 << 20);
    let mut cmd = format!("*2\r\n$4\r\nECHO\r\n${}\r\n", value.len()).into_bytes();
    cmd.extend_from_slice(&value);
    cmd.extend_from_slice(b"\r\n");
    let (releases, _) = stuck_clients(&server.run.addr, &Arc::new(cmd));
    wait_until_stuck(port_of(&server.run.addr), CLIENTS, || true);
    terminate(&mut server, "resp-server", true);
    drop(releases);
}

#[test]
fn http_file_server_exits_on_sigterm_with_clients_that_never_read() {
    let root = TempDir::new("shutdown-root");
    std::fs::write(root.0.join("big.bin"), common::random_bytes(3, 32 << 20)).unwrap();
    let mut server = start(
        env!("CARGO_BIN_EXE_http-file-server"),
        &["--root", root.0.to_str().unwrap(), "--threads", "2"],
    );
    let req = Arc::new(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n".to_vec());
    let (releases, _) = stuck_clients(&server.run.addr, &req);
    wait_until_stuck(port_of(&server.run.addr), CLIENTS, || true);
    terminate(&mut server, "http-file-server", true);
    drop(releases);
}

#[test]
fn chat_server_exits_on_sigterm_with_members_that_never_read() {
    // A send queue large enough that the silent members are not
    // disconnected before the shutdown (the default, 1 MiB, would).
    let mut server = start(
        env!("CARGO_BIN_EXE_chat-server"),
        &["--threads", "2", "--sendq", "1073741824"],
    );
    let (releases, _) = stuck_clients(&server.run.addr, &Arc::new(Vec::new()));
    // One member talks: 16 MiB of lines that every silent member is sent.
    let mut line = vec![b'x'; 1023];
    line.push(b'\n');
    let talk: Vec<u8> = line.repeat(16 * 1024);
    let (tx, rx) = mpsc::channel();
    let talked = Arc::new(AtomicUsize::new(0));
    let talker = TcpStream::connect(&server.run.addr).unwrap();
    send_and_hold(talker, Arc::new(talk), talked.clone(), rx);
    wait_until_stuck(port_of(&server.run.addr), CLIENTS, || {
        talked.load(Ordering::Relaxed) >= 8 << 20
    });
    terminate(&mut server, "chat-server", true);
    drop((releases, tx));
}

#[test]
fn proxy_exits_on_sigterm_with_clients_that_never_read() {
    let echo = common::start(env!("CARGO_BIN_EXE_echo-server"), &["--threads", "1"]);
    let mut proxy = start(
        env!("CARGO_BIN_EXE_proxy"),
        &["--upstream", &echo.addr, "--threads", "2"],
    );
    let data = Arc::new(common::random_bytes(4, 16 << 20));
    let (releases, sent) = stuck_clients(&proxy.run.addr, &data);
    // The proxy stops reading from a client whose answers pile up, so a
    // client may block early: wait for the answers to be stuck.
    wait_until_stuck(port_of(&proxy.run.addr), CLIENTS, || {
        sent.iter().all(|n| n.load(Ordering::Relaxed) >= 1 << 20)
    });
    // The proxy's own backpressure may keep what it holds for a client
    // within the kernel's buffers, and then it drains honestly: only the
    // exit in time is required.
    terminate(&mut proxy, "proxy", false);
    drop(releases);
}
