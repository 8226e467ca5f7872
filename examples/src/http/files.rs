//! [`FileHandler`]: GET and HEAD of files under a root, bodies as
//! `FileRegion`s, with a small cache of open files.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use weft_core::{Context, Error, Events, FileRegion, Handler, Msg};

use super::request::{HttpEvent, Request};
use super::response::*;
use crate::confined::Root;

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
