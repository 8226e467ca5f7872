//! [`Store`]: the in-memory key-value store, the commands that act on it,
//! and the RESP encoding of their replies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use weft_core::{CompositeBytes, Msg};

// ---------------------------------------------------------------- replies

fn simple(s: &str) -> Msg {
    Msg::Bytes(Bytes::from(format!("+{s}\r\n")))
}

pub(super) fn error(s: &str) -> Msg {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
