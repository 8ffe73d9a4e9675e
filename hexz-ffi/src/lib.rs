//! The C ABI of Hexz. Only the ABI edge lives here: argument checks, panic
//! boundaries, status codes and borrowed views; the logic is hexz-format's.
#![allow(non_camel_case_types)]
#![allow(clippy::missing_safety_doc)]

mod gguf_api;
mod handle;
mod status;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::PathBuf;

pub use gguf_api::*;
pub use handle::hexz_archive;
use handle::{ArchiveHandle, FfiSource};
pub use status::hexz_status;
use status::{guard, FfiError};

use hexz_format::layout::source_format;

/// Major version of the library and the ABI; the soname is libhexz.so.MAJOR.
pub const HEXZ_VERSION_MAJOR: u32 = 0;
/// Minor version.
pub const HEXZ_VERSION_MINOR: u32 = 1;
/// Patch version.
pub const HEXZ_VERSION_PATCH: u32 = 0;
/// `(major << 16) | (minor << 8) | patch`, as hexz_version() returns.
pub const HEXZ_VERSION_NUMBER: u32 = (HEXZ_VERSION_MAJOR << 16) | (HEXZ_VERSION_MINOR << 8) | HEXZ_VERSION_PATCH;

/// Source format: a file that is neither safetensors nor GGUF.
pub const HEXZ_SOURCE_RAW: u32 = 0;
/// Source format: safetensors.
pub const HEXZ_SOURCE_SAFETENSORS: u32 = 1;
/// Source format: GGUF.
pub const HEXZ_SOURCE_GGUF: u32 = 2;
const _: () = assert!(
    HEXZ_SOURCE_RAW == source_format::RAW as u32
        && HEXZ_SOURCE_SAFETENSORS == source_format::SAFETENSORS as u32
        && HEXZ_SOURCE_GGUF == source_format::GGUF as u32
);

/// Compression for hexz_store: none.
pub const HEXZ_COMPRESSION_NONE: u32 = 0;
/// Compression for hexz_store: lz4.
pub const HEXZ_COMPRESSION_LZ4: u32 = 1;
/// Compression for hexz_store: zstd (level from hexz_store_options.level).
pub const HEXZ_COMPRESSION_ZSTD: u32 = 2;

/// ggml_type of tensors that do not come from GGUF.
pub const HEXZ_NO_GGML_TYPE: u32 = 0xFFFF_FFFF;

/// Read scratch slots allocated at open when hexz_open_options gives none.
pub const HEXZ_DEFAULT_READ_SLOTS: u32 = 4;

/// Options for opening an archive. Pass NULL for the defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_open_options {
    /// How many reads may run at once; each holds scratch allocated at open
    /// (see hexz_archive_info.memory_bytes). 0 means HEXZ_DEFAULT_READ_SLOTS; at most 256.
    pub read_slots: u32,
    /// When true, decoded blocks are not checked against their BLAKE3.
    pub skip_hash_check: bool,
    /// hexz_open_path only: an extra folder to look for parent archives in
    /// when they were moved (NUL-terminated), or NULL. Parents are found by
    /// the path their child records and confirmed by identity.
    pub parent_dir: *const c_char,
}

/// What an open archive holds.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_archive_info {
    /// HEXZ_SOURCE_RAW, HEXZ_SOURCE_SAFETENSORS or HEXZ_SOURCE_GGUF.
    pub source_format: u32,
    /// 1 when the archive names a parent archive.
    pub has_parent: u32,
    /// Length of the original file.
    pub original_size: u64,
    /// Length of the .hxz archive.
    pub archive_size: u64,
    pub tensor_count: u64,
    pub block_count: u64,
    /// Bytes the library holds for this archive (tables and read scratch).
    pub memory_bytes: u64,
    /// BLAKE3 identity of the archive.
    pub identity: [u8; 32],
    /// Identity of the parent archive (zero without a parent).
    pub parent_identity: [u8; 32],
    /// BLAKE3 of the original file.
    pub source_blake3: [u8; 32],
}

/// One tensor. Pointers are borrowed from the archive (valid until hexz_close).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_tensor_info {
    /// Tensor name, NUL-terminated (name_len bytes before the NUL).
    pub name: *const c_char,
    pub name_len: usize,
    /// dtype as the source names it ("F32", "BF16", "Q4_K", ...), NUL-terminated.
    pub dtype: *const c_char,
    pub dtype_len: usize,
    /// GGML type id for GGUF tensors, HEXZ_NO_GGML_TYPE otherwise.
    pub ggml_type: u32,
    /// Number of dimensions.
    pub n_dims: u32,
    /// n_dims dimensions as the source lists them (GGUF: ne[0] first).
    pub dims: *const u64,
    /// Offset of the tensor's bytes in the original file.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
    /// 0 stored, 1 deduplicated, 2 parent, 3 delta, 4 empty.
    pub storage_kind: u32,
}

