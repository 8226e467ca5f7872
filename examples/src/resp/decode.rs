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

/// Where the line of at most `limit` bytes (before its CRLF) that starts
/// at `from` ends; `Err` once it is sure to be longer.
fn find_crlf(buf: &[u8], from: usize, limit: usize) -> Result<Option<usize>, ()> {
    let rest = buf.get(from..).unwrap_or_default();
    let window = &rest[..rest.len().min(limit.saturating_add(2))];
    match window.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some(from.saturating_add(i))),
        // `limit` bytes and the CR may be here, waiting for the LF.
        None if rest.len() > limit.saturating_add(1) => Err(()),
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
        // At most MAX_INLINE bytes before the line ending (CRLF or LF).
        let room = MAX_INLINE.saturating_add(2);
        let nl = match buf.iter().take(room).position(|b| *b == b'\n') {
            Some(i) => i,
            None if buf.len() >= room => return Parse::Bad("too big inline request".into()),
            None => return Parse::Incomplete,
        };
        let line = &buf[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > MAX_INLINE {
            return Parse::Bad("too big inline request".into());
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the decoder made of `input` fed in pieces cut at `cuts`: the
    /// first frame (a command's argument count, or the error), and the
    /// most it held.
    fn first(input: &[u8], cuts: &[usize]) -> (Option<Result<usize, String>>, usize) {
        let mut cuts = cuts.to_vec();
        cuts.sort_unstable();
        let mut dec = RespDecoder::default();
        let mut cum = Cumulation::new();
        let (mut pos, mut held) = (0, 0);
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(pos, input.len());
            if c == pos {
                continue;
            }
            cum.push(Bytes::copy_from_slice(&input[pos..c]));
            pos = c;
            match dec.decode(&mut cum).unwrap() {
                Some(RespFrame::Command(args)) => return (Some(Ok(args.len())), held),
                Some(RespFrame::ProtocolError(e)) => return (Some(Err(e)), held),
                None => held = held.max(cum.len()),
            }
        }
        (None, held)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Limits at their boundary (issue 34): an inline command, a
        /// multibulk count line and a bulk count line of `MAX_INLINE - 1`,
        /// `MAX_INLINE` and `MAX_INLINE + 1` bytes before their CRLF, in
        /// random pieces: accepted iff they fit, else a protocol error,
        /// decided within the limit and its CRLF.
        #[test]
        fn lines_at_the_limit(
            delta in 0usize..3,
            cuts in proptest::collection::vec(0usize..(MAX_INLINE + 40), 0..5),
        ) {
            let len = MAX_INLINE + delta - 1;
            let fits = len <= MAX_INLINE;
            // Inline: `PING` and spaces up to `len` bytes.
            let mut inline = b"PING".to_vec();
            inline.resize(len, b' ');
            inline.extend_from_slice(b"\r\n");
            let (got, held) = first(&inline, &cuts);
            prop_assert_eq!(got.map(|r| r.is_ok()), Some(fits), "inline of {}", len);
            prop_assert!(held <= MAX_INLINE + 1, "held {}", held);
            // A count line of `len` bytes after `*`: zeros, then 1.
            let mut count = b"*".to_vec();
            count.resize(len, b'0');
            count.extend_from_slice(b"1\r\n$4\r\nPING\r\n");
            let (got, _) = first(&count, &cuts);
            prop_assert_eq!(got.map(|r| r.is_ok()), Some(fits), "count line of {}", len);
            // A bulk count line of `len` bytes after `$`.
            let mut bulk = b"*1\r\n$".to_vec();
            bulk.resize(bulk.len() + len - 1, b'0');
            bulk.extend_from_slice(b"4\r\nPING\r\n");
            let (got, _) = first(&bulk, &cuts);
            prop_assert_eq!(got.map(|r| r.is_ok()), Some(fits), "bulk count line of {}", len);
        }
    }

    /// Bulk lengths at the limit: `MAX_BULK` is waited for, one more is
    /// refused at once (nothing of the payload needs to arrive).
    #[test]
    fn bulk_lengths_at_the_limit() {
        for (n, ok) in [
            (MAX_BULK - 1, true),
            (MAX_BULK, true),
            (MAX_BULK + 1, false),
        ] {
            let head = format!("*1\r\n${n}\r\n");
            let (got, _) = first(head.as_bytes(), &[]);
            match got {
                None => assert!(ok, "{n}: waited for a bulk past the limit"),
                Some(r) => assert!(!ok && r.is_err(), "{n}: {r:?}"),
            }
        }
    }
}
