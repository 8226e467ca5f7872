//! [`WebSocketCodec`]: bytes ⇄ [`Frame`]s on an upgraded connection, with
//! every rule of RFC 6455 enforced as frames arrive.
//!
//! Contract:
//! - inbound, each frame is checked before its payload is awaited:
//!   reserved bits (RSV1 is allowed on a message's first frame once
//!   permessage-deflate is agreed) and opcodes, control frames fragmented or over 125
//!   bytes, the mask (a server requires it, a client refuses it), a 64-bit
//!   length with its top bit set — 1002; a frame over `max_frame_size` or a
//!   message over `max_message_size` — 1009 (so no more than a frame's
//!   limit is ever buffered); a partial frame also counts in a budget of
//!   all connections together
//!   ([`WebSocketConfig::memory_budget`], default
//!   [`DEFAULT_PARTIAL_FRAME_BUDGET`]), and bytes that would pass it are
//!   refused with 1009 too, never buffered; fragments must follow their message, and a
//!   new message may not start inside one — 1002; text is checked as UTF-8
//!   as it arrives, across fragments and within a frame not yet whole (the
//!   first bad byte fails the connection) — 1007; a close frame's payload is one of: empty,
//!   or a sendable code and a UTF-8 reason — else 1002/1007;
//! - frames reach the next handler unmasked, payloads as slices of the
//!   bytes read (unmasked in place when the buffer is the frame's alone;
//!   otherwise a payload of up to 1 KiB is unmasked into a piece of the
//!   thread's [`small_bytes`](weft_core::small_bytes) chunk, a longer one
//!   into a buffer of its own); like any slice, a payload kept for long
//!   keeps the memory it is a slice of;
//!   control frames may arrive between fragments;
//! - a ping is answered with a pong carrying its payload (unless
//!   `auto_pong(false)`, then it is passed on, or a close was sent); pongs
//!   and close frames are passed on;
//! - a violation sends a close frame with its code, closes the connection,
//!   and is reported as an exception whose source is a [`WebSocketError`];
//!   nothing after it is parsed; the close frames this codec sends itself
//!   (for a violation, or answering the peer's) leave after what the
//!   handlers behind it wrote in answer to the frames before (an echo of
//!   the message read in the same buffer as a bad frame is not lost);
//! - the close handshake: a peer's close is answered with the same code
//!   (or an empty close), then a server closes the connection; a close the
//!   application writes waits for the peer's close for at most
//!   `close_timeout`, then the connection is closed anyway; after a close is
//!   sent, data frames the application writes fail with a closed-channel
//!   error and data frames that arrive are discarded;
//! - the codec is one handler, a [`Combined`] of two halves: the decoder
//!   (all of the above) and the encoder (what follows), called apart, so
//!   that an answer written while a read is being decoded is encoded at
//!   once and leaves in the order of the frames it answers — which is why
//!   the close frame the codec sends for a violation can leave at once,
//!   behind those answers; a close the application writes takes effect in
//!   the decoder at once (the halves share a plain [`Ends`] value): frames
//!   behind it in the read being decoded are dropped too;
//! - outbound, [`Frame`]s are encoded with the shortest length; a server's
//!   payload follows its header by reference (copied behind it when at most
//!   1 KiB), a client's is masked with a fresh random key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use weft_core::{
    BudgetShare, Combined, CompositeBytes, Context, Error, Halves, Handler, MemoryBudget, Msg,
    Promise, TimerId,
};

use super::boxes;
use super::error::{WebSocketError, WebSocketErrorKind};
use super::frame::{CloseCode, Frame, OpCode};
use super::header::{self, Header};
use super::mask::{apply_mask, unmask};
use super::utf8::Utf8Validator;
use crate::Cumulation;

/// Default largest frame payload accepted: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 << 20;
/// Default largest message (all its fragments) accepted: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 << 20;
/// Default wait for the peer's close after ours: 10 s.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on what partial frames and partial messages hold, all
/// connections of the process together: 256 MiB (sixteen frames at the
/// default frame limit; 50 connections each holding one took 800 MB).
pub const DEFAULT_PARTIAL_FRAME_BUDGET: usize = 256 << 20;

