//! [`Store`]: the in-memory key-value store, the commands that act on it,
//! and the RESP encoding of their replies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use weft_core::{CompositeBytes, Msg};

// ---------------------------------------------------------------- replies

/// Values up to this size are copied into the reply buffer; larger ones
/// are referenced (a copy of a few bytes costs less than a reference).
const COPY_MAX: usize = 512;

/// Where a connection's replies are encoded, in order: small replies and
/// small values are copied into one buffer, a larger value is referenced,
/// so a pipelined batch of replies leaves as one message.
#[derive(Debug, Clone, Default)]
pub struct Replies {
    small: BytesMut,
    /// Earlier pieces, when a value went by reference.
    parts: Vec<Bytes>,
}

impl Replies {
    /// Bytes encoded and not yet taken.
    pub fn len(&self) -> usize {
        self.small.len() + self.parts.iter().map(Bytes::len).sum::<usize>()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.small.is_empty() && self.parts.is_empty()
    }

    /// The encoded replies as one message, if any.
    pub fn take(&mut self) -> Option<Msg> {
        let small = std::mem::take(&mut self.small).freeze();
        if self.parts.is_empty() {
            return (!small.is_empty()).then_some(Msg::Bytes(small));
        }
        let mut c = CompositeBytes::with_capacity(self.parts.len() + 1);
        for p in self.parts.drain(..) {
            c.push(p);
        }
        if !small.is_empty() {
            c.push(small);
        }
        Some(Msg::Composite(c))
    }

    fn put(&mut self, b: &[u8]) {
        if self.small.capacity() - self.small.len() < b.len() {
            self.small.reserve(b.len().max(4096));
        }
        self.small.put_slice(b);
    }

    /// `+s`.
    fn simple(&mut self, s: &str) {
        self.put(b"+");
        self.put(s.as_bytes());
        self.put(b"\r\n");
    }

    /// `-s`.
    pub(super) fn error(&mut self, s: &str) {
        self.put(b"-");
        self.put(s.as_bytes());
        self.put(b"\r\n");
    }

    /// `:n`.
    fn int(&mut self, n: i64) {
        self.put(b":");
        self.put(itoa::Buffer::new().format(n).as_bytes());
        self.put(b"\r\n");
    }

    /// The null bulk string.
    fn nil(&mut self) {
        self.put(b"$-1\r\n");
    }

    /// `$len` and the value, copied when small, referenced when not.
    fn bulk(&mut self, v: &Bytes) {
        self.put(b"$");
        self.put(itoa::Buffer::new().format(v.len()).as_bytes());
        self.put(b"\r\n");
        if v.len() <= COPY_MAX {
            self.put(v);
        } else {
            if !self.small.is_empty() {
                self.parts.push(self.small.split().freeze());
            }
            self.parts.push(v.clone());
        }
        self.put(b"\r\n");
    }

    /// An array of bulk strings (`None`: a null one).
    fn array<'a>(&mut self, items: impl ExactSizeIterator<Item = Option<&'a Bytes>>) {
        self.put(b"*");
        self.put(itoa::Buffer::new().format(items.len()).as_bytes());
        self.put(b"\r\n");
        for it in items {
            match it {
                Some(v) => self.bulk(v),
                None => self.nil(),
            }
        }
    }
}

/// The clock, read once per command and only when a time is needed.
struct Now(Option<Instant>);

impl Now {
    fn get(&mut self) -> Instant {
        *self.0.get_or_insert_with(Instant::now)
    }
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
    now: &mut Now,
) -> Option<&'a mut Entry> {
    if map
        .get(key)
        .is_some_and(|e| e.expires.is_some_and(|t| t <= now.get()))
    {
        map.remove(key);
    }
    map.get_mut(key)
}

fn wrong_args(out: &mut Replies, cmd: &str) {
    out.error(&format!(
        "ERR wrong number of arguments for '{}' command",
        cmd.to_ascii_lowercase()
    ));
}

const NOT_INT: &str = "ERR value is not an integer or out of range";

