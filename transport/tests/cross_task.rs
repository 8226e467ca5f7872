//! Every `Channel` operation used from another task, on a multi-thread
//! runtime, where the connection task and the caller really run at once.
//!
//! These tests reproduce the lost wake-up of the first version (a command
//! that arrived while the connection task was running left the task without
//! a registered waker, so later commands waited for socket readiness that
//! never came): each of them hung on that code.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use weft_core::{Channel, Context, Handler, Msg, WriteFuture};
use weft_transport::{Bootstrap, ChannelOptions, Server, ServerBootstrap};

use common::bounded;

/// How long one step may take before it counts as a stall. Generous: a
/// stall is a wake-up that never comes, not a slow machine.
const STALL: Duration = Duration::from_secs(10);

/// Answers every read from a task of its own, in order: the shape of a
/// server whose replies come from a database call, a relay or a timer.
struct AnswerFromTask {
    tx: Option<mpsc::UnboundedSender<Msg>>,
}

impl AnswerFromTask {
    fn new() -> AnswerFromTask {
        AnswerFromTask { tx: None }
    }
}

#[weft_core::handler]
impl Handler for AnswerFromTask {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let ch = ctx.channel().clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                // Not awaited: the next answer may be queued while this one
                // is still being written.
                drop(ch.write_and_flush(m));
            }
        });
        self.tx = Some(tx);
    }
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(msg);
        }
    }
    fn channel_inactive(&mut self, _ctx: &mut Context<'_>) {
        self.tx = None;
    }
}

/// Hands every read to the test's task.
struct Forward(mpsc::UnboundedSender<Bytes>);

#[weft_core::handler]
impl Handler for Forward {
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        let _ = self
            .0
            .send(msg.downcast::<Bytes>().expect("reads are Bytes"));
    }
}

async fn answering_server() -> Server {
    ServerBootstrap::new()
        .child_handler(|p| p.add_last("answer", AnswerFromTask::new()))
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

async fn forwarding_client(server: &Server) -> (Channel, mpsc::UnboundedReceiver<Bytes>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let ch = Bootstrap::new()
        .handler(move |p| p.add_last("forward", Forward(tx.clone())))
        .connect(server.tcp_addr().unwrap())
        .await
        .unwrap();
    (ch, rx)
}

/// Reads exactly `n` bytes from `rx`, or panics after [`STALL`].
async fn recv_exactly(rx: &mut mpsc::UnboundedReceiver<Bytes>, n: usize, what: &str) -> Vec<u8> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        match tokio::time::timeout(STALL, rx.recv()).await {
            Ok(Some(b)) => got.extend_from_slice(&b),
            Ok(None) => panic!("{what}: connection closed after {} of {n} bytes", got.len()),
            Err(_) => panic!("{what}: stalled after {} of {n} bytes", got.len()),
        }
    }
    assert_eq!(got.len(), n, "{what}: more bytes than asked for");
    got
}

