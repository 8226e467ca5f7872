//! Watermarks: a peer that does not read makes the channel unwritable; a
//! writer that respects writability keeps memory bounded.

mod common;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::bounded;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use weft_core::{Context, Handler, WriteBufferWaterMark};
use weft_transport::{Bootstrap, ChannelOptions};

const CHUNK: usize = 16 * 1024;
const TOTAL_CHUNKS: usize = 1024; // 16 MiB

/// Writes TOTAL_CHUNKS chunks, only while writable.
struct Producer {
    chunk: Bytes,
    sent: usize,
    max_buffered: Arc<Mutex<usize>>,
    events: mpsc::UnboundedSender<bool>,
}

impl Producer {
    fn pump(&mut self, ctx: &mut Context<'_>) {
        while ctx.is_writable() && self.sent < TOTAL_CHUNKS {
            ctx.write(self.chunk.clone());
            self.sent += 1;
            let mut m = self.max_buffered.lock().unwrap();
            *m = (*m).max(ctx.buffered_bytes());
        }
        ctx.flush();
    }
}

#[weft_core::handler]
impl Handler for Producer {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.pump(ctx);
    }
    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        let _ = self.events.send(writable);
        if writable {
            self.pump(ctx);
        }
    }
}

#[tokio::test]
async fn unwritable_above_high_writable_below_low_and_memory_bounded() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let max_buffered = Arc::new(Mutex::new(0usize));
        let (tx, mut events) = mpsc::unbounded_channel();
        let mb = max_buffered.clone();
        let wm = WriteBufferWaterMark::new(32 * 1024, 64 * 1024).unwrap();
        let producer = Mutex::new(Some(Producer {
            chunk: Bytes::from(vec![0xabu8; CHUNK]),
            sent: 0,
            max_buffered: mb,
            events: tx,
        }));
        let ch = Bootstrap::new()
            .options(ChannelOptions::new().write_buffer_watermark(wm))
            .handler(move |p| p.add_last("producer", producer.lock().unwrap().take().unwrap()))
            .connect(addr)
            .await
            .unwrap();
        let (mut peer, _) = listener.accept().await.unwrap();
        // The peer does not read: the channel turns unwritable.
        assert_eq!(events.recv().await, Some(false));
        assert!(!ch.is_writable());
        // Now read everything; the channel turns writable again each time the
        // buffer drains below the low mark, and the producer finishes.
        let reader = tokio::spawn(async move {
            let mut total = 0usize;
            let mut buf = vec![0u8; 64 * 1024];
            while total < CHUNK * TOTAL_CHUNKS {
                let n = peer.read(&mut buf).await.unwrap();
                assert!(n > 0, "early EOF");
                assert!(!buf[..n].contains(&0), "corrupted bytes");
                total += n;
            }
            total
        });
        assert_eq!(events.recv().await, Some(true));
        assert_eq!(reader.await.unwrap(), CHUNK * TOTAL_CHUNKS);
        let max = *max_buffered.lock().unwrap();
        assert!(
            max <= wm.high() + CHUNK,
            "outbound buffer reached {max} bytes; a writer respecting writability stays near the high mark"
        );
        ch.close().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn channel_handle_writes_turn_unwritable_when_peer_does_not_read() {
    bounded(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let ch = Bootstrap::new()
            .options(ChannelOptions::new().send_buffer_size(8 * 1024))
            .connect(addr)
            .await
            .unwrap();
        let (_peer, _) = listener.accept().await.unwrap();
        let chunk = Bytes::from(vec![1u8; 64 * 1024]);
        let mut writes = 0;
        while ch.is_writable() {
            ch.write(chunk.clone());
            ch.flush();
            writes += 1;
            assert!(writes < 10_000, "never turned unwritable");
            tokio::task::yield_now().await;
        }
        assert!(!ch.is_writable());
        ch.close().await.unwrap();
    })
    .await;
}
