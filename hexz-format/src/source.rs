//! The byte source an archive is read from: one trait over bytes in memory,
//! a file, or anything else that can read at an offset (gimli's `ReadRef` idea).

use crate::error::{Error, Result};

/// Positioned reads from an immutable byte source: bytes in memory here;
/// files, callbacks and remote objects in `hexz-io` and its peers.
///
/// Implementations must be safe to call from several threads at once when
/// they are `Sync`; nothing in the reader keeps a cursor. The reader never
/// asks for zero bytes.
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

    /// Forget the bytes kept for repeated reads (a remote source's fetched
    /// ranges): bytes read from here failed a check, and the next read must
    /// come from the origin. Returns whether anything was dropped.
    fn discard_cached(&self) -> bool {
        false
    }
}

/// The end of `[offset, offset + len)` when it lies inside a source of
/// `size` bytes; otherwise the `Truncated` error every source reports for
/// a read past its end, naming `what` was read.
pub fn checked_end(what: &'static str, offset: u64, len: usize, size: u64) -> Result<u64> {
    offset.checked_add(len as u64).filter(|&end| end <= size).ok_or(Error::Truncated {
        what,
        offset,
        needed: len as u64,
        available: size.saturating_sub(offset),
    })
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
            fn discard_cached(&self) -> bool {
                let $this = self;
                $inner.discard_cached()
            }
        }
    };
}

delegate_read_at!(impl<T> for &T => |this| &**this);
delegate_read_at!(#[cfg(feature = "alloc")] impl<> for alloc::vec::Vec<u8> => |this| this.as_slice());
delegate_read_at!(#[cfg(feature = "alloc")] impl<T> for alloc::sync::Arc<T> => |this| &**this);
