//! [`ChannelOptions`]: per-channel options, given to
//! [`ServerBootstrap::child_options`](crate::ServerBootstrap::child_options)
//! (for accepted children) and [`Bootstrap::options`](crate::Bootstrap::options).
//!
//! Contract: every option has a finite, documented default; the options are
//! checked together by [`ChannelOptions::validate`], which the bootstraps
//! call when they bind or connect, so a bad combination is an
//! [`ErrorKind::InvalidArgument`](weft_core::ErrorKind::InvalidArgument)
//! error, never a misbehaving channel.

use weft_core::{Error, WriteBufferWaterMark};

/// Options applied to each connection: a builder.
///
/// ```
/// use weft_core::WriteBufferWaterMark;
/// use weft_transport::ChannelOptions;
///
/// let opts = ChannelOptions::new()
///     .write_buffer_watermark(WriteBufferWaterMark::new(8 * 1024, 32 * 1024).unwrap())
///     .max_outbound_bytes(1 << 20)
///     .allow_half_closure(true);
/// assert!(opts.validate().is_ok());
/// // A cap below the high watermark can never be right:
/// assert!(opts.max_outbound_bytes(1024).validate().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct ChannelOptions {
    pub(crate) tcp_nodelay: bool,
    pub(crate) keepalive: bool,
    pub(crate) recv_buffer_size: Option<usize>,
    pub(crate) send_buffer_size: Option<usize>,
    pub(crate) watermark: WriteBufferWaterMark,
    pub(crate) auto_read: bool,
    pub(crate) allow_half_closure: bool,
    pub(crate) max_reads_per_wakeup: usize,
    pub(crate) read_min: usize,
    pub(crate) read_initial: usize,
    pub(crate) read_max: usize,
    pub(crate) write_spin: usize,
    pub(crate) max_outbound_bytes: Option<usize>,
    pub(crate) pause_read_when_unwritable: bool,
    pub(crate) sendfile: bool,
    /// `None`: as the environment says (`WEFT_TRANSPORT`).
    pub(crate) io_uring: Option<bool>,
    pub(crate) linger_time: std::time::Duration,
    pub(crate) linger_bytes: u64,
}

/// Which transport drives a channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Readiness,
    /// `explicit`: the options asked (not only the environment).
    Uring {
        #[cfg_attr(not(feature = "uring"), allow(dead_code))]
        explicit: bool,
    },
}

/// Whether `WEFT_TRANSPORT=io_uring` is set (read once).
fn env_wants_uring() -> bool {
    static WANTS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *WANTS.get_or_init(|| std::env::var("WEFT_TRANSPORT").is_ok_and(|v| v == "io_uring"))
}

impl Default for ChannelOptions {
    fn default() -> Self {
        ChannelOptions {
            tcp_nodelay: true,
            keepalive: false,
            recv_buffer_size: None,
            send_buffer_size: None,
            watermark: WriteBufferWaterMark::default(),
            auto_read: true,
            allow_half_closure: false,
            max_reads_per_wakeup: 16,
            read_min: 64,
            read_initial: 2048,
            read_max: 64 * 1024,
            write_spin: 16,
            max_outbound_bytes: Some(weft_core::transport::DEFAULT_OUTBOUND_CAP),
            pause_read_when_unwritable: true,
            sendfile: true,
            io_uring: None,
            linger_time: crate::linger::DEFAULT_LINGER_TIME,
            linger_bytes: crate::linger::DEFAULT_LINGER_BYTES,
        }
    }
}

impl ChannelOptions {
    /// The defaults (the same as [`Default`]).
    pub fn new() -> ChannelOptions {
        ChannelOptions::default()
    }

    /// Checks the options together: read sizes in order, a cap at or above
    /// the high watermark, counts of at least one. The bootstraps call it
    /// before they bind or connect.
    pub fn validate(&self) -> Result<(), Error> {
        if !(self.read_min >= 1
            && self.read_min <= self.read_initial
            && self.read_initial <= self.read_max)
        {
            return Err(Error::invalid_argument(format!(
                "read buffer sizes must satisfy 1 <= min <= initial <= max (got {}, {}, {})",
                self.read_min, self.read_initial, self.read_max
            )));
        }
        if let Some(cap) = self.max_outbound_bytes {
            if cap < self.watermark.high() {
                return Err(Error::invalid_argument(format!(
                    "the outbound cap ({cap} bytes) is below the high watermark ({})",
                    self.watermark.high()
                )));
            }
        }
        if self.io_uring == Some(true) && !cfg!(feature = "uring") {
            return Err(Error::invalid_argument(
                "io_uring was asked for, but weft-transport was built without its `uring` feature",
            ));
        }
        if self.max_reads_per_wakeup == 0 || self.write_spin == 0 {
            return Err(Error::invalid_argument(
                "max reads per wake-up and write spin count must be at least 1",
            ));
        }
        Ok(())
    }