async fn resolves(f: WriteFuture, what: &str) -> Result<(), weft_core::Error> {
    tokio::time::timeout(STALL, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: the write future never resolved"))
}

/// Round trips one at a time: each request waits for its answer, which the
/// server writes from another task. The client writes from the test's
/// task too, so both directions cross tasks.
async fn sequential_round_trips(count: u64) {
    let server = answering_server().await;
    let (ch, mut rx) = forwarding_client(&server).await;
    for i in 0..count {
        resolves(
            ch.write_and_flush(Bytes::copy_from_slice(&i.to_be_bytes())),
            "request",
        )
        .await
        .unwrap();
        let got = recv_exactly(&mut rx, 8, &format!("round trip {i}")).await;
        assert_eq!(got, i.to_be_bytes());
    }
    ch.close().await.unwrap();
    server.shutdown(STALL).await;
}

/// The figure the cross-task issue asks for: 100,000 round trips, 0 stalls
/// (a few seconds in a debug build).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_thousand_sequential_round_trips_never_stall() {
    tokio::time::timeout(Duration::from_secs(300), sequential_round_trips(100_000))
        .await
        .expect("test exceeded its time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_batches_from_other_tasks() {
    bounded(async {
        let server = answering_server().await;
        let (ch, mut rx) = forwarding_client(&server).await;
        const BATCHES: usize = 200;
        const PER_BATCH: usize = 50;
        for batch in 0..BATCHES {
            // Written without flushing from one task, flushed from another.
            let writer = ch.clone();
            tokio::spawn(async move {
                for k in 0..PER_BATCH {
                    writer.write(Bytes::from(vec![(batch * PER_BATCH + k) as u8; 16]));
                }
            })
            .await
            .unwrap();
            let flusher = ch.clone();
            tokio::spawn(async move { flusher.flush() }).await.unwrap();
            let got = recv_exactly(&mut rx, 16 * PER_BATCH, &format!("batch {batch}")).await;
            for (k, chunk) in got.chunks(16).enumerate() {
                assert!(chunk.iter().all(|&b| b == (batch * PER_BATCH + k) as u8));
            }
        }
        ch.close().await.unwrap();
        server.shutdown(STALL).await;
    })
    .await;
}

/// Server channels start with auto-read off; another task turns it on.
/// The connection task must wake for the change even though its socket
/// has been readable all along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_auto_read_from_another_task_wakes_the_channel() {
    bounded(async {
        let server = ServerBootstrap::new()
            .child_options(ChannelOptions::new().auto_read(false))
            .child_handler(|p| p.add_last("answer", AnswerFromTask::new()))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        for round in 0..100u8 {
            let (ch, mut rx) = forwarding_client(&server).await;
            resolves(ch.write_and_flush(Bytes::from(vec![round; 4])), "request")
                .await
                .unwrap();
            // The server's channel for this connection: the only one open.
            let child = loop {
                if let Some(c) = server.channels().into_iter().next() {
                    break c;
                }
                tokio::task::yield_now().await;
            };
            assert!(!child.is_auto_read());
            tokio::spawn(async move { child.set_auto_read(true) })
                .await
                .unwrap();
            let got = recv_exactly(&mut rx, 4, &format!("round {round}")).await;
            assert_eq!(got, vec![round; 4]);
            ch.close().await.unwrap();
            common::wait_for_no_connections(server.tcp_addr().unwrap().port()).await;
            while server.connections() > 0 {
                tokio::task::yield_now().await;
            }
        }
        server.shutdown(STALL).await;
    })
    .await;
}

/// `execute` from another task runs on the channel's task, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_from_another_task_runs_every_time() {
    bounded(async {
        let server = answering_server().await;
        let (ch, mut rx) = forwarding_client(&server).await;
        let ran = Arc::new(AtomicUsize::new(0));
        for i in 0..2_000usize {
            let (done_tx, done_rx) = tokio::sync::oneshot::channel();
            let ran2 = ran.clone();
            let target = ch.clone();
            tokio::spawn(async move {
                target.execute(move |p| {
                    ran2.fetch_add(1, Ordering::Relaxed);
                    p.write(Bytes::from_static(b"x"));
                    p.flush();
                    let _ = done_tx.send(());
                });
            });
            tokio::time::timeout(STALL, done_rx)
                .await
                .unwrap_or_else(|_| panic!("execute {i} never ran"))
                .unwrap();
            recv_exactly(&mut rx, 1, &format!("echo of execute {i}")).await;
        }
        assert_eq!(ran.load(Ordering::Relaxed), 2_000);
        ch.close().await.unwrap();
        server.shutdown(STALL).await;
    })
    .await;
}

