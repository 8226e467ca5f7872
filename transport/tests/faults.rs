//! The fault suite: load, slow readers, resets, panics, descriptor
//! exhaustion, silent peers, shutdown under load. Every case is bounded in
//! time, uses loopback only, and asserts its claim with numbers.

// The serialising lock is held across awaits on purpose: each test runs on
// its own runtime and must not overlap the others' socket counts.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{bounded, fd_count, random_bytes, Echo, TempFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{from_fn, Context, FileRegion, Handler, Msg, Promise};
use weft_transport::{ChannelOptions, ReadTimeoutHandler, ServerBootstrap};

/// Raises the soft descriptor limit to the hard one (load tests need
/// thousands of sockets in this one process).
fn raise_nofile() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft < hard {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
    getrlimit(Resource::RLIMIT_NOFILE).unwrap().0
}

fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn checksum(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ *x as u64).wrapping_mul(0x100_0000_01b3)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_2000_connections_200_messages_each() {
    let _serial = common::serial();
    let limit = raise_nofile();
    let conns: usize = if limit >= 5000 {
        2000
    } else {
        (limit as usize / 3).min(2000)
    };
    bounded(async move {
        let server = common::echo_server().await;
        let addr = server.tcp_addr().unwrap();
        let ok = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Semaphore::new(500)); // connect in waves
        let mut tasks = Vec::new();
        for c in 0..conns {
            let ok = ok.clone();
            let gate = gate.clone();
            tasks.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let (mut r, mut w) = s.split();
                let msgs: Vec<Vec<u8>> = (0..200)
                    .map(|i| random_bytes((c * 1000 + i) as u64, 16 + i % 100))
                    .collect();
                let want: u64 = msgs.iter().map(|m| checksum(m)).fold(0, u64::wrapping_add);
                let total: usize = msgs.iter().map(|m| m.len()).sum();
                let writer = async {
                    for m in &msgs {
                        w.write_all(m).await.unwrap();
                    }
                };
                let reader = async {
                    let mut got = vec![0u8; total];
                    r.read_exact(&mut got).await.unwrap();
                    got
                };
                let ((), got) = tokio::join!(writer, reader);
                // Same bytes, in order: re-split by the sent lengths.
                let mut pos = 0;
                let mut sum = 0u64;
                for m in &msgs {
                    sum = sum.wrapping_add(checksum(&got[pos..pos + m.len()]));
                    pos += m.len();
                }
                assert_eq!(sum, want, "connection {c}: echoed bytes differ");
                ok.fetch_add(1, Ordering::Relaxed);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(ok.load(Ordering::Relaxed), conns);
        while server.connections() > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Every descriptor of this test's connections is closed (other
        // tests' sockets come and go meanwhile, so count only ours).
        common::wait_for_no_connections(addr.port()).await;
        assert_eq!(
            common::connections_on_port(addr.port()),
            0,
            "descriptors leaked"
        );
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// Writes 200 MiB in 64 KiB chunks; `respect` waits for writability.
struct Flood {
    respect: bool,
    sent: usize,
    chunk: Bytes,
    max_buffered: Arc<Mutex<usize>>,
}

const FLOOD_CHUNKS: usize = 3200; // 200 MiB

impl Flood {
    fn pump(&mut self, ctx: &mut Context<'_>) {
        while self.sent < FLOOD_CHUNKS && (!self.respect || ctx.is_writable()) {
            ctx.write(self.chunk.clone());
            self.sent += 1;
            let mut m = self.max_buffered.lock().unwrap();
            *m = (*m).max(ctx.buffered_bytes());
            if !self.respect && self.sent % 64 == 0 {
                ctx.flush();
            }
        }
        ctx.flush();
    }
}

#[weft_core::handler]
impl Handler for Flood {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.pump(ctx);
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        if writable {
            self.pump(ctx);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_memory_stays_bounded_and_the_cap_closes() {
    let _serial = common::serial();
    bounded(async {
        let chunk = Bytes::from(vec![3u8; 64 * 1024]);
        // 1. A writer that respects writability: the buffer stays near the high mark.
        let max_buffered = Arc::new(Mutex::new(0));
        let (mb, ch2) = (max_buffered.clone(), chunk.clone());
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                p.add_last(
                    "flood",
                    Flood {
                        respect: true,
                        sent: 0,
                        chunk: ch2.clone(),
                        max_buffered: mb.clone(),
                    },
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let rss0 = rss_kb();
        let mut peer = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        // Do not read for a while; the server must stay bounded meanwhile.
        while *max_buffered.lock().unwrap() < 64 * 1024 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let grown = rss_kb().saturating_sub(rss0);
        assert!(
            grown < 8 * 1024,
            "RSS grew {grown} KiB with a non-reading peer"
        );
        let max = *max_buffered.lock().unwrap();
        assert!(
            max <= 64 * 1024 + chunk.len(),
            "outbound buffer held {max} bytes"
        );
        // Then read it all: everything arrives.
        let mut total = 0usize;
        let mut buf = vec![0u8; 1 << 20];
        while total < FLOOD_CHUNKS * chunk.len() {
            let n = peer.read(&mut buf).await.unwrap();
            assert!(n > 0);
            total += n;
        }
        drop(peer);
        server.shutdown(Duration::from_secs(5)).await;

        // 2. A writer that ignores writability, with the opt-in cap: closed.
        let ch3 = chunk.clone();
        let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
        let closed_tx = Mutex::new(Some(closed_tx));
        let server = ServerBootstrap::new()
            .child_options(ChannelOptions::new().max_outbound_bytes(4 * 1024 * 1024))
            .child_handler(move |p| {
                let tx = closed_tx.lock().unwrap().take();
                let ch = p.channel().clone();
                tokio::spawn(async move {
                    ch.closed().await;
                    if let Some(tx) = tx {
                        let _ = tx.send(());
                    }
                });
                p.add_last(
                    "flood",
                    Flood {
                        respect: false,
                        sent: 0,
                        chunk: ch3.clone(),
                        max_buffered: Arc::default(),
                    },
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let rss1 = rss_kb();
        let _peer = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        closed_rx.await.unwrap();
        // The flood is dropped with the channel: memory comes back.
        let mut settled = rss_kb();
        for _ in 0..100 {
            if settled.saturating_sub(rss1) < 32 * 1024 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            settled = rss_kb();
        }
        assert!(
            settled.saturating_sub(rss1) < 32 * 1024,
            "RSS after close: +{} KiB",
            settled - rss1
        );
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// Resets a connection (SO_LINGER 0 then close): the peer sees ECONNRESET.
fn reset(s: tokio::net::TcpStream) {
    use nix::sys::socket::{setsockopt, sockopt::Linger};
    let l = nix::libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    setsockopt(&s, Linger, &l).unwrap();
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_reset_fails_the_write_and_spares_others() {
    let _serial = common::serial();
    bounded(async {
        let file = TempFile::new(&random_bytes(5, 32 * 1024 * 1024));
        let path = file.path.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                let (tx, path) = (tx.clone(), path.clone());
                p.add_last(
                    "send",
                    from_fn(move |ctx: &mut Context<'_>, m: Bytes| {
                        let (promise, fut) = Promise::new();
                        let msg = match &m[..] {
                            b"file" => Msg::from(FileRegion::open(&path).unwrap()),
                            b"gather" => {
                                let parts: weft_core::CompositeBytes = (0..512)
                                    .map(|_| Bytes::from(vec![1u8; 64 * 1024]))
                                    .collect();
                                Msg::from(parts)
                            }
                            _ => return ctx.write_and_flush(m),
                        };
                        ctx.write_and_flush_with(msg, Some(promise));
                        let _ = tx.send(fut);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut bystander = tokio::net::TcpStream::connect(addr).await.unwrap();
        for what in [&b"file"[..], b"gather"] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(what).await.unwrap();
            let mut some = vec![0u8; 64 * 1024];
            s.read_exact(&mut some).await.unwrap(); // the transfer is under way
            reset(s);
            let err = rx.recv().await.unwrap().await.unwrap_err();
            assert!(err.is_io() || err.is_closed(), "{err}");
        }
        bystander.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        bystander.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        // Only the bystander is left.
        while server.connections() > 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_closes_one_connection_100_others_keep_echoing() {
    let _serial = common::serial();
    bounded(async {
        let server = ServerBootstrap::new()
            .child_handler(|p| {
                p.add_last(
                    "echo-or-panic",
                    from_fn(|ctx: &mut Context<'_>, m: Bytes| {
                        if m.starts_with(b"PANIC") {
                            panic!("asked to panic");
                        }
                        ctx.write_and_flush(m);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut others = Vec::new();
        for _ in 0..100 {
            others.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        let mut bad = tokio::net::TcpStream::connect(addr).await.unwrap();
        bad.write_all(b"PANIC").await.unwrap();
        let mut rest = Vec::new();
        bad.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "the panicking connection is closed");
        for round in 0..3u8 {
            for s in &mut others {
                s.write_all(&[b'a' + round; 32]).await.unwrap();
            }
            for s in &mut others {
                let mut b = [0u8; 32];
                s.read_exact(&mut b).await.unwrap();
                assert_eq!(b, [b'a' + round; 32]);
            }
        }
        assert_eq!(server.connections(), 100);
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_peer_is_closed_by_read_timeout() {
    let _serial = common::serial();
    bounded(async {
        let server = ServerBootstrap::new()
            .child_handler(|p| {
                p.add_last(
                    "timeout",
                    ReadTimeoutHandler::new(Duration::from_millis(300)),
                )?;
                p.add_last("echo", Echo)
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let t = std::time::Instant::now();
        let mut v = Vec::new();
        s.read_to_end(&mut v).await.unwrap(); // EOF when the server closes
        let waited = t.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "closed too early: {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(5),
            "closed too late: {waited:?}"
        );
        // A talking peer is not closed.
        let mut talk = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        for _ in 0..8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            talk.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            talk.read_exact(&mut b).await.unwrap();
        }
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_completes_or_fails_every_flushed_write() {
    let _serial = common::serial();
    bounded(async {
        let payload = Bytes::from(random_bytes(9, 2 * 1024 * 1024));
        let p2 = payload.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                let (payload, tx) = (p2.clone(), tx.clone());
                p.add_last(
                    "send",
                    from_fn(move |ctx: &mut Context<'_>, _m: Bytes| {
                        let (promise, fut) = Promise::new();
                        ctx.write_and_flush_with(Msg::from(payload.clone()), Some(promise));
                        let _ = tx.send(fut);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut readers = Vec::new();
        for i in 0..100 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"go").await.unwrap();
            readers.push(tokio::spawn(async move {
                if i % 10 == 0 {
                    // A few peers never read: shutdown's timeout must end them.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return 0;
                }
                let mut v = Vec::new();
                let _ = s.read_to_end(&mut v).await;
                v.len()
            }));
        }
        let mut promises = Vec::new();
        for _ in 0..100 {
            promises.push(rx.recv().await.unwrap());
        }
        server.shutdown(Duration::from_secs(2)).await;
        let (mut ok, mut failed) = (0, 0);
        for p in promises {
            // Every promise resolves: none is silently dropped.
            match tokio::time::timeout(Duration::from_secs(10), p)
                .await
                .expect("a promise never resolved")
            {
                Ok(()) => ok += 1,
                Err(_) => failed += 1,
            }
        }
        assert_eq!(ok + failed, 100);
        assert!(
            ok >= 90,
            "the reading peers got their writes ({ok} ok, {failed} failed)"
        );
        for (i, r) in readers.into_iter().enumerate() {
            if i % 10 != 0 {
                assert_eq!(r.await.unwrap(), payload.len(), "reader {i}");
            } else {
                r.abort();
            }
        }
    })
    .await;
}

/// Descriptor exhaustion runs in a child process with a low limit, so that
/// the rest of the suite keeps its descriptors.
#[test]
fn descriptor_exhaustion_backs_off_and_recovers() {
    let _serial = common::serial();
    if std::env::var("WEFT_EMFILE_CHILD").is_ok() {
        return emfile_child();
    }
    let (ok, text) = common::run_test_in_child(
        "descriptor_exhaustion_backs_off_and_recovers",
        "WEFT_EMFILE_CHILD",
        "1",
    );
    assert!(ok, "child failed:\n{text}");
    assert!(text.contains("EMFILE-CHILD-OK"), "{text}");
}

fn emfile_child() {
    use nix::sys::resource::{setrlimit, Resource};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let server = common::echo_server().await;
        let addr = server.tcp_addr().unwrap();
        // Room for a few descriptors only.
        let limit = (fd_count() + 24) as u64;
        setrlimit(Resource::RLIMIT_NOFILE, limit, limit).unwrap();
        // Fill the table with client sockets: the server cannot accept them all.
        let mut held = Vec::new();
        for _ in 0..64 {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(s) => held.push(s),
                Err(_) => break, // our own side ran out
            }
        }
        assert!(!held.is_empty());
        tokio::time::sleep(Duration::from_millis(300)).await; // the server hits EMFILE and backs off
                                                              // Free descriptors: the server serves again.
        drop(held);
        let mut s = None;
        for _ in 0..200 {
            if let Ok(c) = tokio::net::TcpStream::connect(addr).await {
                s = Some(c);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut s = s.expect("cannot connect after descriptors were freed");
        s.write_all(b"back").await.unwrap();
        let mut b = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b, b"back");
        println!("EMFILE-CHILD-OK");
    });
}
