//! Heap allocations per echoed message, counted with a counting global
//! allocator, for a weft echo server and for a plain tokio echo loop (the
//! baseline), in one process and one run.
//!
//! `cargo run --release -p weft-benches --bin echo-alloc [-- --secs N]`
//!
//! Both servers run on a current-thread runtime with 50 clients, each
//! keeping 16 messages of 64 bytes in flight. The clients reuse their
//! buffers, so what is counted is the server side (plus tokio's own
//! bookkeeping, which the baseline shows).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use weft_core::{Context, Handler, Msg};
use weft_transport::ServerBootstrap;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to the system allocator unchanged; the
// counter has no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const CONNS: usize = 50;
const MSG: usize = 64;
const PIPELINE: usize = 16;

struct Echo;
#[weft_core::handler]
impl Handler for Echo {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        ctx.write(msg);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
}

static MEASURING: AtomicBool = AtomicBool::new(false);
static ECHOED: AtomicU64 = AtomicU64::new(0);

async fn client(addr: std::net::SocketAddr, stop: Instant) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let out = vec![7u8; MSG * PIPELINE];
    let mut back = vec![0u8; MSG * PIPELINE];
    while Instant::now() < stop {
        s.write_all(&out).await.unwrap();
        s.read_exact(&mut back).await.unwrap();
        if MEASURING.load(Ordering::Relaxed) {
            ECHOED.fetch_add(PIPELINE as u64, Ordering::Relaxed);
        }
    }
}

/// Runs the clients against `addr`; returns allocations per echoed message
/// in the measured window (after a warm-up of a quarter of the time).
async fn measure(addr: std::net::SocketAddr, secs: f64) -> (f64, u64) {
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..CONNS {
        tasks.push(tokio::spawn(client(addr, stop)));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs / 4.0)).await;
    ECHOED.store(0, Ordering::Relaxed);
    let a0 = ALLOCS.load(Ordering::Relaxed);
    MEASURING.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(secs / 2.0)).await;
    MEASURING.store(false, Ordering::Relaxed);
    let allocs = ALLOCS.load(Ordering::Relaxed) - a0;
    let msgs = ECHOED.load(Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    (allocs as f64 / msgs.max(1) as f64, msgs)
}

fn main() {
    let secs: f64 = std::env::args()
        .skip_while(|a| a != "--secs")
        .nth(1)
        .map(|s| s.parse().expect("--secs takes a number"))
        .unwrap_or(4.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = ServerBootstrap::new()
            .child_handler(|p| p.add_last("echo", Echo))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let (weft, weft_msgs) = measure(server.tcp_addr().unwrap(), secs).await;
        server.shutdown(Duration::from_secs(2)).await;

        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(weft_benches::tokio_echo(l));
        let (base, base_msgs) = measure(addr, secs).await;
        srv.abort();
        println!("messages measured: weft {weft_msgs}, tokio {base_msgs}");
        println!(
            "allocations per echoed message: weft {weft:.3}, plain tokio echo {base:.3}, weft minus baseline {:.3}",
            weft - base
        );
    });
}
