//! The operating system, behind one API: every Linux-only or Unix-only
//! call hexz-io makes lives here, each with a portable fallback, so the
//! rest of the crate (and every front end above it) builds on Linux,
//! macOS and the BSDs, and Windows alike.
//!
//! | facility | Linux | other Unix (macOS, BSD) | Windows |
//! | --- | --- | --- | --- |
//! | positioned read/write | `pread`/`pwrite` | same | `ReadFile`/`WriteFile` at an offset (moves the file pointer, which hexz never uses) |
//! | no-replace rename of a folder | `renameat2(RENAME_NOREPLACE)` | check, then `rename` (racy, see [`rename_noreplace`]) | check, then `MoveFileExW` without replace (refuses an existing file) |
//! | atomic swap of a folder | `renameat2(RENAME_EXCHANGE)` | remove, then rename | remove, then rename |
//! | early writeback | `sync_file_range` | none (the final `fsync` waits for all) | none |
//! | page pre-faulting | `MADV_POPULATE_WRITE` | none | none |
//! | sealed in-memory file | `memfd_create` + seals | none: `Unsupported` | none: `Unsupported` |
//! | file identity (input = output check) | device + inode | device + inode | volume serial + file index |
//! | file modes in folder archives | all 12 bits | all 12 bits | read-only attribute only (stored as 0o444/0o644, 0o755 for folders) |
//! | opening never blocks on a FIFO | `O_NONBLOCK` | `O_NONBLOCK` | no FIFOs in the file system |
//!
//! Files written atomically (hexz-io's `AtomicFile`) rename through
//! tempfile's `persist_noclobber`: `renameat2`/`link` on Unix,
//! `MoveFileExW` without `MOVEFILE_REPLACE_EXISTING` on Windows; both
//! refuse an existing destination atomically.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(target_os = "linux")]
use linux as os;
#[cfg(target_os = "linux")]
pub(crate) use linux::{memfd_create, memfd_seal};
#[cfg(all(unix, not(target_os = "linux")))]
use unix as os;
#[cfg(unix)]
pub(crate) use unix::{file_id, file_id_of_path, mode_of, no_block_on_open, read_exact_at, set_mode, write_all_at};
#[cfg(windows)]
use windows as os;
#[cfg(windows)]
pub(crate) use windows::{file_id, file_id_of_path, mode_of, no_block_on_open, read_exact_at, set_mode, write_all_at};

use std::fs::File;
use std::path::Path;

/// Permissions of a new file made through tempfile: on Unix 0o666, to
/// which the kernel applies the umask as for any new file (tempfile's own
/// default is 0o600). Nothing to set on Windows.
pub(crate) fn new_file_permissions(builder: &mut tempfile::Builder<'_, '_>) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    #[cfg(not(unix))]
    let _ = builder;
}

/// Ask the OS to start writing `[offset, offset + len)` of `file` to disk
/// now, without waiting (Linux: `sync_file_range`), so a final `fsync`
/// waits only for the tail. Only advice: elsewhere it does nothing, and
/// errors are the `fsync`'s to report.
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    os::start_writeback(file, offset, len)
}

/// Fault in the whole pages of `buf` with one call before a decoder writes
/// them (Linux: `MADV_POPULATE_WRITE`). Only advice: nothing elsewhere, and
/// no byte changes.
pub(crate) fn populate(buf: &mut [u8]) {
    os::populate(buf)
}

/// Rename `from` to `dest` unless `dest` exists.
///
/// Linux: one `renameat2(RENAME_NOREPLACE)`, atomic. Where the file system
/// or kernel lacks it, and on every other system, the fallback checks that
/// `dest` is absent and then renames: a `dest` created by another process
/// between the check and the rename is replaced on Unix (`rename` replaces
/// an empty folder or a file), which is the documented race of the
/// fallback. On Windows `MoveFileExW` (std's `rename`) refuses an existing
/// folder, so only an existing *file* there can be lost to the race.
pub(crate) fn rename_noreplace(from: &Path, dest: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match linux::renameat2(from, dest, libc::RENAME_NOREPLACE) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOSYS) => {}
        done => return done,
    }
    if std::fs::symlink_metadata(dest).is_ok() {
        return Err(std::io::Error::from(std::io::ErrorKind::AlreadyExists));
    }
    std::fs::rename(from, dest)
}

/// Swap `from` and `dest` atomically (Linux: `renameat2(RENAME_EXCHANGE)`);
/// `Ok(false)` where the system or file system cannot (the caller removes
/// `dest` and renames: not atomic, a reader may see no `dest` in between).
pub(crate) fn rename_exchange(from: &Path, dest: &Path) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    match linux::renameat2(from, dest, libc::RENAME_EXCHANGE) {
        Ok(()) => return Ok(true),
        // A path the OS cannot be given (it holds NUL).
        Err(e) if e.raw_os_error().is_none() => return Err(e),
        // Not supported here (or no `dest` to swap with): the fallback.
        Err(_) => {}
    }
    let _ = (from, dest);
    Ok(false)
}
