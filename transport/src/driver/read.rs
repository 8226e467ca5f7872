//! The read half of a connection: bursts of reads into an adaptively sized
//! buffer.
//!
//! Contract:
//! - a burst reads up to `max_reads_per_wakeup` times; each read is handed
//!   on as one `Bytes` (no copy), split off the buffer or, when it is large
//!   (4 KiB or more) and filled half the room offered, the whole buffer
//!   (see `goes_whole`), and the burst ends with `channel_read_complete` if
//!   anything was read;
//! - the buffer comes from the per-thread pool and what is left of it goes
//!   back when the burst ends, so an idle connection holds no read buffer;
//! - the burst stops early when the socket is drained (a short read), a
//!   handler closed the channel, auto-read is off, or (with
//!   `pause_read_when_unwritable`) the handlers' writes made the channel
//!   unwritable;
//! - what it read, and the end of input, it tells the connection's
//!   [`Lifecycle`] (which drops the bytes while lingering, fires
//!   `InputShutdown`, and decides whether the channel then closes).
//!
//! The size of each read follows [`ReadStrategy`].

use std::io;

use weft_core::{Error, Pipeline};

use crate::lifecycle::{Fate, Lifecycle};
use crate::options::ChannelOptions;
use crate::stream::Stream;

/// How much to offer the next read (hyper's and Netty's adaptive sizing):
/// double after a read that filled the buffer, halve after two reads in a
/// row that used less than half of it, always within `[min, max]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadStrategy {
    min: usize,
    max: usize,
    next: usize,
    short_reads: u8,
}

impl ReadStrategy {
    pub(crate) fn new(min: usize, initial: usize, max: usize) -> ReadStrategy {
        ReadStrategy {
            min,
            max,
            next: initial.clamp(min, max),
            short_reads: 0,
        }
    }

    /// Bytes to offer the next read.
    pub(crate) fn next_size(&self) -> usize {
        self.next
    }

    /// Smallest spare room worth a read without growing the buffer.
    pub(crate) fn min_spare(&self) -> usize {
        self.min.max(self.next / 4)
    }

    /// Adapts to a read of `n` bytes out of `offered`.
    pub(crate) fn record(&mut self, n: usize, offered: usize) {
        if n == offered {
            self.next = (self.next * 2).min(self.max);
            self.short_reads = 0;
        } else if n < self.next / 2 {
            self.short_reads += 1;
            if self.short_reads >= 2 {
                self.next = (self.next / 2).max(self.min);
                self.short_reads = 0;
            }
        } else {
            self.short_reads = 0;
        }
    }
}

/// The read half's state.
#[derive(Debug)]
pub(crate) struct Reader {
    pub(crate) strategy: ReadStrategy,
}

impl Reader {
    pub(crate) fn new(opts: &ChannelOptions) -> Reader {
        Reader {
            strategy: ReadStrategy::new(opts.read_min, opts.read_initial, opts.read_max),
        }
    }

