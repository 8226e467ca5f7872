//! [`FileRegion`]: a range of an open file, to be sent without passing
//! through user space.
//!
//! Contract:
//! - a region shares its file by reference ([`Arc<File>`]); cloning a region is
//!   cheap and both clones read the same file, each tracking its own progress;
//! - its bounds are checked against the file's length when it is made;
//! - the transport sends it with `sendfile(2)` from [`FileRegion::position`],
//!   reporting progress with [`FileRegion::advance`]; stages that cannot
//!   (TLS, non-socket transports, tests) read it back in chunks with
//!   [`FileRegion::read_chunk`], which also advances it;
//! - a file that shrinks under a region is reported as an error
//!   ([`ErrorKind::FileShrank`](crate::ErrorKind::FileShrank)), never as a short or endless transfer.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::Error;

/// A range of a file, written to a socket with `sendfile(2)`.
///
/// ```no_run
/// use weft_core::{FileRegion, Msg};
///
/// # fn main() -> Result<(), weft_core::Error> {
/// let region = FileRegion::open("/etc/hostname")?;
/// let msg = Msg::from(region); // hand it to `ctx.write(msg)` like any other message
/// # let _ = msg;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct FileRegion {
    file: Arc<File>,
    offset: u64,
    len: u64,
    transferred: u64,
}

impl FileRegion {
    /// Opens the file at `path` and makes a region over all of it.
    pub fn open(path: impl AsRef<Path>) -> Result<FileRegion, Error> {
        let file = File::open(path.as_ref())?;
        let len = file.metadata()?.len();
        Ok(FileRegion {
            file: Arc::new(file),
            offset: 0,
            len,
            transferred: 0,
        })
    }

    /// A region of `len` bytes of `file` starting at `offset`.
    ///
    /// Fails with [`ErrorKind::InvalidArgument`](crate::ErrorKind::InvalidArgument) when the range does not lie
    /// inside the file as it is now.
    pub fn new(file: impl Into<Arc<File>>, offset: u64, len: u64) -> Result<FileRegion, Error> {
        let file = file.into();
        let size = file.metadata()?.len();
        FileRegion::with_known_size(file, offset, len, size)
    }

    /// A region of a file whose size the caller has just read (from the
    /// same `fstat` that told it the file exists), saving a second `fstat`.
    /// The range is checked against `file_size`.
    pub fn with_known_size(
        file: impl Into<Arc<File>>,
        offset: u64,
        len: u64,
        file_size: u64,
    ) -> Result<FileRegion, Error> {
        let end = offset.checked_add(len).ok_or_else(|| {
            Error::invalid_argument(format!("file region {offset}+{len} overflows"))
        })?;
        if end > file_size {
            return Err(Error::invalid_argument(format!(
                "file region {offset}..{end} lies outside the file ({file_size} bytes)"
            )));
        }
        Ok(FileRegion {
            file: file.into(),
            offset,
            len,
            transferred: 0,
        })
    }

    /// The shared file.
    pub fn file(&self) -> &Arc<File> {
        &self.file
    }

    /// Where the region starts in the file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The region's length in bytes (Netty's `count()`).
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes already transferred.
    pub fn transferred(&self) -> u64 {
        self.transferred
    }

    /// Bytes left to transfer.
    pub fn remaining(&self) -> u64 {
        self.len - self.transferred
    }

    /// The file offset of the next byte to transfer.
    pub fn position(&self) -> u64 {
        self.offset + self.transferred
    }

    /// Whether every byte has been transferred.
    pub fn is_done(&self) -> bool {
        self.transferred == self.len
    }

    /// Records that `n` more bytes were transferred.
    ///
    /// # Panics
    ///
    /// If `n` exceeds [`remaining`](Self::remaining).
    pub fn advance(&mut self, n: u64) {
        assert!(n <= self.remaining(), "advanced past the region's end");
        self.transferred += n;
    }

