//! permessage-deflate (RFC 7692): the negotiation in the handshakes'
//! `Sec-WebSocket-Extensions`, and [`PerMessageDeflate`], the handler after
//! the frame codec that inflates and deflates whole messages.
//!
//! Contract:
//! - negotiation: a server accepts the first `permessage-deflate` offer it
//!   can honour — every parameter known, none twice, values valid; an offer
//!   with `server_max_window_bits=8` is passed over (zlib's raw deflate
//!   needs at least 9) — and answers with the parameters it agreed to; a
//!   client offers `client_max_window_bits` and fails the handshake on an
//!   answer it did not allow;
//! - inbound, a message whose first frame has RSV1 set is inflated frame by
//!   frame (the codec lets RSV1 through only on a message's first frame,
//!   and only once this extension is agreed); the frames passed on carry
//!   the inflated bytes, RSV1 clear; a message's inflated size is bounded by
//!   `max_message_size` (1009 past it); text is checked as UTF-8 after
//!   inflating (1007); data that does not inflate fails the connection
//!   (1007); messages without RSV1 pass untouched;
//! - outbound, every text and binary message is deflated (each fragment
//!   flushed, so that it leaves at once), RSV1 set on its first frame, the
//!   final `00 00 ff ff` removed; control frames pass untouched;
//! - with `no_context_takeover` agreed for a direction, that direction's
//!   compressor starts afresh for every message; otherwise the window
//!   carries over from message to message;
//! - inflating is paced per connection: the bytes it produces are charged
//!   to a budget of [`DeflateConfig::max_inflate_rate`] bytes per second
//!   (default [`DEFAULT_MAX_INFLATE_RATE`], a burst of one second's
//!   worth); a connection in debt stops being read until the debt is paid
//!   (auto-read off, back on by the channel's timer after the time the
//!   rate gives), so a peer
//!   whose 61 KB frames inflate to 60 MiB gets one of them through per
//!   second or so instead of a core (and the echo that deflates them again
//!   is paced with it);
//! - a failure sends its close frame after the writes already queued
//!   behind this handler, then closes the connection.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use http::HeaderValue;
use weft_core::{Combined, Context, Error, Handler, Msg, Promise};

use super::codec::{Role, WebSocketCodec, WebSocketConfig};
use super::error::{WebSocketError, WebSocketErrorKind};
use super::frame::{Frame, OpCode};
use super::utf8::Utf8Validator;

/// The extension's name in `Sec-WebSocket-Extensions`.
pub(crate) const EXTENSION: &str = "permessage-deflate";
/// What every flushed deflate block ends with, removed on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];
/// Default most inflated bytes per second per connection: 64 MiB (a fifth
/// of a core or so for zlib-rs here).
pub const DEFAULT_MAX_INFLATE_RATE: u64 = 64 << 20;

/// Whether and how to offer or accept permessage-deflate.
///
/// ```
/// use weft_codec::websocket::{DeflateConfig, WebSocketUpgrade};
/// let ws = WebSocketUpgrade::new("/ws").compression(DeflateConfig::new().level(6));
/// # let _ = ws;
/// ```
#[derive(Clone, Debug)]
pub struct DeflateConfig {
    level: u32,
    no_context_takeover: bool,
    max_inflate_rate: u64,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 1,
            no_context_takeover: false,
            max_inflate_rate: DEFAULT_MAX_INFLATE_RATE,
        }
    }
}

impl DeflateConfig {
    /// Compression level 1 (fast), and the window kept across messages.
    pub fn new() -> DeflateConfig {
        DeflateConfig::default()
    }

    /// The compression level, 0 (store) to 9 (smallest); values over 9
    /// are taken as 9.
    pub fn level(mut self, level: u32) -> Self {
        self.level = level.min(9);
        self
    }

    /// Whether this end's compressor starts afresh for every message, even
    /// when the peer did not ask for it (less memory held between
    /// messages, a worse ratio). A server says so with
    /// `server_no_context_takeover`; a client asks for nothing more.
    pub fn no_context_takeover(mut self, on: bool) -> Self {
        self.no_context_takeover = on;
        self
    }

