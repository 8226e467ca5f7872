//! The outbound buffer: what a pipeline's head holds between `write` and the
//! socket.
//!
//! Contract:
//! - [`push`](OutboundBuffer::push) queues an entry as *unflushed*;
//!   [`flush`](OutboundBuffer::flush) moves every unflushed entry to the
//!   *flushed* part, which is what a transport drains, strictly in order;
//! - byte entries at the front of the flushed part are offered as one
//!   gathered write ([`gather`](OutboundBuffer::gather)); reporting how many
//!   bytes the kernel took ([`advance`](OutboundBuffer::advance)) completes
//!   the promises of the entries that are now fully written and leaves the
//!   rest where a partial write stopped, even inside a slice;
//! - the buffer counts the bytes it holds in memory
//!   ([`Msg::buffered_len`]); above the high watermark it turns unwritable,
//!   and writable again once below the low watermark;
//! - a [`FileRegion`](crate::FileRegion) weighs [`FILE_REGION_WEIGHT`]
//!   bytes, not its length: its bytes stay in the page cache, but it holds a
//!   descriptor, so queued files must count. Sixteen of them pass the
//!   default high watermark, which stops the transport reading from a peer
//!   that asks for files faster than it takes them;
//! - the buffer has a cap ([`DEFAULT_OUTBOUND_CAP`] unless set): a write
//!   that would take it past the cap is refused — its promise fails with an
//!   [`ErrorKind::OutboundFull`](crate::ErrorKind::OutboundFull) error that
//!   names the cap — and the buffer remembers the
//!   overflow, on which the pipeline closes the channel; a datagram channel
//!   drops such a write instead
//!   ([`Transport::set_overflow_drops`](crate::transport::Transport::set_overflow_drops)): its
//!   promise fails with [`ErrorKind::Dropped`](crate::ErrorKind::Dropped),
//!   the drop is counted, and the channel stays open;
//! - [`fail_all`](OutboundBuffer::fail_all) fails every pending promise (on
//!   close);
//! - the watermarks, the cap and the drop flag are kept once, in
//!   `OutboundLimits`, which the buffer shares with its channel's handle:
//!   writes from other tasks check the same values, with nothing to copy
//!   or keep in step (the writability hang of issue 14 came from such a
//!   copy).

use std::collections::VecDeque;
use std::fmt;
use std::io::IoSlice;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use bytes::Buf;

use crate::promise::complete;
use crate::{Error, Msg, Promise};

/// Default high write-buffer watermark: 64 KiB.
pub const DEFAULT_HIGH_WATERMARK: usize = 64 * 1024;
/// Default low write-buffer watermark: 32 KiB.
pub const DEFAULT_LOW_WATERMARK: usize = 32 * 1024;

/// Default cap on the bytes a channel's outbound buffer may hold: 1,024
/// times the default high watermark (64 MiB). Far above what a peer that
/// reads ever leaves queued, it bounds what one that does not can cost.
pub const DEFAULT_OUTBOUND_CAP: usize = 1024 * DEFAULT_HIGH_WATERMARK;

/// What one queued [`FileRegion`](crate::FileRegion) weighs in the outbound
/// buffer's accounting (see the module docs).
pub const FILE_REGION_WEIGHT: usize = 4096;

/// What a message counts toward the watermarks and the cap: the one
/// weight function, for the outbound buffer and for the writes queued on a
/// [`Channel`](crate::Channel) handle (`queued`) alike. Bytes weigh their
/// length; a file [`FILE_REGION_WEIGHT`] (it holds a descriptor, not its
/// bytes); a datagram its payload; any other user message nothing in the
/// buffer (the transport refuses it) — and while queued on a handle, where
/// it has no encoded length yet, at least
/// [`QUEUED_USER_MSG_WEIGHT`](crate::QUEUED_USER_MSG_WEIGHT), about what it
/// holds in memory there.
pub(crate) fn weight(msg: &Msg, queued: bool) -> usize {
    match msg {
        Msg::Bytes(b) => b.len(),
        Msg::Composite(c) => c.len(),
        Msg::File(_) => FILE_REGION_WEIGHT,
        Msg::User(_) => {
            let payload = msg.buffered_len();
            if queued {
                payload.max(crate::QUEUED_USER_MSG_WEIGHT)
            } else {
                payload
            }
        }
    }
}

