//! Helpers shared by weft's integration tests (hyper's `tests/support` is
//! the model): time bounds, deterministic data, temporary files that clean
//! up after themselves, descriptor counting, and a reference echo server.
//!
//! Contract: every helper is bounded in time and leaves nothing behind
//! (temporary files and directories are removed on drop); nothing here
//! depends on wall-clock speed except the generous bounds that turn a hang
//! into a failure.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use weft_core::{Context, Handler, Msg};

/// Runs `f` under the bound every network test has (60 s): a hang fails
/// the test instead of stalling the suite.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test exceeded its time bound")
}

/// Deterministic pseudo-random bytes (xorshift64*): the same `seed` gives
/// the same bytes, so a failure can be replayed.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A name no other test of this process uses.
fn unique_temp_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("weft-test-{tag}-{}-{n}", std::process::id()))
}

/// A temporary file holding the given bytes, removed on drop.
#[derive(Debug)]
pub struct TempFile {
    /// Where it is.
    pub path: PathBuf,
}

impl TempFile {
    /// Writes `data` to a fresh temporary file.
    pub fn new(data: &[u8]) -> TempFile {
        let path = unique_temp_path("file");
        std::fs::write(&path, data).unwrap();
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A fresh temporary directory, removed with its contents on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates an empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        let p = unique_temp_path(tag);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serialises the tests of one test binary that count the process's
/// descriptors or memory: tests running alongside would skew the counts.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the test `test` of this test binary again, alone, in a child
/// process with the environment variable `var` set to `value` (the test
/// sees it and plays the child's part); returns whether the child passed
/// and what it printed. For what must happen in another process: limits
/// that would starve the rest of the suite, a peer that is not this
/// process's thread.
pub fn run_test_in_child(test: &str, var: &str, value: &str) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(var, value)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// One row of the kernel's TCP socket tables (`/proc/net/tcp{,6}`).
#[derive(Clone, Debug)]
pub struct TcpRow {
    /// The local port.
    pub local_port: u16,
    /// The remote port.
    pub remote_port: u16,
    /// Whether the socket is a listener.
    pub listening: bool,
    /// Bytes waiting in the send queue.
    pub send_queue: u64,
    /// The socket's inode (as in `/proc/self/fd`'s `socket:[N]`).
    pub inode: String,
}

/// Every TCP socket of the machine's network namespace, IPv4 and IPv6.
pub fn tcp_sockets() -> Vec<TcpRow> {
    let port = |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap_or(""), 16).ok();
    let mut rows = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let (Some(local_port), Some(remote_port)) = (port(f[1]), port(f[2])) else {
                continue;
            };
            let tx = f[4].split(':').next().unwrap_or("0");
            rows.push(TcpRow {
                local_port,
                remote_port,
                listening: f[3] == "0A",
                send_queue: u64::from_str_radix(tx, 16).unwrap_or(0),
                inode: f[9].to_string(),
            });
        }
    }
    rows
}

/// Bytes waiting in the send queues of the connections (not listeners)
/// whose local port is `port`: the server's side of its connections.
pub fn send_queues_on_port(port: u16) -> Vec<u64> {
    tcp_sockets()
        .into_iter()
        .filter(|r| !r.listening && r.local_port == port)
        .map(|r| r.send_queue)
        .collect()
}

/// This process's open descriptors for TCP connections (not listeners)
/// with `port` at either end.
pub fn connections_on_port(port: u16) -> usize {
    let inodes: std::collections::HashSet<String> = tcp_sockets()
        .into_iter()
        .filter(|r| !r.listening && (r.local_port == port || r.remote_port == port))
        .map(|r| r.inode)
        .collect();
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .filter(|i| inodes.contains(i))
        .count()
}

/// Waits (at most 10 s) until no descriptor of a connection on `port` is
/// open: closes on other tasks finish asynchronously.
pub async fn wait_for_no_connections(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connections_on_port(port) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A blocking client whose receive buffer is `bytes` (set before
/// connecting, so the window it announces is small from the start): a slow
/// or silent reader whose pace the server feels at once.
#[allow(unsafe_code)]
pub fn client_with_recv_buffer(addr: &str, bytes: usize) -> std::net::TcpStream {
    use nix::sys::socket::{
        connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::empty(),
        None,
    )
    .unwrap();
    setsockopt(&fd, sockopt::RcvBuf, &bytes).unwrap();
    let sa: std::net::SocketAddrV4 = addr.parse().unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(sa)).unwrap();
    // SAFETY: `fd` is a connected stream socket we own; ownership moves to
    // the TcpStream.
    unsafe { std::net::TcpStream::from_raw_fd(fd.into_raw_fd()) }
}

/// Echoes reads, flushing on `channel_read_complete`.
#[derive(Debug)]
pub struct Echo;

#[weft_core::handler]
impl Handler for Echo {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.write(msg);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

/// A server on 127.0.0.1 whose children run [`Echo`].
pub async fn echo_server() -> weft_transport::Server {
    weft_transport::ServerBootstrap::new()
        .child_handler(|p| p.add_last("echo", Echo))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}
