//! `PUT` uploads for `http-file-server --upload DIR`: a request body
//! streamed to a file with bounded memory.
//!
//! Contract:
//! - the body's pieces (slices of the connection's reads) go to the
//!   upload's writer task in order; past [`HIGH_WATER`] bytes not yet
//!   written the connection stops reading (the client is held by TCP flow
//!   control), and the writer resumes it below [`LOW_WATER`]: memory stays
//!   bounded whatever the body's size and however slow the disk;
//! - the writer is a task, not a thread: it holds a thread of tokio's
//!   blocking pool only while a batch of pieces is written (or the file
//!   opened, or renamed), never while it waits for the client's bytes, so
//!   uploads that stall or trickle hold no thread (520 of them once held
//!   all 512 and no later upload was answered);
//! - at most [`DEFAULT_MAX_UPLOADS`] uploads run at once (a limit each
//!   handler's clones share, [`FileHandler::max_uploads`]); one more is
//!   answered `503` with `Retry-After`, at its head;
//! - the file is written beside its final name as a hidden temporary
//!   (`.weft-upload-<pid>-<n>`, short whatever the name: created
//!   exclusively, never following a symlink) and renamed over the name
//!   only once the whole body is in: a reader never sees half a file, an
//!   upload cut short leaves nothing behind, and a server killed mid-upload
//!   leaves a temporary that the next start removes
//!   ([`remove_stale_temporaries`]);
//! - the directory is opened beneath the upload root (`openat2`
//!   `RESOLVE_BENEATH`) and the name is one path segment of at most 255
//!   bytes (else `400`): nothing is written outside the root;
//! - when done, the writer fires [`UploadDone`] into the connection's
//!   pipeline with the status to answer: 201 (created), 204 (replaced),
//!   403/404 (no such directory), 507 (disk full), 500 (another error).
//!
//! [`FileHandler::max_uploads`]: super::FileHandler::max_uploads

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};
use tokio::sync::{mpsc, Semaphore};
use weft_core::{Channel, ReadBudget};

use crate::confined::Root;

/// Body bytes queued for the writer before reads stop.
pub const HIGH_WATER: usize = 4 * 1024 * 1024;
/// Queued bytes below which reads resume.
pub const LOW_WATER: usize = 1024 * 1024;
/// Default most uploads at once.
pub const DEFAULT_MAX_UPLOADS: usize = 64;
/// The longest name a Linux file system takes.
pub(super) const NAME_MAX: usize = 255;
/// Most bytes one batch write takes (several queued pieces at once).
const BATCH: usize = 1024 * 1024;
/// What every temporary name starts with.
const TEMP_PREFIX: &str = ".weft-upload-";

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

/// The uploads that may run at once, shared by a handler's clones.
pub(super) type Slots = Arc<Semaphore>;

/// A new set of `n` upload slots.
pub(super) fn slots(n: usize) -> Slots {
    Arc::new(Semaphore::new(n.max(1)))
}