/// The error of a write refused at the cap: the one cap check's text, for
/// the outbound buffer and for writes from other tasks alike.
pub(crate) fn over_cap_error(len: usize, held: usize, cap: usize) -> Error {
    Error::new(
        crate::ErrorKind::OutboundFull,
        format!(
            "a write of {len} bytes would take the channel's outbound bytes from {held} past \
             its cap of {cap}: the peer is not reading"
        ),
    )
}

/// High and low write-buffer watermarks.
///
/// ```
/// use weft_core::WriteBufferWaterMark;
///
/// let wm = WriteBufferWaterMark::new(8 * 1024, 32 * 1024).unwrap();
/// assert_eq!(wm.high(), 32 * 1024);
/// assert!(WriteBufferWaterMark::new(10, 5).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteBufferWaterMark {
    low: usize,
    high: usize,
}

impl WriteBufferWaterMark {
    /// Watermarks with `low <= high`.
    pub fn new(low: usize, high: usize) -> Result<WriteBufferWaterMark, Error> {
        if low > high {
            return Err(Error::invalid_argument(format!(
                "low watermark {low} is above the high watermark {high}"
            )));
        }
        Ok(WriteBufferWaterMark { low, high })
    }

    /// The low watermark.
    pub fn low(&self) -> usize {
        self.low
    }

    /// The high watermark.
    pub fn high(&self) -> usize {
        self.high
    }
}

impl Default for WriteBufferWaterMark {
    fn default() -> Self {
        WriteBufferWaterMark {
            low: DEFAULT_LOW_WATERMARK,
            high: DEFAULT_HIGH_WATERMARK,
        }
    }
}

/// One queued write.
#[derive(Debug)]
pub struct Entry {
    /// The message, possibly partly written already.
    pub msg: Msg,
    /// Completed when the message's last byte is written.
    pub promise: Option<Promise>,
}

/// A channel's outbound limits, held once: the outbound buffer reads them
/// for the pipeline's writes and the [`Channel`](crate::Channel) handle
/// (which shares them) for writes from other tasks. Only the channel's own
/// task changes them (the bootstrap's options, `Context::set_max_outbound_bytes`,
/// `Transport::set_*`), so relaxed loads and stores suffice: no other
/// memory is published through them.
#[derive(Debug)]
pub(crate) struct OutboundLimits {
    low: AtomicUsize,
    high: AtomicUsize,
    /// `usize::MAX`: no cap.
    cap: AtomicUsize,
    /// A write past the cap is dropped, not a reason to close (datagrams).
    drops: AtomicBool,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            low: AtomicUsize::new(DEFAULT_LOW_WATERMARK),
            high: AtomicUsize::new(DEFAULT_HIGH_WATERMARK),
            cap: AtomicUsize::new(DEFAULT_OUTBOUND_CAP),
            drops: AtomicBool::new(false),
        }
    }
}

impl OutboundLimits {
    #[inline]
    pub(crate) fn high(&self) -> usize {
        self.high.load(Relaxed)
    }

    #[inline]
    pub(crate) fn low(&self) -> usize {
        self.low.load(Relaxed)
    }

    /// The cap; `usize::MAX` when there is none.
    #[inline]
    pub(crate) fn cap(&self) -> usize {
        self.cap.load(Relaxed)
    }

    #[inline]
    pub(crate) fn drops(&self) -> bool {
        self.drops.load(Relaxed)
    }
}

