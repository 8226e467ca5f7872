//! HTTP/1.1 pieces for `http-file-server`: a request-head decoder (httparse)
//! and a static-file handler whose bodies go out as `FileRegion`s.
//!
//! Contract of [`RequestDecoder`]: it yields one [`HttpEvent::Request`] per
//! request head, in order (pipelining works); a request line over
//! [`MAX_REQUEST_LINE`] gives [`HttpEvent::Bad`] with 414, a head over
//! [`MAX_HEAD`] bytes or [`MAX_HEADERS`] headers gives 431, a malformed head
//! or a request with a body gives 400. After a `Bad` event it decodes
//! nothing more: the handler answers and closes the connection.
//!
//! Contract of [`FileHandler`]: GET and HEAD of files under the root, with
//! Content-Length, Content-Type by extension, Last-Modified and
//! If-Modified-Since (304), one byte range (206, or 416 when unsatisfiable),
//! a directory index page, and short error bodies (400, 403, 404, 405).
//! A path never resolves outside the root: `..` segments (also
//! percent-encoded) are refused, and the resolved path, with symlinks
//! followed, must still lie inside the root.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::confined::Root;
use weft_codec::{Cumulation, Decoder};
use weft_core::{Context, Error, Events, FileRegion, Handler, Msg, Promise};

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

/// Serves files under a root directory.
#[derive(Debug, Clone)]
pub struct FileHandler {
    root: Root,
    /// Set after a response that ends the connection (`Connection: close`,
    /// HTTP/1.0 without keep-alive, a bad request): nothing after it is
    /// parsed or answered.
    closing: bool,
}

impl FileHandler {
    /// Serves `root`, which must exist (it is canonicalised).
    pub fn new(root: impl AsRef<Path>) -> std::io::Result<FileHandler> {
        Ok(FileHandler {
            root: Root::new(root)?,
            closing: false,
        })
    }
}

/// How long an open file (and what `fstat` said of it) is reused before the
/// path is opened again (nginx's `open_file_cache_valid`, shorter).
const OPEN_FILE_VALID: Duration = Duration::from_secs(1);
/// Most entries a directory index lists.
pub const INDEX_MAX_ENTRIES: usize = 1000;
/// Most files kept open per thread (nginx's `open_file_cache max`).
const OPEN_FILE_MAX: usize = 100;

struct CachedFile {
    file: std::sync::Arc<std::fs::File>,
    meta: std::fs::Metadata,
    at: std::time::Instant,
}

type OpenFiles = std::collections::HashMap<(PathBuf, String), CachedFile>;

/// The open-file cache, shared by the process's threads (one lock per
/// request; a purge task can then reach every entry).
static OPEN_FILES: std::sync::LazyLock<std::sync::Mutex<OpenFiles>> =
    std::sync::LazyLock::new(Default::default);

fn open_files() -> std::sync::MutexGuard<'static, OpenFiles> {
    OPEN_FILES.lock().unwrap_or_else(|e| e.into_inner())
}

impl FileHandler {
    /// Opens `rel` and stats it, through a small per-thread cache of open
    /// files (as nginx's `open_file_cache`): a hot file costs no `open`,
    /// `fstat` or `close` per request. Only regular files are cached.
    fn open_cached(
        &self,
        rel: &str,
    ) -> Result<(std::sync::Arc<std::fs::File>, std::fs::Metadata), u16> {
        let key = (self.root.path().to_path_buf(), rel.to_string());
        let now = std::time::Instant::now();
        let hit = open_files()
            .get(&key)
            .filter(|e| now.duration_since(e.at) < OPEN_FILE_VALID)
            .map(|e| (e.file.clone(), e.meta.clone()));
        if let Some(hit) = hit {
            return Ok(hit);
        }
        purge_expired(now);
        let file = self.root.open(rel).map_err(|r| r.status())?;
        let meta = file.metadata().map_err(|_| 404u16)?;
        let file = std::sync::Arc::new(file);
        if meta.is_file() {
            {
                let mut c = open_files();
                if c.len() >= OPEN_FILE_MAX {
                    c.retain(|_, e| now.duration_since(e.at) < OPEN_FILE_VALID);
                    if c.len() >= OPEN_FILE_MAX {
                        c.clear();
                    }
                }
                c.insert(
                    key,
                    CachedFile {
                        file: file.clone(),
                        meta: meta.clone(),
                        at: now,
                    },
                );
            }
        }
        Ok((file, meta))
    }
}

/// When the cache was last purged, in milliseconds since [`purge_base`].
static LAST_PURGE_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn purge_base() -> std::time::Instant {
    static BASE: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(std::time::Instant::now)
}

