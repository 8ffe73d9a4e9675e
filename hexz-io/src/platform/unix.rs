//! Every Unix (Linux included): positioned I/O, modes, device and inode.

use std::fs::File;
use std::path::Path;

use crate::location::FileId;

/// No early writeback off Linux: the final `fsync` does all the waiting.
#[cfg(not(target_os = "linux"))]
pub(super) fn start_writeback(_: &File, _: u64, _: u64) {}

/// No page pre-faulting off Linux.
#[cfg(not(target_os = "linux"))]
pub(super) fn populate(_: &mut [u8]) {}

/// Read exactly `buf.len()` bytes at `offset` (`pread`).
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

/// Write all of `data` at `offset` (`pwrite`).
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, data, offset)
}

/// Open without blocking on a FIFO (`O_NONBLOCK`, which reads of regular
/// files ignore).
pub(crate) fn no_block_on_open(options: &mut std::fs::OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.custom_flags(libc::O_NONBLOCK);
}

/// Device and inode of an open file.
pub(crate) fn file_id(file: &File) -> Option<FileId> {
    file.metadata().ok().map(|meta| id_of(&meta))
}

/// Device and inode of the file at `path` (following symlinks), without
/// opening it (a FIFO would block).
pub(crate) fn file_id_of_path(path: &Path) -> Option<FileId> {
    std::fs::metadata(path).ok().map(|meta| id_of(&meta))
}

fn id_of(meta: &std::fs::Metadata) -> FileId {
    use std::os::unix::fs::MetadataExt;
    FileId { dev: meta.dev(), ino: meta.ino() }
}

/// The permission bits (with setuid, setgid, sticky) a folder archive records.
pub(crate) fn mode_of(meta: &std::fs::Metadata) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

/// Give an extracted file or folder its recorded permission bits (a folder
/// keeps its owner's rwx, so it can be entered and changed again).
pub(crate) fn set_mode(path: &Path, mode: u32, is_dir: bool) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = mode & 0o777;
    let mode = if is_dir { mode | 0o700 } else { mode };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
