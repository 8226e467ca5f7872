//! [`RespDecoder`]: RESP2 requests, multibulk or inline, as slices of the
//! received bytes (see the module's contract in `resp/mod.rs`).

// Lengths and counts here come from peers: no arithmetic on them may wrap.
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

use bytes::Bytes;
use weft_codec::{Cumulation, Decoder};
use weft_core::{BudgetShare, Error, MemoryBudget};

/// Most arguments in one command.
pub const MAX_ARGS: usize = 1024 * 1024;
/// Longest bulk string (Redis: 512 MB; here 64 MiB).
pub const MAX_BULK: usize = 64 * 1024 * 1024;
/// Longest inline command or count line.
pub const MAX_INLINE: usize = 64 * 1024;
/// Most bytes of incomplete requests held at once, all connections together.
pub const PARTIAL_BUDGET: usize = 1 << 30;

/// Bytes of incomplete requests held by every decoder of the process.
static PARTIAL_HELD: MemoryBudget = MemoryBudget::new("RESP partial requests", PARTIAL_BUDGET);

/// What the decoder yields.
#[derive(Debug, Clone)]
pub enum RespFrame {
    /// A command and its arguments.
    Command(Vec<Bytes>),
    /// A protocol violation: answer and close.
    ProtocolError(String),
}

/// Decodes RESP2 requests.
#[derive(Debug)]
pub struct RespDecoder {
    failed: bool,
    /// Where parsing of an incomplete multibulk request stopped.
    partial: Option<Partial>,
    /// Bytes of the incomplete request, counted in [`PARTIAL_HELD`].
    held: BudgetShare,
}

impl Default for RespDecoder {
    fn default() -> Self {
        RespDecoder {
            failed: false,
            partial: None,
            held: MemoryBudget::share_static(&PARTIAL_HELD),
        }
    }
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

fn find_crlf(buf: &[u8], from: usize, limit: usize) -> Result<Option<usize>, ()> {
    let rest = buf.get(from..).unwrap_or_default();
    let window = &rest[..rest.len().min(limit.saturating_add(2))];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from.saturating_add(i))),
        None if rest.len() > limit => Err(()),
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
        let mut start = None;
        for (i, c) in line.iter().enumerate() {
            match (start, c.is_ascii_whitespace()) {
                (None, false) => start = Some(i),
                (Some(s), true) => {
                    args.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            args.push((s, line.len()));
        }
        // `nl` is an index into `buf`: one more is at most its length.
        return Parse::Done(nl.saturating_add(1), args);
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
        pos: first.saturating_add(2),
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
        let count = pos.saturating_add(1);
        let Ok(end) = find_crlf(buf, count, MAX_INLINE) else {
            return Parse::Bad("too big bulk count string".into());
        };
        let Some(end) = end else {
            *partial = Some(p);
            return Parse::Incomplete;
        };
        let len = match parse_int(&buf[count..end]) {
            Some(l) if (0..=MAX_BULK as i64).contains(&l) => l as usize,
            _ => return Parse::Bad("invalid bulk length".into()),
        };
        // Positions in `buf` and a length of at most MAX_BULK: these
        // saturate only past any buffer, where the length check stops.
        let start = end.saturating_add(2);
        let stop = start.saturating_add(len);
        let next = stop.saturating_add(2);
        if buf.len() < next {
            *partial = Some(p);
            return Parse::Incomplete;
        }
        if &buf[stop..next] != b"\r\n" {
            return Parse::Bad("bulk string not terminated by CRLF".into());
        }
        p.args.push((start, stop));
        p.pos = next;
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
                    if self.held.resize(src.len()) {
                        return Ok(None);
                    }
                    self.failed = true;
                    self.partial = None;
                    self.held.resize(0);
                    src.advance(src.len());
                    return Ok(Some(RespFrame::ProtocolError(
                        "the server's budget for incomplete requests is spent".into(),
                    )));
                }
                Parse::Bad(why) => {
                    self.failed = true;
                    self.partial = None;
                    self.held.resize(0);
                    src.advance(src.len());
                    return Ok(Some(RespFrame::ProtocolError(why)));
                }
                Parse::Done(used, args) => {
                    self.held.resize(0);
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
