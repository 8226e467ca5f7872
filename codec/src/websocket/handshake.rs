//! [`WebSocketUpgrade`]: the server's opening handshake (RFC 6455 §4.2),
//! which turns an HTTP connection into a WebSocket one in the same
//! pipeline.
//!
//! Contract:
//! - it sits right after the [`HttpServerCodec`](crate::http::HttpServerCodec)
//!   and looks at request heads for its path; every other request (and
//!   its body) passes on untouched, so one connection may be served HTTP
//!   before it upgrades;
//! - a request for the path is an upgrade only if it is `GET`, HTTP/1.1,
//!   without a body, with `Connection: upgrade`, `Upgrade: websocket`, one
//!   `Sec-WebSocket-Key` of 16 base64-coded bytes and
//!   `Sec-WebSocket-Version: 13`; a wrong version is answered 426 with
//!   `Sec-WebSocket-Version: 13`, anything else 400, and the connection
//!   goes on as HTTP;
//! - an upgrade is answered 101 with `Sec-WebSocket-Accept`, the first
//!   subprotocol the client offers that is configured, and permessage-deflate
//!   when configured and offered in a form it can honour; then the handler
//!   puts the halves of a [`WebSocketCodec`](super::WebSocketCodec) in its own place and
//!   leaves, the HTTP codec leaves after writing the 101, and the bytes the
//!   client sent behind its request reach the frame codec (with a
//!   [`PerMessageDeflate`](super::PerMessageDeflate) after it if compression
//!   was agreed); a [`HandshakeComplete`] user event goes down the pipeline;
//! - a connection that has neither upgraded nor made an ordinary request
//!   within `handshake_timeout` (default 10 s) is closed;
//! - several may sit in a row, one per path: when one upgrades, those after
//!   it see its [`HandshakeComplete`] go by and leave; those before it saw
//!   the request pass as an ordinary one (their timer is defused) and leave
//!   when the first raw bytes (the new protocol's) reach them.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use sha1::{Digest, Sha1};
use weft_core::{Context, Handler, Msg, TimerId};

use super::codec::{Role, WebSocketConfig};
use super::deflate::{self, DeflateConfig};
use crate::http::response::has_token;
use crate::http::{BodyKind, HttpRequestPart};

/// The GUID every accept value is derived with (RFC 6455 §1.3).
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Default time a connection has to upgrade or make a request: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// `Sec-WebSocket-Accept` for a client's key.
///
/// ```
/// // The example of RFC 6455 §1.3.
/// let accept = weft_codec::websocket::accept_key(b"dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha = Sha1::new();
    sha.update(key);
    sha.update(ACCEPT_GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// The user event that tells handlers after the upgrade it is done.
#[derive(Debug, Clone)]
pub struct HandshakeComplete {
    /// The request that upgraded (its head; no body).
    pub request: Request<()>,
    /// The subprotocol agreed on, if any.
    pub subprotocol: Option<String>,
    /// Whether permessage-deflate was agreed (a
    /// [`PerMessageDeflate`](super::PerMessageDeflate) handler then sits
    /// right after the codec).
    pub compression: bool,
}

/// The server handshake; see the module contract.
///
/// ```
/// use weft_codec::http::HttpServerCodec;
/// use weft_codec::websocket::{WebSocketConfig, WebSocketUpgrade};
/// # fn f(p: &mut weft_core::Pipeline) -> Result<(), weft_core::Error> {
/// p.add_last("http", HttpServerCodec::new())?;
/// p.add_last("ws", WebSocketUpgrade::new("/ws").subprotocols(["chat"]))?;
/// // p.add_last("app", ...): receives `Frame`s once upgraded, HTTP
/// // requests for other paths before.
/// # Ok(()) }
/// ```
pub struct WebSocketUpgrade {
    path: String,
    subprotocols: Vec<String>,
    config: WebSocketConfig,
    compression: Option<DeflateConfig>,
    handshake_timeout: Option<Duration>,
    /// Set once the connection upgraded or made an ordinary request.
    settled: bool,
    /// The body of a refused request for the path is dropped.
    swallowing: bool,
}

impl WebSocketUpgrade {
    /// Upgrades requests for `path` (compared with the request's path,
    /// without its query).
    pub fn new(path: impl Into<String>) -> WebSocketUpgrade {
        WebSocketUpgrade {
            path: path.into(),
            subprotocols: Vec::new(),
            config: WebSocketConfig::default(),
            compression: None,
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            settled: false,
            swallowing: false,
        }
    }

    /// The subprotocols the server speaks; the first the client offers is
    /// chosen. None by default (then none is agreed on).
    pub fn subprotocols<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subprotocols = names.into_iter().map(Into::into).collect();
        self
    }

    /// The frame codec's limits and behaviour after the upgrade.
    pub fn config(mut self, config: WebSocketConfig) -> Self {
        self.config = config;
        self
    }

    /// Accepts permessage-deflate (RFC 7692) when a client offers it in a
    /// form this end can honour (off by default: compression costs CPU
    /// and memory per connection, and mixing secrets with data the peer
    /// controls in one compressed stream can leak them).
    pub fn compression(mut self, config: DeflateConfig) -> Self {
        self.compression = Some(config);
        self
    }

    /// How long a connection may go without upgrading or making an ordinary
    /// request (`None`: forever).
    pub fn handshake_timeout(mut self, t: Option<Duration>) -> Self {
        self.handshake_timeout = t;
        self
    }

    /// The answer to an upgrade request: `Ok` with the subprotocol chosen,
    /// or the status and reason of the refusal.
    fn judge(
        &self,
        req: &Request<()>,
        body: &BodyKind,
    ) -> Result<Option<String>, (StatusCode, &'static str)> {
        let h = req.headers();
        let ok = req.method() == Method::GET
            && req.version() == Version::HTTP_11
            && *body == BodyKind::Empty
            && has_token(h, CONNECTION, "upgrade")
            && has_token(h, UPGRADE, "websocket");
        if !ok {
            return Err((StatusCode::BAD_REQUEST, "not a WebSocket upgrade"));
        }
        let mut keys = h.get_all(SEC_WEBSOCKET_KEY).iter();
        let key_ok = match (keys.next(), keys.next()) {
            (Some(k), None) => base64::engine::general_purpose::STANDARD
                .decode(k.as_bytes())
                .is_ok_and(|raw| raw.len() == 16),
            _ => false,
        };
        if !key_ok {
            return Err((StatusCode::BAD_REQUEST, "a bad Sec-WebSocket-Key"));
        }
        let mut versions = h.get_all(SEC_WEBSOCKET_VERSION).iter();
        if !(versions.next().is_some_and(|v| v == "13") && versions.next().is_none()) {
            return Err((StatusCode::UPGRADE_REQUIRED, "WebSocket version 13 only"));
        }
        Ok(self.choose_subprotocol(h))
    }

    fn choose_subprotocol(&self, h: &HeaderMap) -> Option<String> {
        h.get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .find(|offered| self.subprotocols.iter().any(|s| s == offered))
            .map(str::to_string)
    }

    fn upgrade(
        &mut self,
        ctx: &mut Context<'_>,
        request: Request<()>,
        subprotocol: Option<String>,
    ) {
        let key = request
            .headers()
            .get(SEC_WEBSOCKET_KEY)
            .map(|k| accept_key(k.as_bytes()))
            .unwrap_or_default();
        let mut resp = Response::new(());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(
            SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_str(&key).expect("base64 is a valid header value"),
        );
        if let Some(p) = subprotocol.as_deref() {
            if let Ok(v) = HeaderValue::from_str(p) {
                h.insert(SEC_WEBSOCKET_PROTOCOL, v);
            }
        }
        let deflate = self.compression.as_ref().and_then(|c| {
            let offers = request.headers().get_all(SEC_WEBSOCKET_EXTENSIONS).iter();
            deflate::accept_offer(offers, c).map(|agreed| (agreed, c))
        });
        if let Some((agreed, _)) = &deflate {
            h.insert(SEC_WEBSOCKET_EXTENSIONS, agreed.header());
        }
        // The HTTP codec before us writes the 101, then leaves; the bytes
        // behind the request reach the frame codec that takes our place.
        ctx.write(Msg::user(resp));
        ctx.flush();
        self.settled = true;
        let agreed = deflate.as_ref().map(|(a, c)| (a, *c));
        if let Err(e) = deflate::install_codec(ctx, Role::Server, &self.config, agreed) {
            tracing::warn!(error = %e, "could not install the WebSocket codec");
            return ctx.close();
        }
        ctx.fire_user_event(Box::new(HandshakeComplete {
            request,
            subprotocol,
            compression: deflate.is_some(),
        }));
    }
}

