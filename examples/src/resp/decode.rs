//! [`RespDecoder`]: RESP2 requests, multibulk or inline, as slices of the
//! received bytes (see the module's contract in `resp/mod.rs`).

use bytes::Bytes;
use weft_codec::{Cumulation, Decoder};
use weft_core::Error;

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