/// Writes queued from several tasks, then a close from yet another: every
/// promise resolves (written or failed with a closed-channel error), none
/// hangs, and nothing written before the close is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_from_another_task_resolves_every_queued_write() {
    bounded(async {
        let server = answering_server().await;
        for round in 0..50 {
            let (ch, _rx) = forwarding_client(&server).await;
            let mut writers = Vec::new();
            for t in 0..4 {
                let w = ch.clone();
                writers.push(tokio::spawn(async move {
                    let mut fs = Vec::new();
                    for k in 0..100 {
                        fs.push(w.write_and_flush(Bytes::from(vec![(t * 100 + k) as u8; 64])));
                    }
                    fs
                }));
            }
            let closer = ch.clone();
            let close = tokio::spawn(async move { closer.close().await });
            let mut ok = 0;
            let mut closed = 0;
            for w in writers {
                for f in w.await.unwrap() {
                    match resolves(f, &format!("round {round}")).await {
                        Ok(()) => ok += 1,
                        Err(e) => {
                            assert!(e.is_closed(), "unexpected error: {e}");
                            closed += 1;
                        }
                    }
                }
            }
            tokio::time::timeout(STALL, close)
                .await
                .expect("close never resolved")
                .unwrap()
                .unwrap();
            assert_eq!(ok + closed, 400);
            assert!(!ch.is_open());
            // Once closed, a write fails at once.
            assert!(resolves(ch.write_and_flush("late"), "late write")
                .await
                .unwrap_err()
                .is_closed());
        }
        server.shutdown(STALL).await;
    })
    .await;
}

/// The count of bytes written includes a write as soon as its future
/// resolves: the connection task counts the bytes before it completes the
/// write, so a task woken by the completion (on another worker) never
/// reads a count short of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_written_includes_a_write_once_it_resolves() {
    bounded(async {
        let server = common::echo_server().await;
        let (ch, mut rx) = forwarding_client(&server).await;
        let mut total = 0u64;
        for i in 0..2000u32 {
            let b = Bytes::from(vec![(i % 251) as u8; 1 + (i as usize % 64)]);
            total += b.len() as u64;
            resolves(ch.write_and_flush(b), "write").await.unwrap();
            assert!(
                ch.bytes_written() >= total,
                "write {i}: {} counted, {total} written",
                ch.bytes_written()
            );
        }
        recv_exactly(&mut rx, total as usize, "the echoes").await;
        ch.close().await.unwrap();
        server.shutdown(STALL).await;
    })
    .await;
}

/// A write from another task after a pause of the connection (nothing to
/// read, nothing to write): the shape of a relay whose upstream paused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_a_pause_are_delivered() {
    bounded(async {
        let server = common::echo_server().await;
        let (ch, mut rx) = forwarding_client(&server).await;
        for i in 0..200u32 {
            // Let both connection tasks go idle.
            tokio::task::yield_now().await;
            let w = ch.clone();
            // The write is pushed from another task; its future is awaited here.
            let (tx, rx_f) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                let _ = tx.send(w.write_and_flush(Bytes::from(i.to_be_bytes().to_vec())));
            });
            let f = rx_f.await.unwrap();
            resolves(f, "write").await.unwrap();
            assert_eq!(
                recv_exactly(&mut rx, 4, &format!("write {i}")).await,
                i.to_be_bytes()
            );
        }
        ch.close().await.unwrap();
        server.shutdown(STALL).await;
    })
    .await;
}

/// Ten clients that send and never read: the server cannot drain their
/// channels, so its shutdown must abort them after the timeout — the abort
/// reaches each connection task as a command from the shutting-down task.
/// `closed()` resolves for a task that waits on another handle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_with_clients_that_never_read() {
    bounded(async {
        let server = ServerBootstrap::new()
            .child_options(ChannelOptions::new().send_buffer_size(16 * 1024))
            .child_handler(|p| p.add_last("echo", common::Echo))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();
        let mut clients = Vec::new();
        for i in 0..10u64 {
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            let mut s = sock.connect(addr).await.unwrap();
            // The server reads it and cannot send it back: its channel
            // holds flushed bytes that never drain.
            let data = common::random_bytes(i, 1 << 20);
            tokio::io::AsyncWriteExt::write_all(&mut s, &data)
                .await
                .unwrap();
            clients.push(s);
        }
        while server.connections() < 10 {
            tokio::task::yield_now().await;
        }
        let waiter = server.clone();
        let closed = tokio::spawn(async move { waiter.closed().await });
        tokio::time::timeout(
            Duration::from_secs(10),
            server.shutdown(Duration::from_millis(300)),
        )
        .await
        .expect("shutdown did not end after its timeout");
        assert_eq!(server.connections(), 0);
        tokio::time::timeout(STALL, closed)
            .await
            .expect("closed() did not resolve")
            .unwrap();
        drop(clients);
    })
    .await;
}
