//! Building responses (handed to the HTTP codec as `http::Response`s), byte
//! ranges, and the names in directory listings.

use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use weft_codec::http::http::{self, HeaderMap, HeaderValue, StatusCode};
use weft_core::{Context, FileRegion, Msg};

pub(super) fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        411 => "Length Required",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        507 => "Insufficient Storage",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Content type by file extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md" | "rs" | "toml" | "log") => "text/plain; charset=utf-8",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("xml") => "application/xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("mp4") => "video/mp4",
        Some("mp3") => "audio/mpeg",
        _ => "application/octet-stream",
    }
}

/// Decodes `%XX` escapes; `None` when malformed or when it yields a NUL.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let v = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    Some(out)
}

/// Parses a `Range` header against a file of `len` bytes.
/// `Ok(None)`: no usable range (serve the whole file); `Err(())`: 416.
#[allow(clippy::result_unit_err)]
pub fn parse_range(v: &[u8], len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Ok(v) = std::str::from_utf8(v) else {
        return Ok(None);
    };
    let Some(spec) = v.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // several ranges: serve the whole file (allowed by RFC 9110)
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.saturating_sub(1))
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        if !b.is_empty() && b.parse::<u64>().map_err(|_| ())? < start {
            return Ok(None); // syntactically invalid: ignore
        }
        (start, end)
    };
    if len == 0 || start >= len {
        return Err(());
    }
    Ok(Some((start, end)))
}

pub(super) fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn percent_encode_name(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What a reply carries after its head.
pub(super) enum ReplyBody {
    Empty,
    Bytes(Bytes),
    File(FileRegion),
}

/// A response being assembled; [`send`](Reply::send) hands it to the HTTP
/// codec, which frames it (length, `Date`, no body for HEAD, 304 and 204,
/// `Connection: close` when the connection ends after it).
pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: ReplyBody,
}

impl Reply {
    pub(super) fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: HeaderMap::new(),
            body: ReplyBody::Empty,
        }
    }

    /// Adds a field; a value that is not a valid field value (never the
    /// case for the values this server builds) is left out.
    pub(super) fn header(mut self, name: &'static str, value: impl std::fmt::Display) -> Reply {
        match HeaderValue::from_str(&value.to_string()) {
            Ok(v) => {
                self.headers.append(name, v);
            }
            Err(_) => tracing::warn!(name, "an invalid header value was left out"),
        }
        self
    }

    /// A short text answer for an error status.
    pub(super) fn text(status: u16) -> Reply {
        let body = format!("{} {}\n", status, status_text(status));
        let mut r = Reply::new(status).header("Content-Type", "text/plain; charset=utf-8");
        r.body = ReplyBody::Bytes(Bytes::from(body));
        r
    }

    pub(super) fn with_body(mut self, body: ReplyBody) -> Reply {
        self.body = body;
        self
    }

    /// The `http::Response` message the codec encodes.
    pub(super) fn into_msg(self) -> Msg {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut headers = self.headers;
        headers.insert("server", HeaderValue::from_static("weft"));
        fn build<B>(status: StatusCode, headers: HeaderMap, body: B) -> http::Response<B> {
            let mut r = http::Response::new(body);
            *r.status_mut() = status;
            *r.headers_mut() = headers;
            r
        }
        match self.body {
            ReplyBody::Empty => Msg::user(build(status, headers, ())),
            ReplyBody::Bytes(b) => Msg::user(build(status, headers, b)),
            ReplyBody::File(f) => Msg::user(build(status, headers, f)),
        }
    }

    /// Writes and flushes the response.
    pub(super) fn send(self, ctx: &mut Context<'_>) {
        ctx.write_and_flush(self.into_msg());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(b"bytes=0-9", 100), Ok(Some((0, 9))));
        assert_eq!(parse_range(b"bytes=90-", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(b"bytes=-10", 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(b"bytes=50-500", 100), Ok(Some((50, 99))));
        assert_eq!(parse_range(b"bytes=100-", 100), Err(()));
        assert_eq!(parse_range(b"bytes=-0", 100), Err(()));
        assert_eq!(parse_range(b"bytes=0-1,5-6", 100), Ok(None));
        assert_eq!(parse_range(b"items=0-1", 100), Ok(None));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b").unwrap(), b"/a b");
        assert_eq!(percent_decode("/%2e%2e/x").unwrap(), b"/../x");
        assert!(percent_decode("/%zz").is_none());
        assert!(percent_decode("/%00").is_none());
        assert!(percent_decode("/%2").is_none());
    }
}
