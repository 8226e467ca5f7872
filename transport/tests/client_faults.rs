//! The client half of the fault suite: a weft client whose server is
//! absent, closes early, resets, answers only part of what it was asked, or
//! stops reading. Pending writes fail with a typed error, pending requests
//! resolve with the error that ended the connection, nothing hangs.
//!
//! The protocol: a request is `ID\n`, a response is `ID\n`; a `Correlator`
//! matches them.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use bytes::Bytes;
use weft_codec::{DecoderHandler, LineBasedFrameDecoder};
use weft_core::{from_fn, Channel, Context, Correlator, Error, Msg};
use weft_transport::{Bootstrap, ChannelOptions};

use common::bounded;

/// Bound on one awaited outcome: a hang detector.
const STALL: Duration = Duration::from_secs(10);

async fn client(
    addr: std::net::SocketAddr,
    configure: impl FnOnce(Bootstrap) -> Bootstrap,
) -> Result<(Channel, Correlator<u64, u64>), Error> {
    let calls: Correlator<u64, u64> = Correlator::new();
    let c2 = calls.clone();
    let ch = configure(Bootstrap::new())
        .handler(move |p| {
            p.add_last("lines", DecoderHandler::new(LineBasedFrameDecoder::new(64)))?;
            p.add_last(
                "ids",
                from_fn(|ctx: &mut Context<'_>, line: Bytes| {
                    match std::str::from_utf8(&line)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                    {
                        Some(id) => ctx.fire_read(Msg::user(id)),
                        None => ctx.fire_exception(Error::corrupted_frame("not an id")),
                    }
                }),
            )?;
            p.add_last("calls", c2.handler(|id: &u64| *id))
        })
        .connect(addr)
        .await?;
    Ok((ch, calls))
}

fn request(id: u64) -> Bytes {
    Bytes::from(format!("{id}\n"))
}

/// A server thread: accepts one connection and runs `serve` on it.
fn one_shot_server(
    serve: impl FnOnce(TcpStream) + Send + 'static,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        serve(s);
    });
    (addr, t)
}

