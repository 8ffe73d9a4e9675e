//! Windows: positioned I/O through `seek_read`/`seek_write`, identity by
//! volume serial and file index, the read-only attribute as the mode.

use std::fs::File;
use std::path::Path;

use crate::location::FileId;

/// No early writeback on Windows: the final flush does all the waiting.
pub(super) fn start_writeback(_: &File, _: u64, _: u64) {}

/// No page pre-faulting on Windows.
pub(super) fn populate(_: &mut [u8]) {}

/// Read exactly `buf.len()` bytes at `offset` (`ReadFile` with an offset;
/// it moves the file pointer, which hexz never uses).
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0usize;
    while done < buf.len() {
        match file.seek_read(&mut buf[done..], offset + done as u64) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Write all of `data` at `offset` (`WriteFile` with an offset).
pub(crate) fn write_all_at(file: &File, data: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::windows::fs::FileExt;
    let mut done = 0usize;
    while done < data.len() {
        match file.seek_write(&data[done..], offset + done as u64) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Nothing to do: Windows file systems have no FIFOs to block on.
pub(crate) fn no_block_on_open(_: &mut std::fs::OpenOptions) {}

/// Volume serial number and 64-bit file index of an open file
/// (`GetFileInformationByHandle`), what Windows has for device and inode.
pub(crate) fn file_id(file: &File) -> Option<FileId> {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Storage::FileSystem::{GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION};
    // SAFETY: a plain-data struct, all zeros is valid.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: an open handle and a struct to fill.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return None;
    }
    let index = (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow);
    Some(FileId { dev: u64::from(info.dwVolumeSerialNumber), ino: index })
}

/// The identity of the file or folder at `path`, opened for attributes
/// only (no read or write access; folders need backup semantics).
pub(crate) fn file_id_of_path(path: &Path) -> Option<FileId> {
    use std::os::windows::fs::OpenOptionsExt;
    const FILE_FLAG_BACKUP_SEMANTICS: u32 = 0x0200_0000;
    let file = std::fs::OpenOptions::new().access_mode(0).custom_flags(FILE_FLAG_BACKUP_SEMANTICS).open(path).ok()?;
    file_id(&file)
}

/// Windows has no permission bits: a folder archive records 0o444 for a
/// read-only file, 0o644 for another, 0o755 for a folder.
pub(crate) fn mode_of(meta: &std::fs::Metadata) -> u32 {
    if meta.is_dir() {
        0o755
    } else if meta.permissions().readonly() {
        0o444
    } else {
        0o644
    }
}

/// Only the read-only attribute of files: set when the recorded mode has
/// no write bit. Folders keep theirs (the attribute means something else
/// there); execute, group and other bits have no equivalent.
pub(crate) fn set_mode(path: &Path, mode: u32, is_dir: bool) -> std::io::Result<()> {
    if is_dir {
        return Ok(());
    }
    let mut permissions = std::fs::metadata(path)?.permissions();
    permissions.set_readonly(mode & 0o222 == 0);
    std::fs::set_permissions(path, permissions)
}
