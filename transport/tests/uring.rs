//! The io_uring transport asked for explicitly (`ChannelOptions::io_uring`),
//! whatever `WEFT_TRANSPORT` says: a ring really exists while it serves and
//! is gone once its channels are; large `Bytes` (zero-copy sends), files
//! (splice) and bytes from a weft client arrive whole and in order, on a
//! multi-thread runtime. The rest of the transport suite runs on this
//! transport too, with `WEFT_TRANSPORT=io_uring` (test.sh does both).
#![cfg(all(feature = "uring", target_os = "linux"))]

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{bounded, random_bytes, serial, Echo, TempFile};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::FileRegion;
use weft_transport::{Bootstrap, ChannelOptions, ServerBootstrap};

/// io_uring instances this process holds open.
fn rings() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("io_uring"))
        .count()
}

/// Waits (bounded, by polling) until `f` holds.
async fn until(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "never: {what}");
        tokio::task::yield_now().await;
    }
}

/// Runs `f` on a two-worker runtime, one such test at a time (they count
/// the process's rings), within the suite's time bound.
fn run<F: std::future::Future>(f: F) -> F::Output {
    let _one_at_a_time = serial();
    settled();
    runtime().block_on(bounded(f))
}

/// The two-worker runtime every test here runs on.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Waits (bounded) until no ring is open in the process, so that a test
/// that failed before it could close its ring fails alone, not every test
/// that counts rings after it.
fn settled() {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while rings() != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "a ring an earlier test opened never closed"
        );
        std::thread::yield_now();
    }
}

fn uring() -> ChannelOptions {
    ChannelOptions::new().io_uring(true)
}