/// A refusal with a one-line body; a 426 names the version spoken.
fn refusal(status: StatusCode, why: &str) -> Response<Bytes> {
    let mut r = Response::new(Bytes::from(format!("{why}\n")));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::UPGRADE_REQUIRED {
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
    }
    r
}

#[weft_core::handler]
impl Handler for WebSocketUpgrade {
    fn user_event(&mut self, ctx: &mut Context<'_>, event: weft_core::UserEvent) {
        if event.is::<HandshakeComplete>() {
            // Another upgrade handler before this one switched the
            // connection: nothing is left for this one to do.
            self.settled = true;
            ctx.remove_self();
        }
        ctx.fire_user_event(event);
    }

    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        if let Some(t) = self.handshake_timeout {
            ctx.schedule(t);
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        if !self.settled {
            tracing::debug!("no WebSocket handshake in time: closing");
            ctx.close();
        }
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let part = match msg.downcast::<HttpRequestPart>() {
            Ok(p) => p,
            Err(other @ (Msg::Bytes(_) | Msg::Composite(_))) => {
                // Raw bytes: the HTTP codec has left, an upgrade handler
                // after this one switched the connection. Nothing is left
                // for this one to do.
                self.settled = true;
                ctx.remove_self();
                return ctx.fire_read(other);
            }
            Err(other) => return ctx.fire_read(other),
        };
        match part {
            HttpRequestPart::Head { request, body } if request.uri().path() == self.path => {
                match self.judge(&request, &body) {
                    Ok(subprotocol) => self.upgrade(ctx, request, subprotocol),
                    Err((status, why)) => {
                        tracing::debug!(%status, why, "WebSocket upgrade refused");
                        let refused = refusal(status, why);
                        self.swallowing = body != BodyKind::Empty;
                        ctx.write(Msg::user(refused));
                        ctx.flush();
                    }
                }
            }
            HttpRequestPart::Head { request, body } => {
                self.settled = true;
                self.swallowing = false;
                ctx.fire_read(Msg::user(HttpRequestPart::Head { request, body }));
            }
            HttpRequestPart::End { .. } if self.swallowing => self.swallowing = false,
            HttpRequestPart::Data(_) if self.swallowing => {}
            other => ctx.fire_read(Msg::user(other)),
        }
    }
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("path", &self.path)
            .field("subprotocols", &self.subprotocols)
            .finish()
    }
}
