//! RESP2 (the Redis protocol) for `resp-server`: a decoder in the codec
//! style, reply encoding, and an in-memory key-value store.
//!
//! Contract of [`RespDecoder`]: it yields one [`RespFrame::Command`] per
//! request — a multibulk array (`*N\r\n$len\r\n...`) or an inline command
//! (`PING\r\n`) — whose arguments are slices of the received bytes (no
//! copy). Limits as Redis's: at most [`MAX_ARGS`] arguments, bulk strings of
//! at most [`MAX_BULK`] bytes, inline requests and count lines of at most
//! [`MAX_INLINE`] bytes. A violation yields [`RespFrame::ProtocolError`]
//! (answered with `-ERR Protocol error: ...`, then the connection is closed,
//! as Redis does) and the decoder decodes nothing more.
//!
//! The decoder is incremental: a request that arrives in pieces is parsed
//! once, resuming at the argument where the last piece ended (a 1M-argument
//! `MGET` trickled in 700-byte pieces costs one pass, not one per piece).
//! The bytes of requests still incomplete are counted across all
//! connections of the process; past [`PARTIAL_BUDGET`] the request that
//! would pass it is a protocol error.
//!
//! The store copies what it keeps (keys and values): a slice of a read
//! buffer would keep the whole buffer alive — one 1-byte `SET` pipelined
//! behind a 50 MB `ECHO` would pin 50 MB. Keys with a time to live are also
//! expired actively ([`Store::purge_expired`], run ten times a second by
//! `resp-server`), as Redis does, so keys nobody reads again do not stay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use weft_codec::{Cumulation, Decoder};
use weft_core::{CompositeBytes, Context, Error, Events, Handler, Msg, Promise};

/// Most arguments in one command.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest bulk string (Redis: 512 MB; here 64 MiB).
pub const MAX_BULK: usize = 64 * 1024 * 1024;
/// Longest inline command or count line.
pub const MAX_INLINE: usize = 64 * 1024;
/// Most bytes of incomplete requests held at once, all connections together.
pub const PARTIAL_BUDGET: usize = 1 << 30;

/// Bytes of incomplete requests held by every decoder of the process.
static PARTIAL_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What the decoder yields.
#[derive(Debug, Clone)]
pub enum RespFrame {
    /// A command and its arguments.
    Command(Vec<Bytes>),
    /// A protocol violation: answer and close.
    ProtocolError(String),
}

/// Decodes RESP2 requests.
#[derive(Debug, Default)]
pub struct RespDecoder {
    failed: bool,
    /// Where parsing of an incomplete multibulk request stopped.
    partial: Option<Partial>,
    /// Bytes of the incomplete request counted in [`PARTIAL_HELD`].
    held: usize,
}

/// An incomplete multibulk request: its argument count, the arguments
/// parsed so far, and where the next one starts.
#[derive(Debug)]
struct Partial {
    n: usize,
    args: Vec<(usize, usize)>,
    pos: usize,
}

enum Parse {
    Incomplete,
    Done(usize, Vec<(usize, usize)>),
    Bad(String),
}

impl RespDecoder {
    /// Counts `now` bytes of incomplete request as this decoder's share of
    /// the process-wide budget; false when the budget would be passed.
    fn hold(&mut self, now: usize) -> bool {
        use std::sync::atomic::Ordering;
        if now > self.held {
            let more = now - self.held;
            let before = PARTIAL_HELD.fetch_add(more, Ordering::AcqRel);
            if before + more > PARTIAL_BUDGET {
                PARTIAL_HELD.fetch_sub(more, Ordering::AcqRel);
                return false;
            }
        } else {
            PARTIAL_HELD.fetch_sub(self.held - now, Ordering::AcqRel);
        }
        self.held = now;
        true
    }
}

impl Drop for RespDecoder {
    fn drop(&mut self) {
        self.hold(0);
    }
}

fn find_crlf(buf: &[u8], from: usize, limit: usize) -> Result<Option<usize>, ()> {
    let end = buf.len().min(from + limit + 2);
    match buf[from..end].windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from + i)),
        None if buf.len() - from > limit => Err(()),
        None => Ok(None),
    }
}