#[test]
fn an_echo_runs_on_a_ring_that_ends_with_its_channels() {
    run(async {
        let before = rings();
        let server = ServerBootstrap::new()
            .child_options(uring())
            .child_handler(|p| p.add_last("echo", Echo))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        assert_eq!(
            rings(),
            before + 1,
            "the server's connections share one ring"
        );
        let mut clients = Vec::new();
        for i in 0..8u64 {
            let addr = server.tcp_addr().unwrap();
            clients.push(tokio::spawn(async move {
                let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                let data = random_bytes(i, 200_000 + i as usize * 777);
                let (mut r, mut w) = s.split();
                let expected = data.clone();
                let write = async move {
                    for c in data.chunks(5000) {
                        w.write_all(c).await.unwrap();
                    }
                };
                let read = async move {
                    let mut got = vec![0u8; expected.len()];
                    r.read_exact(&mut got).await.unwrap();
                    assert!(got == expected, "echoed bytes differ");
                };
                tokio::join!(write, read);
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        server.shutdown(Duration::from_secs(5)).await;
        until(
            || rings() == before,
            "the ring closes after the last channel",
        )
        .await;
    });
}

/// Files go out with `sendfile` (after a poll when the socket is full), or
/// spliced through the connection's pipe with `sendfile(false)`.
#[test]
fn large_bytes_and_files_from_a_client_arrive_whole_and_in_order() {
    for sendfile in [true, false] {
        files_from_a_client(sendfile);
    }
}

fn files_from_a_client(sendfile: bool) {
    run(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let big = Bytes::from(random_bytes(1, 3 << 20)); // zero-copy send
        let small = Bytes::from_static(b"between");
        let file_data = random_bytes(2, (5 << 20) + 123); // spliced
        let file = TempFile::new(&file_data);
        let mut want = big.to_vec();
        want.extend_from_slice(&small);
        want.extend_from_slice(&file_data);
        want.extend_from_slice(&small);
        let n = want.len();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut got = Vec::with_capacity(n);
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let ch = Bootstrap::new()
            .options(uring().sendfile(sendfile))
            .connect(addr)
            .await
            .unwrap();
        let a = ch.write_with_promise(big.clone());
        let b = ch.write_with_promise(small.clone());
        let c = ch.write_with_promise(FileRegion::open(&file.path).unwrap());
        ch.write_and_flush(small.clone()).await.unwrap();
        for p in [a, b, c] {
            p.await.unwrap();
        }
        assert_eq!(ch.bytes_written(), n as u64, "every byte counted");
        ch.close().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(got.len(), n);
        assert!(got == want, "bytes differ or out of order");
    });
}

#[test]
fn reads_stop_while_auto_read_is_off_and_nothing_received_is_lost() {
    run(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let server = ServerBootstrap::new()
            .child_options(uring().auto_read(false))
            .child_handler(move |p| {
                let tx = tx.clone();
                p.add_last(
                    "sink",
                    weft_core::from_fn(move |_ctx: &mut weft_core::Context<'_>, b: Bytes| {
                        let _ = tx.send(b);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let data = random_bytes(3, 1 << 20);
        s.write_all(&data).await.unwrap();
        until(
            || server.connections() == 1,
            "the server has the connection",
        )
        .await;
        let ch = server.channels().pop().unwrap();
        // Auto-read off: nothing is read until asked, one read at a time.
        let mut got = Vec::new();
        while got.len() < data.len() {
            ch.read();
            let b = rx.recv().await.unwrap();
            got.extend_from_slice(&b);
        }
        assert!(got == data, "bytes lost or reordered across reads");
        drop(s);
        server.shutdown(Duration::from_secs(5)).await;
    });
}

/// A handler that keeps every buffer it reads (a decoder holding partial
/// frames, a slow consumer) cannot starve the ring's receive buffers: past
/// three quarters of the pool lent out, reads are copied and the buffers go
/// back at once. 8 MiB through a 4 MiB pool, every byte kept.
#[test]
fn handlers_that_keep_what_they_read_cannot_starve_the_pool() {
    run(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let kept = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Bytes>::new()));
        let k2 = kept.clone();
        let server = ServerBootstrap::new()
            .child_options(uring())
            .child_handler(move |p| {
                let (tx, kept) = (tx.clone(), k2.clone());
                p.add_last(
                    "keep",
                    weft_core::from_fn(move |_ctx: &mut weft_core::Context<'_>, b: Bytes| {
                        // Kept before it is counted: the test reads
                        // `kept` once the count is complete.
                        let n = b.len();
                        kept.lock().unwrap().push(b);
                        let _ = tx.send(n);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let data = random_bytes(4, 8 << 20);
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let expected = data.clone();
        let writer = tokio::spawn(async move {
            s.write_all(&data).await.unwrap();
            s
        });
        let mut total = 0;
        while total < expected.len() {
            total += rx.recv().await.unwrap();
        }
        let s = writer.await.unwrap();
        let got: Vec<u8> = kept
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b.to_vec())
            .collect();
        assert_eq!(got.len(), expected.len(), "bytes lost");
        assert!(got == expected, "bytes reordered or overwritten");
        drop(s);
        kept.lock().unwrap().clear();
        server.shutdown(Duration::from_secs(5)).await;
    });
}

/// A runtime dropped while the server still serves (no shutdown, a receive
/// in flight, bytes received) takes its ring with it: the descriptor is
/// closed, so a process that builds runtimes over and over does not run out
/// of them.
#[test]
fn a_runtime_dropped_while_serving_closes_its_ring() {
    let _one_at_a_time = serial();
    settled();
    let before = rings();
    let rt = runtime();
    let (server, client) = rt.block_on(bounded(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let server = ServerBootstrap::new()
            .child_options(uring())
            .child_handler(move |p| {
                let tx = tx.clone();
                p.add_last(
                    "count",
                    weft_core::from_fn(move |_ctx: &mut weft_core::Context<'_>, b: Bytes| {
                        let _ = tx.send(b.len());
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut s = std::net::TcpStream::connect(server.tcp_addr().unwrap()).unwrap();
        std::io::Write::write_all(&mut s, b"some bytes").unwrap();
        let mut got = 0;
        while got < 10 {
            got += rx.recv().await.unwrap();
        }
        (server, s) // never shut down
    }));
    assert_eq!(rings(), before + 1, "the ring serves");
    drop(rt);
    assert_eq!(rings(), before, "the ring closed with its runtime");
    drop((server, client));
}