/// Drops the cache's expired entries, at most once per validity period, so
/// that no file (a deleted one among them, whose disk space would otherwise
/// never be freed) stays open much longer than [`OPEN_FILE_VALID`] after
/// its last use. Requests call it; so does [`spawn_cache_purger`] for an
/// idle server.
fn purge_expired(now: std::time::Instant) {
    use std::sync::atomic::Ordering;
    let now_ms = now.saturating_duration_since(purge_base()).as_millis() as u64 + 1;
    let last = LAST_PURGE_MS.load(Ordering::Relaxed);
    if now_ms.saturating_sub(last) < OPEN_FILE_VALID.as_millis() as u64
        || LAST_PURGE_MS
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    open_files().retain(|_, e| now.duration_since(e.at) < OPEN_FILE_VALID);
}

/// Purges the open-file cache once per validity period even when no
/// request comes. Call once from inside the runtime.
pub fn spawn_cache_purger() {
    tokio::spawn(async {
        let mut tick = tokio::time::interval(OPEN_FILE_VALID);
        loop {
            tick.tick().await;
            purge_expired(std::time::Instant::now());
        }
    });
}

thread_local! {
    static DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// The `Date` header's value, formatted once per second per thread.
fn http_date_now() -> String {
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != secs || d.1.is_empty() {
            *d = (secs, httpdate::fmt_http_date(now));
        }
        d.1.clone()
    })
}