/// Why an upload did not start: the status to answer at its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// Every slot is taken: 503.
    Busy,
    /// A name no file can carry: 400.
    NameTooLong,
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
    /// Starts writing `rel` (normalised, relative, not empty) under `root`,
    /// in one of `slots`.
    pub(super) fn start(
        root: Root,
        rel: String,
        channel: Channel,
        slots: &Slots,
    ) -> Result<Upload, Refused> {
        let name = rel.rsplit('/').next().unwrap_or(&rel);
        if name.len() > NAME_MAX {
            return Err(Refused::NameTooLong);
        }
        let permit = slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = ReadBudget::new(HIGH_WATER, LOW_WATER);
        let (q, ch) = (queued.clone(), channel.clone());
        tokio::spawn(async move {
            let status = write_file(root, rel, rx, &q, &ch).await;
            drop(permit);
            // Reads may have stopped for a writer that gave up early.
            if !ch.is_auto_read() {
                ch.set_auto_read(true);
            }
            if let Some(status) = status {
                ch.execute(move |p| p.fire_user_event(Box::new(UploadDone { status })));
            }
        });
        Ok(Upload {
            tx,
            queued,
            channel,
        })
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

/// The temporary file of an upload, and its directory.
struct Temp {
    dir: std::fs::File,
    name: String,
    file: std::fs::File,
}

impl Temp {
    fn remove(&self) {
        let _ = unlinkat(
            Some(self.dir.as_raw_fd()),
            self.name.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
    }
}

/// Runs `f` on the blocking pool; a panic there is an I/O error.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, ()> {
    tokio::task::spawn_blocking(f).await.map_err(|_| ())
}

/// Opens the directory of `rel` and creates its temporary file.
fn create(root: &Root, rel: &str) -> Result<Temp, u16> {
    let parent = rel.rsplit_once('/').map_or("", |(p, _)| p);
    let dir = root.open(parent).map_err(|r| r.status())?;
    if !dir.metadata().map(|m| m.is_dir()).unwrap_or(false) {
        return Err(404);
    }
    let name = format!(
        "{TEMP_PREFIX}{}-{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let flags =
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW;
    let fd = openat(
        Some(dir.as_raw_fd()),
        name.as_str(),
        flags,
        Mode::from_bits_truncate(0o644),
    )
    .map_err(status_of)?;
    // SAFETY: `fd` was just returned by openat and nothing else owns it.
    #[allow(unsafe_code)]
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    Ok(Temp { dir, name, file })
}

/// Renames the whole temporary over `name`: 201 or 204.
fn finish(temp: Temp, name: &str) -> u16 {
    let Temp {
        dir,
        name: tmp,
        file,
    } = temp;
    drop(file);
    let existed = fstatat(Some(dir.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok();
    if let Err(e) = renameat(
        Some(dir.as_raw_fd()),
        tmp.as_str(),
        Some(dir.as_raw_fd()),
        name,
    ) {
        let _ = unlinkat(
            Some(dir.as_raw_fd()),
            tmp.as_str(),
            UnlinkatFlags::NoRemoveDir,
        );
        return status_of(e);
    }
    if existed {
        204
    } else {
        201
    }
}

/// Numbers the temporaries of this process.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Writes the body; the status to answer, or `None` when the connection
/// went away mid-body (nobody to answer).
async fn write_file(
    root: Root,
    rel: String,
    mut rx: mpsc::UnboundedReceiver<Piece>,
    queued: &ReadBudget,
    channel: &Channel,
) -> Option<u16> {
    let r = rel.clone();
    let mut temp = match blocking(move || create(&root, &r)).await {
        Ok(Ok(t)) => t,
        Ok(Err(status)) => return Some(status),
        Err(()) => return Some(500),
    };
    let mut ended = false;
    while !ended {
        // What is queued now, up to a batch: one pool thread, one wake-up.
        let mut batch = Vec::new();
        let mut size = 0usize;
        match rx.recv().await {
            Some(Piece::Data(b)) => {
                size = b.len();
                batch.push(b);
            }
            Some(Piece::End) => ended = true,
            None => {
                tracing::debug!(file = rel, "upload cut short; nothing kept");
                let _ = blocking(move || temp.remove()).await;
                return None;
            }
        }
        while size < BATCH && !ended {
            match rx.try_recv() {
                Ok(Piece::Data(b)) => {
                    size = size.saturating_add(b.len());
                    batch.push(b);
                }
                Ok(Piece::End) => ended = true,
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let written = blocking(move || {
            let r = batch.iter().try_for_each(|b| temp.file.write_all(b));
            (temp, r)
        })
        .await;
        let Ok((t, r)) = written else {
            return Some(500);
        };
        temp = t;
        if let Err(e) = r {
            let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
            let _ = blocking(move || temp.remove()).await;
            return Some(status_of(errno));
        }
        queued.take(size, channel);
    }
    let name = rel.rsplit('/').next().unwrap_or(&rel).to_string();
    Some(blocking(move || finish(temp, &name)).await.unwrap_or(500))
}

/// Removes the temporaries that uploads of processes no longer running
/// left under `dir` (a server killed mid-upload), at most `max_entries`
/// directory entries looked at; returns how many it removed. Symbolic
/// links are not followed; the temporaries of a live process (another
/// server sharing the directory) are left alone.
pub fn remove_stale_temporaries(dir: &std::path::Path, max_entries: usize) -> usize {
    let mut removed = 0;
    let mut seen = 0usize;
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen = seen.saturating_add(1);
            if seen > max_entries {
                tracing::warn!(dir = %dir.display(), "stopped looking for stale uploads after {max_entries} entries");
                return removed;
            }
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name();
            let name = name.to_string_lossy();
            if kind.is_dir() {
                todo.push(e.path());
            } else if kind.is_file() && stale(&name) && std::fs::remove_file(e.path()).is_ok() {
                tracing::info!(file = %e.path().display(), "removed a stale upload");
                removed += 1;
            }
        }
    }
    removed
}

/// Whether `name` is a temporary of a process that is not running.
fn stale(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(TEMP_PREFIX) else {
        return false;
    };
    let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) if pid == std::process::id() => false,
        Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        // The older form (`.NAME.weft-upload-N`) cannot be told apart: left.
        None => false,
    }
}

fn status_of(e: Errno) -> u16 {
    match e {
        Errno::ENOSPC | Errno::EDQUOT => 507,
        Errno::EACCES | Errno::EPERM | Errno::EISDIR | Errno::EROFS | Errno::ELOOP => 403,
        Errno::ENOENT | Errno::ENOTDIR => 404,
        _ => 500,
    }
}
