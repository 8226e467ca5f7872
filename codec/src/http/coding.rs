//! Content codings (RFC 9110 §8.4.1): gzip and brotli to compress, gzip,
//! deflate (zlib) and brotli to inflate, with `flate2` and `brotli`.
//!
//! Contract:
//! - an [`Encoder`] takes body bytes and gives back what is ready to send,
//!   flushing at each piece so a streamed body makes progress;
//!   [`Encoder::finish`] ends the coding;
//! - a [`Decoder`] inflates into a sink that refuses to grow past a limit:
//!   the inflated size is bounded while inflating, not after (a small
//!   compressed body cannot make a huge allocation first);
//! - [`choose`] reads `Accept-Encoding` (q-values, `identity`, `*`) and
//!   picks brotli over gzip when both are as welcome.

use std::io::{self, Write};

use bytes::Bytes;
use http::HeaderMap;

/// A content coding weft can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    pub(crate) fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }
}

/// The coding to answer with, from the request's `Accept-Encoding`.
pub(crate) fn choose(headers: &HeaderMap) -> Option<Coding> {
    let mut best: Option<(Coding, u32)> = None;
    let mut star = None;
    for value in headers.get_all(http::header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .map(parse_q)
                .next()
                .unwrap_or(1000);
            let coding = match name.as_str() {
                "br" => Coding::Brotli,
                "gzip" | "x-gzip" => Coding::Gzip,
                "*" => {
                    star = Some(q);
                    continue;
                }
                _ => continue,
            };
            let better = match best {
                None => true,
                Some((c, bq)) => q > bq || (q == bq && coding == Coding::Brotli && c != coding),
            };
            if q > 0 && better {
                best = Some((coding, q));
            }
        }
    }
    match (best, star) {
        (Some((c, _)), _) => Some(c),
        (None, Some(q)) if q > 0 => Some(Coding::Gzip),
        _ => None,
    }
}

/// A q-value as thousandths; malformed is 0 (not acceptable).
fn parse_q(s: &str) -> u32 {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let int = match int {
        "0" => 0u32,
        "1" => 1000,
        _ => return 0,
    };
    let mut f = 0u32;
    for (i, c) in frac.chars().take(3).enumerate() {
        let Some(d) = c.to_digit(10) else { return 0 };
        // At most 999: three digits.
        f = f.saturating_add(d.saturating_mul([100, 10, 1][i]));
    }
    int.saturating_add(f).min(1000)
}

/// Compresses a body.
pub(crate) enum Encoder {
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    /// Gzip at level 6, brotli at quality 4 (fast enough to serve
    /// dynamic bodies, as nginx and Caddy default to).
    pub(crate) fn new(coding: Coding) -> Encoder {
        match coding {
            Coding::Gzip => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(6),
            ))),
            Coding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                4,
                22,
            ))),
        }
    }

    /// Compresses `data` and flushes: the bytes ready to send.
    pub(crate) fn push(&mut self, data: &[u8]) -> io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(Bytes::from(std::mem::take(e.get_mut())))
            }
            Encoder::Brotli(e) => {
                e.write_all(data)?;
                e.flush()?;
                Ok(Bytes::from(std::mem::take(e.get_mut())))
            }
        }
    }

    /// Ends the coding: the last bytes.
    pub(crate) fn finish(self) -> io::Result<Bytes> {
        match self {
            Encoder::Gzip(e) => e.finish().map(Bytes::from),
            Encoder::Brotli(e) => Ok(Bytes::from(e.into_inner())),
        }
    }
}

/// Compresses a whole body at once.
pub(crate) fn compress(coding: Coding, chunks: &[&[u8]]) -> io::Result<Bytes> {
    let total: usize = chunks.iter().map(|c| c.len()).sum();
    match coding {
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity((total / 3).saturating_add(64)),
                flate2::Compression::new(6),
            );
            for c in chunks {
                e.write_all(c)?;
            }
            e.finish().map(Bytes::from)
        }
        Coding::Brotli => {
            let mut e = brotli::CompressorWriter::new(
                Vec::with_capacity((total / 3).saturating_add(64)),
                4096,
                4,
                22,
            );
            for c in chunks {
                e.write_all(c)?;
            }
            Ok(Bytes::from(e.into_inner()))
        }
    }
}

/// A sink that refuses to hold more than its limit in total.
pub(crate) struct Limited {
    out: Vec<u8>,
    total: u64,
    max: u64,
}