    /// Most bytes a connection's inflating may produce per second (default
    /// [`DEFAULT_MAX_INFLATE_RATE`], at least 64 KiB); past it the
    /// connection is not read until it is back within the rate.
    pub fn max_inflate_rate(mut self, bytes_per_second: u64) -> Self {
        self.max_inflate_rate = bytes_per_second.max(64 * 1024);
        self
    }
}

/// The parameters both ends agreed on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Agreed {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    /// The window the server compresses with (9..=15).
    server_max_window_bits: Option<u8>,
    /// The window the client compresses with (9..=15).
    client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// The answer's header value.
    pub(crate) fn header(&self) -> HeaderValue {
        let mut s = String::from(EXTENSION);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if let Some(b) = self.server_max_window_bits {
            s.push_str(&format!("; server_max_window_bits={b}"));
        }
        if let Some(b) = self.client_max_window_bits {
            s.push_str(&format!("; client_max_window_bits={b}"));
        }
        HeaderValue::from_str(&s).expect("tokens and digits are a valid header value")
    }
}

/// One extension of an offer or answer: its name and parameters.
type Extension<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);

/// The extensions listed in `values` (all `Sec-WebSocket-Extensions`
/// headers, in order); `None` if one is not even well formed.
fn parse_extensions<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> Option<Vec<Extension<'a>>> {
    let mut out = Vec::new();
    for v in values {
        let v = v.to_str().ok()?;
        for ext in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let mut parts = ext.split(';').map(str::trim);
            let name = parts.next().filter(|n| !n.is_empty())?;
            let mut params = Vec::new();
            for p in parts {
                let (key, value) = match p.split_once('=') {
                    Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                    None => (p, None),
                };
                if key.is_empty() {
                    return None;
                }
                params.push((key, value));
            }
            out.push((name, params));
        }
    }
    Some(out)
}

/// A window size parameter's value: 8 to 15.
fn window_bits(v: &str) -> Option<u8> {
    let bits: u8 = v.parse().ok()?;
    ((8..=15).contains(&bits) && !v.starts_with('0')).then_some(bits)
}

/// The parameters of one `permessage-deflate` extension; `None` when one
/// is unknown, repeated, or has a bad value. `client_max_window_bits`
/// without a value (allowed in an offer) reads as `Some(None)`.
#[derive(Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: Option<Option<u8>>,
}

fn params(list: &[(&str, Option<&str>)]) -> Option<Params> {
    let mut p = Params::default();
    let mut seen = Vec::new();
    for &(key, value) in list {
        if seen.contains(&key) {
            return None;
        }
        seen.push(key);
        match (key, value) {
            ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
            ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
            ("server_max_window_bits", Some(v)) => p.server_max_window_bits = Some(window_bits(v)?),
            ("client_max_window_bits", None) => p.client_max_window_bits = Some(None),
            ("client_max_window_bits", Some(v)) => {
                p.client_max_window_bits = Some(Some(window_bits(v)?))
            }
            _ => return None,
        }
    }
    Some(p)
}

/// The server's choice among the client's offers (its answer is
/// [`Agreed::header`]); `None` when no offer can be honoured.
pub(crate) fn accept_offer<'a>(
    offers: impl Iterator<Item = &'a HeaderValue>,
    config: &DeflateConfig,
) -> Option<Agreed> {
    let offers = parse_extensions(offers)?;
    for (name, list) in offers {
        if !name.eq_ignore_ascii_case(EXTENSION) {
            continue;
        }
        let Some(p) = params(&list) else { continue };
        if p.server_max_window_bits == Some(8) {
            continue; // zlib cannot deflate with a 256-byte window
        }
        let agreed = Agreed {
            server_no_context_takeover: p.server_no_context_takeover || config.no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits,
            // Our inflater takes any window: the client's own limit, if
            // it set one, stands without being repeated.
            client_max_window_bits: None,
        };
        return Some(agreed);
    }
    None
}

/// The client's offer.
pub(crate) fn offer(config: &DeflateConfig) -> HeaderValue {
    let mut s = format!("{EXTENSION}; client_max_window_bits");
    if config.no_context_takeover {
        s.push_str("; client_no_context_takeover");
    }
    HeaderValue::from_str(&s).expect("tokens are a valid header value")
}