    /// TCP_NODELAY (default: on).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp_nodelay = on;
        self
    }

    /// SO_KEEPALIVE (default: off).
    pub fn keepalive(mut self, on: bool) -> Self {
        self.keepalive = on;
        self
    }

    /// SO_RCVBUF (default: the kernel's).
    pub fn recv_buffer_size(mut self, bytes: usize) -> Self {
        self.recv_buffer_size = Some(bytes);
        self
    }

    /// SO_SNDBUF (default: the kernel's).
    pub fn send_buffer_size(mut self, bytes: usize) -> Self {
        self.send_buffer_size = Some(bytes);
        self
    }

    /// Write-buffer watermarks (default 32 KiB / 64 KiB).
    pub fn write_buffer_watermark(mut self, wm: weft_core::WriteBufferWaterMark) -> Self {
        self.watermark = wm;
        self
    }

    /// How long, and for how many bytes, a channel without half-closure
    /// goes on reading after its output was shut down (the HTTP codec does
    /// so after a connection's last answer) before it closes (default
    /// 5 s and 1 MiB, checked between reads, so the last read may pass
    /// the bytes; RFC 9112 §9.6's lingering close). The peer's end of
    /// input closes it earlier. Reading on keeps the peer's late requests
    /// from turning the close into a reset that destroys the answer; the
    /// bounds keep a peer that never stops sending from holding the
    /// channel. With half-closure on, the application owns the input and
    /// this does not apply.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft_transport::ChannelOptions;
    ///
    /// let opts = ChannelOptions::new().linger(Duration::from_secs(2), 256 * 1024);
    /// assert!(opts.validate().is_ok());
    /// assert!(opts.linger(Duration::ZERO, 0).validate().is_ok(), "close at once");
    /// ```
    pub fn linger(mut self, time: std::time::Duration, bytes: u64) -> Self {
        self.linger_time = time;
        self.linger_bytes = bytes;
        self
    }

    /// Whether the channel reads on its own (default: on). When off, it
    /// reads one burst per `read()` request.
    pub fn auto_read(mut self, on: bool) -> Self {
        self.auto_read = on;
        self
    }

    /// Whether end of input keeps the channel open for writing, with an
    /// [`InputShutdown`](weft_core::InputShutdown) user event (default: off;
    /// end of input closes the channel).
    pub fn allow_half_closure(mut self, on: bool) -> Self {
        self.allow_half_closure = on;
        self
    }

    /// Most reads in one wake-up before `channel_read_complete` and a
    /// turn for other work (default 16).
    pub fn max_reads_per_wakeup(mut self, n: usize) -> Self {
        self.max_reads_per_wakeup = n;
        self
    }

    /// Adaptive read-buffer bounds: minimum, initial and maximum size of
    /// one read (default 64 B, 2 KiB, 64 KiB).
    pub fn read_buffer_sizes(mut self, min: usize, initial: usize, max: usize) -> Self {
        self.read_min = min;
        self.read_initial = initial;
        self.read_max = max;
        self
    }

    /// Most write system calls per wake-up before giving other channels
    /// a turn (default 16).
    pub fn write_spin_count(mut self, n: usize) -> Self {
        self.write_spin = n;
        self
    }

    /// Cap on the bytes a channel's outbound buffer may hold (default
    /// [`DEFAULT_OUTBOUND_CAP`](weft_core::transport::DEFAULT_OUTBOUND_CAP),
    /// 64 MiB). A write past it fails with a closed-channel error naming
    /// the cap and the channel closes: a peer that never reads cannot
    /// grow the process. Writes from other tasks count when submitted.
    pub fn max_outbound_bytes(mut self, bytes: usize) -> Self {
        self.max_outbound_bytes = Some(bytes);
        self
    }

    /// Removes the outbound cap (see
    /// [`max_outbound_bytes`](Self::max_outbound_bytes)).
    pub fn no_outbound_cap(mut self) -> Self {
        self.max_outbound_bytes = None;
        self
    }

    /// Whether the transport stops reading from a channel while it is
    /// unwritable (above its high watermark) and resumes below the low
    /// one (default: on), so that a peer that sends requests without
    /// reading the answers is held back without any handler's help.
    /// Switch it off for handlers that manage auto-read themselves, such
    /// as a proxy, whose reads on one channel feed the writes of another.
    pub fn pause_read_when_unwritable(mut self, on: bool) -> Self {
        self.pause_read_when_unwritable = on;
        self
    }

    /// Whether a `FileRegion` goes out with `sendfile` (default: on). Off,
    /// files are streamed in chunks read from the file, as when the
    /// kernel refuses `sendfile`: useful to measure what `sendfile` saves.
    pub fn sendfile(mut self, on: bool) -> Self {
        self.sendfile = on;
        self
    }

    /// Whether the channel runs on the io_uring transport (feature `uring`,
    /// Linux) instead of readiness and system calls. Default: off, unless
    /// the environment variable `WEFT_TRANSPORT` is `io_uring`. Asked for
    /// here, a kernel that refuses io_uring makes `bind`/`connect` fail;
    /// asked for only by the environment, the channel falls back to the
    /// readiness transport. Handlers see no difference; see
    /// benches/README.md for what it costs and gives.
    ///
    /// ```
    /// use weft_transport::ChannelOptions;
    ///
    /// let opts = ChannelOptions::new().io_uring(true);
    /// # drop(opts);
    /// ```
    pub fn io_uring(mut self, on: bool) -> Self {
        self.io_uring = Some(on);
        self
    }

    /// The transport these options choose.
    pub(crate) fn transport(&self) -> Transport {
        match self.io_uring {
            Some(true) => Transport::Uring { explicit: true },
            Some(false) => Transport::Readiness,
            None if cfg!(feature = "uring") && env_wants_uring() => {
                Transport::Uring { explicit: false }
            }
            None => Transport::Readiness,
        }
    }
}
