//! The bytes behind a checkpoint: a file read with positioned reads (`pread`, never memory-mapped,
//! so a file truncated or rewritten while open is an I/O error, not undefined behaviour), or a buffer
//! already in memory. Both offer `len`, `read_exact_at` and a `Read + Seek` cursor for the zip reader.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A file or an in-memory buffer, read at explicit offsets.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// A file opened for reading, with its path (for messages) and its length at open.
    File {
        file: Arc<File>,
        path: PathBuf,
        len: u64,
    },
    /// Bytes in memory, with a name for messages.
    Bytes { bytes: Arc<[u8]>, name: PathBuf },
}

impl Source {
    /// Opens `path` for positioned reads.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Source::File {
            file: Arc::new(file),
            path: path.to_path_buf(),
            len,
        })
    }

    /// Wraps `bytes`, named `name` in messages.
    pub(crate) fn bytes(name: impl Into<PathBuf>, bytes: Vec<u8>) -> Self {
        Source::Bytes {
            bytes: bytes.into(),
            name: name.into(),
        }
    }

    /// The file's path, or the buffer's name.
    pub(crate) fn path(&self) -> &Path {
        match self {
            Source::File { path, .. } => path,
            Source::Bytes { name, .. } => name,
        }
    }

    /// The length in bytes (a file's length when it was opened).
    pub(crate) fn len(&self) -> u64 {
        match self {
            Source::File { len, .. } => *len,
            Source::Bytes { bytes, .. } => bytes.len() as u64,
        }
    }

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Source::File { file, .. } => read_file_at(file, buf, offset),
            Source::Bytes { bytes, .. } => {
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                let n = buf.len().min(bytes.len() - start);
                buf[..n].copy_from_slice(&bytes[start..start + n]);
                Ok(n)
            }
        }
    }

    /// Fills `buf` with the bytes at `offset`, or fails with `UnexpectedEof` (a file that shrank
    /// since it was opened, or a range past the end).
    pub(crate) fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file ended early: was it truncated or rewritten while open?",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// A `Read + Seek` cursor over the source, starting at 0.
    pub(crate) fn cursor(&self) -> Cursor<'_> {
        Cursor {
            source: self,
            pos: 0,
        }
    }
}

#[cfg(unix)]
fn read_file_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
fn read_file_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

#[cfg(not(any(unix, windows)))]
fn read_file_at(_file: &File, _buf: &mut [u8], _offset: u64) -> io::Result<usize> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "positioned reads are not available on this platform",
    ))
}

/// A read position over a [`Source`].
pub(crate) struct Cursor<'a> {
    source: &'a Source,
    pos: u64,
}

impl Read for Cursor<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.source.len().checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}