/// The queue of writes between the pipeline's head and the socket.
pub struct OutboundBuffer {
    unflushed: VecDeque<Entry>,
    flushed: VecDeque<Entry>,
    buffered: usize,
    writable: bool,
    /// The watermarks, the cap and the drop flag (shared with the channel
    /// handle: the one place they are kept).
    limits: Arc<OutboundLimits>,
    /// Set when a write was refused for the cap; taken by the pipeline.
    overflow: Option<Error>,
    /// Writes dropped since the last [`take_dropped`](Self::take_dropped).
    dropped: u64,
}

/// The error of a write dropped at the cap of a channel that drops rather
/// than closes.
pub(crate) fn dropped_error(len: usize, held: usize, cap: usize) -> Error {
    Error::new(
        crate::ErrorKind::Dropped,
        format!(
            "a write of {len} bytes was dropped: the channel holds {held} outbound bytes and \
             its cap is {cap}"
        ),
    )
}

impl Default for OutboundBuffer {
    fn default() -> Self {
        OutboundBuffer::new(WriteBufferWaterMark::default())
    }
}

impl OutboundBuffer {
    /// An empty buffer with the given watermarks.
    pub fn new(watermark: WriteBufferWaterMark) -> OutboundBuffer {
        let ob = OutboundBuffer::with_limits(Arc::default());
        ob.set_watermark_values(watermark);
        ob
    }

    /// An empty buffer whose limits are `limits` (a channel's).
    pub(crate) fn with_limits(limits: Arc<OutboundLimits>) -> OutboundBuffer {
        OutboundBuffer {
            unflushed: VecDeque::new(),
            flushed: VecDeque::new(),
            buffered: 0,
            writable: true,
            limits,
            overflow: None,
            dropped: 0,
        }
    }

    fn set_watermark_values(&self, watermark: WriteBufferWaterMark) {
        self.limits.low.store(watermark.low, Relaxed);
        self.limits.high.store(watermark.high, Relaxed);
    }

    /// Whether a write past the cap is dropped (its promise fails with
    /// [`ErrorKind::Dropped`](crate::ErrorKind::Dropped), the channel stays
    /// open) instead of refused with an overflow that closes the channel.
    pub(crate) fn set_overflow_drops(&mut self, on: bool) {
        self.limits.drops.store(on, Relaxed);
    }

    /// How many writes were dropped at the cap since the last call.
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Sets the cap (`None`: no cap).
    pub(crate) fn set_cap(&mut self, cap: Option<usize>) {
        self.limits.cap.store(cap.unwrap_or(usize::MAX), Relaxed);
    }

    /// The cap, if any.
    pub fn cap(&self) -> Option<usize> {
        let cap = self.limits.cap();
        (cap != usize::MAX).then_some(cap)
    }

    /// The error of a write refused for the cap since the last call.
    pub fn take_overflow(&mut self) -> Option<Error> {
        self.overflow.take()
    }

    /// Turns the buffer unwritable until it drains below the low watermark:
    /// writes submitted from other tasks already passed the high watermark.
    pub(crate) fn force_unwritable(&mut self) {
        self.writable = false;
    }

    /// Writable again if what is held is below the low watermark (after a
    /// forced change whose drain may already have happened).
    pub(crate) fn recheck_low_watermark(&mut self) {
        if !self.writable && self.buffered < self.limits.low() {
            self.writable = true;
        }
    }

    /// The watermarks.
    pub fn watermark(&self) -> WriteBufferWaterMark {
        WriteBufferWaterMark {
            low: self.limits.low(),
            high: self.limits.high(),
        }
    }

    /// Changes the watermarks; writability is re-evaluated on the next change.
    pub(crate) fn set_watermark(&mut self, watermark: WriteBufferWaterMark) {
        self.set_watermark_values(watermark);
        self.update_writability();
    }

    /// Queues a write as unflushed, or refuses it past the cap (see the
    /// module docs).
    pub fn push(&mut self, msg: Msg, promise: Option<Promise>) {
        let w = weight(&msg, false);
        let cap = self.limits.cap();
        if self.buffered.saturating_add(w) > cap {
            if self.limits.drops() {
                self.dropped += 1;
                complete(promise, Err(dropped_error(w, self.buffered, cap)));
                return;
            }
            let err = over_cap_error(w, self.buffered, cap);
            complete(promise, Err(err.clone()));
            self.overflow.get_or_insert(err);
            return;
        }
        self.buffered += w;
        self.unflushed.push_back(Entry { msg, promise });
        self.update_writability();
    }