fn status_text(code: u16) -> &'static str {
    match code {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
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

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn percent_encode_name(s: &str) -> String {
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

/// A response being assembled.
struct Response {
    status: u16,
    headers: String,
    body: Option<Msg>,
    body_len: u64,
}

impl Response {
    fn new(status: u16) -> Response {
        Response {
            status,
            headers: String::new(),
            body: None,
            body_len: 0,
        }
    }

    fn header(mut self, name: &str, value: impl std::fmt::Display) -> Response {
        let _ = write!(self.headers, "{name}: {value}\r\n");
        self
    }

    fn text(status: u16) -> Response {
        let body = format!("{} {}\n", status, status_text(status));
        let len = body.len() as u64;
        let mut r = Response::new(status).header("Content-Type", "text/plain; charset=utf-8");
        r.body = Some(Msg::Bytes(Bytes::from(body)));
        r.body_len = len;
        r
    }

    fn with_body(mut self, body: Msg, len: u64) -> Response {
        self.body = Some(body);
        self.body_len = len;
        self
    }

    /// Writes the response; `head_only` drops the body (HEAD).
    fn send(self, ctx: &mut Context<'_>, head_only: bool, keep_alive: bool) {
        let mut head = String::with_capacity(160 + self.headers.len());
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\nServer: weft\r\nDate: {}\r\nContent-Length: {}\r\n{}",
            self.status,
            status_text(self.status),
            http_date_now(),
            self.body_len,
            self.headers
        );
        if !keep_alive {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        // Without keep-alive, close once the last byte is in the kernel.
        let last = (!keep_alive).then(|| {
            let (p, done) = Promise::new();
            let ch = ctx.channel().clone();
            tokio::spawn(async move {
                let _ = done.await;
                let _ = ch.close().await;
            });
            p
        });
        match self.body {
            Some(body) if !head_only => {
                ctx.write(Bytes::from(head));
                ctx.write_with(body, last);
            }
            _ => ctx.write_with(Msg::Bytes(Bytes::from(head)), last),
        }
        ctx.flush();
    }
}

impl FileHandler {
    fn respond(&self, req: &Request) -> Response {
        if req.method != "GET" && req.method != "HEAD" {
            return Response::text(405).header("Allow", "GET, HEAD");
        }
        let target = req.target.split(['?', '#']).next().unwrap_or("");
        if !target.starts_with('/') {
            return Response::text(400);
        }
        let Some(decoded) = percent_decode(target) else {
            return Response::text(400);
        };
        let Ok(decoded) = String::from_utf8(decoded) else {
            return Response::text(400);
        };
        let mut rel = String::with_capacity(decoded.len());
        for seg in decoded.split('/') {
            match seg {
                "" | "." => {}
                ".." => return Response::text(403),
                s if s.contains('\\') => return Response::text(400),
                s => {
                    if !rel.is_empty() {
                        rel.push('/');
                    }
                    rel.push_str(s);
                }
            }
        }
        let (file, meta) = match self.open_cached(&rel) {
            Ok(x) => x,
            Err(code) => return Response::text(code),
        };
        if meta.is_dir() {
            if !decoded.ends_with('/') {
                // Built from the normalised path, never from the target as
                // sent: `GET //evil.example` must not redirect to
                // `//evil.example/`, a protocol-relative URL to another host.
                let mut location = String::from("/");
                for seg in rel.split('/').filter(|s| !s.is_empty()) {
                    location.push_str(&percent_encode_name(seg));
                    location.push('/');
                }
                return Response::text(301).header("Location", location);
            }
            return self.index(&rel, &decoded);
        }
        if !meta.is_file() {
            return Response::text(403);
        }
        let resolved = Path::new(&rel);
        let len = meta.len();
        let mtime = meta.modified().ok();
        if let (Some(m), Some(ims)) = (mtime, req.header("if-modified-since")) {
            if let Some(ims) = std::str::from_utf8(ims)
                .ok()
                .and_then(|s| httpdate::parse_http_date(s).ok())
            {
                let m_secs = m
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| Duration::from_secs(d.as_secs()))
                    .unwrap_or_default();
                if SystemTime::UNIX_EPOCH + m_secs <= ims {
                    let mut r = Response::new(304);
                    r = r.header("Last-Modified", httpdate::fmt_http_date(m));
                    return r;
                }
            }
        }
        let range = match req.header("range") {
            Some(v) => match parse_range(v, len) {
                Ok(r) => r,
                Err(()) => {
                    return Response::text(416).header("Content-Range", format!("bytes */{len}"))
                }
            },
            None => None,
        };
        let (status, start, count) = match range {
            Some((a, b)) => (206, a, b - a + 1),
            None => (200, 0, len),
        };
        let region = match FileRegion::with_known_size(file, start, count, len) {
            Ok(r) => r,
            Err(_) => return Response::text(404),
        };
        let mut r = Response::new(status)
            .header("Content-Type", content_type(resolved))
            .header("Accept-Ranges", "bytes");
        if let Some(m) = mtime {
            r = r.header("Last-Modified", httpdate::fmt_http_date(m));
        }
        if status == 206 {
            r = r.header(
                "Content-Range",
                format!("bytes {start}-{}/{len}", start + count - 1),
            );
        }
        r.with_body(Msg::from(region), count)
    }

    fn index(&self, rel: &str, shown: &str) -> Response {
        let dir = self.root.path().join(rel);
        // Bounded work and a bounded page per request, whatever the
        // directory holds (the reads are lazy: at most this many entries
        // are read).
        let mut more = false;
        let mut entries: Vec<(String, bool)> = match std::fs::read_dir(&dir) {
            Ok(rd) => {
                let mut v = Vec::new();
                for e in rd.filter_map(|e| e.ok()) {
                    if v.len() == INDEX_MAX_ENTRIES {
                        more = true;
                        break;
                    }
                    let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                    v.push((e.file_name().to_string_lossy().into_owned(), is_dir));
                }
                v
            }
            Err(_) => return Response::text(403),
        };
        entries.sort();
        let title = escape_html(shown);
        let mut html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1><ul>\n"
        );
        if shown != "/" {
            html.push_str("<li><a href=\"../\">../</a></li>\n");
        }
        for (name, is_dir) in entries {
            let slash = if is_dir { "/" } else { "" };
            let _ = writeln!(
                html,
                "<li><a href=\"{}{slash}\">{}{slash}</a></li>",
                percent_encode_name(&name),
                escape_html(&name)
            );
        }
        if more {
            let _ = writeln!(
                html,
                "<li>(only the first {INDEX_MAX_ENTRIES} entries are listed)</li>"
            );
        }
        html.push_str("</ul></body></html>\n");
        let len = html.len() as u64;
        Response::new(200)
            .header("Content-Type", "text/html; charset=utf-8")
            .with_body(Msg::Bytes(Bytes::from(html)), len)
    }
}

impl Handler for FileHandler {
    fn interest(&self) -> Events {
        Events::READ | Events::EXCEPTION
    }

    fn channel_read(&mut self, ctx: &mut Context<'_>, msg: Msg) {
        let ev = match msg.downcast::<HttpEvent>() {
            Ok(ev) => ev,
            Err(other) => return ctx.fire_read(other),
        };
        if self.closing {
            return; // after a response that ends the connection: nothing more
        }
        let keep_alive = match ev {
            HttpEvent::Request(req) => {
                let keep_alive = req.keep_alive();
                let head_only = req.method == "HEAD";
                self.respond(&req).send(ctx, head_only, keep_alive);
                keep_alive
            }
            HttpEvent::Bad(status) => {
                Response::text(status).send(ctx, false, false);
                false
            }
        };
        if !keep_alive {
            // The connection ends with this response: parse nothing after
            // it, and read no more.
            self.closing = true;
            ctx.channel().set_auto_read(false);
        }
    }

    fn exception_caught(&mut self, ctx: &mut Context<'_>, err: Error) {
        tracing::debug!(error = ?err, "closing the connection");
        ctx.close();
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
