//! Half-closure, graceful shutdown, descriptor hygiene, panics, ChannelGroup.

// The serialising lock is held across awaits on purpose: each test runs on
// its own runtime and must not overlap the others' socket counts.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{bounded, random_bytes, Echo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{from_fn, Context, Handler, InputShutdown, Msg, UserEvent};
use weft_transport::{ChannelGroup, ChannelOptions, ServerBootstrap};

/// Counts the bytes it reads; on end of input answers with the count and closes.
struct CountThenReply(usize);
#[weft_core::handler]
impl Handler for CountThenReply {
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        self.0 += msg.buffered_len();
    }
    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        if event.is::<InputShutdown>() {
            let (p, _f) = weft_core::Promise::new();
            ctx.write_and_flush_with(Bytes::from(format!("got {}", self.0)).into(), Some(p));
            ctx.close();
        } else {
            ctx.fire_user_event(event);
        }
    }
}

/// A half-closure server whose children answer `got N` at end of input.
async fn count_then_reply_server() -> weft_transport::Server {
    ServerBootstrap::new()
        .child_options(ChannelOptions::new().allow_half_closure(true))
        .child_handler(|p| p.add_last("count", CountThenReply(0)))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test]
async fn half_closure_keeps_the_channel_writable() {
    let _serial = common::serial();
    bounded(async {
        let server = count_then_reply_server().await;
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        s.write_all(&[7u8; 12345]).await.unwrap();
        s.shutdown().await.unwrap(); // our output ends; the server may still write
        let mut reply = String::new();
        s.read_to_string(&mut reply).await.unwrap();
        assert_eq!(reply, "got 12345");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test]
async fn without_half_closure_end_of_input_closes() {
    let _serial = common::serial();
    bounded(async {
        let server = common::echo_server().await;
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        s.write_all(b"abc").await.unwrap();
        s.shutdown().await.unwrap();
        let mut v = Vec::new();
        s.read_to_end(&mut v).await.unwrap();
        assert!(v.len() <= 3);
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test]
async fn graceful_shutdown_delivers_flushed_writes() {
    let _serial = common::serial();
    bounded(async {
        let payload = Bytes::from(random_bytes(11, 8 * 1024 * 1024));
        let p2 = payload.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                let payload = p2.clone();
                let tx = tx.clone();
                p.add_last(
                    "send",
                    from_fn(move |ctx: &mut Context<'_>, _m: Bytes| {
                        let (promise, fut) = weft_core::Promise::new();
                        ctx.write_and_flush_with(Msg::from(payload.clone()), Some(promise));
                        let _ = tx.send(fut);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut clients = Vec::new();
        for _ in 0..4 {
            let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
                .await
                .unwrap();
            s.write_all(b"go").await.unwrap();
            clients.push(s);
        }
        let mut promises = Vec::new();
        for _ in 0..4 {
            promises.push(rx.recv().await.unwrap());
        }
        // Shut down while the 8 MiB writes are in flight (nobody reads yet).
        let handle = server.clone();
        let shutdown = tokio::spawn(async move { handle.shutdown(Duration::from_secs(30)).await });
        let mut readers = Vec::new();
        for mut s in clients {
            readers.push(tokio::spawn(async move {
                let mut v = Vec::new();
                s.read_to_end(&mut v).await.unwrap();
                v
            }));
        }
        for r in readers {
            let got = r.await.unwrap();
            assert_eq!(got.len(), payload.len());
            assert!(got[..] == payload[..]);
        }
        for p in promises {
            p.await.unwrap();
        }
        shutdown.await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn shutdown_timeout_closes_what_is_left() {
    let _serial = common::serial();
    bounded(async {
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                p.add_last(
                    "send",
                    from_fn(move |ctx: &mut Context<'_>, _m: Bytes| {
                        ctx.write_and_flush(Bytes::from(vec![0u8; 32 * 1024 * 1024]));
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        s.write_all(b"go").await.unwrap();
        // Wait until the server has the connection, then shut down with a
        // peer that never reads: the timeout must close it.
        while server.connections() == 0 {
            tokio::task::yield_now().await;
        }
        let t = std::time::Instant::now();
        server.shutdown(Duration::from_millis(200)).await;
        assert!(t.elapsed() < Duration::from_secs(10));
        drop(s);
    })
    .await;
}

#[tokio::test]
async fn thousand_connections_leave_no_descriptors_behind() {
    let _serial = common::serial();
    bounded(async {
        let server = common::echo_server().await;
        let addr = server.tcp_addr().unwrap();
        for _ in 0..10 {
            let mut batch = Vec::new();
            for _ in 0..100 {
                batch.push(tokio::spawn(async move {
                    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
                    s.write_all(b"x").await.unwrap();
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).await.unwrap();
                }));
            }
            for t in batch {
                t.await.unwrap();
            }
        }
        // The server closes its side when it sees EOF; wait for all of them.
        while server.connections() > 0 {
            tokio::task::yield_now().await;
        }
        // Every descriptor of these connections, both ends, is closed
        // (counted by port: other tests' sockets come and go meanwhile).
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

#[tokio::test]
async fn a_panicking_handler_closes_only_its_connection() {
    let _serial = common::serial();
    bounded(async {
        let server = ServerBootstrap::new()
            .child_handler(|p| {
                p.add_last(
                    "maybe-panic",
                    from_fn(|ctx: &mut Context<'_>, m: Bytes| {
                        if &m[..] == b"panic" {
                            panic!("handler panicked on purpose");
                        }
                        ctx.write_and_flush(m);
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut good = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut bad = tokio::net::TcpStream::connect(addr).await.unwrap();
        bad.write_all(b"panic").await.unwrap();
        let mut v = Vec::new();
        bad.read_to_end(&mut v).await.unwrap(); // closed by the server
        assert!(v.is_empty());
        good.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        good.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test]
async fn channel_group_broadcasts_and_forgets_closed_channels() {
    let _serial = common::serial();
    bounded(async {
        let group = ChannelGroup::new();
        let g = group.clone();
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                g.add(p.channel().clone());
                Ok(())
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut clients = Vec::new();
        for _ in 0..3 {
            clients.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        while group.len() < 3 {
            tokio::task::yield_now().await;
        }
        group
            .write_and_flush(Bytes::from_static(b"all"))
            .await
            .unwrap();
        for c in &mut clients {
            let mut b = [0u8; 3];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"all");
        }
        drop(clients.pop());
        while group.len() > 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(group.len(), 2);
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test]
async fn shutdown_output_sends_fin_after_the_flushed_bytes() {
    let _serial = common::serial();
    bounded(async {
        let server = count_then_reply_server().await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
        let ch = weft_transport::Bootstrap::new()
            .options(ChannelOptions::new().allow_half_closure(true))
            .handler(move |p| {
                let tx = tx.clone();
                p.add_last(
                    "sink",
                    from_fn(move |_ctx: &mut Context<'_>, b: Bytes| {
                        let _ = tx.send(b);
                    }),
                )
            })
            .connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        ch.write(Bytes::from(vec![1u8; 5000]));
        ch.shutdown_output().await.unwrap();
        let mut got = Vec::new();
        while let Some(b) = rx.recv().await {
            got.extend_from_slice(&b);
            if got.ends_with(b"5000") {
                break;
            }
        }
        assert_eq!(got, b"got 5000");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test]
async fn write_timeout_fails_a_stuck_write_and_closes() {
    let _serial = common::serial();
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ch = weft_transport::Bootstrap::new()
            .handler(|p| {
                p.add_last(
                    "wt",
                    weft_transport::WriteTimeoutHandler::new(Duration::from_millis(200)),
                )
            })
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (_peer, _) = listener.accept().await.unwrap(); // never reads
                                                           // Far more than the socket buffers hold: this write cannot complete.
        let err = ch
            .write_and_flush(Bytes::from(vec![0u8; 64 * 1024 * 1024]))
            .await
            .unwrap_err();
        assert!(err.is_timeout(), "{err}");
        ch.closed().await;
    })
    .await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let _serial = common::serial();
    bounded(async {
        let server = ServerBootstrap::new()
            .max_connections(2)
            .child_handler(|p| p.add_last("echo", Echo))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut kept = Vec::new();
        for _ in 0..2 {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"x").await.unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap(); // accepted and served
            kept.push(s);
        }
        let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut v = Vec::new();
        let n = over.read_to_end(&mut v).await.unwrap_or(0);
        assert_eq!(n, 0, "closed without a byte");
        assert_eq!(server.connections(), 2);
        drop(kept);
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// Answers the first read with `bye`, then shuts its output down; counts
/// every byte it reads, and says when the channel closed.
struct ByeThenShutdown {
    answered: bool,
    read: Arc<AtomicU64>,
    closed: Option<tokio::sync::oneshot::Sender<()>>,
}

#[weft_core::handler]
impl Handler for ByeThenShutdown {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        self.read
            .fetch_add(msg.buffered_len() as u64, Ordering::Relaxed);
        if !std::mem::replace(&mut self.answered, true) {
            ctx.write_and_flush(Bytes::from_static(b"bye"));
            drop(ctx.shutdown_output());
        }
    }
    fn channel_inactive(&mut self, _ctx: &mut Context<'_>) {
        if let Some(tx) = self.closed.take() {
            let _ = tx.send(());
        }
    }
}

/// A server of one [`ByeThenShutdown`] connection: the bytes it read, and
/// its close.
async fn bye_server(
    opts: ChannelOptions,
) -> (
    weft_transport::Server,
    Arc<AtomicU64>,
    tokio::sync::oneshot::Receiver<()>,
) {
    let read = Arc::new(AtomicU64::new(0));
    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let r = read.clone();
    let server = ServerBootstrap::new()
        .child_options(opts)
        .child_handler(move |p| {
            p.add_last(
                "bye",
                ByeThenShutdown {
                    answered: false,
                    read: r.clone(),
                    closed: tx.lock().unwrap().take(),
                },
            )
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap();
    (server, read, rx)
}

/// A peer that keeps sending after the server's last answer (the shape of
/// a client flooding after a 400) is read for the linger's bytes at most,
/// then the channel closes: the server does not swallow for ever.
#[tokio::test]
async fn after_its_output_shut_down_a_channel_reads_a_bounded_number_of_bytes() {
    bounded(async {
        // Reads of at most 16 KiB here: the linger stops between two.
        let linger = ChannelOptions::new()
            .linger(Duration::from_secs(60), 256 * 1024)
            .read_buffer_sizes(64, 2048, 16 * 1024)
            .max_reads_per_wakeup(4);
        let (server, read, closed) = bye_server(linger).await;
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        s.write_all(b"hello").await.unwrap();
        let mut bye = [0u8; 3];
        s.read_exact(&mut bye).await.unwrap();
        assert_eq!(
            s.read(&mut [0u8; 1]).await.unwrap(),
            0,
            "the output shutdown"
        );
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0u64;
        // Ends with an error (reset or broken pipe) once the server closed.
        while sent < 1 << 30 {
            match s.write_all(&chunk).await {
                Ok(()) => sent += chunk.len() as u64,
                Err(_) => break,
            }
        }
        assert!(
            sent < 1 << 30,
            "the server took 1 GiB after its output shut down"
        );
        closed.await.unwrap();
        let read = read.load(Ordering::Relaxed);
        // What the burst that asked for the shutdown read after the
        // request, at most: the linger's bytes are dropped by the
        // transport, unseen (and so no activity to an idle guard).
        assert!(read <= 4 * 16 * 1024, "handlers saw {read} bytes");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// A silent peer is not waited for beyond the linger's time; with
/// half-closure on, the application owns the input and nothing closes.
#[tokio::test]
async fn after_its_output_shut_down_a_channel_waits_a_bounded_time() {
    bounded(async {
        for half_closure in [false, true] {
            let opts = ChannelOptions::new()
                .allow_half_closure(half_closure)
                .linger(Duration::from_millis(200), 1 << 20);
            let (server, _, closed) = bye_server(opts).await;
            let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
                .await
                .unwrap();
            s.write_all(b"hello").await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap(); // the output shutdown
            assert_eq!(got, b"bye");
            let waited = tokio::time::timeout(Duration::from_secs(2), closed).await;
            if half_closure {
                assert!(waited.is_err(), "closed with half-closure on");
            } else {
                assert!(waited.is_ok(), "still open 2 s after a 200 ms linger");
            }
            drop(s);
            server.shutdown(Duration::from_secs(5)).await;
        }
    })
    .await;
}

/// Every server is bounded by default (issue 34, item 4): a connection
/// that says nothing and takes nothing is closed after the default idle
/// timeout (300 s; the clock is tokio's, paused here and advanced to it),
/// and `no_idle_timeout` is the way out.
#[tokio::test(start_paused = true)]
async fn a_silent_connection_is_closed_by_the_default_idle_timeout() {
    for idle in [true, false] {
        let b = ServerBootstrap::new().child_handler(|p| p.add_last("echo", Echo));
        let b = if idle { b } else { b.no_idle_timeout() };
        let server = b.bind("127.0.0.1:0").await.unwrap();
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let t0 = tokio::time::Instant::now();
        let bound = weft_transport::DEFAULT_IDLE_TIMEOUT + Duration::from_secs(100);
        let r = tokio::time::timeout(bound, s.read(&mut [0u8; 1])).await;
        if idle {
            assert!(matches!(r, Ok(Ok(0))), "{r:?}");
            let took = t0.elapsed();
            assert!(
                took >= weft_transport::DEFAULT_IDLE_TIMEOUT
                    && took <= weft_transport::DEFAULT_IDLE_TIMEOUT * 9 / 8,
                "closed after {took:?}"
            );
        } else {
            assert!(r.is_err(), "closed without an idle timeout: {r:?}");
        }
        drop(s);
        server.shutdown(Duration::from_secs(5)).await;
    }
}