fn parse_int(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

fn parse(buf: &[u8], partial: &mut Option<Partial>) -> Parse {
    if let Some(p) = partial.take() {
        return parse_args(buf, p, partial);
    }
    if buf[0] != b'*' {
        // Inline command.
        let nl = match buf.iter().take(MAX_INLINE + 1).position(|b| *b == b'\n') {
            Some(i) => i,
            None if buf.len() > MAX_INLINE => return Parse::Bad("too big inline request".into()),
            None => return Parse::Incomplete,
        };
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut args = Vec::new();
        let mut i = 0;
        while i < line.len() {
            while i < line.len() && line[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            while i < line.len() && !line[i].is_ascii_whitespace() {
                i += 1;
            }
            if i > start {
                args.push((start, i));
            }
        }
        return Parse::Done(nl + 1, args);
    }
    let Ok(first) = find_crlf(buf, 1, MAX_INLINE) else {
        return Parse::Bad("too big mbulk count string".into());
    };
    let Some(first) = first else {
        return Parse::Incomplete;
    };
    let n = match parse_int(&buf[1..first]) {
        Some(n) if n <= MAX_ARGS as i64 => n,
        _ => return Parse::Bad("invalid multibulk length".into()),
    };
    let p = Partial {
        n: n.max(0) as usize,
        args: Vec::with_capacity(n.clamp(0, 64) as usize),
        pos: first + 2,
    };
    parse_args(buf, p, partial)
}

/// Parses the arguments of a multibulk request from where `p` stopped;
/// saves where it stops again in `partial` when more bytes are needed.
fn parse_args(buf: &[u8], mut p: Partial, partial: &mut Option<Partial>) -> Parse {
    while p.args.len() < p.n {
        let pos = p.pos;
        if pos >= buf.len() {
            *partial = Some(p);
            return Parse::Incomplete;
        }
        if buf[pos] != b'$' {
            return Parse::Bad(format!("expected '$', got '{}'", buf[pos] as char));
        }
        let Ok(end) = find_crlf(buf, pos + 1, MAX_INLINE) else {
            return Parse::Bad("too big bulk count string".into());
        };
        let Some(end) = end else {
            *partial = Some(p);
            return Parse::Incomplete;
        };
        let len = match parse_int(&buf[pos + 1..end]) {
            Some(l) if (0..=MAX_BULK as i64).contains(&l) => l as usize,
            _ => return Parse::Bad("invalid bulk length".into()),
        };
        let start = end + 2;
        if buf.len() < start + len + 2 {
            *partial = Some(p);
            return Parse::Incomplete;
        }
        if &buf[start + len..start + len + 2] != b"\r\n" {
            return Parse::Bad("bulk string not terminated by CRLF".into());
        }
        p.args.push((start, start + len));
        p.pos = start + len + 2;
    }
    Parse::Done(p.pos, p.args)
}

impl Decoder for RespDecoder {
    type Item = RespFrame;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<RespFrame>, Error> {
        loop {
            if self.failed || src.is_empty() {
                if self.failed {
                    src.advance(src.len());
                }
                return Ok(None);
            }
            match parse(src, &mut self.partial) {
                Parse::Incomplete => {
                    if self.hold(src.len()) {
                        return Ok(None);
                    }
                    self.failed = true;
                    self.partial = None;
                    self.hold(0);
                    src.advance(src.len());
                    return Ok(Some(RespFrame::ProtocolError(
                        "the server's budget for incomplete requests is spent".into(),
                    )));
                }
                Parse::Bad(why) => {
                    self.failed = true;
                    self.partial = None;
                    self.hold(0);
                    src.advance(src.len());
                    return Ok(Some(RespFrame::ProtocolError(why)));
                }
                Parse::Done(used, args) => {
                    self.hold(0);
                    // One slice of the read for the whole request; the
                    // arguments are slices of it.
                    let all = src.split_to(used);
                    if args.is_empty() {
                        continue; // an empty line or `*0`: nothing to do
                    }
                    let args = args.into_iter().map(|(a, b)| all.slice(a..b)).collect();
                    return Ok(Some(RespFrame::Command(args)));
                }
            }
        }
    }
}

// ---------------------------------------------------------------- replies

fn simple(s: &str) -> Msg {
    Msg::Bytes(Bytes::from(format!("+{s}\r\n")))
}

fn error(s: &str) -> Msg {
    Msg::Bytes(Bytes::from(format!("-{s}\r\n")))
}

fn int(n: i64) -> Msg {
    Msg::Bytes(Bytes::from(format!(":{n}\r\n")))
}

fn nil() -> Msg {
    Msg::from(Bytes::from_static(b"$-1\r\n"))
}

/// A bulk reply that references `v` rather than copying it.
fn bulk(v: Bytes) -> Msg {
    let mut c = CompositeBytes::with_capacity(3);
    c.push(Bytes::from(format!("${}\r\n", v.len())));
    c.push(v);
    c.push(Bytes::from_static(b"\r\n"));
    Msg::Composite(c)
}

fn array(items: Vec<Option<Bytes>>) -> Msg {
    let mut c = CompositeBytes::with_capacity(1 + 3 * items.len());
    c.push(Bytes::from(format!("*{}\r\n", items.len())));
    for it in items {
        match it {
            Some(v) => {
                c.push(Bytes::from(format!("${}\r\n", v.len())));
                c.push(v);
                c.push(Bytes::from_static(b"\r\n"));
            }
            None => c.push(Bytes::from_static(b"$-1\r\n")),
        }
    }
    Msg::Composite(c)
}

// ---------------------------------------------------------------- the store

#[derive(Debug, Clone)]
struct Entry {
    value: Bytes,
    expires: Option<Instant>,
}

/// The key space shared by every connection of a server.
#[derive(Debug, Clone, Default)]
pub struct Store {
    map: Arc<Mutex<HashMap<Bytes, Entry>>>,
    /// Keys with a time to live, by expiry time (an entry whose key has
    /// since changed its expiry is skipped when its time comes). Locked
    /// after `map`, never before.
    expiry: Arc<Mutex<std::collections::BTreeSet<(Instant, Bytes)>>>,
}

/// Most expired keys one purge removes, so that it never holds the store
/// for long; the next purge goes on.
const PURGE_BATCH: usize = 10_000;

impl Store {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Bytes, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn expire_at(&self, t: Instant, key: &Bytes) {
        self.expiry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((t, key.clone()));
    }

    /// Removes keys whose time to live has run out (at most a batch at a
    /// time); returns how many. Keys are also removed when read after their
    /// expiry; this removes the ones nobody reads again.
    pub fn purge_expired(&self, now: Instant) -> usize {
        let mut m = self.lock();
        let mut idx = self.expiry.lock().unwrap_or_else(|e| e.into_inner());
        let mut removed = 0;
        for _ in 0..PURGE_BATCH {
            match idx.first() {
                Some((t, _)) if *t <= now => {}
                _ => break,
            }
            let (t, key) = idx.pop_first().expect("checked above");
            if m.get(&key).is_some_and(|e| e.expires == Some(t)) {
                m.remove(&key);
                removed += 1;
            }
        }
        removed
    }

    /// Runs [`purge_expired`](Self::purge_expired) ten times a second, on
    /// the current runtime, for as long as the process lives.
    pub fn spawn_expiry(&self) {
        let store = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                store.purge_expired(Instant::now());
            }
        });
    }
}

