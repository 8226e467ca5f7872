//! Bounded by default: a handler that does nothing about backpressure,
//! against a peer that never reads, and peers that half-close.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use weft_core::{Context, FileRegion, Handler, Msg};
use weft_transport::ServerBootstrap;

use common::{bounded, random_bytes, TempFile};

#[derive(Default)]
struct Stats {
    read: AtomicUsize,
    max_outbound: AtomicUsize,
    reads_while_unwritable: AtomicUsize,
    became_unwritable: AtomicUsize,
}

/// Answers every read with 16 copies of it and never looks at writability:
/// the handler a newcomer writes first.
struct Amplify(Arc<Stats>);

#[weft_core::handler]
impl Handler for Amplify {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if !ctx.is_writable() {
            self.0
                .reads_while_unwritable
                .fetch_add(1, Ordering::Relaxed);
        }
        let b: Bytes = msg.downcast().unwrap();
        self.0.read.fetch_add(b.len(), Ordering::Relaxed);
        for _ in 0..16 {
            ctx.write(b.clone());
        }
        self.0
            .max_outbound
            .fetch_max(ctx.buffered_bytes(), Ordering::Relaxed);
    }
    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        if !writable {
            self.0.became_unwritable.fetch_add(1, Ordering::Relaxed);
        }
        ctx.fire_writability_changed(writable);
    }
}

