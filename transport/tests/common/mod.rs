//! Helpers shared by the transport integration tests.
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use weft_core::{Context, Events, Handler, Msg};

/// Every network test runs under this bound.
pub async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("test exceeded its time bound")
}

/// Deterministic pseudo-random bytes (xorshift64*).
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

/// A temp file removed on drop.
pub struct TempFile {
    pub path: PathBuf,
}

impl TempFile {
    pub fn new(data: &[u8]) -> TempFile {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "weft-transport-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, data).unwrap();
        TempFile { path }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serialises the tests of one test binary that count the process's
/// descriptors or memory: tests running alongside would skew the counts.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits (at most 10 s) until no descriptor of a connection on `port` is
/// open: closes on other tasks finish asynchronously.
pub async fn wait_for_no_connections(port: u16) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connections_on_port(port) > 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// This process's open descriptors for TCP connections (not listeners)
/// with `port` at either end.
pub fn connections_on_port(port: u16) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] == "0A" {
                continue; // short line, or a listener
            }
            let port_of =
                |a: &str| u16::from_str_radix(a.rsplit(':').next().unwrap_or(""), 16).ok();
            if port_of(f[1]) == Some(port) || port_of(f[2]) == Some(port) {
                inodes.insert(f[9].to_string());
            }
        }
    }
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

/// Open descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Collects every byte it reads; reports them when the channel closes.
pub struct Collect {
    pub buf: Vec<u8>,
    pub done: Option<oneshot::Sender<Vec<u8>>>,
    pub auto_read: bool,
    pub reads: Arc<Mutex<Vec<Bytes>>>,
}

impl Collect {
    pub fn new(auto_read: bool) -> (Collect, oneshot::Receiver<Vec<u8>>) {
        let (tx, rx) = oneshot::channel();
        (
            Collect {
                buf: Vec::new(),
                done: Some(tx),
                auto_read,
                reads: Arc::new(Mutex::new(Vec::new())),
            },
            rx,
        )
    }
}

impl Handler for Collect {
    fn interest(&self) -> Events {
        Events::ACTIVE | Events::READ | Events::READ_COMPLETE | Events::INACTIVE
    }
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        if !self.auto_read {
            ctx.read();
        }
    }
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        let b: Bytes = msg.downcast().expect("transport reads are Bytes");
        self.buf.extend_from_slice(&b);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        if !self.auto_read {
            ctx.read();
        }
    }
    fn channel_inactive(&mut self, _ctx: &mut Context<'_>) {
        if let Some(tx) = self.done.take() {
            let _ = tx.send(std::mem::take(&mut self.buf));
        }
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

/// Echoes reads, flushing on read_complete.
pub struct Echo;

impl Handler for Echo {
    fn interest(&self) -> Events {
        Events::READ | Events::READ_COMPLETE
    }
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.write(msg);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}