/// A copy of `b` that owns its bytes: what the store keeps must not hold a
/// slice of a (possibly huge) read buffer alive.
fn owned(b: &Bytes) -> Bytes {
    Bytes::copy_from_slice(b)
}

fn live<'a>(
    map: &'a mut HashMap<Bytes, Entry>,
    key: &Bytes,
    now: Instant,
) -> Option<&'a mut Entry> {
    if map
        .get(key)
        .is_some_and(|e| e.expires.is_some_and(|t| t <= now))
    {
        map.remove(key);
    }
    map.get_mut(key)
}

fn wrong_args(cmd: &str) -> Msg {
    error(&format!(
        "ERR wrong number of arguments for '{}' command",
        cmd.to_ascii_lowercase()
    ))
}

const NOT_INT: &str = "ERR value is not an integer or out of range";

fn as_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Runs one command against the store. The second value asks the
/// connection to close after the reply (QUIT).
pub fn execute(store: &Store, args: &[Bytes]) -> (Msg, bool) {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let argc = args.len();
    let now = Instant::now();
    let reply = match name.as_str() {
        "PING" => match argc {
            1 => simple("PONG"),
            2 => bulk(args[1].clone()),
            _ => wrong_args(&name),
        },
        "ECHO" if argc == 2 => bulk(args[1].clone()),
        "QUIT" => return (simple("OK"), true),
        "GET" if argc == 2 => match live(&mut store.lock(), &args[1], now) {
            Some(e) => bulk(e.value.clone()),
            None => nil(),
        },
        "SET" if argc >= 3 => set(store, args, now),
        "DEL" if argc >= 2 => {
            let mut m = store.lock();
            let n = args[1..]
                .iter()
                .filter(|k| live(&mut m, k, now).is_some() && m.remove(*k).is_some())
                .count();
            int(n as i64)
        }
        "EXISTS" if argc >= 2 => {
            let mut m = store.lock();
            int(args[1..]
                .iter()
                .filter(|k| live(&mut m, k, now).is_some())
                .count() as i64)
        }
        "INCR" | "DECR" if argc == 2 => {
            let delta = if name == "INCR" { 1 } else { -1 };
            let mut m = store.lock();
            let current = match live(&mut m, &args[1], now) {
                Some(e) => match as_i64(&e.value) {
                    Some(v) => v,
                    None => return (error(NOT_INT), false),
                },
                None => 0,
            };
            match current.checked_add(delta) {
                Some(v) => {
                    let expires = m.get(&args[1]).and_then(|e| e.expires);
                    m.insert(
                        owned(&args[1]),
                        Entry {
                            value: Bytes::from(v.to_string()),
                            expires,
                        },
                    );
                    int(v)
                }
                None => error("ERR increment or decrement would overflow"),
            }
        }
        "MGET" if argc >= 2 => {
            let mut m = store.lock();
            array(
                args[1..]
                    .iter()
                    .map(|k| live(&mut m, k, now).map(|e| e.value.clone()))
                    .collect(),
            )
        }
        "MSET" if argc >= 3 && argc % 2 == 1 => {
            let mut m = store.lock();
            for kv in args[1..].chunks(2) {
                m.insert(
                    owned(&kv[0]),
                    Entry {
                        value: owned(&kv[1]),
                        expires: None,
                    },
                );
            }
            simple("OK")
        }
        "EXPIRE" if argc == 3 => match as_i64(&args[2]) {
            Some(secs) => {
                let mut m = store.lock();
                match live(&mut m, &args[1], now) {
                    Some(_) if secs <= 0 => {
                        m.remove(&args[1]);
                        int(1)
                    }
                    Some(e) => {
                        let t = now + Duration::from_secs(secs as u64);
                        e.expires = Some(t);
                        store.expire_at(t, &args[1]);
                        int(1)
                    }
                    None => int(0),
                }
            }
            None => error(NOT_INT),
        },
        "TTL" if argc == 2 => match live(&mut store.lock(), &args[1], now) {
            None => int(-2),
            Some(Entry { expires: None, .. }) => int(-1),
            Some(Entry {
                expires: Some(t), ..
            }) => {
                let left = t.saturating_duration_since(now);
                int(((left.as_millis() + 500) / 1000) as i64)
            }
        },
        "FLUSHALL" | "FLUSHDB" => {
            store.lock().clear();
            simple("OK")
        }
        "DBSIZE" if argc == 1 => int(store.lock().len() as i64),
        "SELECT" if argc == 2 => {
            if &args[1][..] == b"0" {
                simple("OK")
            } else {
                error("ERR DB index is out of range")
            }
        }
        "COMMAND" => array(Vec::new()),
        "CONFIG" if argc == 3 && args[1].eq_ignore_ascii_case(b"GET") => {
            let p = args[2].to_ascii_lowercase();
            match &p[..] {
                b"save" => array(vec![Some(Bytes::from_static(b"save")), Some(Bytes::new())]),
                b"appendonly" => array(vec![
                    Some(Bytes::from_static(b"appendonly")),
                    Some(Bytes::from_static(b"no")),
                ]),
                _ => array(Vec::new()),
            }
        }
        "ECHO" | "GET" | "SET" | "DEL" | "EXISTS" | "INCR" | "DECR" | "MGET" | "MSET"
        | "EXPIRE" | "TTL" | "DBSIZE" | "SELECT" | "CONFIG" => wrong_args(&name),
        _ => {
            let mut shown = String::new();
            for a in &args[1..] {
                shown.push('\'');
                shown.push_str(&String::from_utf8_lossy(&a[..a.len().min(128)]));
                shown.push_str("' ");
            }
            error(&format!(
                "ERR unknown command '{}', with args beginning with: {shown}",
                String::from_utf8_lossy(&args[0])
            ))
        }
    };
    (reply, false)
}

