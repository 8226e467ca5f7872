//! TLS as a pipeline stage: [`TlsHandler`], on rustls.
//!
//! Contract:
//! - put it first in the pipeline (nearest the socket); inbound ciphertext
//!   `Bytes` come out as plaintext `Bytes`, outbound `Bytes` and
//!   `CompositeBytes` go down as TLS records; server and client modes;
//! - when the handshake completes, a [`TlsHandshakeCompleted`] user event
//!   carries the negotiated ALPN protocol and the peer's certificates;
//!   writes made before that are held and sent after it, in order;
//! - a [`FileRegion`] written through it simply works: the file is read in
//!   chunks into one buffer reused for the whole file and encrypted, one
//!   chunk at a time while the channel is writable (`sendfile` cannot apply
//!   to encrypted bytes); the region's promise completes with its last
//!   chunk. Writes after it wait their turn.
//!   Without TLS the same application code keeps `sendfile`;
//! - `close` sends `close_notify` first; a peer's `close_notify` closes the
//!   channel;
//! - any TLS failure (garbage instead of a handshake, a bad record, a
//!   certificate the client rejects) is fired as an error with
//!   [`ErrorKind::Tls`](weft_core::ErrorKind::Tls) and the channel is closed; a handshake that does not
//!   finish within the timeout (default 10 s) fails with
//!   [`Error::is_timeout`] and closes the channel;
//! - it can be added to a live channel (STARTTLS): replace the first
//!   handler (the plaintext decoder) with it, and the bytes that decoder had
//!   not consumed — the start of the handshake — flow into it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use weft_core::{Context, Error, FileRegion, Handler, Msg, Promise, UserEvent};

/// Plaintext bytes read from a file per TLS chunk.
const FILE_CHUNK: usize = 64 * 1024;

/// Fired when the TLS handshake completes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsHandshakeCompleted {
    /// The ALPN protocol both sides agreed on, if any.
    pub alpn: Option<Vec<u8>>,
    /// The peer's certificate chain (DER), if it sent one.
    pub peer_certificates: Vec<Vec<u8>>,
}

/// A TLS stage (Netty's `SslHandler`).
///
/// ```no_run
/// use weft_transport::{tls, ServerBootstrap, TlsHandler};
///
/// # async fn run() -> Result<(), weft_core::Error> {
/// let config = tls::server_config_from_pem("cert.pem", "key.pem", &[b"http/1.1"])?;
/// let server = ServerBootstrap::new()
///     .child_handler(move |p| {
///         p.add_first("tls", TlsHandler::server(config.clone())?)?;
///         // ... the plaintext protocol's handlers after it
///         Ok(())
///     })
///     .bind("127.0.0.1:8443")
///     .await?;
/// # Ok(()) }
/// ```
///
/// And a client:
///
/// ```no_run
/// use rustls::pki_types::CertificateDer;
/// use weft_transport::{tls, Bootstrap, TlsHandler};
///
/// # async fn run(ca: CertificateDer<'static>) -> Result<(), weft_core::Error> {
/// let config = tls::client_config(&[ca], &[b"http/1.1"])?;
/// let ch = Bootstrap::new()
///     .handler(move |p| {
///         p.add_first("tls", TlsHandler::client(config.clone(), "example.test")?)?;
///         Ok(())
///     })
///     .connect("127.0.0.1:8443")
///     .await?;
/// // Written before the handshake completes: held, then encrypted and sent.
/// ch.write_and_flush("GET / HTTP/1.1\r\nHost: example.test\r\n\r\n").await?;
/// # Ok(()) }
/// ```
pub struct TlsHandler {
    conn: rustls::Connection,
    client: bool,
    done: bool,
    handshake_timeout: Duration,
    /// The handshake timeout's timer, disarmed once the handshake is done.
    handshake_timer: Option<weft_core::TimerId>,
    started: bool,
    failed: bool,
    pending: VecDeque<(Msg, Option<Promise>)>,
    file: Option<(FileRegion, Option<Promise>)>,
    /// The plaintext buffer a file is read into, kept while one is sent.
    scratch: Vec<u8>,
}

impl TlsHandler {
    /// A server-side stage.
    pub fn server(config: Arc<rustls::ServerConfig>) -> Result<TlsHandler, Error> {
        let conn = rustls::ServerConnection::new(config).map_err(tls_error)?;
        Ok(TlsHandler::new(conn.into(), false))
    }

    /// A client-side stage that checks the server's certificate against
    /// `server_name`.
    pub fn client(
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<TlsHandler, Error> {
        let name = ServerName::try_from(server_name.to_string()).map_err(|_| {
            Error::invalid_argument(format!("`{server_name}` is not a valid server name"))
        })?;
        let conn = rustls::ClientConnection::new(config, name).map_err(tls_error)?;
        Ok(TlsHandler::new(conn.into(), true))
    }

    fn new(conn: rustls::Connection, client: bool) -> TlsHandler {
        TlsHandler {
            conn,
            client,
            done: false,
            handshake_timeout: Duration::from_secs(10),
            handshake_timer: None,
            started: false,
            failed: false,
            pending: VecDeque::new(),
            file: None,
            scratch: Vec::new(),
        }
    }

    /// How long the handshake may take (default 10 s).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    fn handshake_done(&self) -> bool {
        self.done
    }