    /// Reads up to `max` bytes from the current position and advances.
    ///
    /// Returns an empty `Bytes` once the region is done. Fails with
    /// [`ErrorKind::FileShrank`](crate::ErrorKind::FileShrank) when the file ends before the region does.
    pub fn read_chunk(&mut self, max: usize) -> Result<Bytes, Error> {
        let want = (self.remaining().min(max as u64)) as usize;
        if want == 0 {
            return Ok(Bytes::new());
        }
        let mut buf = BytesMut::zeroed(want);
        let n = self.read_into(&mut buf)?;
        debug_assert_eq!(n, want);
        Ok(buf.freeze())
    }

    /// Reads from the current position into `buf` (as much of the region as
    /// fits) and advances: [`read_chunk`](Self::read_chunk) into a buffer
    /// the caller reuses. Returns how many bytes were read, 0 once the
    /// region is done.
    ///
    /// ```
    /// # fn main() -> Result<(), weft_core::Error> {
    /// # let dir = std::env::temp_dir().join(format!("weft-doc-read-into-{}", std::process::id()));
    /// # std::fs::write(&dir, b"hello world")?;
    /// let mut region = weft_core::FileRegion::open(&dir)?;
    /// let mut buf = [0u8; 8];
    /// assert_eq!(region.read_into(&mut buf)?, 8);
    /// assert_eq!(&buf, b"hello wo");
    /// assert_eq!(region.read_into(&mut buf)?, 3);
    /// assert_eq!(region.read_into(&mut buf)?, 0);
    /// # std::fs::remove_file(&dir)?;
    /// # Ok(()) }
    /// ```
    pub fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        let want = (self.remaining().min(buf.len() as u64)) as usize;
        let mut filled = 0;
        while filled < want {
            let n = self
                .file
                .read_at(&mut buf[filled..want], self.position() + filled as u64)?;
            if n == 0 {
                return Err(self.shrank_error());
            }
            filled += n;
        }
        self.transferred += want as u64;
        Ok(want)
    }

    /// The error reported when the file ends before the region does.
    pub fn shrank_error(&self) -> Error {
        Error::file_shrank(format!(
            "file ended at offset {} but the region runs to {} ({} of {} bytes sent)",
            self.position(),
            self.offset + self.len,
            self.transferred,
            self.len
        ))
    }
}

impl fmt::Debug for FileRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileRegion")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("transferred", &self.transferred)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub(crate) fn temp_file(data: &[u8]) -> (std::path::PathBuf, File) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "weft-core-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let mut f = File::create(&path).unwrap();
        f.write_all(data).unwrap();
        (path.clone(), File::open(&path).unwrap())
    }

    #[test]
    fn bounds_are_checked() {
        let (path, f) = temp_file(&[1u8; 100]);
        let f = Arc::new(f);
        assert!(FileRegion::new(f.clone(), 0, 100).is_ok());
        assert!(FileRegion::new(f.clone(), 100, 0).is_ok());
        let e = FileRegion::new(f.clone(), 50, 51).unwrap_err();
        assert!(e.kind() == crate::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("100 bytes"));
        assert!(
            FileRegion::new(f.clone(), u64::MAX, 2).unwrap_err().kind()
                == crate::ErrorKind::InvalidArgument
        );
        assert!(FileRegion::open(path.with_extension("missing"))
            .unwrap_err()
            .is_io());
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn chunked_read_back_equals_file() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let (path, f) = temp_file(&data);
        let mut r = FileRegion::new(f, 123, 9000).unwrap();
        let clone = r.clone();
        let mut out = Vec::new();
        loop {
            let c = r.read_chunk(777).unwrap();
            if c.is_empty() {
                break;
            }
            assert!(c.len() <= 777);
            out.extend_from_slice(&c);
        }
        assert_eq!(out, &data[123..9123]);
        assert!(r.is_done());
        assert_eq!(clone.transferred(), 0, "clones track their own progress");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn shrunk_file_is_an_error() {
        let (path, f) = temp_file(&[5u8; 1000]);
        let mut r = FileRegion::new(f, 0, 1000).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10)
            .unwrap();
        let e = r.read_chunk(4096).unwrap_err();
        assert!(e.kind() == crate::ErrorKind::FileShrank, "{e}");
        std::fs::remove_file(path).unwrap();
    }
}