/// The default budget of every codec and aggregator not given one.
static PARTIAL: MemoryBudget = MemoryBudget::new(
    "WebSocket partial frames and messages",
    DEFAULT_PARTIAL_FRAME_BUDGET,
);

/// A share of `budget`, or of the process's default one.
pub(crate) fn share_of(budget: &Option<Arc<MemoryBudget>>) -> BudgetShare {
    match budget {
        Some(b) => MemoryBudget::share(b),
        None => MemoryBudget::share_static(&PARTIAL),
    }
}

/// Payloads up to this size are copied after their header (cheaper than
/// joining two pieces). Unmasked payloads are small-bytes pieces up to the
/// same size, so that an encoded frame never holds one.
const COPY_PAYLOAD_MAX: usize = super::mask::UNMASK_SMALL_MAX;

/// Which end of the connection this codec speaks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Receives masked frames, sends unmasked ones.
    Server,
    /// Receives unmasked frames, sends masked ones.
    Client,
}

/// The limits and behaviour of a [`WebSocketCodec`].
#[derive(Clone, Debug)]
pub struct WebSocketConfig {
    pub(crate) max_frame_size: usize,
    pub(crate) max_message_size: usize,
    pub(crate) auto_pong: bool,
    pub(crate) close_timeout: Duration,
    /// permessage-deflate was agreed: RSV1 may mark a message compressed.
    pub(crate) compressed: bool,
    /// `None`: the process's default budget.
    pub(crate) budget: Option<Arc<MemoryBudget>>,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            auto_pong: true,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            compressed: false,
            budget: None,
        }
    }
}

impl WebSocketConfig {
    /// The defaults: 16 MiB frames, 64 MiB messages, automatic pongs, a
    /// 10 s close timeout.
    pub fn new() -> WebSocketConfig {
        WebSocketConfig::default()
    }

    /// Largest frame payload accepted (at least 125, so that any control
    /// frame fits; larger frames are refused with 1009).
    pub fn max_frame_size(mut self, n: usize) -> Self {
        self.max_frame_size = n.max(125);
        self
    }

    /// Largest message accepted, all fragments together (at least the
    /// frame limit's floor, 125).
    pub fn max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n.max(125);
        self
    }

    /// Whether pings are answered by the codec (the default) or passed on.
    pub fn auto_pong(mut self, on: bool) -> Self {
        self.auto_pong = on;
        self
    }

    /// The budget partial frames count in, shared with every codec given
    /// the same one (default: one process-wide budget of
    /// [`DEFAULT_PARTIAL_FRAME_BUDGET`]). A frame whose bytes would pass it
    /// is refused with 1009, as one over the frame limit is.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use weft_codec::websocket::WebSocketConfig;
    /// use weft_core::MemoryBudget;
    ///
    /// let rooms = Arc::new(MemoryBudget::new("chat partial frames", 32 << 20));
    /// let config = WebSocketConfig::new().memory_budget(rooms);
    /// # drop(config);
    /// ```
    pub fn memory_budget(mut self, budget: Arc<MemoryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// How long to wait for the peer's close after sending ours.
    pub fn close_timeout(mut self, t: Duration) -> Self {
        self.close_timeout = t;
        self
    }
}

/// The WebSocket frame codec of one connection, both ways; see the module
/// contract.
///
/// Installed by the handshakes ([`WebSocketUpgrade`](super::WebSocketUpgrade),
/// [`WebSocketClientHandshake`](super::WebSocketClientHandshake)) as
/// `"websocket"`; add it yourself on a connection known to speak WebSocket
/// (tests, a client after its own handshake).
///
/// ```
/// use weft_codec::websocket::{Frame, Role, WebSocketCodec, WebSocketConfig};
/// use weft_core::EmbeddedChannel;
///
/// let codec = WebSocketCodec::new(Role::Client, WebSocketConfig::new());
/// let mut ch = EmbeddedChannel::builder().add_last("websocket", codec).build();
/// ch.write_inbound(&[0x81, 0x02, b'h', b'i'][..]);
/// assert_eq!(ch.read_inbound::<Frame>().unwrap().payload, "hi");
/// ```
pub struct WebSocketCodec {
    halves: Combined<Ends, WebSocketDecoder, WebSocketEncoder>,
}