/// The server's answer to our offer: `Ok(None)` when it declined, an
/// error when it answered with something we did not offer or allow.
pub(crate) fn read_answer<'a>(
    values: impl Iterator<Item = &'a HeaderValue>,
) -> Result<Option<Agreed>, &'static str> {
    let exts = parse_extensions(values).ok_or("a malformed Sec-WebSocket-Extensions")?;
    let mut agreed = None;
    for (name, list) in exts {
        if !name.eq_ignore_ascii_case(EXTENSION) {
            return Err("an extension that was not offered");
        }
        if agreed.is_some() {
            return Err("permessage-deflate agreed twice");
        }
        let p = params(&list).ok_or("bad permessage-deflate parameters")?;
        let client_bits = match p.client_max_window_bits {
            None => None,
            Some(None) => return Err("client_max_window_bits without a value"),
            Some(Some(8)) => return Err("client_max_window_bits=8 cannot be honoured"),
            Some(Some(b)) => Some(b),
        };
        agreed = Some(Agreed {
            server_no_context_takeover: p.server_no_context_takeover,
            client_no_context_takeover: p.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits,
            client_max_window_bits: client_bits,
        });
    }
    Ok(agreed)
}

/// Puts a [`WebSocketCodec`] for `role` in the calling handler's place (as
/// `"websocket"`), and when compression was agreed a [`PerMessageDeflate`]
/// after it (as `"websocket-deflate"`), with this
/// end's `deflate` config: the last step of either handshake.
pub(crate) fn install_codec(
    ctx: &mut Context<'_>,
    role: Role,
    config: &WebSocketConfig,
    agreed: Option<(&Agreed, &DeflateConfig)>,
) -> Result<(), Error> {
    let mut config = config.clone();
    config.compressed = agreed.is_some();
    let max_message = config.max_message_size;
    ctx.replace_self("websocket", WebSocketCodec::new(role, config))?;
    if let Some((agreed, deflate)) = agreed {
        let handler = PerMessageDeflate::new(role, agreed, deflate, max_message);
        ctx.add_after("websocket", "websocket-deflate", handler)?;
    }
    Ok(())
}

/// The message being inflated.
struct Inflating {
    text: bool,
    size: usize,
}

/// The permessage-deflate handler; see the module contract. Installed by
/// the handshakes right after the [`WebSocketCodec`](super::WebSocketCodec)
/// when the extension is agreed.
pub struct PerMessageDeflate {
    halves: Combined<(), Inflater, Deflater>,
}

/// The inbound half: compressed messages in, inflated at a bounded pace.
struct Inflater {
    inflate: Decompress,
    max_message_size: usize,
    inflating: Option<Inflating>,
    utf8: Utf8Validator,
    failed: bool,
    /// The inflating budget.
    pace: crate::token_bucket::TokenBucket,
    /// Reads are off until the pace's timer fires.
    paused: bool,
}

/// The outbound half: data messages out, deflated.
struct Deflater {
    deflate: Compress,
    /// This end's compressor restarts at every message.
    reset_deflate: bool,
    /// An outbound message is being sent in fragments.
    deflating: bool,
}

impl Inflater {
    /// Stops reading the channel for `pause` (inflating spent its budget),
    /// on the channel's timer: [`Handler::timer`] turns reads back on.
    fn pause_reads(&mut self, ctx: &mut Context<'_>, pause: Duration) {
        if self.paused || !ctx.channel().is_auto_read() {
            return; // paused already, or the application holds reads off
        }
        tracing::debug!(?pause, "inflating over its rate: reads paused");
        ctx.channel().set_auto_read(false);
        self.paused = true;
        ctx.schedule(pause);
    }
}

