//! The byte source an archive is read from: one trait over bytes in memory,
//! a file, or anything else that can read at an offset (gimli's `ReadRef` idea).

use crate::error::{Error, Result};

/// Positioned reads from an immutable byte source.
///
/// Implementations must be safe to call from several threads at once when
/// they are `Sync`; nothing in the reader keeps a cursor.
pub trait ReadAt {
    /// Total length of the source in bytes.
    fn len(&self) -> u64;

    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fill `buf` from `offset`, or fail; never a short read.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;

    /// Borrow `len` bytes at `offset` without copying, when the source is in memory.
    fn borrow_at(&self, _offset: u64, _len: usize) -> Option<&[u8]> {
        None
    }
}

impl ReadAt for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let src = self.borrow_at(offset, buf.len()).ok_or(Error::Truncated {
            what: "read",
            offset,
            needed: buf.len() as u64,
            available: ReadAt::len(self).saturating_sub(offset),
        })?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn borrow_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let start = usize::try_from(offset).ok()?;
        self.get(start..start.checked_add(len)?)
    }
}

/// Sources that hand every call to the source they hold.
macro_rules! delegate_read_at {
    ($(#[$cfg:meta])* impl<$($g:ident)?> for $t:ty => |$this:ident| $inner:expr) => {
        $(#[$cfg])*
        impl<$($g: ReadAt + ?Sized)?> ReadAt for $t {
            fn len(&self) -> u64 {
                let $this = self;
                ReadAt::len($inner)
            }
            fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
                let $this = self;
                $inner.read_exact_at(offset, buf)
            }
            fn borrow_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
                let $this = self;
                $inner.borrow_at(offset, len)
            }
        }
    };
}

delegate_read_at!(impl<T> for &T => |this| &**this);
delegate_read_at!(#[cfg(feature = "alloc")] impl<> for alloc::vec::Vec<u8> => |this| this.as_slice());
delegate_read_at!(#[cfg(feature = "alloc")] impl<T> for alloc::sync::Arc<T> => |this| &**this);

/// A file read with positioned reads; its length is taken once at open.
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    len: u64,
}

#[cfg(feature = "std")]
impl FileSource {
    /// Open `path` for reading.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| Error::from_io(0, &e))?;
        Self::new(file)
    }

    /// Wrap an open file.
    pub fn new(file: std::fs::File) -> Result<Self> {
        let meta = file.metadata().map_err(|e| Error::from_io(0, &e))?;
        if !meta.is_file() {
            return Err(Error::InvalidArgument("not a regular file"));
        }
        Ok(FileSource { file, len: meta.len() })
    }
}

#[cfg(feature = "std")]
impl ReadAt for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(Error::Truncated {
                what: "read",
                offset,
                needed: buf.len() as u64,
                available: self.len.saturating_sub(offset),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_exact_at(buf, offset).map_err(|e| Error::from_io(offset, &e))
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            let mut done = 0usize;
            while done < buf.len() {
                let n = self
                    .file
                    .seek_read(&mut buf[done..], offset + done as u64)
                    .map_err(|e| Error::from_io(offset, &e))?;
                if n == 0 {
                    return Err(Error::Io { offset, kind: crate::error::IoKind("unexpected end of file") });
                }
                done += n;
            }
            Ok(())
        }
    }
}