fn set(store: &Store, args: &[Bytes], now: Instant) -> Msg {
    let mut expires = None;
    let (mut nx, mut xx) = (false, false);
    let mut i = 3;
    while i < args.len() {
        let opt = args[i].to_ascii_uppercase();
        match &opt[..] {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"EX" | b"PX" if i + 1 < args.len() => {
                let Some(n) = as_i64(&args[i + 1]) else {
                    return error(NOT_INT);
                };
                if n <= 0 {
                    return error("ERR invalid expire time in 'set' command");
                }
                let d = if &opt[..] == b"EX" {
                    Duration::from_secs(n as u64)
                } else {
                    Duration::from_millis(n as u64)
                };
                expires = Some(now + d);
                i += 1;
            }
            _ => return error("ERR syntax error"),
        }
        i += 1;
    }
    if nx && xx {
        return error("ERR syntax error");
    }
    let mut m = store.lock();
    let exists = live(&mut m, &args[1], now).is_some();
    if (nx && exists) || (xx && !exists) {
        return nil();
    }
    let key = owned(&args[1]);
    if let Some(t) = expires {
        store.expire_at(t, &key);
    }
    m.insert(
        key,
        Entry {
            value: owned(&args[2]),
            expires,
        },
    );
    simple("OK")
}

/// Answers RESP commands from a shared [`Store`].
#[derive(Debug, Clone, Default)]
pub struct RespHandler {
    store: Store,
    closing: bool,
}