    /// Moves every unflushed entry to the flushed part.
    pub fn flush(&mut self) {
        if self.flushed.is_empty() {
            std::mem::swap(&mut self.flushed, &mut self.unflushed);
        } else {
            self.flushed.extend(self.unflushed.drain(..));
        }
    }

    /// Bytes held in memory by all entries, flushed or not.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Whether the buffer is below its high watermark (with hysteresis).
    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// Whether nothing at all is queued.
    pub fn is_empty(&self) -> bool {
        self.flushed.is_empty() && self.unflushed.is_empty()
    }

    /// Whether nothing flushed is waiting to be written.
    pub fn flushed_is_empty(&self) -> bool {
        self.flushed.is_empty()
    }

    /// Number of flushed entries.
    pub fn flushed_len(&self) -> usize {
        self.flushed.len()
    }

    /// Number of unflushed entries.
    pub fn unflushed_len(&self) -> usize {
        self.unflushed.len()
    }

    /// The first flushed entry.
    pub fn front(&self) -> Option<&Entry> {
        self.flushed.front()
    }

    /// The flushed entries, front first (a datagram transport plans a
    /// batch of sends from them).
    pub fn flushed_entries(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        self.flushed.iter()
    }

    /// The first flushed entry, to make progress on it (a `FileRegion`).
    pub fn front_mut(&mut self) -> Option<&mut Entry> {
        self.flushed.front_mut()
    }

    /// The first flushed entry's file region, when it is one (what a
    /// transport sends with `sendfile` or `splice`).
    pub fn front_region(&mut self) -> Option<&mut crate::FileRegion> {
        match self.flushed.front_mut().map(|e| &mut e.msg) {
            Some(Msg::File(r)) => Some(r),
            _ => None,
        }
    }

    /// Removes the first flushed entry without completing its promise.
    pub fn pop_front(&mut self) -> Option<Entry> {
        let e = self.flushed.pop_front()?;
        self.buffered -= weight(&e.msg, false);
        self.update_writability();
        Some(e)
    }

    /// Removes the first flushed entry and completes its promise with `result`.
    pub fn complete_front(&mut self, result: Result<(), Error>) {
        if let Some(e) = self.pop_front() {
            complete(e.promise, result);
        }
    }

    /// Fills `iov` with the byte slices of the consecutive byte entries at the
    /// front of the flushed part (a `Bytes` is one slice, a `CompositeBytes`
    /// one per chunk) and returns how many slices and bytes it offered.
    /// Empty byte entries are skipped; it stops at the first non-byte entry.
    pub fn gather<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> (usize, usize) {
        let mut n = 0;
        let mut bytes = 0;
        for e in &self.flushed {
            if n == iov.len() {
                break;
            }
            match &e.msg {
                Msg::Bytes(b) => {
                    if !b.is_empty() {
                        iov[n] = IoSlice::new(b);
                        n += 1;
                        bytes += b.len();
                    }
                }
                Msg::Composite(c) => {
                    let k = c.chunks_vectored(&mut iov[n..]);
                    for s in &iov[n..n + k] {
                        bytes += s.len();
                    }
                    n += k;
                }
                _ => break,
            }
        }
        (n, bytes)
    }

    /// How many slices [`gather`](Self::gather) would offer (counting up to
    /// `max`), and whether the run of byte entries is followed by a
    /// `FileRegion` (a header before a file body: a transport can then tell
    /// the kernel more data follows, `MSG_MORE`, so that the header and the
    /// start of the body share a segment). One pass over the queue.
    pub fn gather_count(&self, max: usize) -> (usize, bool) {
        let mut n = 0;
        for e in &self.flushed {
            match &e.msg {
                Msg::Bytes(b) => n += usize::from(!b.is_empty()),
                Msg::Composite(c) => n += c.chunk_count(),
                Msg::File(f) => return (n.min(max), !f.is_done()),
                Msg::User(_) => break,
            }
            if n >= max {
                return (max, false);
            }
        }
        (n, false)
    }