/// The error a [`Limited`] sink fails with.
pub(crate) const TOO_LARGE: &str = "the inflated body is over its limit";

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let total = self.total.saturating_add(buf.len() as u64);
        if total > self.max {
            return Err(io::Error::other(TOO_LARGE));
        }
        self.total = total;
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Inflates a body.
pub(crate) enum Decoder {
    Gzip(Box<flate2::write::GzDecoder<Limited>>),
    Deflate(Box<flate2::write::ZlibDecoder<Limited>>),
    Brotli(Box<brotli::DecompressorWriter<Limited>>),
}

impl Decoder {
    /// A decoder for the coding named `token`, or `None` if unsupported.
    pub(crate) fn for_token(token: &str, max: u64) -> Option<Decoder> {
        let sink = Limited {
            out: Vec::new(),
            total: 0,
            max,
        };
        Some(match token.trim().to_ascii_lowercase().as_str() {
            "gzip" | "x-gzip" => Decoder::Gzip(Box::new(flate2::write::GzDecoder::new(sink))),
            "deflate" => Decoder::Deflate(Box::new(flate2::write::ZlibDecoder::new(sink))),
            "br" => Decoder::Brotli(Box::new(brotli::DecompressorWriter::new(sink, 4096))),
            _ => return None,
        })
    }

    fn sink(&mut self) -> &mut Limited {
        match self {
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Deflate(d) => d.get_mut(),
            Decoder::Brotli(d) => d.get_mut(),
        }
    }

    /// Inflates `data`: the bytes produced so far.
    pub(crate) fn push(&mut self, data: &[u8]) -> io::Result<Bytes> {
        match self {
            Decoder::Gzip(d) => d.write_all(data)?,
            Decoder::Deflate(d) => d.write_all(data)?,
            Decoder::Brotli(d) => d.write_all(data)?,
        }
        Ok(Bytes::from(std::mem::take(&mut self.sink().out)))
    }

    /// The body is over: the last bytes, or an error if the coding is
    /// incomplete.
    pub(crate) fn finish(self) -> io::Result<Bytes> {
        let sink = match self {
            Decoder::Gzip(d) => d.finish()?,
            Decoder::Deflate(d) => d.finish()?,
            Decoder::Brotli(d) => d.into_inner().map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidData, "a truncated brotli stream")
            })?,
        };
        Ok(Bytes::from(sink.out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(v: &str) -> Option<Coding> {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT_ENCODING, v.parse().unwrap());
        choose(&h)
    }

    #[test]
    fn accept_encoding_is_read_with_q_values() {
        assert_eq!(ae("gzip, deflate, br"), Some(Coding::Brotli));
        assert_eq!(ae("gzip"), Some(Coding::Gzip));
        assert_eq!(ae("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(ae("br;q=0, gzip;q=0"), None);
        assert_eq!(ae("identity"), None);
        assert_eq!(ae("*"), Some(Coding::Gzip));
        assert_eq!(ae("*;q=0"), None);
        assert_eq!(ae("gzip;q=abc"), None);
        assert_eq!(choose(&HeaderMap::new()), None);
    }

    #[test]
    fn what_is_compressed_inflates_back_and_the_limit_holds() {
        let text = b"hello hello hello hello hello ".repeat(1000);
        for (coding, token) in [(Coding::Gzip, "gzip"), (Coding::Brotli, "br")] {
            // Streamed in pieces, then finished.
            let mut e = Encoder::new(coding);
            let mut packed = Vec::new();
            for piece in text.chunks(7000) {
                packed.extend_from_slice(&e.push(piece).unwrap());
            }
            packed.extend_from_slice(&e.finish().unwrap());
            assert!(packed.len() < text.len() / 10, "{token} compresses");
            let mut d = Decoder::for_token(token, text.len() as u64).unwrap();
            let mut out = d.push(&packed).unwrap().to_vec();
            out.extend_from_slice(&d.finish().unwrap());
            assert_eq!(out, text);
            // One byte less of room: refused while inflating.
            let mut d = Decoder::for_token(token, text.len() as u64 - 1).unwrap();
            let err = d.push(&packed).and_then(|_| d.finish()).unwrap_err();
            assert!(err.to_string().contains("limit"), "{err}");
            // Whole-body compression agrees.
            let whole = compress(coding, &[&text[..100], &text[100..]]).unwrap();
            let mut d = Decoder::for_token(token, u64::MAX).unwrap();
            let mut out = d.push(&whole).unwrap().to_vec();
            out.extend_from_slice(&d.finish().unwrap());
            assert_eq!(out, text);
        }
        assert!(Decoder::for_token("compress", 1).is_none());
    }
}
