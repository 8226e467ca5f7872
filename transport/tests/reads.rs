//! How reads reach the pipeline on the readiness transport: every byte,
//! in order, and a large read as a uniquely owned buffer, which a handler
//! can take over in place (`Bytes::try_into_mut`: the WebSocket decoder
//! unmasks a large payload where it lies instead of copying it).
//!
//! On io_uring a read is a slice of a provided buffer that goes back to the
//! kernel's ring, never uniquely owned: the test is the readiness
//! transport's.

mod common;

use std::io::Write;

use common::{bounded, on_uring, random_bytes};
use tokio::sync::oneshot;
use weft_core::{Context, Error, Handler, Msg};
use weft_transport::ServerBootstrap;

/// What one connection's reads were.
#[derive(Default)]
struct Seen {
    bytes: Vec<u8>,
    /// Reads of at least 4 KiB (the transport's threshold), and how many
    /// of them were uniquely owned when they arrived.
    large: usize,
    large_unique: usize,
}

/// Records each read as it arrives; reports when the channel closes.
struct Probe {
    seen: Seen,
    done: Option<oneshot::Sender<Seen>>,
}

#[weft_core::handler]
impl Handler for Probe {
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        if let Msg::Bytes(b) = msg {
            if b.len() >= 4096 {
                self.seen.large += 1;
                self.seen.large_unique += usize::from(b.is_unique());
            }
            self.seen.bytes.extend_from_slice(&b);
        }
    }
    fn channel_inactive(&mut self, _ctx: &mut Context<'_>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(std::mem::take(&mut self.seen));
        }
    }
    fn exception_caught(&mut self, ctx: &mut Context<'_>, _err: Error) {
        ctx.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_reads_arrive_uniquely_owned_and_every_byte_in_order() {
    if on_uring() {
        return;
    }
    bounded(async {
        let (tx, rx) = oneshot::channel();
        let tx = std::sync::Mutex::new(Some(tx));
        let server = ServerBootstrap::new()
            .child_handler(move |p| {
                let done = tx.lock().unwrap().take();
                p.add_last(
                    "probe",
                    Probe {
                        seen: Seen::default(),
                        done,
                    },
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let weft_core::Address::Inet(addr) = *server.local_addr() else {
            panic!("a TCP server");
        };
        let data = random_bytes(7, 4 << 20);
        let sent = data.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            // In 64 KiB writes: reads of every size, many of them large.
            for chunk in sent.chunks(64 * 1024) {
                s.write_all(chunk).unwrap();
            }
        })
        .await
        .unwrap();
        let seen = rx.await.unwrap();
        assert!(seen.bytes == data, "the bytes read differ from those sent");
        assert!(seen.large > 0, "no read of 4 KiB or more in 4 MiB");
        assert!(
            seen.large_unique > 0,
            "none of {} large reads arrived uniquely owned",
            seen.large
        );
    })
    .await;
}