/// What the two halves both read: whether a close was sent (the
/// encoder's) and whether parsing ended (the decoder's); the state of the
/// codec's [`Combined`], reached through `Context::shared`.
#[derive(Debug, Default)]
pub(crate) struct Ends {
    close_sent: bool,
    /// Nothing more is parsed (a violation, or the close handshake ended).
    done: bool,
}

fn ends<'c>(ctx: &'c mut Context<'_>) -> &'c mut Ends {
    ctx.shared::<Ends>()
}

/// The inbound half of a [`WebSocketCodec`]: bytes to [`Frame`]s, with the
/// checks, pongs and the close handshake of the module contract.
pub(crate) struct WebSocketDecoder {
    role: Role,
    config: WebSocketConfig,
    cum: Cumulation,
    /// The message being received (Text or Binary) and its length so far.
    message: Option<(OpCode, usize)>,
    utf8: Utf8Validator,
    /// How much of the pending text frame's payload `utf8` has seen.
    text_checked: usize,
    close_received: bool,
    /// Nothing more is parsed: this half's own copy of [`Ends::done`],
    /// which only it sets (the encoder reads the shared one, rarely).
    done: bool,
    /// What `cum` holds, in the partial-frame budget.
    held: BudgetShare,
}

/// The outbound half of a [`WebSocketCodec`]: [`Frame`]s to bytes, and the
/// close the application writes.
pub(crate) struct WebSocketEncoder {
    role: Role,
    close_timeout: Duration,
    /// This half's own copy of [`Ends::close_sent`], which only it sets.
    close_sent: bool,
}

impl WebSocketCodec {
    /// A codec for `role` with `config`.
    pub fn new(role: Role, config: WebSocketConfig) -> WebSocketCodec {
        let enc = WebSocketEncoder {
            role,
            close_timeout: config.close_timeout,
            close_sent: false,
        };
        let dec = WebSocketDecoder {
            role,
            held: share_of(&config.budget),
            config,
            cum: Cumulation::new(),
            message: None,
            utf8: Utf8Validator::default(),
            text_checked: 0,
            close_received: false,
            done: false,
        };
        WebSocketCodec {
            halves: Combined::new(Ends::default(), dec, enc),
        }
    }
}

impl WebSocketDecoder {
    /// The next frame from the cumulation: `Ok(None)` until it is whole.
    fn next_frame(&mut self) -> Result<Option<Frame>, WebSocketError> {
        let Some(h) = header::parse(&self.cum) else {
            return Ok(None);
        };
        let opcode = self.check(&h)?;
        // A header is at most 14 bytes and a length at most 2^63 - 1.
        let total = (h.size as u64).saturating_add(h.len);
        if (self.cum.len() as u64) < total {
            self.check_text_so_far(&h, opcode)?;
            return Ok(None);
        }
        self.cum.advance(h.size);
        // `check` bounded the length by max_frame_size, a usize.
        let payload = self.cum.split_to(h.len as usize);
        let payload = match h.mask {
            Some(key) => unmask(payload, key),
            None => payload,
        };
        Ok(Some(Frame {
            fin: h.fin,
            rsv1: h.rsv & 0b100 != 0,
            opcode,
            payload,
        }))
    }

    /// The header's rules, judged before the payload is awaited; the
    /// frame's opcode when they hold.
    fn check(&self, h: &Header) -> Result<OpCode, WebSocketError> {
        let Some(op) = OpCode::from_u8(h.opcode) else {
            return Err(WebSocketError::protocol("a reserved opcode"));
        };
        // RSV1 marks a compressed message (permessage-deflate, once agreed)
        // on its first frame only.
        let rsv1_ok = self.config.compressed && matches!(op, OpCode::Text | OpCode::Binary);
        if h.rsv & 0b011 != 0 || (h.rsv & 0b100 != 0 && !rsv1_ok) {
            return Err(WebSocketError::protocol("a reserved bit is set"));
        }
        if op.is_control() && !h.fin {
            return Err(WebSocketError::protocol("a fragmented control frame"));
        }
        if op.is_control() && h.len > 125 {
            return Err(WebSocketError::protocol("a control frame over 125 bytes"));
        }
        if h.len >> 63 != 0 {
            return Err(WebSocketError::protocol("a length with its top bit set"));
        }
        match (self.role, h.mask.is_some()) {
            (Role::Server, false) => {
                return Err(WebSocketError::protocol("an unmasked frame from a client"))
            }
            (Role::Client, true) => {
                return Err(WebSocketError::protocol("a masked frame from a server"))
            }
            _ => {}
        }
        if h.len > self.config.max_frame_size as u64 {
            return Err(WebSocketError::new(
                WebSocketErrorKind::TooBig,
                "a frame over the size limit",
            ));
        }
        Ok(op)
    }