/// Sends `n` pipelined calls; returns how many succeeded and the errors.
async fn pipelined_calls(
    ch: &Channel,
    calls: &Correlator<u64, u64>,
    n: u64,
) -> (usize, Vec<Error>) {
    let futures: Vec<_> = (0..n).map(|id| calls.call(ch, id, request(id))).collect();
    let mut ok = 0;
    let mut errors = Vec::new();
    for f in futures {
        match tokio::time::timeout(STALL, f)
            .await
            .expect("a call never resolved")
        {
            Ok(_) => ok += 1,
            Err(e) => errors.push(e),
        }
    }
    (ok, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_absent_is_a_typed_connect_error() {
    bounded(async {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        }; // closed: nothing listens there now
        let err = client(addr, |b| b).await.unwrap_err();
        assert!(err.is_io(), "{err}");
        assert_eq!(err.io_kind(), Some(std::io::ErrorKind::ConnectionRefused));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_closing_early_fails_every_pending_call() {
    bounded(async {
        let (addr, server) = one_shot_server(|s| {
            // Reads the first request, answers nothing, closes.
            let mut r = BufReader::new(s);
            let mut first = String::new();
            let _ = r.read_line(&mut first);
        });
        let (ch, calls) = client(addr, |b| b).await.unwrap();
        let (ok, errors) = pipelined_calls(&ch, &calls, 100).await;
        assert_eq!(ok, 0);
        assert_eq!(errors.len(), 100);
        assert!(
            errors.iter().all(|e| e.is_closed() || e.is_io()),
            "first: {:?}",
            errors.first()
        );
        tokio::time::timeout(STALL, ch.closed()).await.unwrap();
        // Once ended, a call and a write fail at once (the call by its
        // registration or by its write, whichever sees the end first).
        let late = calls.call(&ch, 1000, request(1000)).await.unwrap_err();
        // The connection's own error (a reset: the server closed with our
        // requests unread) or a closed-channel error.
        assert!(late.is_closed() || late.is_io(), "{late}");
        assert!(ch
            .write_and_flush(request(1))
            .await
            .unwrap_err()
            .is_closed());
        server.join().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_reset_fails_every_pending_call() {
    bounded(async {
        let (addr, server) = one_shot_server(|s| {
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            let _ = r.read_line(&mut first);
            // Linger 0: close sends RST instead of FIN.
            nix::sys::socket::setsockopt(
                &s,
                nix::sys::socket::sockopt::Linger,
                &nix::libc::linger {
                    l_onoff: 1,
                    l_linger: 0,
                },
            )
            .unwrap();
            drop(r);
            drop(s);
        });
        let (ch, calls) = client(addr, |b| b).await.unwrap();
        let (ok, errors) = pipelined_calls(&ch, &calls, 100).await;
        assert_eq!((ok, errors.len()), (0, 100));
        assert!(
            errors.iter().all(|e| e.is_closed() || e.is_io()),
            "first: {:?}",
            errors.first()
        );
        tokio::time::timeout(STALL, ch.closed()).await.unwrap();
        server.join().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_answering_part_then_closing_completes_exactly_that_part() {
    bounded(async {
        let (addr, server) = one_shot_server(|s| {
            let mut w = s.try_clone().unwrap();
            let r = BufReader::new(s);
            // Reads all 100 requests, answers the first 40, then closes.
            // (Closing with requests unread would send a reset, on which
            // the kernel may drop answers the client has not read yet.)
            for (i, line) in r.lines().take(100).enumerate() {
                let line = line.unwrap();
                if i < 40 {
                    writeln!(w, "{line}").unwrap();
                }
            }
        });
        let (ch, calls) = client(addr, |b| b).await.unwrap();
        let (ok, errors) = pipelined_calls(&ch, &calls, 100).await;
        assert_eq!(ok, 40, "first error: {:?}", errors.first());
        assert_eq!(errors.len(), 60);
        assert!(
            errors.iter().all(|e| e.is_closed() || e.is_io()),
            "first: {:?}",
            errors.first()
        );
        server.join().unwrap();
    })
    .await;
}

/// The server accepts and never reads. With an outbound cap the client's
/// writes fail with a typed error once the cap is passed and the channel
/// closes; every write future and every call resolves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_that_stops_reading_fails_writes_past_the_cap() {
    bounded(async {
        let (hold_tx, hold_rx) = std::sync::mpsc::channel::<()>();
        let (addr, server) = one_shot_server(move |s| {
            let _ = hold_rx.recv(); // holds the connection, reads nothing
            drop(s);
        });
        let (ch, calls) = client(addr, |b| {
            b.options(ChannelOptions::new().max_outbound_bytes(1 << 20))
        })
        .await
        .unwrap();
        let pending = calls.register(u64::MAX).unwrap();
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        let writes: Vec<_> = (0..1024)
            .map(|_| ch.write_and_flush(chunk.clone()))
            .collect();
        let mut failed = Vec::new();
        for w in writes {
            if let Err(e) = tokio::time::timeout(STALL, w)
                .await
                .expect("a write never resolved")
            {
                failed.push(e);
            }
        }
        assert!(
            !failed.is_empty(),
            "64 MiB to a peer that reads nothing cannot all succeed"
        );
        // Refused at the cap (its own kind), or after the close it caused.
        assert!(
            failed.iter().all(|e| e.is_outbound_full() || e.is_closed()),
            "{} failures, first: {:?}",
            failed.len(),
            failed.first()
        );
        assert!(failed.iter().any(|e| e.is_outbound_full()));
        // The call in flight fails with the reason: the cap was passed.
        let err = tokio::time::timeout(STALL, pending)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            err.is_outbound_full() && err.to_string().contains("cap"),
            "{err}"
        );
        // The error reaches the handlers (and so the call) before the
        // transport has closed the socket: wait for the close itself.
        tokio::time::timeout(STALL, ch.closed())
            .await
            .expect("the channel never closed");
        assert!(!ch.is_open());
        drop(hold_tx);
        server.join().unwrap();
    })
    .await;
}