/// Reads `len` bytes at `offset` of the archive into `buf`; returns 0 on
/// success, nonzero on failure (short reads are failures). Called from the
/// threads that read the archive, possibly at once.
pub type hexz_read_at_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int>;

/// Options for hexz_store. Pass NULL for the defaults (zstd at the default levels, 1 MiB blocks).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_store_options {
    /// HEXZ_COMPRESSION_NONE, _LZ4 or _ZSTD.
    pub compression: u32,
    /// zstd level 1..=22 for every block; 0 means the default: 3 for plain
    /// blocks, 1 for byte-grouped and delta blocks.
    pub level: i32,
    /// Block size in bytes, 4 KiB..=64 MiB (0 means 1 MiB).
    pub block_size: u32,
    /// Worker threads (0 means one per core).
    pub threads: u32,
    /// Path of the base (parent) archive to store against, or NULL. Tensors
    /// the base already holds are referenced; changed ones are stored as deltas.
    pub base: *const c_char,
}

/// What hexz_store did.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct hexz_store_report {
    pub source_size: u64,
    pub archive_size: u64,
    pub blocks: u64,
    pub deduplicated_blocks: u64,
    pub tensors: u64,
}

/// Runtime version: `(major << 16) | (minor << 8) | patch`. Compare with
/// HEXZ_VERSION_NUMBER to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn hexz_version() -> u32 {
    HEXZ_VERSION_NUMBER
}

/// Runtime version as a static NUL-terminated string, e.g. "0.1.0".
#[no_mangle]
pub extern "C" fn hexz_version_string() -> *const c_char {
    c"0.1.0".as_ptr()
}

/// A static, NUL-terminated description of a status code (never NULL).
#[no_mangle]
pub extern "C" fn hexz_status_str(status: u32) -> *const c_char {
    status::describe(status).as_ptr()
}

/// The message of the last failure on the calling thread, NUL-terminated;
/// valid until the next failing call on this thread. Empty when none.
#[no_mangle]
pub extern "C" fn hexz_last_error() -> *const c_char {
    status::last_error_ptr()
}

unsafe fn path_arg(path: *const c_char, what: &'static str) -> Result<PathBuf, FfiError> {
    if path.is_null() {
        return Err(FfiError::null(what));
    }
    let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes).map(PathBuf::from).map_err(|_| FfiError::invalid("path is not UTF-8"))
    }
}