fn as_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// Runs one command against the store. The second value asks the
/// connection to close after the reply (QUIT).
pub fn execute(store: &Store, args: &[Bytes], out: &mut Replies) -> bool {
    let mut upper = [0u8; 16];
    let name: &str = if args[0].len() <= upper.len() {
        let n = &mut upper[..args[0].len()];
        n.copy_from_slice(&args[0]);
        n.make_ascii_uppercase();
        std::str::from_utf8(n).unwrap_or("")
    } else {
        ""
    };
    let argc = args.len();
    let mut now = Now(None);
    let now = &mut now;
    match name {
        "PING" => match argc {
            1 => out.simple("PONG"),
            2 => out.bulk(&args[1]),
            _ => wrong_args(out, name),
        },
        "ECHO" if argc == 2 => out.bulk(&args[1]),
        "QUIT" => {
            out.simple("OK");
            return true;
        }
        "GET" if argc == 2 => match live(&mut store.lock(), &args[1], now) {
            Some(e) => out.bulk(&e.value),
            None => out.nil(),
        },
        "SET" if argc >= 3 => set(store, args, now, out),
        "DEL" if argc >= 2 => {
            let mut m = store.lock();
            let n = args[1..]
                .iter()
                .filter(|k| live(&mut m, k, now).is_some() && m.remove(*k).is_some())
                .count();
            out.int(n as i64)
        }
        "EXISTS" if argc >= 2 => {
            let mut m = store.lock();
            out.int(
                args[1..]
                    .iter()
                    .filter(|k| live(&mut m, k, now).is_some())
                    .count() as i64,
            )
        }
        "INCR" | "DECR" if argc == 2 => {
            let delta = if name == "INCR" { 1 } else { -1 };
            let mut m = store.lock();
            let current = match live(&mut m, &args[1], now) {
                Some(e) => match as_i64(&e.value) {
                    Some(v) => v,
                    None => {
                        out.error(NOT_INT);
                        return false;
                    }
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
                    out.int(v)
                }
                None => out.error("ERR increment or decrement would overflow"),
            }
        }
        "MGET" if argc >= 2 => {
            let mut m = store.lock();
            let values: Vec<Option<Bytes>> = args[1..]
                .iter()
                .map(|k| live(&mut m, k, now).map(|e| e.value.clone()))
                .collect();
            drop(m);
            out.array(values.iter().map(Option::as_ref))
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
            out.simple("OK")
        }
        "EXPIRE" if argc == 3 => match as_i64(&args[2]) {
            Some(secs) => {
                let mut m = store.lock();
                match live(&mut m, &args[1], now) {
                    Some(_) if secs <= 0 => {
                        m.remove(&args[1]);
                        out.int(1)
                    }
                    Some(e) => {
                        let t = now.get() + Duration::from_secs(secs as u64);
                        e.expires = Some(t);
                        store.expire_at(t, &args[1]);
                        out.int(1)
                    }
                    None => out.int(0),
                }
            }
            None => out.error(NOT_INT),
        },
        "TTL" if argc == 2 => match live(&mut store.lock(), &args[1], now) {
            None => out.int(-2),
            Some(Entry { expires: None, .. }) => out.int(-1),
            Some(Entry {
                expires: Some(t), ..
            }) => {
                let left = t.saturating_duration_since(now.get());
                out.int(((left.as_millis() + 500) / 1000) as i64)
            }
        },
        "FLUSHALL" | "FLUSHDB" => {
            store.lock().clear();
            out.simple("OK")
        }
        "DBSIZE" if argc == 1 => out.int(store.lock().len() as i64),
        "SELECT" if argc == 2 => {
            if &args[1][..] == b"0" {
                out.simple("OK")
            } else {
                out.error("ERR DB index is out of range")
            }
        }
        "COMMAND" => out.array(std::iter::empty()),
        "CONFIG" if argc == 3 && args[1].eq_ignore_ascii_case(b"GET") => {
            let p = args[2].to_ascii_lowercase();
            let (save, appendonly) = (
                Bytes::from_static(b"save"),
                Bytes::from_static(b"appendonly"),
            );
            let (empty, no) = (Bytes::new(), Bytes::from_static(b"no"));
            match &p[..] {
                b"save" => out.array([Some(&save), Some(&empty)].into_iter()),
                b"appendonly" => out.array([Some(&appendonly), Some(&no)].into_iter()),
                _ => out.array(std::iter::empty()),
            }
        }
        "ECHO" | "GET" | "SET" | "DEL" | "EXISTS" | "INCR" | "DECR" | "MGET" | "MSET"
        | "EXPIRE" | "TTL" | "DBSIZE" | "SELECT" | "CONFIG" => wrong_args(out, name),
        _ => unknown(out, args),
    }
    false
}

fn unknown(out: &mut Replies, args: &[Bytes]) {
    let mut shown = String::new();
    for a in &args[1..] {
        shown.push('\'');
        shown.push_str(&String::from_utf8_lossy(&a[..a.len().min(128)]));
        shown.push_str("' ");
    }
    out.error(&format!(
        "ERR unknown command '{}', with args beginning with: {shown}",
        String::from_utf8_lossy(&args[0])
    ));
}

fn set(store: &Store, args: &[Bytes], now: &mut Now, out: &mut Replies) {
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
                    return out.error(NOT_INT);
                };
                if n <= 0 {
                    return out.error("ERR invalid expire time in 'set' command");
                }
                let d = if &opt[..] == b"EX" {
                    Duration::from_secs(n as u64)
                } else {
                    Duration::from_millis(n as u64)
                };
                expires = Some(now.get() + d);
                i += 1;
            }
            _ => return out.error("ERR syntax error"),
        }
        i += 1;
    }
    if nx && xx {
        return out.error("ERR syntax error");
    }
    let mut m = store.lock();
    let exists = live(&mut m, &args[1], now).is_some();
    if (nx && exists) || (xx && !exists) {
        return out.nil();
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
    out.simple("OK")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_keeps_copies_and_purges_expired_keys() {
        let store = Store::default();
        let big = Bytes::from(vec![b'v'; 1 << 20]);
        let (key, value) = (big.slice(0..3), big.slice(10..11));
        let t0 = Instant::now();
        let mut out = Replies::default();
        set(
            &store,
            &[
                Bytes::from_static(b"SET"),
                key,
                value,
                Bytes::from_static(b"PX"),
                Bytes::from_static(b"100"),
            ],
            &mut Now(Some(t0)),
            &mut out,
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
}