/// The client offers 32 MiB and reads nothing. Without the transport's read
/// pause the server would read all of it and queue 512 MiB of answers; with
/// it, the server stops reading once its answers pass the high watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_reads_is_not_read_from() {
    bounded(async {
        let stats = Arc::new(Stats::default());
        let s2 = stats.clone();
        let server = ServerBootstrap::new()
            .child_handler(move |p| p.add_last("amplify", Amplify(s2.clone())))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut client = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let data = random_bytes(1, 32 << 20);
        let mut offered = 0;
        for chunk in data.chunks(64 * 1024) {
            // A write that cannot go on for 3 s: the server has stopped
            // reading (kernel buffers on both sides are full). This bounds
            // the attempt; the assertions count bytes.
            match tokio::time::timeout(Duration::from_secs(3), client.write_all(chunk)).await {
                Ok(r) => r.unwrap(),
                Err(_) => break,
            }
            offered += chunk.len();
        }
        let read = stats.read.load(Ordering::Relaxed);
        let max_outbound = stats.max_outbound.load(Ordering::Relaxed);
        println!(
            "offered {offered} B; server read {read} B, held at most {max_outbound} B of answers"
        );
        assert!(offered < data.len(), "the client could write everything");
        assert!(stats.became_unwritable.load(Ordering::Relaxed) >= 1);
        assert_eq!(stats.reads_while_unwritable.load(Ordering::Relaxed), 0);
        // At most one burst after the high watermark: 16 reads of 64 KiB,
        // 16 answers each, is the worst case; in practice one read.
        assert!(read < 2 << 20, "the server read {read} bytes");
        assert!(
            max_outbound < 16 << 20,
            "{max_outbound} bytes of answers held"
        );
        drop(client);
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// Answers a request line with `len` bytes (in 64 KiB pieces) or a file.
struct Answer {
    body: Option<Arc<Vec<u8>>>,
    file: Option<std::path::PathBuf>,
}

#[weft_core::handler]
impl Handler for Answer {
    fn channel_read(&mut self, ctx: &mut Context<'_>, _msg: Msg) {
        if let Some(body) = self.body.take() {
            for piece in body.chunks(64 * 1024) {
                ctx.write(Bytes::copy_from_slice(piece));
            }
        }
        if let Some(path) = self.file.take() {
            ctx.write(FileRegion::open(&path).unwrap());
        }
        ctx.flush();
    }
}

/// A client sends its request and shuts its output down at once (`nc -N`),
/// with half-closure off (the default): it must receive the whole answer,
/// bytes and file alike, and then the end of the stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closing_client_receives_the_whole_answer() {
    bounded(async {
        let body = Arc::new(random_bytes(2, 20 << 20));
        let content = random_bytes(3, 30 << 20);
        let file = TempFile::new(&content);
        let (b2, f2) = (body.clone(), file.path.clone());
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                p.add_last(
                    "answer",
                    Answer {
                        body: Some(b2.clone()),
                        file: Some(f2.clone()),
                    },
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        for _ in 0..3 {
            let mut c = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
                .await
                .unwrap();
            c.write_all(b"GET\n").await.unwrap();
            c.shutdown().await.unwrap(); // SHUT_WR
            let mut got = Vec::new();
            c.read_to_end(&mut got).await.unwrap();
            assert_eq!(got.len(), body.len() + content.len());
            assert!(got[..body.len()] == body[..], "bytes differ");
            assert!(got[body.len()..] == content[..], "file bytes differ");
        }
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// A broadcast to a member that reads and one that never does: by default
/// the silent one is closed once a broadcast would pass its cap; with
/// `SlowMembers::Skip` it is skipped while above its high watermark and
/// stays open. The reader receives everything either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_does_not_let_a_silent_member_hold_memory() {
    use weft_transport::{ChannelGroup, ChannelOptions, SlowMembers};
    bounded(async {
        for policy in [SlowMembers::Close, SlowMembers::Skip] {
            let server = ServerBootstrap::new()
                .child_options(ChannelOptions::new().max_outbound_bytes(1 << 20))
                .child_handler(|_p| Ok(()))
                .bind("127.0.0.1:0")
                .await
                .unwrap();
            let addr = server.tcp_addr().unwrap();
            let sock = tokio::net::TcpSocket::new_v4().unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            let silent = sock.connect(addr).await.unwrap();
            let mut reader = tokio::net::TcpStream::connect(addr).await.unwrap();
            let reader_port = reader.local_addr().unwrap().port();
            while server.connections() < 2 {
                tokio::task::yield_now().await;
            }
            let group = ChannelGroup::with_slow_members(policy);
            for ch in server.channels() {
                group.add(ch);
            }
            // The reader's channel on the server side.
            let reader_ch = server
                .channels()
                .into_iter()
                .find(|c| matches!(c.remote_addr(), Some(weft_core::Address::Inet(a)) if a.port() == reader_port))
                .expect("the reader's channel");
            let total = 16 << 20;
            let got = Arc::new(AtomicUsize::new(0));
            let g2 = got.clone();
            let read_all = tokio::spawn(async move {
                let mut buf = vec![0u8; 1 << 16];
                let mut n_total = 0;
                while n_total < total {
                    let n = reader.read(&mut buf).await.unwrap();
                    assert!(n > 0, "the reader's connection closed");
                    n_total += n;
                    g2.store(n_total, Ordering::Release);
                }
                n_total
            });
            let msg = Bytes::from(vec![7u8; 64 * 1024]);
            for i in 0..total / msg.len() {
                // Not awaited: the silent member's writes never complete
                // (or fail, or are skipped). Paced by the reader instead,
                // and by its channel's writability: a transport may report
                // a write complete after the peer has read it (io_uring),
                // and Skip would skip a reader that is still above its
                // high watermark.
                drop(group.write_and_flush(msg.clone()));
                while got.load(Ordering::Acquire) < (i + 1) * msg.len() || !reader_ch.is_writable() {
                    tokio::task::yield_now().await;
                }
            }
            assert_eq!(read_all.await.unwrap(), total);
            // The silent member's channel, by its peer's port (the reader's
            // closes by itself once its task ends).
            let silent_port = silent.local_addr().unwrap().port();
            let silent_open = || {
                server.channels().iter().any(|c| {
                    matches!(c.remote_addr(), Some(weft_core::Address::Inet(a)) if a.port() == silent_port)
                })
            };
            match policy {
                SlowMembers::Close => {
                    // The refused write's close runs on the member's own
                    // task: wait for it (a few polls), within a bound.
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    while silent_open() && std::time::Instant::now() < deadline {
                        tokio::task::yield_now().await;
                    }
                    assert!(!silent_open(), "closed past its cap");
                }
                _ => assert!(silent_open(), "skipped, still open"),
            }
            drop(silent);
            server.shutdown(Duration::from_secs(1)).await;
        }
    })
    .await;
}