unsafe fn finish_open(
    source: FfiSource,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> Result<(), FfiError> {
    let opts = if opts.is_null() { None } else { Some(unsafe { *opts }) };
    let handle = ArchiveHandle::open(source, opts)?;
    unsafe { *out = Box::into_raw(Box::new(hexz_archive(handle))) };
    Ok(())
}

/// Open the archive at `path` (NUL-terminated), with its parent chain when
/// it has one. `opts` may be NULL. On success `*out` holds a handle to
/// release with hexz_close.
#[no_mangle]
pub unsafe extern "C" fn hexz_open_path(
    path: *const c_char,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> hexz_status {
    guard(|| {
        let path = unsafe { path_arg(path, "path") }?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let mut search = Vec::new();
        if !opts.is_null() && !unsafe { (*opts).parent_dir }.is_null() {
            search.push(unsafe { path_arg((*opts).parent_dir, "parent_dir") }?);
        }
        let chain = hexz_format::chain::open_chain_with(&path, &search, &|p| {
            hexz_format::FileSource::open(p).map(FfiSource::File)
        })
        .map_err(|e| FfiError::format(e).context(&path))?;
        let opts = if opts.is_null() { None } else { Some(unsafe { *opts }) };
        let handle = ArchiveHandle::from_archive(chain.archive, opts).map_err(|e| e.context(&path))?;
        unsafe { *out = Box::into_raw(Box::new(hexz_archive(handle))) };
        Ok(())
    })
}

/// Open an archive held in memory. The `len` bytes at `data` are borrowed,
/// not copied: they must stay valid and unchanged until hexz_close. Parents
/// cannot be attached: reading blocks a parent holds gives
/// HEXZ_STATUS_PARENT_REQUIRED (the same holds for hexz_open_callbacks).
#[no_mangle]
pub unsafe extern "C" fn hexz_open_memory(
    data: *const u8,
    len: usize,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> hexz_status {
    guard(|| {
        if data.is_null() {
            return Err(FfiError::null("data"));
        }
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        let bytes: &'static [u8] = unsafe { std::slice::from_raw_parts(data, len) };
        unsafe { finish_open(FfiSource::Memory(bytes), opts, out) }
    })
}

/// Open an archive read through a caller callback (an engine's own file
/// layer). `size` is the archive's length; `user` is passed to every call
/// and must stay valid until hexz_close. The callback must be safe to call
/// from several threads at once if the archive is read from several threads.
#[no_mangle]
pub unsafe extern "C" fn hexz_open_callbacks(
    read_at: hexz_read_at_fn,
    size: u64,
    user: *mut c_void,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> hexz_status {
    guard(|| {
        let read_at = read_at.ok_or_else(|| FfiError::null("read_at"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        unsafe { finish_open(FfiSource::Callback { read_at, user, size }, opts, out) }
    })
}

/// Close an archive and free everything it holds. NULL is accepted. The
/// handle must not be in use by another thread.
#[no_mangle]
pub unsafe extern "C" fn hexz_close(archive: *mut hexz_archive) {
    if !archive.is_null() {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(unsafe { Box::from_raw(archive) })));
    }
}

pub(crate) unsafe fn handle<'a>(archive: *const hexz_archive) -> Result<&'a ArchiveHandle, FfiError> {
    if archive.is_null() {
        return Err(FfiError::null("archive"));
    }
    Ok(&unsafe { &*archive }.0)
}

pub(crate) unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::null("out"));
    }
    unsafe { out.write(value) };
    Ok(())
}

/// Fill `*out` with what the archive holds.
#[no_mangle]
pub unsafe extern "C" fn hexz_archive_get_info(
    archive: *const hexz_archive,
    out: *mut hexz_archive_info,
) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        unsafe { write_out(out, h.info()) }
    })
}

/// Number of tensors (0 for raw files).
#[no_mangle]
pub unsafe extern "C" fn hexz_tensor_count(archive: *const hexz_archive, out_count: *mut usize) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        unsafe { write_out(out_count, h.tensors.len()) }
    })
}

/// Index of the tensor called `name` (NUL-terminated), or HEXZ_STATUS_NOT_FOUND.
#[no_mangle]
pub unsafe extern "C" fn hexz_find_tensor(
    archive: *const hexz_archive,
    name: *const c_char,
    out_index: *mut usize,
) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        if name.is_null() {
            return Err(FfiError::null("name"));
        }
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let index = h.find_tensor(name).ok_or_else(|| FfiError::not_found("no tensor with that name"))?;
        unsafe { write_out(out_index, index) }
    })
}

/// Describe tensor `index` (0 ≤ index < hexz_tensor_count).
#[no_mangle]
pub unsafe extern "C" fn hexz_tensor_get_info(
    archive: *const hexz_archive,
    index: usize,
    out: *mut hexz_tensor_info,
) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        let t = h.tensors.get(index).ok_or_else(|| FfiError::invalid("tensor index out of range"))?;
        unsafe { write_out(out, t.info()) }
    })
}

/// Read tensor `index` into `buf` (`buf_len` bytes). On success `*out_len`
/// is the tensor's length. When `buf_len` is too small the status is
/// HEXZ_STATUS_BUFFER_TOO_SMALL and `*out_len` (if not NULL) is set to the
/// length needed; `buf` may then be NULL with `buf_len` 0, to query it.
#[no_mangle]
pub unsafe extern "C" fn hexz_read_tensor(
    archive: *const hexz_archive,
    index: usize,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        let t = h.tensors.get(index).ok_or_else(|| FfiError::invalid("tensor index out of range"))?;
        let len = usize::try_from(t.length).map_err(|_| FfiError::invalid("tensor larger than the address space"))?;
        if buf_len < len {
            if !out_len.is_null() {
                unsafe { out_len.write(len) };
            }
            return Err(FfiError::format(hexz_format::Error::BufferTooSmall {
                what: "tensor buffer",
                needed: len as u64,
                got: buf_len as u64,
            }));
        }
        if buf.is_null() && len > 0 {
            return Err(FfiError::null("buf"));
        }
        if out_len.is_null() {
            return Err(FfiError::null("out_len"));
        }
        if len > 0 {
            let dst = unsafe { std::slice::from_raw_parts_mut(buf, len) };
            h.read(t.offset, dst)?;
        }
        unsafe { out_len.write(len) };
        Ok(())
    })
}

