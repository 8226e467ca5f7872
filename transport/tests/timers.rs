//! Timers owned by the channel (`Context::schedule`) on real sockets: the
//! connection task wakes for them, on a stream channel (both transports)
//! and on a datagram channel, and a removed handler's timer never fires.

mod common;

use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use weft_core::{Context, DatagramPacket, Handler, TimerId};
use weft_transport::{DatagramBootstrap, ServerBootstrap};

use common::bounded;

/// Once active, arms timers at 30, 10 and 20 ms; writes its letter for
/// each as it fires, and closes after the last.
struct Letters {
    armed: Vec<(TimerId, u8)>,
}

#[weft_core::handler]
impl Handler for Letters {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        for (ms, letter) in [(30, b'c'), (10, b'a'), (20, b'b')] {
            let id = ctx.schedule(Duration::from_millis(ms));
            self.armed.push((id, letter));
        }
        // And one that is cancelled at once.
        let never = ctx.schedule(Duration::from_millis(15));
        assert!(ctx.cancel_timer(never));
        ctx.fire_active();
    }
    fn timer(&mut self, ctx: &mut Context<'_>, id: TimerId) {
        let i = self.armed.iter().position(|(t, _)| *t == id).unwrap();
        let (_, letter) = self.armed.remove(i);
        ctx.write_and_flush(Bytes::copy_from_slice(&[letter]));
        if self.armed.is_empty() {
            ctx.close();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_task_fires_its_handlers_timers_in_order() {
    bounded(async {
        let server = ServerBootstrap::new()
            .child_handler(|p| p.add_last("letters", Letters { armed: Vec::new() }))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"abc");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// Sends a datagram to `to` when its timer fires.
struct Later {
    to: std::net::SocketAddr,
}

#[weft_core::handler]
impl Handler for Later {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        ctx.schedule(Duration::from_millis(10));
        ctx.fire_active();
    }
    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        ctx.write_and_flush(DatagramPacket::new(&b"later"[..], self.to));
    }
}

#[tokio::test]
async fn a_datagram_channel_fires_its_handlers_timers() {
    bounded(async {
        let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = peer.local_addr().unwrap();
        let ch = DatagramBootstrap::new()
            .handler(move |p| p.add_last("later", Later { to }))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, _) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"later");
        let _ = ch.close().await;
    })
    .await;
}