    /// Starts the handshake timer, and the handshake itself for a client.
    fn start(&mut self, ctx: &mut Context<'_>) {
        if self.started {
            return;
        }
        self.started = true;
        // The handshake timeout, on the channel's clock (see `timer`).
        self.handshake_timer = Some(ctx.schedule(self.handshake_timeout));
        if self.client {
            self.write_tls(ctx, None);
            ctx.flush();
        }
    }

    /// Moves every pending TLS record to the next stage; `promise` goes
    /// with the last one (or completes at once, in order, if there is none).
    fn write_tls(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        if !out.is_empty() || promise.is_some() {
            ctx.write_with(Msg::Bytes(Bytes::from(out)), promise);
        }
    }

    /// Encrypts `data` and writes the records with `promise`.
    fn encrypt(&mut self, ctx: &mut Context<'_>, data: &[&[u8]], promise: Option<Promise>) {
        // Room for the records at once: the plaintext plus each record's
        // header and tag (a 16 KiB record carries 22 bytes more).
        let plain: usize = data.iter().map(|d| d.len()).sum();
        let mut out = Vec::with_capacity(plain + (plain / 16384 + 1) * 64);
        for part in data {
            let mut rest = *part;
            while !rest.is_empty() {
                let n = match self.conn.writer().write(rest) {
                    Ok(n) => n,
                    Err(e) => return self.fail_write(ctx, Error::io(e), promise),
                };
                rest = &rest[n..];
                while self.conn.wants_write() {
                    if let Err(e) = self.conn.write_tls(&mut out) {
                        return self.fail_write(ctx, Error::io(e), promise);
                    }
                }
                if n == 0 && !self.conn.wants_write() {
                    return self.fail_write(
                        ctx,
                        Error::new(weft_core::ErrorKind::Closed, "TLS session closed"),
                        promise,
                    );
                }
            }
        }
        while self.conn.wants_write() {
            if self.conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        ctx.write_with(Msg::Bytes(Bytes::from(out)), promise);
    }

    fn fail_write(&mut self, ctx: &mut Context<'_>, err: Error, promise: Option<Promise>) {
        if let Some(p) = promise {
            p.fail(err.clone());
        }
        ctx.fire_exception(err);
    }

    fn send(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        match msg {
            Msg::Bytes(b) => self.encrypt(ctx, &[&b], promise),
            Msg::Composite(c) => {
                let parts: Vec<&[u8]> = c.chunks().map(|b| &b[..]).collect();
                self.encrypt(ctx, &parts, promise);
            }
            Msg::File(region) => {
                self.file = Some((region, promise));
                self.pump(ctx);
            }
            Msg::User(u) => {
                // Never forwarded: below TLS it would leave unencrypted.
                let name = (*u).type_name();
                tracing::warn!(msg_type = name, "user message reached the TLS handler");
                if let Some(p) = promise {
                    p.fail(Error::unsupported_message(
                        name,
                        "reached the TLS handler, which encrypts only Bytes, CompositeBytes \
                         and FileRegion: put its encoder after (tail side of) TlsHandler",
                    ));
                }
            }
        }
    }

    /// Streams the pending file while the channel is writable, then the
    /// writes queued behind it.
    fn pump(&mut self, ctx: &mut Context<'_>) {
        loop {
            if let Some((region, _)) = &mut self.file {
                if !ctx.is_writable() {
                    return; // resumed by writability_changed(true)
                }
                // One plaintext buffer for the whole file, reused chunk
                // after chunk (a fresh one per chunk costs an allocation
                // and its page faults).
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch.resize(FILE_CHUNK, 0);
                match region.read_into(&mut scratch) {
                    Ok(n) => {
                        let last = region.is_done();
                        let promise = if last {
                            self.file.take().and_then(|(_, p)| p)
                        } else {
                            None
                        };
                        if last && n == 0 {
                            // An empty region: complete in order.
                            ctx.write_with(Msg::Bytes(Bytes::new()), promise);
                        } else {
                            self.encrypt(ctx, &[&scratch[..n]], promise);
                        }
                        if !last {
                            self.scratch = scratch;
                        }
                        ctx.flush();
                    }
                    Err(e) => {
                        let p = self.file.take().and_then(|(_, p)| p);
                        self.fail_write(ctx, e, p);
                        ctx.close();
                        return;
                    }
                }
                continue;
            }
            match self.pending.pop_front() {
                Some((m, p)) => self.send(ctx, m, p),
                None => return,
            }
        }
    }

    fn fail(&mut self, ctx: &mut Context<'_>, err: rustls::Error) {
        self.failed = true;
        // Tell the peer why (the alert rustls prepared), then close.
        self.write_tls(ctx, None);
        ctx.flush();
        ctx.fire_exception(Error::with_source(weft_core::ErrorKind::Tls, err));
        ctx.close();
    }

    fn feed(&mut self, ctx: &mut Context<'_>, mut data: &[u8]) {
        while !data.is_empty() && !self.failed {
            match self.conn.read_tls(&mut data) {
                Ok(0) => {
                    // rustls took nothing although bytes remain: fail
                    // rather than spin or drop them silently.
                    self.failed = true;
                    ctx.fire_exception(Error::io(std::io::Error::other(
                        "the TLS session accepted no more input",
                    )));
                    ctx.close();
                    return;
                }
                Ok(_) => {}
                Err(e) => {
                    self.failed = true;
                    ctx.fire_exception(Error::io(e));
                    ctx.close();
                    return;
                }
            }
            let state = match self.conn.process_new_packets() {
                Ok(s) => s,
                Err(e) => return self.fail(ctx, e),
            };
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let mut buf = vec![0u8; n];
                if self.conn.reader().read_exact(&mut buf).is_ok() {
                    ctx.fire_read(Bytes::from(buf));
                }
            }
            if state.peer_has_closed() {
                self.write_tls(ctx, None);
                ctx.flush();
                ctx.close();
                return;
            }
        }
        // Handshake replies, session tickets, ...
        self.write_tls(ctx, None);
        ctx.flush();
        if !self.handshake_done() && !self.conn.is_handshaking() {
            self.done = true;
            if let Some(t) = self.handshake_timer.take() {
                ctx.cancel_timer(t);
            }
            let ev = TlsHandshakeCompleted {
                alpn: self.conn.alpn_protocol().map(|p| p.to_vec()),
                peer_certificates: self
                    .conn
                    .peer_certificates()
                    .map(|c| c.iter().map(|d| d.to_vec()).collect())
                    .unwrap_or_default(),
            };
            tracing::debug!(alpn = ?ev.alpn, "TLS handshake completed");
            ctx.fire_user_event(Box::new(ev));
            self.pump(ctx);
            ctx.flush();
        }
    }
}