impl RespHandler {
    /// A handler over `store`.
    pub fn new(store: Store) -> RespHandler {
        RespHandler {
            store,
            closing: false,
        }
    }

    fn close_after(&mut self, ctx: &mut Context<'_>, reply: Msg) {
        self.closing = true;
        let (p, done) = Promise::new();
        ctx.write_and_flush_with(reply, Some(p));
        let ch = ctx.channel().clone();
        tokio::spawn(async move {
            let _ = done.await;
            let _ = ch.close().await;
        });
    }
}

impl Handler for RespHandler {
    fn interest(&self) -> Events {
        Events::READ | Events::READ_COMPLETE | Events::EXCEPTION
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        if self.closing {
            return;
        }
        match msg.downcast::<RespFrame>() {
            Ok(RespFrame::Command(args)) => {
                let (reply, quit) = execute(&self.store, &args);
                if quit {
                    self.close_after(ctx, reply);
                } else {
                    ctx.write(reply);
                }
            }
            Ok(RespFrame::ProtocolError(why)) => {
                self.close_after(ctx, error(&format!("ERR Protocol error: {why}")));
            }
            Err(other) => ctx.fire_read(other),
        }
    }

    fn channel_read_complete(&mut self, ctx: &mut Context<'_>) {
        ctx.flush();
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the connection");
        ctx.close();
    }
}