impl PerMessageDeflate {
    pub(crate) fn new(
        role: Role,
        agreed: &Agreed,
        config: &DeflateConfig,
        max_message_size: usize,
    ) -> PerMessageDeflate {
        let (bits, reset) = match role {
            Role::Server => (
                agreed.server_max_window_bits,
                agreed.server_no_context_takeover,
            ),
            Role::Client => (
                agreed.client_max_window_bits,
                agreed.client_no_context_takeover,
            ),
        };
        let bits = bits.unwrap_or(15).max(9);
        let inflater = Inflater {
            inflate: Decompress::new_with_window_bits(false, 15),
            max_message_size,
            inflating: None,
            utf8: Utf8Validator::default(),
            failed: false,
            pace: crate::token_bucket::TokenBucket::new(config.max_inflate_rate),
            paused: false,
        };
        let deflater = Deflater {
            deflate: Compress::new_with_window_bits(Compression::new(config.level), false, bits),
            reset_deflate: reset || config.no_context_takeover,
            deflating: false,
        };
        PerMessageDeflate {
            halves: Combined::new((), inflater, deflater),
        }
    }
}

impl Inflater {
    /// Inflates one frame of a compressed message.
    fn inflate_frame(&mut self, f: Frame) -> Result<Frame, WebSocketError> {
        let m = self.inflating.as_mut().expect("a compressed message");
        let limit = self.max_message_size.saturating_sub(m.size);
        let too_big =
            || WebSocketError::new(WebSocketErrorKind::TooBig, "a message over the size limit");
        let corrupt = || {
            WebSocketError::new(
                WebSocketErrorKind::InvalidUtf8,
                "a message that does not inflate",
            )
        };
        let mut out =
            Vec::with_capacity(f.payload.len().saturating_mul(4).clamp(64, limit.max(64)));
        let pieces: [&[u8]; 2] = [&f.payload, if f.fin { &TAIL } else { &[] }];
        let mut ended = false;
        'pieces: for (i, piece) in pieces.into_iter().enumerate() {
            let mut input = piece;
            // Until the input is in and the inflater has room to spare
            // (nothing is left inside it).
            while !input.is_empty() || out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(too_big());
                }
                if out.len() == out.capacity() {
                    out.reserve(out.len().clamp(64, 1 << 20));
                }
                let (in0, out0) = (self.inflate.total_in(), out.len());
                let status = self
                    .inflate
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|_| corrupt())?;
                input = consumed(input, self.inflate.total_in(), in0);
                if status == Status::StreamEnd {
                    // A final block (BFINAL): nothing may follow it in the
                    // message but the tail we add.
                    if i == 0 && !input.is_empty() {
                        return Err(corrupt());
                    }
                    ended = true;
                    break 'pieces;
                }
                if out.len() == out0 && self.inflate.total_in() == in0 && !input.is_empty() {
                    return Err(corrupt()); // no progress
                }
                if input.is_empty() && out.len() < out.capacity() {
                    break;
                }
            }
        }
        if out.len() > limit {
            return Err(too_big());
        }
        m.size = m.size.saturating_add(out.len());
        if m.text && !(self.utf8.feed(&out) && (!f.fin || self.utf8.finish())) {
            return Err(WebSocketError::new(
                WebSocketErrorKind::InvalidUtf8,
                "a text message that is not UTF-8",
            ));
        }
        if ended {
            // The stream is over: the next message starts a new one.
            self.inflate.reset(false);
            if !f.fin {
                return Err(corrupt());
            }
        }
        if f.fin {
            self.inflating = None;
        }
        Ok(Frame {
            fin: f.fin,
            rsv1: false,
            opcode: f.opcode,
            payload: Bytes::from(out),
        })
    }
}

