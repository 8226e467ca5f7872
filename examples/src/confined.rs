//! [`Root`]: opening request paths without ever leaving a root directory,
//! and without ever blocking a runtime thread.
//!
//! Contract:
//! - a path is opened beneath the root with `openat2(RESOLVE_BENEATH)`: one
//!   system call, and the kernel refuses any resolution — `..`, absolute
//!   symlinks, symlinks that lead out — that would leave the root (403). On
//!   a kernel without `openat2` the path is canonicalised and checked;
//! - the open is non-blocking (`O_NONBLOCK`): a FIFO or device swapped in
//!   where a file was cannot wedge the thread; the caller checks the type on
//!   the descriptor it got (`fstat`), never on the path before opening;
//! - running out of descriptors or memory is [`Refusal::Unavailable`] (503:
//!   try again), not "not found".

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::errno::Errno;

/// Why a path could not be opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It would leave the root, or may not be read (403).
    Forbidden,
    /// Nothing there (404).
    NotFound,
    /// The process is out of descriptors or memory (503).
    Unavailable,
}

impl Refusal {
    /// The HTTP status for it.
    pub fn status(self) -> u16 {
        match self {
            Refusal::Forbidden => 403,
            Refusal::NotFound => 404,
            Refusal::Unavailable => 503,
        }
    }

    fn of(e: Errno) -> Refusal {
        match e {
            Errno::EXDEV | Errno::ELOOP | Errno::EACCES | Errno::EPERM => Refusal::Forbidden,
            Errno::EMFILE | Errno::ENFILE | Errno::ENOMEM | Errno::ENOBUFS => Refusal::Unavailable,
            _ => Refusal::NotFound,
        }
    }
}

/// A root directory, held open.
#[derive(Clone, Debug)]
pub struct Root {
    path: PathBuf,
    dir: Arc<File>,
}

impl Root {
    /// Opens `path` (which must exist) as the root; it is canonicalised.
    pub fn new(path: impl AsRef<Path>) -> std::io::Result<Root> {
        let path = path.as_ref().canonicalize()?;
        let dir = Arc::new(File::open(&path)?);
        Ok(Root { path, dir })
    }

    /// The canonical root path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `rel` (relative, `""` for the root itself) beneath the root,
    /// non-blocking.
    pub fn open(&self, rel: &str) -> Result<File, Refusal> {
        let rel = if rel.is_empty() { "." } else { rel };
        match open_beneath(&self.dir, rel) {
            Ok(f) => Ok(f),
            Err(Errno::ENOSYS) => self.open_checked(rel),
            Err(e) => Err(Refusal::of(e)),
        }
    }

    /// Without `openat2` (kernels before 5.6): resolve, check, open.
    fn open_checked(&self, rel: &str) -> Result<File, Refusal> {
        use std::os::unix::fs::OpenOptionsExt;
        let p = self
            .path
            .join(rel)
            .canonicalize()
            .map_err(|e| Refusal::of(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?;
        if !p.starts_with(&self.path) {
            return Err(Refusal::Forbidden);
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOCTTY)
            .open(&p)
            .map_err(|e| Refusal::of(Errno::from_raw(e.raw_os_error().unwrap_or(0))))
    }
}

/// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, read-only,
/// non-blocking.
#[allow(unsafe_code)]
fn open_beneath(root_dir: &File, rel: &str) -> Result<File, Errno> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
    use std::os::fd::{AsRawFd, FromRawFd};
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(root_dir.as_raw_fd(), rel, how)?;
    // SAFETY: `fd` was just returned by openat2, is open, and nothing else
    // owns it: the File takes sole ownership and closes it on drop.
    Ok(unsafe { File::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_out_and_fifos_are_refused_without_blocking() {
        let base = std::env::temp_dir().join(format!("weft-confined-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("root")).unwrap();
        std::fs::write(base.join("secret"), b"s").unwrap();
        std::fs::write(base.join("root/ok"), b"ok").unwrap();
        std::os::unix::fs::symlink(base.join("secret"), base.join("root/out")).unwrap();
        nix::unistd::mkfifo(&base.join("root/fifo"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        let root = Root::new(base.join("root")).unwrap();
        assert!(root.open("ok").unwrap().metadata().unwrap().is_file());
        assert_eq!(root.open("out").unwrap_err(), Refusal::Forbidden);
        assert_eq!(root.open("../secret").unwrap_err(), Refusal::Forbidden);
        assert_eq!(root.open("missing").unwrap_err(), Refusal::NotFound);
        // Opens at once (no writer needed) and is not a regular file.
        assert!(!root.open("fifo").unwrap().metadata().unwrap().is_file());
        let _ = std::fs::remove_dir_all(&base);
    }
}