/// Read bytes [offset, offset + len) of the original file into `buf`.
#[no_mangle]
pub unsafe extern "C" fn hexz_read_range(
    archive: *const hexz_archive,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        if len == 0 {
            return Ok(());
        }
        if buf.is_null() {
            return Err(FfiError::null("buf"));
        }
        let dst = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        h.read(offset, dst)
    })
}

/// The original file's own header, verbatim (safetensors: 8-byte length and
/// JSON; GGUF: everything before the tensor data; raw files: empty). Borrowed.
#[no_mangle]
pub unsafe extern "C" fn hexz_source_header(
    archive: *const hexz_archive,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        if out_data.is_null() || out_len.is_null() {
            return Err(FfiError::null("out_data/out_len"));
        }
        unsafe {
            out_data.write(h.source_header.as_ptr());
            out_len.write(h.source_header.len());
        }
        Ok(())
    })
}

/// Linux: create an anonymous in-memory file (memfd) holding the whole
/// original file, for engines that only accept a path: pass
/// "/proc/self/fd/N". The caller owns the descriptor and closes it. Uses as
/// much memory as the original file. Elsewhere: HEXZ_STATUS_UNSUPPORTED.
#[no_mangle]
pub unsafe extern "C" fn hexz_memfd(archive: *const hexz_archive, out_fd: *mut c_int) -> hexz_status {
    guard(|| {
        let h = unsafe { handle(archive) }?;
        if out_fd.is_null() {
            return Err(FfiError::null("out_fd"));
        }
        let fd = h.memfd()?;
        unsafe { out_fd.write(fd) };
        Ok(())
    })
}

/// Store the file at `src` into a new archive at `dst` (replaced atomically
/// when complete). `opts` and `out_report` may be NULL.
#[no_mangle]
pub unsafe extern "C" fn hexz_store(
    src: *const c_char,
    dst: *const c_char,
    opts: *const hexz_store_options,
    out_report: *mut hexz_store_report,
) -> hexz_status {
    guard(|| {
        let src = unsafe { path_arg(src, "src") }?;
        let dst = unsafe { path_arg(dst, "dst") }?;
        let mut options = hexz_format::writer::StoreOptions::default();
        let mut base = None;
        if !opts.is_null() {
            let o = unsafe { *opts };
            if !o.base.is_null() {
                base = Some(unsafe { path_arg(o.base, "base") }?);
            }
            options.compression = match o.compression {
                HEXZ_COMPRESSION_NONE => hexz_format::Compression::None,
                HEXZ_COMPRESSION_LZ4 => hexz_format::Compression::Lz4,
                HEXZ_COMPRESSION_ZSTD => {
                    if o.level == 0 {
                        hexz_format::Compression::DEFAULT
                    } else {
                        hexz_format::Compression::zstd(o.level.clamp(1, 22))
                    }
                }
                _ => return Err(FfiError::invalid("unknown compression")),
            };
            if o.block_size != 0 {
                options.block_size = o.block_size;
            }
            options.threads = o.threads as usize;
        }
        let search: Vec<PathBuf> = Vec::new();
        let report =
            hexz_format::writer::store_file(&src, &dst, &options, base.as_deref().map(|b| (b, &search[..])), &|_| {})
                .map_err(|e| FfiError::format(e).context(&src))?;
        if !out_report.is_null() {
            unsafe {
                out_report.write(hexz_store_report {
                    source_size: report.source_size,
                    archive_size: report.archive_size,
                    blocks: report.blocks,
                    deduplicated_blocks: report.deduplicated_blocks,
                    tensors: report.tensors as u64,
                })
            };
        }
        Ok(())
    })
}

/// Verify the archive at `path` and its parent chain, if any; with `deep`,
/// decode every block and check every hash. HEXZ_STATUS_OK when sound; HEXZ_STATUS_VERIFY_FAILED when
/// problems were found, with `*out_problems` (if not NULL) set to their
/// number and hexz_last_error() naming the first.
#[no_mangle]
pub unsafe extern "C" fn hexz_verify(path: *const c_char, deep: bool, out_problems: *mut usize) -> hexz_status {
    guard(|| {
        let path = unsafe { path_arg(path, "path") }?;
        let report = hexz_format::verify::verify_file(&path, deep, &[], &|_, _| {});
        if !out_problems.is_null() {
            unsafe { out_problems.write(report.problems.len()) };
        }
        match report.problems.first() {
            None => Ok(()),
            Some(p) => Err(FfiError::verify_failed(format!(
                "{}: {} problem(s); first: {}: {}",
                path.display(),
                report.problems.len(),
                p.location,
                p.message
            ))),
        }
    })
}
