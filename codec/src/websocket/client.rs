//! [`WebSocketClientHandshake`]: the client's opening handshake (RFC 6455
//! §4.1) over the [`HttpClientCodec`](crate::http::HttpClientCodec).
//!
//! Contract:
//! - when the channel becomes active it sends `GET` for its URI with `Upgrade: websocket`,
//!   `Connection: Upgrade`, a fresh random `Sec-WebSocket-Key`, version 13,
//!   the subprotocols offered, and permessage-deflate if configured;
//! - the answer must be 101 with `Upgrade: websocket`, `Connection:
//!   upgrade`, the `Sec-WebSocket-Accept` of that key, no subprotocol
//!   or one that was offered, and no extension but a permessage-deflate
//!   this end offered and can honour; anything else fails the handshake: an
//!   exception (`Decode` kind) and the connection closed;
//! - on success the HTTP codec (by its name, `"http"` unless told) leaves,
//!   the halves of a [`WebSocketCodec`](super::WebSocketCodec) for the client role take
//!   this handler's place (with a [`PerMessageDeflate`](super::PerMessageDeflate)
//!   after it if compression was agreed),
//!   the bytes the server sent right behind its 101 are its first frames,
//!   and a [`ClientHandshakeComplete`] user event goes down the pipeline;
//! - without a 101 within the handshake timeout (default 10 s), the
//!   connection is closed.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use http::header::{
    CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use weft_core::{Context, Error, Handler, Msg, TimerId};

use super::codec::{Role, WebSocketConfig};
use super::deflate::{self, Agreed, DeflateConfig};
use super::handshake::{accept_key, DEFAULT_HANDSHAKE_TIMEOUT};
use crate::http::response::has_token;
use crate::http::HttpResponseIn;

/// The user event that tells handlers after the client handshake it is
/// done.
#[derive(Debug, Clone)]
pub struct ClientHandshakeComplete {
    /// The server's 101 answer.
    pub response: Response<()>,
    /// The subprotocol the server chose, if any.
    pub subprotocol: Option<String>,
    /// Whether the server agreed to permessage-deflate (a
    /// [`PerMessageDeflate`](super::PerMessageDeflate) handler then sits
    /// right after the codec).
    pub compression: bool,
}

/// The client handshake; see the module contract.
///
/// ```
/// use weft_codec::http::HttpClientCodec;
/// use weft_codec::websocket::WebSocketClientHandshake;
/// # fn f(p: &mut weft_core::Pipeline) -> Result<(), weft_core::Error> {
/// let uri = "ws://127.0.0.1:8090/echo".parse().unwrap();
/// p.add_last("http", HttpClientCodec::new())?;
/// p.add_last("handshake", WebSocketClientHandshake::new(uri))?;
/// // p.add_last("app", ...): receives `Frame`s once upgraded.
/// # Ok(()) }
/// ```
pub struct WebSocketClientHandshake {
    uri: Uri,
    subprotocols: Vec<String>,
    config: WebSocketConfig,
    compression: Option<DeflateConfig>,
    http_codec: String,
    timeout: Option<Duration>,
    /// The key sent, once sent.
    key: Option<String>,
    done: bool,
}

impl WebSocketClientHandshake {
    /// A handshake for `uri` (`ws://host[:port]/path`; the scheme is not
    /// looked at: TLS, for `wss`, is a pipeline stage before the codec).
    pub fn new(uri: Uri) -> WebSocketClientHandshake {
        WebSocketClientHandshake {
            uri,
            subprotocols: Vec::new(),
            config: WebSocketConfig::default(),
            compression: None,
            http_codec: "http".to_string(),
            timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            key: None,
            done: false,
        }
    }

    /// Subprotocols offered, in order of preference.
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

    /// Offers permessage-deflate (RFC 7692); the server may decline. Off
    /// by default.
    pub fn compression(mut self, config: DeflateConfig) -> Self {
        self.compression = Some(config);
        self
    }

    /// The name the HTTP client codec has in the pipeline (default
    /// `"http"`): it is removed after the 101.
    pub fn http_codec_name(mut self, name: impl Into<String>) -> Self {
        self.http_codec = name.into();
        self
    }

    /// How long to wait for the 101 (`None`: forever).
    pub fn handshake_timeout(mut self, t: Option<Duration>) -> Self {
        self.timeout = t;
        self
    }