    /// Fails a text frame as soon as the part received is not UTF-8 (RFC
    /// 6455 §8.1: fail fast), without waiting for the rest; what it saw is
    /// not checked again when the frame is whole.
    fn check_text_so_far(&mut self, h: &Header, op: OpCode) -> Result<(), WebSocketError> {
        // A compressed message is checked once inflated, not here.
        let text = match (op, self.message) {
            (OpCode::Text, None) => h.rsv == 0,
            (OpCode::Continuation, Some((kind, _))) => kind == OpCode::Text,
            _ => false,
        };
        // The payload bytes received so far (the header is whole).
        let payload = self.cum.get(h.size..).unwrap_or_default();
        if !text || payload.len() <= self.text_checked {
            return Ok(());
        }
        let piece = &payload[self.text_checked..];
        let ok = match h.mask {
            None => self.utf8.feed(piece),
            Some(key) => {
                // Unmasked into a scratch buffer: the payload itself is
                // unmasked once, when it is whole.
                let mut scratch = [0u8; 1024];
                let mut at = self.text_checked;
                piece.chunks(scratch.len()).all(|chunk| {
                    let out = &mut scratch[..chunk.len()];
                    out.copy_from_slice(chunk);
                    apply_mask(out, std::array::from_fn(|i| key[at.wrapping_add(i) & 3]));
                    at = at.wrapping_add(chunk.len());
                    self.utf8.feed(out)
                })
            }
        };
        self.text_checked = payload.len();
        if ok {
            Ok(())
        } else {
            Err(WebSocketError::new(
                WebSocketErrorKind::InvalidUtf8,
                "a text message that is not UTF-8",
            ))
        }
    }

    /// The message rules for a data frame that arrived whole.
    fn check_data(&mut self, f: &Frame) -> Result<(), WebSocketError> {
        let (kind, so_far) = match (f.opcode, self.message) {
            (OpCode::Continuation, None) => {
                return Err(WebSocketError::protocol(
                    "a continuation with no message to continue",
                ))
            }
            (OpCode::Continuation, Some(m)) => m,
            (_, Some(_)) => {
                return Err(WebSocketError::protocol(
                    "a new message inside a fragmented one",
                ))
            }
            // A compressed text message is checked once inflated: here it
            // is bytes.
            (OpCode::Text, None) if f.rsv1 => (OpCode::Binary, 0),
            (op, None) => (op, 0),
        };
        let len = so_far.saturating_add(f.payload.len());
        if len > self.config.max_message_size {
            return Err(WebSocketError::new(
                WebSocketErrorKind::TooBig,
                "a message over the size limit",
            ));
        }
        let seen = std::mem::take(&mut self.text_checked);
        if kind == OpCode::Text
            && !(self.utf8.feed(&f.payload[seen..]) && (!f.fin || self.utf8.finish()))
        {
            return Err(WebSocketError::new(
                WebSocketErrorKind::InvalidUtf8,
                "a text message that is not UTF-8",
            ));
        }
        self.message = if f.fin { None } else { Some((kind, len)) };
        Ok(())
    }