    /// Reads a burst from `stream` into the pipeline, telling `lc` what it
    /// read.
    pub(crate) fn read_burst<S: Stream>(
        &mut self,
        stream: &S,
        pipeline: &mut Pipeline,
        opts: &ChannelOptions,
        lc: &mut Lifecycle,
    ) -> Result<(), Error> {
        let mut buf = crate::recv_pool::take(self.strategy.next_size());
        let mut reads = 0;
        let mut got_any = false;
        let mut ended = false;
        let r = loop {
            if reads >= opts.max_reads_per_wakeup {
                break Ok(());
            }
            if buf.capacity() - buf.len() < self.strategy.min_spare() {
                buf.reserve(self.strategy.next_size());
            }
            let offered = buf.capacity() - buf.len();
            match stream.try_read_drain(&mut buf) {
                Ok(0) => {
                    ended = true;
                    break Ok(());
                }
                Ok(n) => {
                    reads += 1;
                    self.strategy.record(n, offered);
                    if lc.read(n) == Fate::Drop {
                        buf.clear(); // lingering: read only to be dropped
                        if n < offered || lc.read_spent() {
                            break Ok(());
                        }
                        continue;
                    }
                    got_any = true;
                    let mut t = pipeline.transport();
                    let data = if goes_whole(n, offered) {
                        std::mem::take(&mut buf).freeze()
                    } else {
                        buf.split().freeze()
                    };
                    t.fire_read(data);
                    if t.close_requested() || t.is_closed() || n < offered || lc.read_spent() {
                        break Ok(()); // closing, or drained: the next read would block
                    }
                    let ch = t.channel();
                    if !ch.is_auto_read() || (opts.pause_read_when_unwritable && !ch.is_writable())
                    {
                        break Ok(()); // asked to stop, or the answers must drain first
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => break Err(Error::io(e)),
            }
        };
        crate::recv_pool::give(buf);
        r?;
        if got_any {
            lc.fired();
            pipeline.transport().fire_read_complete();
        }
        if ended {
            lc.input_ended(pipeline);
        }
        Ok(())
    }
}

/// Reads of at least this many bytes that fill half the room offered go on
/// as the whole buffer (see [`goes_whole`]).
const WHOLE_MIN: usize = 4096;

/// Whether the `n` bytes just read into the buffer, which offered
/// `offered` bytes of room, go on as the whole buffer rather than split
/// off it. A large read ([`WHOLE_MIN`] bytes or more) that filled at least
/// half of that room does: the buffer is then uniquely owned when nothing else
/// shares it (what the next read would have had left is too little to
/// keep), so a handler can take it over in place, as the WebSocket decoder
/// unmasks a large frame's payload where it lies (`Bytes::try_into_mut`)
/// instead of copying it out of a shared buffer. Any other read is split
/// off, and the rest of the buffer stays for the next read and, after the
/// burst, for the pool: small reads, the common case, allocate nothing.
/// (Every read lands in an empty buffer: each one is handed on whole or
/// split off before the next, so the buffer holds just these `n` bytes.)
fn goes_whole(n: usize, offered: usize) -> bool {
    n >= WHOLE_MIN && n >= offered / 2
}

#[cfg(test)]
mod tests {
    use super::ReadStrategy;

    #[test]
    fn starts_within_its_bounds() {
        assert_eq!(ReadStrategy::new(64, 2048, 65536).next_size(), 2048);
        assert_eq!(ReadStrategy::new(64, 10, 65536).next_size(), 64);
        assert_eq!(ReadStrategy::new(64, 1 << 20, 65536).next_size(), 65536);
    }

    #[test]
    fn grows_on_full_reads_up_to_the_max() {
        let mut s = ReadStrategy::new(64, 2048, 16384);
        let mut seen = vec![];
        for _ in 0..5 {
            let n = s.next_size();
            s.record(n, n);
            seen.push(s.next_size());
        }
        assert_eq!(seen, [4096, 8192, 16384, 16384, 16384]);
    }

    #[test]
    fn shrinks_after_two_short_reads_in_a_row_down_to_the_min() {
        let mut s = ReadStrategy::new(512, 2048, 65536);
        s.record(10, 2048);
        assert_eq!(s.next_size(), 2048, "one short read is not a trend");
        s.record(10, 2048);
        assert_eq!(s.next_size(), 1024);
        for _ in 0..10 {
            s.record(1, 1024);
        }
        assert_eq!(s.next_size(), 512);
    }

    #[test]
    fn a_read_of_half_or_more_resets_the_short_count() {
        let mut s = ReadStrategy::new(64, 2048, 65536);
        s.record(10, 2048);
        s.record(1500, 2048);
        s.record(10, 2048);
        assert_eq!(s.next_size(), 2048, "the two short reads were not in a row");
    }

    #[test]
    fn spare_room_worth_a_read_is_a_quarter_of_the_next_size() {
        let s = ReadStrategy::new(64, 2048, 65536);
        assert_eq!(s.min_spare(), 512);
        assert_eq!(ReadStrategy::new(64, 128, 256).min_spare(), 64);
    }
}