    fn send_request(&mut self, ctx: &mut Context<'_>) {
        if self.key.is_some() {
            return;
        }
        let mut raw = [0u8; 16];
        if let Err(e) = getrandom::fill(&mut raw) {
            tracing::warn!(error = %e, "no random handshake key");
        }
        let key = base64::engine::general_purpose::STANDARD.encode(raw);
        let mut req = Request::get(self.uri.clone())
            .header(UPGRADE, "websocket")
            .header(CONNECTION, "Upgrade")
            .header(SEC_WEBSOCKET_KEY, key.as_str())
            .header(SEC_WEBSOCKET_VERSION, "13");
        if !self.subprotocols.is_empty() {
            req = req.header(SEC_WEBSOCKET_PROTOCOL, self.subprotocols.join(", "));
        }
        if let Some(c) = &self.compression {
            req = req.header(SEC_WEBSOCKET_EXTENSIONS, deflate::offer(c));
        }
        let req = match req.body(()) {
            Ok(r) => r,
            Err(e) => return self.fail(ctx, format!("cannot build the upgrade request: {e}")),
        };
        self.key = Some(key);
        ctx.write_and_flush(Msg::user(req));
        if let Some(t) = self.timeout {
            ctx.schedule(t);
        }
    }

    /// What is wrong with the server's answer, if anything; else the
    /// subprotocol it chose and the compression it agreed to.
    fn judge(&self, resp: &Response<()>) -> Result<(Option<String>, Option<Agreed>), String> {
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Err(format!(
                "the server answered {} instead of 101",
                resp.status()
            ));
        }
        let h = resp.headers();
        if !has_token(h, UPGRADE, "websocket") || !has_token(h, CONNECTION, "upgrade") {
            return Err("the 101 lacks Upgrade: websocket or Connection: upgrade".into());
        }
        let expected = self.key.as_deref().map(|k| accept_key(k.as_bytes()));
        let accept = h.get(SEC_WEBSOCKET_ACCEPT).map(HeaderValue::as_bytes);
        if accept.is_none() || accept != expected.as_deref().map(str::as_bytes) {
            return Err("a wrong Sec-WebSocket-Accept".into());
        }
        let subprotocol = match h.get(SEC_WEBSOCKET_PROTOCOL).map(HeaderValue::to_str) {
            None => None,
            Some(Ok(p)) if self.subprotocols.iter().any(|s| s == p) => Some(p.to_string()),
            Some(_) => return Err("a subprotocol that was not offered".into()),
        };
        let extensions = h.get_all(SEC_WEBSOCKET_EXTENSIONS);
        let agreed = match (&self.compression, extensions.iter().next()) {
            (_, None) => None,
            (None, Some(_)) => return Err("an extension that was not offered".into()),
            (Some(_), Some(_)) => deflate::read_answer(extensions.iter())?,
        };
        Ok((subprotocol, agreed))
    }

    fn fail(&mut self, ctx: &mut Context<'_>, why: String) {
        tracing::debug!(why, "WebSocket client handshake failed");
        self.done = true;
        ctx.fire_exception(Error::decode(format!("WebSocket handshake: {why}")));
        ctx.close();
    }
}

#[weft_core::handler]
impl Handler for WebSocketClientHandshake {
    fn channel_active(&mut self, ctx: &mut Context<'_>) {
        self.send_request(ctx);
        ctx.fire_active();
    }

    /// The handshake's timeout: no 101 in time.
    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        if !self.done {
            tracing::debug!("no 101 answer to the WebSocket handshake in time: closing");
            ctx.close();
        }
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let part = match msg.downcast::<HttpResponseIn>() {
            Ok(p) => p,
            Err(other) => return ctx.fire_read(other),
        };
        let response = match part {
            HttpResponseIn::Head { response, .. } => response,
            HttpResponseIn::Invalid(e) => return self.fail(ctx, e.to_string()),
            // A refusal's body: the connection is being failed anyway.
            HttpResponseIn::Data(_) | HttpResponseIn::End { .. } => return,
        };
        let (subprotocol, agreed) = match self.judge(&response) {
            Ok(r) => r,
            Err(why) => return self.fail(ctx, why),
        };
        self.done = true;
        let deflate = agreed.as_ref().zip(self.compression.as_ref());
        if let Err(e) = deflate::install_codec(ctx, Role::Client, &self.config, deflate) {
            return self.fail(ctx, format!("cannot install the codec: {e}"));
        }
        // The HTTP codec leaves when its read returns, passing the bytes
        // behind the 101 to the frame codec now in our place.
        if let Err(e) = ctx.remove(&self.http_codec) {
            return self.fail(ctx, format!("cannot remove the HTTP codec: {e}"));
        }
        ctx.fire_user_event(Box::new(ClientHandshakeComplete {
            response,
            subprotocol,
            compression: agreed.is_some(),
        }));
    }
}

impl fmt::Debug for WebSocketClientHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketClientHandshake")
            .field("uri", &self.uri)
            .field("subprotocols", &self.subprotocols)
            .finish()
    }
}