    /// Reacts to one valid frame.
    fn on_frame(&mut self, ctx: &mut Context<'_>, f: Frame) -> Result<(), WebSocketError> {
        match f.opcode {
            OpCode::Ping => {
                if !self.config.auto_pong {
                    ctx.fire_read(Msg::user(f));
                } else if !ends(ctx).close_sent {
                    let pong = Frame::pong(f.payload);
                    let bytes = encode(self.role, &pong);
                    ctx.write(bytes);
                    ctx.flush();
                }
            }
            OpCode::Pong => ctx.fire_read(Msg::from_box(boxes::boxed(f))),
            OpCode::Close => self.on_close(ctx, f)?,
            _ => {
                self.check_data(&f)?;
                if !ends(ctx).close_sent {
                    ctx.fire_read(Msg::from_box(boxes::boxed(f)));
                }
            }
        }
        Ok(())
    }

    fn on_close(&mut self, ctx: &mut Context<'_>, f: Frame) -> Result<(), WebSocketError> {
        match f.payload.len() {
            0 => {}
            1 => return Err(WebSocketError::protocol("a close payload of one byte")),
            _ => {
                if !f.close_code().is_some_and(CloseCode::is_sendable) {
                    return Err(WebSocketError::protocol(
                        "a close code that may not be sent",
                    ));
                }
                if f.close_reason().is_none() {
                    return Err(WebSocketError::new(
                        WebSocketErrorKind::InvalidUtf8,
                        "a close reason that is not UTF-8",
                    ));
                }
            }
        }
        self.close_received = true;
        self.end(ctx);
        let echo = match f.close_code() {
            Some(code) => Frame::close(code, ""),
            None => Frame::close_empty(),
        };
        ctx.fire_read(Msg::user(f));
        // The server ends the TCP connection (RFC 6455 §7.1.1); a client
        // waits for the server to.
        let server = self.role == Role::Server;
        let echo = (!ends(ctx).close_sent).then_some(echo);
        end_now(ctx, echo, None, server);
        if !server {
            arm_close_timer(ctx, self.config.close_timeout);
        }
        Ok(())
    }

    /// Sends the close frame for `err`, reports it, and closes (see
    /// [`end_now`] for the order).
    fn fail(&mut self, ctx: &mut Context<'_>, err: WebSocketError) {
        tracing::debug!(error = %err, "failing the WebSocket connection");
        self.end(ctx);
        self.cum = Cumulation::new();
        self.held.resize(0);
        let close = (!ends(ctx).close_sent).then(|| Frame::close(err.code(), err.detail()));
        end_now(ctx, close, Some(err.into_exception()), true);
    }

    /// Nothing more is parsed.
    fn end(&mut self, ctx: &mut Context<'_>) {
        self.done = true;
        ends(ctx).done = true;
    }
}

/// After our close, the peer has `t` to answer.
/// Arms the close timer on the channel's clock: the handler's `timer`
/// closes the connection ([`close_timed_out`]).
fn arm_close_timer(ctx: &mut Context<'_>, t: Duration) {
    ctx.schedule(t);
}

/// What the codec's halves do when their only timer, the close timer,
/// fires: the peer did not answer the close in time.
fn close_timed_out(ctx: &mut Context<'_>) {
    tracing::debug!("the peer did not answer our close in time: closing");
    ctx.close();
}

/// A frame on the wire, in a buffer of its own sized exactly (one
/// allocation): encoded frames may wait in a slow reader's outbound
/// buffer, so they are never pieces of a shared chunk
/// ([`small_bytes`](weft_core::small_bytes)), which one waiting piece
/// would keep whole.
fn encode(role: Role, f: &Frame) -> Msg {
    let len = f.payload.len();
    let opcode = f.opcode.as_u8();
    match role {
        Role::Server => {
            let small = len <= COPY_PAYLOAD_MAX;
            let body = if small { len } else { 0 };
            let mut b = Vec::with_capacity(header::size(len, false).saturating_add(body));
            header::encode(&mut b, f.fin, f.rsv1, opcode, None, len);
            if small {
                b.extend_from_slice(&f.payload);
                return Msg::Bytes(Bytes::from(b));
            }
            let mut c = CompositeBytes::with_capacity(2);
            c.push(Bytes::from(b));
            c.push(f.payload.clone());
            Msg::Composite(c)
        }
        Role::Client => {
            let key = mask_key();
            let mut b = Vec::with_capacity(header::size(len, true).saturating_add(len));
            header::encode(&mut b, f.fin, f.rsv1, opcode, Some(key), len);
            let start = b.len();
            b.extend_from_slice(&f.payload);
            apply_mask(&mut b[start..], key);
            Msg::Bytes(Bytes::from(b))
        }
    }
}

