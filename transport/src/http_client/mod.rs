//! [`HttpClient`]: HTTP/1.1 requests over [`Bootstrap`] connections, kept
//! alive and reused (feature `http`).
//!
//! Contract:
//! - [`HttpClient::send`] writes a request on an idle pooled connection to
//!   the same authority, or on a new one, and resolves with the response's
//!   head and a [`Body`] to read; [`HttpClient::get`] reads the whole body
//!   under a size limit;
//! - connecting, waiting for the head, and each wait for body bytes are
//!   bounded by timeouts (10 s, 30 s, 30 s by default); every failure is a
//!   typed [`Error`] (`Timeout`, `Closed`, `Io`, `Decode` with the
//!   [`HttpError`](weft_codec::http::HttpError) as its source);
//! - a connection returns to the pool when a body is read to its end and
//!   the response allows keep-alive; a pooled connection the server closed
//!   meanwhile is detected when the request fails before any answer, and
//!   an idempotent request (GET, HEAD, PUT, DELETE, OPTIONS, TRACE) is then
//!   sent once more on a new connection;
//! - a slow reader holds at most about a megabyte of body per connection:
//!   past it the socket is not read (TCP flow control holds the server);
//! - `http` URIs only: TLS for clients is a pipeline stage
//!   ([`TlsHandler`](crate::TlsHandler)) not wired into this client yet.
//!
//! ```no_run
//! use weft_transport::HttpClient;
//!
//! # async fn run() -> Result<(), weft_core::Error> {
//! let client = HttpClient::new();
//! let resp = client.get("http://127.0.0.1:8080/index.html").await?;
//! println!("{} {} bytes", resp.status(), resp.body().len());
//! # Ok(())
//! # }
//! ```

mod body;
mod forward;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use tokio::sync::mpsc;
use weft_codec::http::{response_keeps_alive, BodyKind, HttpClientCodec, HttpResponseIn};
use weft_core::{Channel, Error, ErrorKind, Msg, ReadBudget};

use crate::{Bootstrap, ChannelOptions};
pub use body::Body;
use forward::{Event, Forward};

/// Default most idle connections kept per authority.
pub const DEFAULT_MAX_IDLE_PER_HOST: usize = 8;
/// Default largest body [`HttpClient::get`] reads: 64 MiB.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// One connection and what it tells its reader.
struct Conn {
    channel: Channel,
    rx: mpsc::UnboundedReceiver<Event>,
    budget: ReadBudget,
    key: String,
}

impl Drop for Conn {
    fn drop(&mut self) {
        // Dropped without returning to the pool: nobody will read it again.
        drop(self.channel.close());
    }
}

/// The idle connections, by authority.
#[derive(Clone, Default)]
struct Pool {
    idle: Arc<Mutex<HashMap<String, Vec<Conn>>>>,
    max_per_host: usize,
}

impl Pool {
    fn take(&self, key: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.get_mut(key)?;
        while let Some(mut conn) = list.pop() {
            // A connection the server closed while idle shows it by now, or
            // by a failure before the answer (see `send`).
            if conn.channel.is_open() && conn.rx.try_recv().is_err() {
                return Some(conn);
            }
        }
        None
    }

    fn put(&self, conn: Conn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(conn.key.clone()).or_default();
        if list.len() < self.max_per_host && conn.channel.is_open() {
            list.push(conn);
        }
    }
}

/// An HTTP/1.1 client with a pool of keep-alive connections; cheap to
/// clone (clones share the pool).
#[derive(Clone)]
pub struct HttpClient {
    pool: Pool,
    bootstrap: Bootstrap,
    response_timeout: Duration,
    read_timeout: Duration,
    max_body: usize,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient::new()
    }
}

/// Configures an [`HttpClient`].
#[derive(Debug, Clone)]
pub struct HttpClientBuilder {
    connect_timeout: Duration,
    response_timeout: Duration,
    read_timeout: Duration,
    max_idle_per_host: usize,
    max_body: usize,
    options: ChannelOptions,
}

impl HttpClientBuilder {
    /// Longest wait for a connection (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Longest wait for a response's head once the request is written
    /// (default 30 s).
    pub fn response_timeout(mut self, d: Duration) -> Self {
        self.response_timeout = d;
        self
    }

    /// Longest wait for each piece of a body (default 30 s).
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = d;
        self
    }

    /// Most idle connections kept per authority (default 8; 0 disables
    /// keep-alive).
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// Largest body [`HttpClient::get`] reads (default 64 MiB).
    pub fn max_body(mut self, n: usize) -> Self {
        self.max_body = n;
        self
    }

    /// Socket options for the client's connections.
    pub fn options(mut self, opts: ChannelOptions) -> Self {
        self.options = opts;
        self
    }

    /// The client.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for a zero timeout or invalid options.
    pub fn build(self) -> Result<HttpClient, Error> {
        let zero = [
            self.connect_timeout,
            self.response_timeout,
            self.read_timeout,
        ]
        .contains(&Duration::ZERO);
        if zero {
            return Err(Error::invalid_argument("a timeout of zero"));
        }
        self.options.validate()?;
        let bootstrap = Bootstrap::new()
            .connect_timeout(self.connect_timeout)
            .options(self.options);
        Ok(HttpClient {
            pool: Pool {
                idle: Arc::default(),
                max_per_host: self.max_idle_per_host,
            },
            bootstrap,
            response_timeout: self.response_timeout,
            read_timeout: self.read_timeout,
            max_body: self.max_body,
        })
    }
}

