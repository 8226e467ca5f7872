//! What compressing answers may cost the event loop: a process-wide cache
//! of compressed files and budgets of bytes compressed per second, per
//! connection and per process.
//!
//! Contract:
//! - a file body is keyed by what identifies its contents — device, inode,
//!   size, modification time, the range sent — and the coding; a cached
//!   one is sent again without compressing (and a `HEAD` learns its length
//!   from it). The cache holds at most its byte bound (default
//!   [`DEFAULT_FILE_CACHE_BYTES`]) of compressed bodies, the oldest evicted
//!   first; a file changed in place gets a new modification time, so a
//!   new key;
//! - compressing what is not cached spends the connection's budget and the
//!   process's (token buckets of bytes of input per second, default
//!   [`DEFAULT_CONNECTION_RATE`] and [`DEFAULT_PROCESS_RATE`], each with
//!   a burst of one second's worth, and always room for one body of up to
//!   [`ALWAYS_ALLOWED`]); past either, the body leaves uncompressed —
//!   always a valid answer — so one client pipelining requests for large
//!   compressible files costs its event loop a bounded share of each second
//!   instead of 27–42 ms per request (measured before: a bystander's
//!   12-byte GET waited 11.1 s);
//! - nothing here blocks: the locks are held for a lookup or a refill.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;

use super::coding::Coding;

/// Default bound on the compressed bodies the process keeps: 32 MiB.
pub const DEFAULT_FILE_CACHE_BYTES: usize = 32 << 20;
/// Default bytes of input one connection may compress per second (with a
/// burst of as many): 2 MiB.
pub const DEFAULT_CONNECTION_RATE: u64 = 2 << 20;
/// Default bytes of input the whole process may compress per second (with
/// a burst of as many): 16 MiB, about a quarter of a core with brotli's
/// level 4 here.
pub const DEFAULT_PROCESS_RATE: u64 = 16 << 20;
/// A body this small is always compressed: its cost is noise, and a
/// budget spent by large bodies should not turn small text answers to
/// identity.
pub(crate) const ALWAYS_ALLOWED: u64 = 16 * 1024;

/// What identifies a file body's compressed form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
    offset: u64,
    len: u64,
    coding: Coding,
}

impl FileKey {
    /// The key of `len` bytes at `offset` of `file`, compressed with
    /// `coding`; `None` if the file cannot be stat'ed.
    pub(crate) fn of(file: &File, offset: u64, len: u64, coding: Coding) -> Option<FileKey> {
        let m = file.metadata().ok()?;
        Some(FileKey {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime_ns: i128::from(m.mtime())
                .saturating_mul(1_000_000_000)
                .saturating_add(i128::from(m.mtime_nsec())),
            offset,
            len,
            coding,
        })
    }
}

struct Cache {
    bodies: HashMap<FileKey, Bytes>,
    /// Insertion order, for eviction.
    order: VecDeque<FileKey>,
    bytes: usize,
}

static CACHE: Mutex<Option<Cache>> = Mutex::new(None);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The cached compressed body for `key`, if any.
pub(crate) fn cached(key: &FileKey) -> Option<Bytes> {
    lock(&CACHE).as_ref()?.bodies.get(key).cloned()
}

/// Keeps `body` for `key`, evicting the oldest past `bound` bytes; a body
/// larger than the bound is not kept.
pub(crate) fn keep(key: FileKey, body: Bytes, bound: usize) {
    if body.len() > bound {
        return;
    }
    let mut guard = lock(&CACHE);
    let c = guard.get_or_insert_with(|| Cache {
        bodies: HashMap::new(),
        order: VecDeque::new(),
        bytes: 0,
    });
    if c.bodies.contains_key(&key) {
        return;
    }
    while c.bytes.saturating_add(body.len()) > bound {
        let Some(old) = c.order.pop_front() else {
            break;
        };
        if let Some(b) = c.bodies.remove(&old) {
            c.bytes = c.bytes.saturating_sub(b.len());
        }
    }
    c.bytes = c.bytes.saturating_add(body.len());
    c.order.push_back(key.clone());
    c.bodies.insert(key, body);
}

/// A token bucket of bytes per second (see `token_bucket.rs`).
pub(crate) type Bucket = crate::token_bucket::TokenBucket;

/// The process's bucket; its rate is set by the first compressor that
/// uses it with a rate of its own (see `HttpContentCompressor::budget`).
static PROCESS: Mutex<Bucket> = Mutex::new(Bucket::new(DEFAULT_PROCESS_RATE));

/// Sets the process-wide rate (bytes of input per second).
pub(crate) fn set_process_rate(rate: u64) {
    lock(&PROCESS).set_rate(rate);
}

/// Whether compressing `n` bytes now fits the connection's bucket `conn`
/// and the process's; if it does, both are charged.
pub(crate) fn spend(conn: &mut Bucket, n: u64) -> bool {
    if n <= ALWAYS_ALLOWED {
        return true;
    }
    let now = Instant::now();
    if !conn.has(n, now) {
        return false;
    }
    let mut p = lock(&PROCESS);
    if !p.has(n, now) {
        return false;
    }
    p.take(n);
    conn.take(n);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_past_its_rate_and_refills_with_time() {
        let mut b = Bucket::new(1000);
        let t0 = Instant::now();
        assert!(b.has(1000, t0));
        b.take(1000);
        assert!(!b.has(1, t0));
        assert!(b.has(500, t0 + std::time::Duration::from_millis(500)));
        // Never more than a second's worth.
        assert!(!b.has(1001, t0 + std::time::Duration::from_secs(60)));
    }

    #[test]
    fn the_cache_keeps_its_bound_and_evicts_the_oldest() {
        let f = File::open("/proc/self/exe").unwrap();
        let key = |off| FileKey::of(&f, off, 10, Coding::Gzip).unwrap();
        let bound = 100;
        for off in 0..20 {
            keep(key(10_000 + off), Bytes::from(vec![0u8; 30]), bound);
        }
        let kept = (0..20)
            .filter(|&o| cached(&key(10_000 + o)).is_some())
            .count();
        assert_eq!(kept, 3, "three 30-byte bodies fit 100 bytes");
        assert!(cached(&key(10_019)).is_some(), "the newest is kept");
        keep(key(20_000), Bytes::from(vec![0u8; 101]), bound);
        assert!(cached(&key(20_000)).is_none(), "larger than the bound");
    }
}