impl Handler for TlsHandler {
    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        if ctx.channel().is_open() && ctx.channel().remote_addr().is_some() {
            // Added to a live channel (STARTTLS): start now.
            self.start(ctx);
        }
    }

    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.start(ctx);
        ctx.fire_active();
    }

    /// The handshake timeout (its only timer).
    fn timer(&mut self, ctx: &mut Context<'_>, _: weft_core::TimerId) {
        if !self.handshake_done() {
            let limit = self.handshake_timeout;
            ctx.fire_exception(Error::timeout(format!(
                "TLS handshake not finished within {limit:?}"
            )));
            ctx.close();
        }
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        match msg {
            Msg::Bytes(b) => self.feed(ctx, &b),
            Msg::Composite(c) => {
                for chunk in c {
                    self.feed(ctx, &chunk);
                }
            }
            other => ctx.fire_read(other),
        }
    }

    fn writability_changed(&mut self, ctx: &mut Context<'_>, writable: bool) {
        if writable && self.handshake_done() {
            self.pump(ctx);
            ctx.flush();
        }
        ctx.fire_writability_changed(writable);
    }

    fn user_event(&mut self, ctx: &mut Context<'_>, event: UserEvent) {
        ctx.fire_user_event(event);
    }

    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        if self.failed {
            if let Some(p) = promise {
                p.fail(Error::new(
                    weft_core::ErrorKind::Closed,
                    "the TLS session failed",
                ));
            }
            return;
        }
        if !self.handshake_done() || self.file.is_some() || !self.pending.is_empty() {
            self.pending.push_back((msg, promise));
            return;
        }
        self.send(ctx, msg, promise);
    }

    fn flush(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }

    fn close(&mut self, ctx: &mut Context<'_>, promise: Option<Promise>) {
        if !self.failed {
            self.conn.send_close_notify();
            self.write_tls(ctx, None);
            ctx.flush();
        }
        ctx.close_with(promise);
    }
}

impl fmt::Debug for TlsHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsHandler")
            .field("client", &self.client)
            .field("handshake_done", &self.handshake_done())
            .field("pending", &self.pending.len())
            .finish()
    }
}

/// A server configuration from PEM files (certificate chain and private
/// key), with the ALPN protocols to offer.
pub fn server_config_from_pem(
    cert: impl AsRef<std::path::Path>,
    key: impl AsRef<std::path::Path>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert.as_ref())
        .map_err(|e| Error::invalid_argument(format!("certificate file: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::invalid_argument(format!("certificate file: {e}")))?;
    let key = PrivateKeyDer::from_pem_file(key.as_ref())
        .map_err(|e| Error::invalid_argument(format!("private key file: {e}")))?;
    server_config(chain, key, alpn)
}

/// A server configuration from DER certificates and key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ServerConfig>, Error> {
    let mut cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(tls_error)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// A client configuration trusting the given CA certificates (DER).
pub fn client_config(
    roots: &[CertificateDer<'static>],
    alpn: &[&[u8]],
) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add(r.clone()).map_err(tls_error)?;
    }
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(store)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

pub use rustls;

/// A rustls failure as a weft error (the rustls error is its source).
fn tls_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> Error {
    Error::with_source(weft_core::ErrorKind::Tls, e)
}