/// Encodes a command as a RESP array (for clients and tests).
pub fn encode_command(args: &[&[u8]]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        b.put_slice(format!("${}\r\n", a.len()).as_bytes());
        b.put_slice(a);
        b.put_slice(b"\r\n");
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_codec::DecoderHandler;
    use weft_core::EmbeddedChannel;

    #[test]
    fn a_request_fed_byte_by_byte_is_parsed_once_and_right() {
        let req = encode_command(&[b"MSET", b"alpha", b"1", b"beta", b"22"]);
        let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(RespDecoder::default()));
        for i in 0..req.len() {
            ch.write_inbound(req.slice(i..i + 1));
            if i + 1 < req.len() {
                assert!(
                    ch.read_inbound::<RespFrame>().is_none(),
                    "early at byte {i}"
                );
            }
        }
        match ch.read_inbound::<RespFrame>().unwrap() {
            RespFrame::Command(args) => {
                let want: [&[u8]; 5] = [b"MSET", b"alpha", b"1", b"beta", b"22"];
                assert_eq!(args.len(), 5);
                for (a, w) in args.iter().zip(want) {
                    assert_eq!(&a[..], w);
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_store_keeps_copies_and_purges_expired_keys() {
        let store = Store::default();
        let big = Bytes::from(vec![b'v'; 1 << 20]);
        let (key, value) = (big.slice(0..3), big.slice(10..11));
        let t0 = Instant::now();
        set(
            &store,
            &[
                Bytes::from_static(b"SET"),
                key,
                value,
                Bytes::from_static(b"PX"),
                Bytes::from_static(b"100"),
            ],
            t0,
        );
        {
            let m = store.lock();
            let (k, e) = m.iter().next().unwrap();
            let range = big.as_ptr_range();
            assert!(!range.contains(&k.as_ptr()), "the key is a copy");
            assert!(!range.contains(&e.value.as_ptr()), "the value is a copy");
        }
        assert_eq!(store.purge_expired(t0), 0);
        assert_eq!(store.purge_expired(t0 + Duration::from_millis(100)), 1);
        assert!(store.lock().is_empty());
    }

    fn decode_all(input: &[u8]) -> Vec<RespFrame> {
        let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(RespDecoder::default()));
        for b in input {
            ch.write_inbound(Bytes::copy_from_slice(&[*b]));
        }
        let mut out = Vec::new();
        while let Some(f) = ch.read_inbound::<RespFrame>() {
            out.push(f);
        }
        out
    }

    #[test]
    fn multibulk_and_inline_byte_by_byte() {
        let frames = decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n\r\n*1\r\n$4\r\nPING\r\n");
        assert_eq!(frames.len(), 3);
        match &frames[0] {
            RespFrame::Command(a) => assert_eq!(a, &[Bytes::from("GET"), Bytes::from("k")]),
            f => panic!("{f:?}"),
        }
    }

    #[test]
    fn arguments_are_slices_of_the_read() {
        let read = encode_command(&[b"SET", b"key", b"value"]);
        let mut ch = EmbeddedChannel::with_handler(DecoderHandler::new(RespDecoder::default()));
        ch.write_inbound(read.clone());
        let Some(RespFrame::Command(args)) = ch.read_inbound::<RespFrame>() else {
            panic!()
        };
        let range = read.as_ptr() as usize..read.as_ptr() as usize + read.len();
        assert!(args.iter().all(|a| range.contains(&(a.as_ptr() as usize))));
    }

    #[test]
    fn protocol_errors() {
        for bad in [
            &b"*1\r\n+x\r\n"[..],
            b"*abc\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nabcXY",
        ] {
            let frames = decode_all(bad);
            assert!(
                matches!(frames.last(), Some(RespFrame::ProtocolError(_))),
                "{bad:?}: {frames:?}"
            );
        }
    }

    #[test]
    fn commands() {
        let s = Store::default();
        let run = |args: &[&str]| {
            let args: Vec<Bytes> = args
                .iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect();
            let mut ch = EmbeddedChannel::new();
            ch.write_outbound(execute(&s, &args).0);
            String::from_utf8(ch.read_outbound_bytes().to_vec()).unwrap()
        };
        assert_eq!(run(&["PING"]), "+PONG\r\n");
        assert_eq!(run(&["SET", "a", "1"]), "+OK\r\n");
        assert_eq!(run(&["SET", "a", "2", "NX"]), "$-1\r\n");
        assert_eq!(run(&["INCR", "a"]), ":2\r\n");
        assert_eq!(run(&["DECR", "a"]), ":1\r\n");
        assert_eq!(run(&["GET", "a"]), "$1\r\n1\r\n");
        assert_eq!(run(&["MSET", "b", "x", "c", "y"]), "+OK\r\n");
        assert_eq!(
            run(&["MGET", "b", "nope", "c"]),
            "*3\r\n$1\r\nx\r\n$-1\r\n$1\r\ny\r\n"
        );
        assert_eq!(
            run(&["INCR", "b"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(run(&["TTL", "b"]), ":-1\r\n");
        assert_eq!(run(&["EXPIRE", "b", "100"]), ":1\r\n");
        assert_eq!(run(&["TTL", "b"]), ":100\r\n");
        assert_eq!(run(&["TTL", "zz"]), ":-2\r\n");
        assert_eq!(run(&["EXISTS", "a", "b", "zz"]), ":2\r\n");
        assert_eq!(run(&["DEL", "a", "zz"]), ":1\r\n");
        assert_eq!(
            run(&["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
        assert!(run(&["NOPE", "x"]).starts_with("-ERR unknown command 'NOPE'"));
        assert_eq!(run(&["FLUSHALL"]), "+OK\r\n");
        assert_eq!(run(&["EXISTS", "b"]), ":0\r\n");
    }
}