/// The authority a URI's requests go to (`host:port`), or an error for a
/// URI this client cannot reach.
fn authority(uri: &Uri) -> Result<String, Error> {
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(Error::invalid_argument(format!(
                "`{other}` URIs are not supported (http only)"
            )))
        }
        None => return Err(Error::invalid_argument("the URI has no scheme")),
    }
    let host = uri
        .host()
        .ok_or_else(|| Error::invalid_argument("the URI has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    Ok(if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    })
}

/// Whether a request may be sent twice (RFC 9110 §9.2.2).
fn idempotent(m: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ]
    .contains(m)
}

impl HttpClient {
    /// A client with the default timeouts and pool.
    pub fn new() -> HttpClient {
        HttpClient::builder()
            .build()
            .expect("the default configuration is valid")
    }

    /// A builder, from the defaults.
    pub fn builder() -> HttpClientBuilder {
        HttpClientBuilder {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(30),
            max_idle_per_host: DEFAULT_MAX_IDLE_PER_HOST,
            max_body: DEFAULT_MAX_BODY,
            options: ChannelOptions::default(),
        }
    }

    /// `GET uri`, the whole body read (at most the client's `max_body`).
    ///
    /// # Errors
    ///
    /// As [`send`](HttpClient::send) and [`Body::bytes`].
    pub async fn get(&self, uri: &str) -> Result<Response<Bytes>, Error> {
        let uri: Uri = uri
            .parse()
            .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, e))?;
        let req = Request::get(uri)
            .body(Bytes::new())
            .map_err(|e| Error::with_source(ErrorKind::InvalidArgument, e))?;
        let resp = self.send(req).await?;
        let (parts, body) = resp.into_parts();
        let bytes = body.bytes(self.max_body).await?;
        Ok(Response::from_parts(parts, bytes))
    }

    /// Sends `req` (its URI absolute, `http`) and waits for the response's
    /// head; the body is read from the returned [`Body`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidArgument`] for a URI this client cannot reach;
    /// connection errors; [`ErrorKind::Timeout`] when the head does not come
    /// in time; [`ErrorKind::Closed`] when the connection ends first;
    /// [`ErrorKind::Decode`] for a malformed response.
    pub async fn send(&self, req: Request<Bytes>) -> Result<Response<Body>, Error> {
        let key = authority(req.uri())?;
        let (parts, body) = req.into_parts();
        let retry_allowed = idempotent(&parts.method);
        if let Some(conn) = self.pool.take(&key) {
            let again = Request::from_parts(parts.clone(), body.clone());
            match self.exchange(conn, again).await {
                // Closed or reset before any answer on a reused connection:
                // the server had dropped it while idle (a reset when our
                // request reached its closed socket before we saw its FIN).
                Err(e) if retry_allowed && dropped_while_idle(&e) => {
                    tracing::debug!("a pooled connection was closed by the server; retrying");
                }
                other => return other,
            }
        }
        let conn = self.connect(&key).await?;
        self.exchange(conn, Request::from_parts(parts, body)).await
    }

    async fn connect(&self, key: &str) -> Result<Conn, Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let budget = ReadBudget::new(forward::HIGH_WATER, forward::LOW_WATER);
        let fwd = Mutex::new(Some(Forward {
            tx,
            budget: budget.clone(),
        }));
        let channel = self
            .bootstrap
            .clone()
            .handler(move |p| {
                p.add_last("http", HttpClientCodec::new())?;
                let f = fwd
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or_else(|| Error::invalid_argument("the pipeline is filled once"))?;
                p.add_last("responses", f)
            })
            .connect(key)
            .await?;
        Ok(Conn {
            channel,
            rx,
            budget,
            key: key.to_string(),
        })
    }

    async fn exchange(&self, mut conn: Conn, req: Request<Bytes>) -> Result<Response<Body>, Error> {
        let method = req.method().clone();
        conn.channel.write_and_flush(Msg::user(req)).await?;
        let head = tokio::time::timeout(self.response_timeout, async {
            match conn.rx.recv().await {
                Some(Event::Part(HttpResponseIn::Head { response, body })) => Ok((response, body)),
                Some(Event::Part(HttpResponseIn::Invalid(e))) => {
                    Err(Error::with_source(ErrorKind::Decode, e))
                }
                Some(Event::Part(_)) => Err(Error::decode("response body bytes before a head")),
                Some(Event::Failed(e)) => Err(e),
                Some(Event::Closed) | None => Err(Error::closed()),
            }
        })
        .await
        .map_err(|_| Error::timeout("no response head within the response timeout"))??;
        let (response, kind) = head;
        let reusable = response_keeps_alive(&method, &response, kind) && self.pool.max_per_host > 0;
        let body = if kind == BodyKind::Empty {
            Body::empty(conn, self.pool.clone(), reusable)
        } else {
            Body::new(conn, self.pool.clone(), reusable, self.read_timeout)
        };
        Ok(response.map(|()| body))
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("response_timeout", &self.response_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("max_body", &self.max_body)
            .finish()
    }
}

/// Whether an exchange on a pooled connection failed the way one the
/// server closed while it sat idle does: closed, reset, or a broken pipe.
fn dropped_while_idle(e: &Error) -> bool {
    use std::io::ErrorKind as Io;
    e.kind() == ErrorKind::Closed
        || matches!(
            e.io_kind(),
            Some(Io::ConnectionReset | Io::BrokenPipe | Io::ConnectionAborted)
        )
}