    /// The first non-empty byte slice at the front of the flushed part.
    pub fn first_slice(&self) -> Option<&[u8]> {
        for e in &self.flushed {
            match &e.msg {
                Msg::Bytes(b) if b.is_empty() => continue,
                Msg::Bytes(b) => return Some(b),
                Msg::Composite(c) => match c.chunks().next() {
                    Some(ch) => return Some(ch),
                    None => continue,
                },
                _ => return None,
            }
        }
        None
    }

    /// Records that the kernel took `n` bytes from the front byte entries:
    /// fully written entries are removed and their promises succeed; a partly
    /// written entry is advanced in place.
    ///
    /// # Panics
    ///
    /// If `n` is more than the front byte entries hold (a transport bug).
    pub fn advance(&mut self, mut n: usize) {
        self.buffered -= n;
        loop {
            let Some(front) = self.flushed.front_mut() else {
                assert!(n == 0, "advanced past the flushed byte entries");
                break;
            };
            let len = match &front.msg {
                Msg::Bytes(b) => b.len(),
                Msg::Composite(c) => c.len(),
                _ => {
                    assert!(n == 0, "advanced past the flushed byte entries");
                    break;
                }
            };
            if len <= n {
                n -= len;
                let e = self.flushed.pop_front().expect("front exists");
                complete(e.promise, Ok(()));
            } else {
                if n > 0 {
                    match &mut front.msg {
                        Msg::Bytes(b) => b.advance(n),
                        Msg::Composite(c) => c.advance(n),
                        _ => unreachable!("checked above"),
                    }
                }
                break;
            }
        }
        self.update_writability();
    }

    /// Fails every queued entry's promise with `err` and empties the buffer.
    pub fn fail_all(&mut self, err: &Error) {
        for e in self.flushed.drain(..).chain(self.unflushed.drain(..)) {
            complete(e.promise, Err(err.clone()));
        }
        self.buffered = 0;
        self.update_writability();
    }

    /// Fails the flushed entries only (the unflushed stay queued).
    pub fn fail_flushed(&mut self, err: &Error) {
        for e in self.flushed.drain(..) {
            self.buffered -= weight(&e.msg, false);
            complete(e.promise, Err(err.clone()));
        }
        self.update_writability();
    }

    fn update_writability(&mut self) {
        if self.writable && self.buffered > self.limits.high() {
            self.writable = false;
        } else if !self.writable && self.buffered < self.limits.low() {
            self.writable = true;
        }
    }
}

