//! [`RequestDecoder`]: request heads, parsed with httparse (see the
//! module's contract in `http/mod.rs`).

use bytes::Bytes;
use weft_codec::{Cumulation, Decoder};
use weft_core::Error;

/// Longest request line accepted (else 414).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// Longest request head accepted (else 431).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most header fields accepted (else 431).
pub const MAX_HEADERS: usize = 64;

/// A parsed request head.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method, as sent.
    pub method: String,
    /// The request target, as sent.
    pub target: String,
    /// Whether it is HTTP/1.1 (else 1.0).
    pub http11: bool,
    /// Header fields, names lower-cased.
    pub headers: Vec<(String, Bytes)>,
}

impl Request {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &v[..])
    }

    /// Whether the connection stays open after the response.
    pub fn keep_alive(&self) -> bool {
        let conn = self
            .header("connection")
            .map(|v| String::from_utf8_lossy(v).to_ascii_lowercase());
        match conn.as_deref() {
            Some(c) if c.split(',').any(|t| t.trim() == "close") => false,
            Some(c) if c.split(',').any(|t| t.trim() == "keep-alive") => true,
            _ => self.http11,
        }
    }
}

/// What the decoder yields.
#[derive(Debug, Clone)]
pub enum HttpEvent {
    /// A well-formed request head.
    Request(Request),
    /// A request that cannot be served: answer with this status and close.
    Bad(u16),
}

/// Decodes HTTP/1.x request heads.
#[derive(Debug, Default)]
pub struct RequestDecoder {
    failed: bool,
}

impl Decoder for RequestDecoder {
    type Item = HttpEvent;

    fn decode(&mut self, src: &mut Cumulation) -> Result<Option<HttpEvent>, Error> {
        if self.failed {
            src.advance(src.len());
            return Ok(None);
        }
        // Skip empty lines before a request (RFC 9112, 2.2).
        let blank = src
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        if blank > 0 {
            src.advance(blank);
        }
        if src.is_empty() {
            return Ok(None);
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let bad = |this: &mut RequestDecoder, src: &mut Cumulation, status| {
            this.failed = true;
            src.advance(src.len());
            Ok(Some(HttpEvent::Bad(status)))
        };
        match req.parse(src) {
            Ok(httparse::Status::Complete(head_len)) => {
                if head_len > MAX_HEAD {
                    return bad(self, src, 431);
                }
                let line_len = src.iter().position(|b| *b == b'\n').unwrap_or(head_len);
                if line_len > MAX_REQUEST_LINE {
                    return bad(self, src, 414);
                }
                let request = Request {
                    method: req.method.unwrap_or("").to_string(),
                    target: req.path.unwrap_or("").to_string(),
                    http11: req.version == Some(1),
                    headers: req
                        .headers
                        .iter()
                        .map(|h| (h.name.to_ascii_lowercase(), Bytes::copy_from_slice(h.value)))
                        .collect(),
                };
                let has_body = request
                    .header("content-length")
                    .map(|v| v != b"0")
                    .unwrap_or(false)
                    || request.header("transfer-encoding").is_some();
                if has_body {
                    return bad(self, src, 400);
                }
                src.advance(head_len);
                Ok(Some(HttpEvent::Request(request)))
            }
            Ok(httparse::Status::Partial) => {
                let first_line_done = src.contains(&b'\n');
                if !first_line_done && src.len() > MAX_REQUEST_LINE {
                    return bad(self, src, 414);
                }
                if src.len() > MAX_HEAD {
                    return bad(self, src, 431);
                }
                Ok(None)
            }
            Err(httparse::Error::TooManyHeaders) => bad(self, src, 431),
            Err(_) => bad(self, src, 400),
        }
    }
}