impl Deflater {
    /// Deflates one outbound frame of a data message.
    fn deflate_frame(&mut self, f: Frame) -> Frame {
        // `write` sends continuations here only inside a deflated message.
        let first = f.opcode != OpCode::Continuation;
        let mut out = Vec::with_capacity((f.payload.len() / 2).saturating_add(64));
        let mut input = &f.payload[..];
        loop {
            if out.capacity().saturating_sub(out.len()) < 64 {
                out.reserve(out.capacity().max(256));
            }
            let in0 = self.deflate.total_in();
            if let Err(e) = self
                .deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
            {
                // Not seen with valid parameters; the frame cannot go out
                // as it is, an empty deflated message can.
                tracing::warn!(error = %e, "deflate failed");
                out.clear();
                self.deflate.reset();
                break;
            }
            input = consumed(input, self.deflate.total_in(), in0);
            // The flush is complete once all input is in and it left room.
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if f.fin {
            if out.ends_with(&TAIL) {
                out.truncate(out.len().saturating_sub(TAIL.len()));
            } else if out.is_empty() {
                // Nothing since the last flush (an empty last fragment):
                // the peer appends `00 00 ff ff`, which must complete an
                // empty stored block — whose first byte this is (RFC 7692
                // §7.2.3.6).
                out.push(0x00);
            }
            self.deflating = false;
            if self.reset_deflate {
                self.deflate.reset();
            }
        } else {
            self.deflating = true;
        }
        Frame {
            fin: f.fin,
            rsv1: first,
            opcode: f.opcode,
            payload: Bytes::from(out),
        }
    }
}

impl Inflater {
    /// Sends the close frame for `err` (through the codec, towards the
    /// transport), reports it, and closes. At once: the answers the
    /// handlers behind wrote to the frames before went through the
    /// deflating half, never busy behind this one, so the close follows
    /// them.
    fn fail(&mut self, ctx: &mut Context<'_>, err: WebSocketError) {
        tracing::debug!(error = %err, "failing the WebSocket connection (permessage-deflate)");
        self.failed = true;
        let close = Frame::close(err.code(), err.detail());
        ctx.write_and_flush(Msg::user(close));
        ctx.fire_exception(err.into_exception());
        ctx.close();
    }
}

/// A pipeline links the two halves apart (`take_halves`); the handler's own
/// callbacks are reached only when it is wrapped in another handler, which
/// `handler_added` reports.
impl Handler for PerMessageDeflate {
    fn take_halves(&mut self) -> Option<weft_core::Halves> {
        self.halves.take_halves()
    }

    fn handler_added(&mut self, ctx: &mut Context<'_>) {
        self.halves.handler_added(ctx);
    }
}

#[weft_core::handler]
impl Handler for Inflater {
    /// The pace's pause is over: reads go on.
    fn timer(&mut self, ctx: &mut Context<'_>, _: weft_core::TimerId) {
        if std::mem::take(&mut self.paused) {
            ctx.channel().set_auto_read(true);
        }
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let f = match msg.downcast::<Frame>() {
            Ok(f) => f,
            Err(other) => return ctx.fire_read(other),
        };
        if self.failed {
            return;
        }
        match f.opcode {
            OpCode::Text | OpCode::Binary if f.rsv1 => {
                self.inflating = Some(Inflating {
                    text: f.opcode == OpCode::Text,
                    size: 0,
                });
                self.utf8 = Utf8Validator::default();
            }
            OpCode::Continuation if self.inflating.is_some() => {}
            _ => return ctx.fire_read(Msg::user(f)),
        }
        match self.inflate_frame(f) {
            Ok(f) => {
                let n = u64::try_from(f.payload.len()).unwrap_or(u64::MAX);
                if let Some(pause) = self.pace.charge(n, Instant::now()) {
                    self.pause_reads(ctx, pause);
                }
                ctx.fire_read(Msg::user(f))
            }
            Err(e) => self.fail(ctx, e),
        }
    }
}

#[weft_core::handler]
impl Handler for Deflater {
    fn write(&mut self, ctx: &mut Context<'_>, msg: Msg, promise: Option<Promise>) {
        let f = match msg.downcast::<Frame>() {
            Ok(f) => f,
            Err(other) => return ctx.write_with(other, promise),
        };
        let compress = match f.opcode {
            OpCode::Text | OpCode::Binary => true,
            OpCode::Continuation => self.deflating,
            _ => false,
        };
        let f = if compress { self.deflate_frame(f) } else { f };
        ctx.write_with(Msg::user(f), promise);
    }
}

impl fmt::Debug for PerMessageDeflate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerMessageDeflate").finish_non_exhaustive()
    }
}

/// What is left of `input` after zlib took what its total-in counter moved
/// by (from `before` to `after`); never past the end.
fn consumed(input: &[u8], after: u64, before: u64) -> &[u8] {
    let took = usize::try_from(after.saturating_sub(before)).unwrap_or(usize::MAX);
    input.get(took..).unwrap_or_default()
}