/// Ends the connection from the decoding half: `close` to the codec's
/// own encoder (which notes it was sent), flushed, then `err` as an
/// exception, then the connection's close if `close_conn`.
///
/// At once: the handlers behind the codec wrote their answers to the
/// frames before (an echo of the frame before a violation) straight
/// through the encoder, which is never busy behind the decoder, so the
/// close leaves after them.
fn end_now(ctx: &mut Context<'_>, close: Option<Frame>, err: Option<Error>, close_conn: bool) {
    if let Some(frame) = close {
        ctx.write_to_self(Msg::user(frame));
        ctx.flush();
    }
    if let Some(e) = err {
        ctx.fire_exception(e);
    }
    if close_conn {
        ctx.close();
    }
}

/// A fresh masking key from the operating system's generator (RFC 6455
/// §5.3 asks for an unpredictable one).
fn mask_key() -> [u8; 4] {
    let mut key = [0u8; 4];
    if let Err(e) = getrandom::fill(&mut key) {
        // Masking defends proxies, not the connection: a fixed key still
        // makes valid frames. Never seen on Linux.
        tracing::warn!(error = %e, "no random masking key");
    }
    key
}

#[weft_core::handler]
impl Handler for WebSocketDecoder {
    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let data = match msg {
            Msg::Bytes(b) => b,
            Msg::Composite(c) => c.into_bytes(),
            other => return ctx.fire_read(other),
        };
        if self.done {
            return; // after a violation or the close handshake: discarded
        }
        self.cum.push(data);
        while !self.done {
            let r = self.next_frame().and_then(|f| match f {
                Some(f) => self.on_frame(ctx, f).map(|()| true),
                None => Ok(false),
            });
            match r {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return self.fail(ctx, e),
            }
        }
        if self.done {
            self.cum = Cumulation::new();
        }
        if !self.held.resize(self.cum.len()) {
            let why = "partial frames are over the server's memory budget";
            self.fail(ctx, WebSocketError::new(WebSocketErrorKind::TooBig, why));
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        close_timed_out(ctx);
    }
}

#[weft_core::handler]
impl Handler for WebSocketEncoder {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        // Unboxed, the box goes back for the next frame read (an echo
        // costs no allocation for it).
        let frame = match msg.downcast_box::<Frame>() {
            Ok(f) => boxes::unbox(f),
            Err(other) => return ctx.write_with(other, promise),
        };
        if self.close_sent {
            if let Some(p) = promise {
                p.fail(Error::closed());
            }
            return;
        }
        if frame.opcode == OpCode::Close {
            self.close_sent = true;
            let e = ends(ctx);
            e.close_sent = true;
            // Nothing to wait for once the peer's close came, or when this
            // is our own close for a violation (the connection is closing).
            if !e.done {
                arm_close_timer(ctx, self.close_timeout);
            }
        }
        ctx.write_with(encode(self.role, &frame), promise);
    }

    fn timer(&mut self, ctx: &mut Context<'_>, _: TimerId) {
        close_timed_out(ctx);
    }
}

/// A pipeline links the two halves apart (`take_halves`); the codec's own
/// callbacks are reached only when it is wrapped in another handler, which
/// `handler_added` reports.
impl Handler for WebSocketCodec {
    fn take_halves(&mut self) -> Option<Halves> {
        self.halves.take_halves()
    }

    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        self.halves.handler_added(ctx);
    }
}

impl fmt::Debug for WebSocketCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketCodec").finish_non_exhaustive()
    }
}

impl fmt::Debug for WebSocketDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketDecoder")
            .field("role", &self.role)
            .field("buffered", &self.cum.len())
            .field("close_received", &self.close_received)
            .finish()
    }
}

impl fmt::Debug for WebSocketEncoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketEncoder")
            .field("role", &self.role)
            .finish()
    }
}
