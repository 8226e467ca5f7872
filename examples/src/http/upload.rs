//! `PUT` uploads for `http-file-server --upload DIR`: a request body
//! streamed to a file with bounded memory.
//!
//! Contract:
//! - the body's pieces (slices of the connection's reads) go to a blocking
//!   writer thread in order; past [`HIGH_WATER`] bytes not yet written the
//!   connection stops reading (the client is held by TCP flow control),
//!   and the writer resumes it below [`LOW_WATER`]: memory stays bounded
//!   whatever the body's size and however slow the disk;
//! - the file is written beside its final name as a hidden temporary
//!   (created exclusively, never following a symlink) and renamed over the
//!   name only once the whole body is in: a reader never sees half a file,
//!   an upload cut short leaves nothing behind;
//! - the directory is opened beneath the upload root (`openat2`
//!   `RESOLVE_BENEATH`) and the name is one path segment: nothing is
//!   written outside the root;
//! - when done, the writer fires [`UploadDone`] into the connection's
//!   pipeline with the status to answer: 201 (created), 204 (replaced),
//!   403/404 (no such directory), 507 (disk full), 500 (another error).

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use tokio::sync::mpsc;
use weft_core::{Channel, ReadBudget};

use crate::confined::Root;

/// Body bytes queued for the writer before reads stop.
pub const HIGH_WATER: usize = 4 * 1024 * 1024;
/// Queued bytes below which reads resume.
pub const LOW_WATER: usize = 1024 * 1024;

/// The user event an upload ends with: the status to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadDone {
    /// 201, 204, or an error status.
    pub status: u16,
}

enum Piece {
    Data(Bytes),
    End,
}

/// An upload in progress; dropping it before [`end`](Upload::end) aborts
/// it (the temporary file is removed).
#[derive(Debug)]
pub(super) struct Upload {
    tx: mpsc::UnboundedSender<Piece>,
    /// Body bytes queued for the writer.
    queued: ReadBudget,
    channel: Channel,
}

impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Piece::Data(b) => write!(f, "Data({})", b.len()),
            Piece::End => f.write_str("End"),
        }
    }
}

impl Upload {
    /// Starts writing `rel` (normalised, relative, not empty) under `root`.
    pub(super) fn start(root: Root, rel: String, channel: Channel) -> Upload {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = ReadBudget::new(HIGH_WATER, LOW_WATER);
        let (q, ch) = (queued.clone(), channel.clone());
        tokio::task::spawn_blocking(move || {
            let status = write_file(&root, &rel, rx, &q, &ch);
            // Reads may have stopped for a writer that gave up early.
            if !ch.is_auto_read() {
                ch.set_auto_read(true);
            }
            if let Some(status) = status {
                ch.execute(move |p| p.fire_user_event(Box::new(UploadDone { status })));
            }
        });
        Upload {
            tx,
            queued,
            channel,
        }
    }

    /// Queues body bytes; stops reads past the high-water mark.
    pub(super) fn push(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let n = data.len();
        // Counted before it is sent: the writer takes it off once written.
        self.queued.add(n, &self.channel);
        if self.tx.send(Piece::Data(data)).is_err() {
            // The writer gave up; its answer is on the way.
            self.queued.take(n, &self.channel);
        }
    }

    /// The body is complete.
    pub(super) fn end(self) {
        let _ = self.tx.send(Piece::End);
    }
}

/// Writes the body; the status to answer, or `None` when the connection
/// went away mid-body (nobody to answer).
fn write_file(
    root: &Root,
    rel: &str,
    mut rx: mpsc::UnboundedReceiver<Piece>,
    queued: &ReadBudget,
    channel: &Channel,
) -> Option<u16> {
    let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
    let dir = match root.open(parent) {
        Ok(d) => d,
        Err(r) => return Some(r.status()),
    };
    if !dir.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Some(404);
    }
    let tmp = format!(
        ".{name}.weft-upload-{}",
        std::process::id() as u64 ^ nonce()
    );
    let flags =
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = match openat(
        Some(dir.as_raw_fd()),
        tmp.as_str(),
        flags,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(fd) => fd,
        Err(e) => return Some(status_of(e)),
    };
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    #[allow(unsafe_code)]
    let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
    let remove_tmp = || {
        let _ = unlinkat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    };
    loop {
        match rx.blocking_recv() {
            Some(Piece::Data(b)) => {
                let n = b.len();
                if let Err(e) = file.write_all(&b) {
                    remove_tmp();
                    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
                    return Some(status_of(errno));
                }
                queued.take(n, channel);
            }
            Some(Piece::End) => break,
            None => {
                tracing::debug!(file = rel, "upload cut short; nothing kept");
                remove_tmp();
                return None;
            }
        }
    }
    drop(file);
    let existed = fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
    if let Err(e) = renameat(
        Some(dir.as_raw_fd()),
        tmp.as_str(),
        Some(dir.as_raw_fd()),
        name,
    ) {
        remove_tmp();
        return Some(status_of(e));
    }
    Some(if existed { 204 } else { 201 })
}

fn status_of(e: Errno) -> u16 {
    match e {
        Errno::ENOSPC | Errno::EDQUOT => 507,
        Errno::EACCES | Errno::EPERM | Errno::EISDIR | Errno::EROFS | Errno::ELOOP => 403,
        Errno::ENOENT | Errno::ENOTDIR => 404,
        _ => 500,
    }
}

/// A per-upload number for the temporary name (uniqueness only).
fn nonce() -> u64 {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (NEXT.fetch_add(1, Ordering::Relaxed) as u64) << 48
}