impl fmt::Debug for OutboundBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboundBuffer")
            .field("flushed", &self.flushed.len())
            .field("unflushed", &self.unflushed.len())
            .field("buffered", &self.buffered)
            .field("writable", &self.writable)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CompositeBytes;
    use bytes::Bytes;

    fn gathered(ob: &OutboundBuffer, max: usize) -> (usize, usize, Vec<u8>) {
        let mut iov = vec![IoSlice::new(&[]); max];
        let (n, bytes) = ob.gather(&mut iov);
        let first = iov.first().map(|s| s.to_vec()).unwrap_or_default();
        (n, bytes, if n > 0 { first } else { Vec::new() })
    }

    #[test]
    fn gather_and_partial_advance() {
        let mut ob = OutboundBuffer::default();
        let (p1, mut f1) = Promise::new();
        let (p2, mut f2) = Promise::new();
        ob.push(Msg::from(Bytes::from_static(b"abc")), Some(p1));
        let c: CompositeBytes = [Bytes::from_static(b"de"), Bytes::from_static(b"fgh")]
            .into_iter()
            .collect();
        ob.push(Msg::from(c), Some(p2));
        assert_eq!(gathered(&ob, 8).0, 0, "nothing flushed yet");
        ob.flush();
        assert_eq!(gathered(&ob, 8), (3, 8, b"abc".to_vec()));
        ob.advance(4); // abc + d
        assert!(f1.try_result().unwrap().is_ok());
        assert!(f2.try_result().is_none());
        assert_eq!(gathered(&ob, 8), (2, 4, b"e".to_vec()));
        ob.advance(4);
        assert!(f2.try_result().unwrap().is_ok());
        assert!(ob.is_empty());
        assert_eq!(ob.buffered_bytes(), 0);
    }

    #[test]
    fn gather_respects_slice_limit() {
        let mut ob = OutboundBuffer::default();
        let c: CompositeBytes = (0..2000).map(|_| Bytes::from_static(b"x")).collect();
        ob.push(Msg::from(c), None);
        ob.flush();
        assert_eq!(gathered(&ob, 1024).0, 1024);
        ob.advance(1024);
        assert_eq!(gathered(&ob, 1024).0, 976);
    }

    #[test]
    fn watermarks_have_hysteresis() {
        let mut ob = OutboundBuffer::new(WriteBufferWaterMark::new(10, 20).unwrap());
        ob.push(Msg::from(vec![0u8; 15]), None);
        assert!(ob.is_writable());
        ob.push(Msg::from(vec![0u8; 6]), None);
        assert!(!ob.is_writable());
        ob.flush();
        ob.advance(11); // 10 left: not below low yet
        assert!(!ob.is_writable());
        ob.advance(1);
        assert!(ob.is_writable());
    }

    #[test]
    fn the_cap_refuses_a_write_and_records_the_overflow() {
        let mut ob = OutboundBuffer::default();
        ob.set_cap(Some(100));
        ob.push(Msg::from(vec![0u8; 60]), None);
        let (p, mut f) = Promise::new();
        ob.push(Msg::from(vec![0u8; 60]), Some(p));
        let err = f.try_result().unwrap().unwrap_err();
        assert!(
            err.is_outbound_full() && err.to_string().contains("cap of 100"),
            "{err}"
        );
        assert_eq!(ob.buffered_bytes(), 60, "the refused write is not queued");
        assert!(ob.take_overflow().is_some());
        assert!(ob.take_overflow().is_none());
        ob.set_cap(None);
        ob.push(Msg::from(vec![0u8; 1000]), None);
        assert_eq!(ob.buffered_bytes(), 1060);
    }

    #[test]
    fn queued_files_weigh_and_sixteen_pass_the_high_watermark() {
        let path = std::env::temp_dir().join(format!("weft-ob-weight-{}", std::process::id()));
        std::fs::write(&path, b"0123456789").unwrap();
        let mut ob = OutboundBuffer::default();
        for _ in 0..16 {
            ob.push(Msg::from(crate::FileRegion::open(&path).unwrap()), None);
            assert!(ob.is_writable(), "a few files do not make it unwritable");
        }
        ob.push(Msg::from(crate::FileRegion::open(&path).unwrap()), None);
        assert!(!ob.is_writable());
        assert_eq!(ob.buffered_bytes(), 17 * FILE_REGION_WEIGHT);
        ob.flush();
        for _ in 0..17 {
            ob.complete_front(Ok(()));
        }
        assert_eq!(ob.buffered_bytes(), 0);
        assert!(ob.is_writable());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn fail_all_fails_every_promise() {
        let mut ob = OutboundBuffer::default();
        let (p1, mut f1) = Promise::new();
        let (p2, mut f2) = Promise::new();
        ob.push(Msg::from("a"), Some(p1));
        ob.flush();
        ob.push(Msg::from("b"), Some(p2));
        ob.fail_all(&Error::closed());
        assert!(f1.try_result().unwrap().unwrap_err().is_closed());
        assert!(f2.try_result().unwrap().unwrap_err().is_closed());
        assert!(ob.is_empty());
    }
}
