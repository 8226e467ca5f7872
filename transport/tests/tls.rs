//! TLS as a pipeline stage: weft on both sides, FileRegion through TLS,
//! STARTTLS, and bad input.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{bounded, random_bytes, Echo, TempFile};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use weft_codec::{DecoderHandler, LineBasedFrameDecoder};
use weft_core::{from_fn, Context, Error, FileRegion, Handler, Msg, UserEvent};
use weft_transport::tls::{client_config, server_config};
use weft_transport::{Bootstrap, ServerBootstrap, TlsHandler, TlsHandshakeCompleted};

struct Pki {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn pki(expired: bool) -> Pki {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.self_signed(&key).unwrap();
    Pki {
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// Records what reaches the end of a client pipeline.
#[derive(Clone, Default)]
struct Seen {
    bytes: Arc<Mutex<Vec<u8>>>,
    events: Arc<Mutex<Vec<TlsHandshakeCompleted>>>,
    errors: Arc<Mutex<Vec<Error>>>,
}

struct Sink(Seen, Option<mpsc::UnboundedSender<()>>);
#[weft_core::handler]
impl Handler for Sink {
    fn channel_read(&mut self, _ctx: &mut Context<'_>, msg: Msg) {
        let b: Bytes = msg.downcast().unwrap();
        self.0.bytes.lock().unwrap().extend_from_slice(&b);
        if let Some(tx) = &self.1 {
            let _ = tx.send(());
        }
    }
    fn user_event(&mut self, _ctx: &mut Context<'_>, ev: UserEvent) {
        if let Ok(e) = ev.downcast::<TlsHandshakeCompleted>() {
            self.0.events.lock().unwrap().push(*e);
        }
    }
    fn exception_caught(&mut self, _ctx: &mut Context<'_>, err: Error) {
        self.0.errors.lock().unwrap().push(err);
    }
}

/// A weft TLS client for "localhost" at `addr`; what reaches the end of its
/// pipeline is recorded in the returned `Seen`, each read signalled on `rx`.
async fn tls_client(
    addr: std::net::SocketAddr,
    ccfg: Arc<rustls::ClientConfig>,
) -> (weft_core::Channel, Seen, mpsc::UnboundedReceiver<()>) {
    let seen = Seen::default();
    let (tx, rx) = mpsc::unbounded_channel();
    let s2 = seen.clone();
    let ch = Bootstrap::new()
        .handler(move |pl| {
            pl.add_last("tls", TlsHandler::client(ccfg.clone(), "localhost")?)?;
            pl.add_last("sink", Sink(s2.clone(), Some(tx.clone())))
        })
        .connect(addr)
        .await
        .unwrap();
    (ch, seen, rx)
}

async fn wait_for(seen: &Seen, n: usize, rx: &mut mpsc::UnboundedReceiver<()>) {
    while seen.bytes.lock().unwrap().len() < n {
        rx.recv()
            .await
            .expect("channel closed before all bytes arrived");
    }
}

/// A weft server on 127.0.0.1 whose children echo over TLS with `scfg`.
async fn tls_echo_server(scfg: Arc<rustls::ServerConfig>) -> weft_transport::Server {
    ServerBootstrap::new()
        .child_handler(move |pl| {
            pl.add_last("tls", TlsHandler::server(scfg.clone())?)?;
            pl.add_last("echo", Echo)
        })
        .bind("127.0.0.1:0")
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_over_tls_with_weft_on_both_sides() {
    bounded(async {
        let p = pki(false);
        let scfg = server_config(vec![p.cert.clone()], p.key, &[b"weft-echo"]).unwrap();
        let server = tls_echo_server(scfg).await;
        let ccfg = client_config(&[p.cert], &[b"weft-echo"]).unwrap();
        let (ch, seen, mut rx) = tls_client(server.tcp_addr().unwrap(), ccfg).await;
        // Written before the handshake is done: held, then sent in order.
        let data = random_bytes(1, 300_000);
        for part in data.chunks(10_000) {
            ch.write(Bytes::copy_from_slice(part));
        }
        ch.flush();
        wait_for(&seen, data.len(), &mut rx).await;
        assert!(*seen.bytes.lock().unwrap() == data);
        let ev = seen.events.lock().unwrap()[0].clone();
        assert_eq!(ev.alpn.as_deref(), Some(&b"weft-echo"[..]));
        assert_eq!(ev.peer_certificates.len(), 1, "the server's certificate");
        ch.close().await.unwrap();
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_region_through_tls_is_streamed_and_exact() {
    bounded(async {
        let content = random_bytes(2, 5 * 1024 * 1024 + 123);
        let file = TempFile::new(&content);
        let path = file.path.clone();
        let p = pki(false);
        let scfg = server_config(vec![p.cert.clone()], p.key, &[]).unwrap();
        // The same application handler would use sendfile without TLS.
        let server = ServerBootstrap::new()
            .child_handler(move |pl| {
                let path = path.clone();
                pl.add_last("tls", TlsHandler::server(scfg.clone())?)?;
                pl.add_last(
                    "files",
                    from_fn(move |ctx: &mut Context<'_>, _req: Bytes| {
                        ctx.write(Bytes::from_static(b"BEGIN"));
                        ctx.write(FileRegion::open(&path).unwrap());
                        ctx.write_and_flush(Bytes::from_static(b"END"));
                    }),
                )
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let ccfg = client_config(&[p.cert], &[]).unwrap();
        let (ch, seen, mut rx) = tls_client(server.tcp_addr().unwrap(), ccfg).await;
        ch.write_and_flush("get").await.unwrap();
        let want = [&b"BEGIN"[..], &content, b"END"].concat();
        wait_for(&seen, want.len(), &mut rx).await;
        assert!(*seen.bytes.lock().unwrap() == want, "bytes differ");
        ch.close().await.unwrap();
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

/// A line protocol: `PING` → `PONG`; `STARTTLS` → `OK`, then TLS.
struct LineApp(Arc<rustls::ServerConfig>);
#[weft_core::handler]
impl Handler for LineApp {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let line: Bytes = msg.downcast().unwrap();
        match &line[..] {
            b"PING" => ctx.write_and_flush("PONG\n"),
            b"STARTTLS" => {
                ctx.write_and_flush("OK\n");
                // The decoder's unconsumed bytes (the start of the
                // handshake) flow into the TLS stage that replaces it.
                ctx.replace("lines", "tls", TlsHandler::server(self.0.clone()).unwrap())
                    .unwrap();
                ctx.add_after(
                    "tls",
                    "lines-tls",
                    DecoderHandler::new(LineBasedFrameDecoder::new(1024)),
                )
                .unwrap();
            }
            _ => ctx.write_and_flush("ERR\n"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_upgrade_with_pipelined_data() {
    bounded(async {
        let p = pki(false);
        let scfg = server_config(vec![p.cert.clone()], p.key, &[]).unwrap();
        let server = ServerBootstrap::new()
            .child_handler(move |pl| {
                pl.add_last(
                    "lines",
                    DecoderHandler::new(LineBasedFrameDecoder::new(1024)),
                )?;
                pl.add_last("app", LineApp(scfg.clone()))
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        // The client: plaintext, then a rustls session over the same socket,
        // its ClientHello sent in the same write as "STARTTLS\n".
        let ccfg = client_config(&[p.cert], &[]).unwrap();
        let mut tls = rustls::ClientConnection::new(ccfg, "localhost".try_into().unwrap()).unwrap();
        let mut hello = Vec::new();
        tls.write_tls(&mut hello).unwrap();
        let mut s = tokio::net::TcpStream::connect(server.tcp_addr().unwrap())
            .await
            .unwrap();
        let mut first = b"PING\nSTARTTLS\n".to_vec();
        first.extend_from_slice(&hello);
        s.write_all(&first).await.unwrap();
        let mut plain = [0u8; 8];
        s.read_exact(&mut plain).await.unwrap();
        assert_eq!(&plain, b"PONG\nOK\n");
        // Finish the handshake and speak the protocol encrypted.
        use std::io::{Read as _, Write as _};
        let mut sent_ping = false;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while !got.ends_with(b"PONG\n") {
            if !tls.is_handshaking() && !sent_ping {
                tls.writer().write_all(b"PING\n").unwrap();
                sent_ping = true;
            }
            let mut out = Vec::new();
            while tls.wants_write() {
                tls.write_tls(&mut out).unwrap();
            }
            if !out.is_empty() {
                s.write_all(&out).await.unwrap();
                continue;
            }
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "server closed during STARTTLS");
            tls.read_tls(&mut &buf[..n]).unwrap();
            tls.process_new_packets().unwrap();
            let mut plain = Vec::new();
            let _ = tls.reader().read_to_end(&mut plain);
            got.extend_from_slice(&plain);
        }
        assert_eq!(got, b"PONG\n");
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_input_is_a_typed_error_and_a_closed_connection() {
    bounded(async {
        let p = pki(false);
        let scfg = server_config(vec![p.cert.clone()], p.key, &[]).unwrap();
        let (etx, mut erx) = mpsc::unbounded_channel::<Error>();
        let server = ServerBootstrap::new()
            .child_handler(move |pl| {
                let etx = etx.clone();
                pl.add_last(
                    "tls",
                    TlsHandler::server(scfg.clone())?.handshake_timeout(Duration::from_millis(300)),
                )?;
                pl.add_last("echo", Echo)?;
                pl.add_last("errors", ErrorsTo(etx))
            })
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let addr = server.tcp_addr().unwrap();

        // Garbage instead of a ClientHello.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut v = Vec::new();
        let _ = s.read_to_end(&mut v).await; // closed (maybe after an alert)
        assert!(erx.recv().await.unwrap().kind() == weft_core::ErrorKind::Tls);

        // A truncated record: a handshake header promising more than comes.
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&[0x16, 0x03, 0x01, 0x40, 0x00, 0x01, 0x00])
            .await
            .unwrap();
        s.shutdown().await.unwrap();
        let _ = s.read_to_end(&mut v).await;

        // A handshake that never finishes: the timeout closes it.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let t = std::time::Instant::now();
        let _ = silent.read_to_end(&mut v).await;
        assert!(t.elapsed() >= Duration::from_millis(250));
        let mut timed_out = false;
        while let Ok(e) = erx.try_recv() {
            timed_out |= e.is_timeout();
        }
        if !timed_out {
            timed_out = erx.recv().await.unwrap().is_timeout();
        }
        assert!(timed_out, "the handshake timeout fired");

        // An expired certificate: the client refuses it.
        let old = pki(true);
        let ocfg = server_config(vec![old.cert.clone()], old.key, &[]).unwrap();
        let expired = ServerBootstrap::new()
            .child_handler(move |pl| pl.add_last("tls", TlsHandler::server(ocfg.clone())?))
            .bind("127.0.0.1:0")
            .await
            .unwrap();
        let seen = Seen::default();
        let s2 = seen.clone();
        let ccfg = client_config(&[old.cert], &[]).unwrap();
        let ch = Bootstrap::new()
            .handler(move |pl| {
                pl.add_last("tls", TlsHandler::client(ccfg.clone(), "localhost")?)?;
                pl.add_last("sink", Sink(s2.clone(), None))
            })
            .connect(expired.tcp_addr().unwrap())
            .await
            .unwrap();
        ch.closed().await;
        let errs = seen.errors.lock().unwrap().clone();
        assert!(
            // The TLS library's error is the source (not part of the text).
            errs.iter().any(|e| e.kind() == weft_core::ErrorKind::Tls
                && std::error::Error::source(e)
                    .is_some_and(|c| c.to_string().to_lowercase().contains("expired"))),
            "{errs:?}"
        );

        // The server still serves a good client.
        let ccfg = client_config(&[p.cert], &[]).unwrap();
        let (ch, seen, mut rx) = tls_client(addr, ccfg).await;
        ch.write_and_flush("still here").await.unwrap();
        wait_for(&seen, 10, &mut rx).await;
        expired.shutdown(Duration::from_secs(5)).await;
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}

struct ErrorsTo(mpsc::UnboundedSender<Error>);
#[weft_core::handler]
impl Handler for ErrorsTo {
    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        let _ = self.0.send(err.clone());
        ctx.fire_exception(err);
    }
}

/// A user message (here a `String` with no encoder) written above a
/// `TlsHandler` is refused with an error naming the handler; it never
/// leaves the host unencrypted, and the session goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_message_never_passes_tls_unencrypted() {
    bounded(async {
        let p = pki(false);
        let scfg = server_config(vec![p.cert.clone()], p.key, &[]).unwrap();
        let server = tls_echo_server(scfg).await;
        let ccfg = client_config(&[p.cert], &[]).unwrap();
        let (ch, seen, mut rx) = tls_client(server.tcp_addr().unwrap(), ccfg).await;
        ch.write_and_flush(Bytes::from_static(b"before"))
            .await
            .unwrap();
        wait_for(&seen, 6, &mut rx).await;
        let err = ch
            .write_and_flush(String::from("secret"))
            .await
            .unwrap_err();
        assert!(
            err.kind() == weft_core::ErrorKind::UnsupportedMessage,
            "{err}"
        );
        assert!(err.to_string().contains("TLS"), "{err}");
        ch.write_and_flush(Bytes::from_static(b"after"))
            .await
            .unwrap();
        wait_for(&seen, 11, &mut rx).await;
        assert_eq!(&seen.bytes.lock().unwrap()[..], b"beforeafter");
        ch.close().await.unwrap();
        server.shutdown(Duration::from_secs(5)).await;
    })
    .await;
}
