//! Linux only: `renameat2`, `sync_file_range`, `MADV_POPULATE_WRITE`, memfd.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// `renameat2(from, dest, flags)`. A path holding NUL is `InvalidInput`
/// (with no OS error code).
pub(super) fn renameat2(from: &Path, dest: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "path holds NUL"))
    };
    let (a, b) = (c_path(from)?, c_path(dest)?);
    // SAFETY: two NUL-terminated paths; renameat2 only reads them.
    let r = unsafe { libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), flags) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

pub(super) fn start_writeback(file: &File, offset: u64, len: u64) {
    if let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) {
        // SAFETY: a plain system call on an open descriptor.
        unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

pub(super) fn populate(buf: &mut [u8]) {
    const PAGE: usize = 4096;
    let (at, len) = (buf.as_mut_ptr() as usize, buf.len());
    let start = at.next_multiple_of(PAGE);
    let end = (at + len) & !(PAGE - 1);
    if end > start + (1 << 20) {
        // SAFETY: [start, end) lies inside `buf`, which is ours to write;
        // populating changes no byte of it.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_POPULATE_WRITE) };
    }
}

/// A new close-on-exec memfd that can be sealed.
pub(crate) fn memfd_create() -> std::io::Result<File> {
    // SAFETY: a NUL-terminated name and valid flags.
    let fd = unsafe { libc::memfd_create(c"hexz".as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned here alone.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

/// Seal a memfd against writes and resizing (and further seals).
pub(crate) fn memfd_seal(file: &File) -> std::io::Result<()> {
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl on an open descriptor.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
