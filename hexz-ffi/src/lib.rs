//! The C ABI of Hexz. Only the ABI edge lives here: argument checks, panic
//! boundaries, status codes and borrowed views; the logic is hexz-io's and
//! hexz-format's. Modules: `status` (panic boundary, last error), `args`
//! (argument helpers), `tables` (what a handle holds, built at open); the
//! extern functions (here and in `gguf`) depend only on those.
#![allow(non_camel_case_types)]
// The safety contract of every extern function is the header's: pointers are NULL or
// valid as its comments state, handles are live. Internal unsafe helpers say theirs.
#![allow(clippy::missing_safety_doc)]

mod args;
mod gguf;
mod status;
mod stream;
mod tables;

use std::ffi::{c_char, c_int, c_void};
use std::path::PathBuf;
use std::sync::Arc;

pub use gguf::*;
use hexz_format::SourceFormat;
pub use hexz_format::{Category, ErrorCode};
use hexz_io::options::CompressionKind;
use hexz_io::{Location, OpenOptions, Reader};
pub use stream::*;

use args::{
    borrowed_bytes, buffer, check_sized_optional, cstr, handle, path_arg, read_options, write_optional, write_out,
    write_sized, write_sized_optional, OutputStruct, Versioned,
};
use status::{guard, FfiError};
use tables::{ArchiveHandle, CallbackSource};

/// The version of this library, from this crate's Cargo.toml, the one
/// source: the header's HEXZ_VERSION_* macros are generated from the same
/// line (scripts/gen-header.sh), and the artifact packages take the
/// soname's major from it.
const VERSION_MAJOR: u32 = version_part(env!("CARGO_PKG_VERSION_MAJOR"));
const VERSION_MINOR: u32 = version_part(env!("CARGO_PKG_VERSION_MINOR"));
const VERSION_PATCH: u32 = version_part(env!("CARGO_PKG_VERSION_PATCH"));
const VERSION_NUMBER: u32 = (VERSION_MAJOR << 16) | (VERSION_MINOR << 8) | VERSION_PATCH;
const VERSION_STRING: &std::ffi::CStr =
    match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(text) => text,
        Err(_) => panic!("the crate version has a NUL"),
    };
// hexz_version() packs minor and patch in 8 bits each.
const _: () = assert!(VERSION_MINOR < 256 && VERSION_PATCH < 256);

/// A decimal version component, at compile time.
const fn version_part(text: &str) -> u32 {
    let bytes = text.as_bytes();
    let mut value = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        assert!(bytes[i].is_ascii_digit(), "a version component is a decimal number");
        value = value * 10 + (bytes[i] - b'0') as u32;
        i += 1;
    }
    value
}

/// Source format: a file that is neither safetensors nor GGUF.
pub const HEXZ_SOURCE_RAW: u32 = 0;
/// Source format: safetensors.
pub const HEXZ_SOURCE_SAFETENSORS: u32 = 1;
/// Source format: GGUF.
pub const HEXZ_SOURCE_GGUF: u32 = 2;
/// Source format of a folder archive (format 1.1): files laid end to end; see hexz_file_count.
pub const HEXZ_SOURCE_FOLDER: u32 = 3;
const _: () = assert!(
    HEXZ_SOURCE_RAW == SourceFormat::Raw as u32
        && HEXZ_SOURCE_SAFETENSORS == SourceFormat::Safetensors as u32
        && HEXZ_SOURCE_GGUF == SourceFormat::Gguf as u32
        && HEXZ_SOURCE_FOLDER == SourceFormat::Folder as u32
);

/// File kind: a regular file.
pub const HEXZ_FILE_REGULAR: u32 = 0;
/// File kind: a directory (listed so that empty ones are kept; no bytes).
pub const HEXZ_FILE_DIRECTORY: u32 = 1;
const _: () = assert!(
    HEXZ_FILE_REGULAR == hexz_format::layout::FileKind::File as u32
        && HEXZ_FILE_DIRECTORY == hexz_format::layout::FileKind::Directory as u32
);

/// How a tensor's bytes are held (hexz_tensor_info.storage_kind): at least
/// one block stored in this archive.
pub const HEXZ_STORAGE_STORED: u32 = 0;
/// Storage kind: every block duplicates bytes stored elsewhere in this archive.
pub const HEXZ_STORAGE_DEDUPLICATED: u32 = 1;
/// Storage kind: every block is referenced from the parent chain.
pub const HEXZ_STORAGE_PARENT: u32 = 2;
/// Storage kind: at least one block is a delta against the parent.
pub const HEXZ_STORAGE_DELTA: u32 = 3;
/// Storage kind: a zero-length tensor (no blocks).
pub const HEXZ_STORAGE_EMPTY: u32 = 4;
const _: () = {
    use hexz_format::layout::StorageKind;
    assert!(
        HEXZ_STORAGE_STORED == StorageKind::Stored as u32
            && HEXZ_STORAGE_DEDUPLICATED == StorageKind::Deduplicated as u32
            && HEXZ_STORAGE_PARENT == StorageKind::Parent as u32
            && HEXZ_STORAGE_DELTA == StorageKind::Delta as u32
            && HEXZ_STORAGE_EMPTY == StorageKind::Empty as u32
    )
};

/// Compression for hexz_store: zstd, the default (level from hexz_store_options.level).
pub const HEXZ_COMPRESSION_ZSTD: u32 = 0;
/// Compression for hexz_store: lz4.
pub const HEXZ_COMPRESSION_LZ4: u32 = 1;
/// Compression for hexz_store: none.
pub const HEXZ_COMPRESSION_NONE: u32 = 2;

/// Chunking for hexz_store: content-defined cuts of raw files (FastCDC), the default.
pub const HEXZ_CHUNKING_CONTENT_DEFINED: u32 = 0;
/// Chunking for hexz_store: fixed-size blocks everywhere.
pub const HEXZ_CHUNKING_FIXED: u32 = 1;

/// ggml_type of tensors that do not come from GGUF.
pub const HEXZ_NO_GGML_TYPE: u32 = 0xFFFF_FFFF;

/// Read slots when hexz_open_options gives none.
pub const HEXZ_DEFAULT_READ_SLOTS: u32 = 4;
/// Cap on directory, manifest and source-header memory when hexz_open_options gives none: 256 MiB.
pub const HEXZ_DEFAULT_MAX_METADATA_BYTES: u64 = 256 << 20;
/// Cap on read scratch memory when hexz_open_options gives none: 256 MiB.
pub const HEXZ_DEFAULT_MEMORY_BUDGET: u64 = 256 << 20;

// The header states hexz-io's defaults (cbindgen needs literals): kept equal here.
const _: () = {
    use hexz_io::options as o;
    assert!(
        HEXZ_DEFAULT_READ_SLOTS as usize == o::DEFAULT_READ_SLOTS
            && HEXZ_DEFAULT_MAX_METADATA_BYTES == o::DEFAULT_MAX_METADATA_BYTES
            && HEXZ_DEFAULT_MEMORY_BUDGET == o::DEFAULT_MEMORY_BUDGET as u64
    )
};

/// Opaque handle to an open archive.
pub struct hexz_archive(ArchiveHandle);

/// Options for opening an archive. Initialize with HEXZ_OPEN_OPTIONS_INIT
/// (it sets struct_size, so the struct can grow in later versions), then
/// set fields; every 0 or NULL means the default. Pass NULL for all defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_open_options {
    /// sizeof(hexz_open_options) as the caller compiled it (set by the _INIT macro).
    pub struct_size: usize,
    /// How many reads may run at once; 0 means HEXZ_DEFAULT_READ_SLOTS; at
    /// most 256. Each holds scratch allocated on first use; memory_budget
    /// lowers the number when the scratch would not fit. Open decodes a
    /// source header of 4 MiB or more (a GGUF tokenizer's vocabulary) on up
    /// to this many threads, at most one per core, joined before it
    /// returns; 1 keeps open on the calling thread.
    pub read_slots: u32,
    /// Nonzero: decoded blocks are not checked against their BLAKE3. This
    /// also skips the check of the blocks holding the GGUF or safetensors
    /// header, so metadata from a corrupt archive is not detected either.
    pub skip_hash_check: u32,
    /// hexz_open_path only: an extra folder to look for parent archives in
    /// when they were moved (NUL-terminated), or NULL.
    pub parent_dir: *const c_char,
    /// Archives already open (from any source) that the chain may use,
    /// matched by identity before any path is tried; needed to open a child
    /// from memory or callbacks. They must stay open until this one is closed.
    pub parents: *const *const hexz_archive,
    /// Number of entries in `parents`.
    pub parent_count: usize,
    /// Cap on the directory, manifest and source header held in memory; 0
    /// means HEXZ_DEFAULT_MAX_METADATA_BYTES. Over it, opening fails with
    /// HEXZ_STATUS_LIMIT_EXCEEDED.
    pub max_metadata_bytes: u64,
    /// Cap on read scratch memory (all slots); 0 means HEXZ_DEFAULT_MEMORY_BUDGET.
    pub memory_budget: u64,
    /// (1.2) Public keys the archive must be signed by, any one of them:
    /// each a NUL-terminated minisign public key, the key file's text or
    /// its base64 line alone. NULL with trusted_key_count 0: no signature
    /// is required. Otherwise opening refuses, with HEXZ_STATUS_SIGNATURE
    /// and before returning any byte, an archive that is not signed by one
    /// of these keys or has changed since it was signed; its blocks, index,
    /// manifest and parents are then authenticated as they are read (spec
    /// section 15). A key that does not parse gives INVALID_ARGUMENT.
    pub trusted_keys: *const *const c_char,
    /// (1.2) Number of entries in `trusted_keys`, at most 1024.
    pub trusted_key_count: usize,
    /// (1.3) Paths (NUL-terminated) of age X25519 identity files that may
    /// open an encrypted archive (format 1.5, spec section 16): the
    /// `AGE-SECRET-KEY-1...` lines of each file, as `age-keygen` or
    /// `hexz keygen --x25519` write them (blank lines and `#` comments
    /// skipped). Read once, during the open. A file that cannot be read or
    /// holds no identity (a recipient, `age1...`, say) gives IO or
    /// INVALID_ARGUMENT. NULL with identity_file_count 0: none.
    pub identity_files: *const *const c_char,
    /// (1.3) Number of entries in `identity_files`, at most 1024.
    pub identity_file_count: usize,
    /// (1.3) A passphrase that may open an encrypted archive: its bytes,
    /// exactly (no NUL needed, none stripped, no line break removed), or
    /// NULL with passphrase_len 0 for none. The library copies it for the
    /// open only and wipes its copy before returning; the caller's buffer
    /// is not kept. Opening an encrypted archive (and its parents, which
    /// share its key) with neither an identity nor a passphrase gives
    /// HEXZ_STATUS_KEY_REQUIRED; with keys none of which opens it,
    /// HEXZ_STATUS_WRONG_KEY. A plain archive opens as before (the keys
    /// are not used). Damaged ciphertext is HEXZ_STATUS_DECRYPT when read.
    pub passphrase: *const u8,
    /// (1.3) Length of `passphrase` in bytes, at most 65536.
    pub passphrase_len: usize,
}

// SAFETY: repr(C), starts with usize struct_size, integers and pointers only.
unsafe impl Versioned for hexz_open_options {
    fn defaults() -> Self {
        hexz_open_options {
            struct_size: std::mem::size_of::<Self>(),
            read_slots: 0,
            skip_hash_check: 0,
            parent_dir: std::ptr::null(),
            parents: std::ptr::null(),
            parent_count: 0,
            max_metadata_bytes: 0,
            memory_budget: 0,
            trusted_keys: std::ptr::null(),
            trusted_key_count: 0,
            identity_files: std::ptr::null(),
            identity_file_count: 0,
            passphrase: std::ptr::null(),
            passphrase_len: 0,
        }
    }
}

/// What an open archive holds. Initialize with HEXZ_ARCHIVE_INFO_INIT (it
/// sets struct_size; see "Output structs" at the top).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_archive_info {
    /// In: sizeof(hexz_archive_info) as the caller compiled it. Out: the
    /// bytes the library filled.
    pub struct_size: usize,
    /// HEXZ_SOURCE_RAW, _SAFETENSORS, _GGUF, or _FOLDER for a folder
    /// archive (format 1.1; its files: hexz_file_count).
    pub source_format: u32,
    /// 1 when the archive names a parent archive.
    pub has_parent: u32,
    /// Length of the original file.
    pub original_size: u64,
    /// Length of the .hxz archive.
    pub archive_size: u64,
    /// Number of tensors (as hexz_tensor_count).
    pub tensor_count: u64,
    /// Number of blocks in the archive's index.
    pub block_count: u64,
    /// Bytes the library holds for this archive now (tables, metadata, read scratch in use).
    pub memory_bytes: u64,
    /// BLAKE3 identity of the archive.
    pub identity: [u8; 32],
    /// Identity of the parent archive (zero without a parent).
    pub parent_identity: [u8; 32],
    /// BLAKE3 of the original file.
    pub source_blake3: [u8; 32],
}

/// One tensor. Pointers are borrowed from the archive (valid until
/// hexz_close). Initialize with HEXZ_TENSOR_INFO_INIT (it sets struct_size;
/// see "Output structs" at the top).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_tensor_info {
    /// In: sizeof(hexz_tensor_info) as the caller compiled it. Out: the
    /// bytes the library filled.
    pub struct_size: usize,
    /// Tensor name, NUL-terminated (name_len bytes before the NUL).
    pub name: *const c_char,
    /// Length of `name` in bytes, without the NUL.
    pub name_len: usize,
    /// dtype as the source names it ("F32", "BF16", "Q4_K", ...), NUL-terminated.
    pub dtype: *const c_char,
    /// Length of `dtype` in bytes, without the NUL.
    pub dtype_len: usize,
    /// GGML type id for GGUF tensors, HEXZ_NO_GGML_TYPE otherwise.
    pub ggml_type: u32,
    /// Number of dimensions.
    pub n_dims: u32,
    /// n_dims dimensions as the source lists them (GGUF: ne[0] first); NULL when n_dims is 0.
    pub dims: *const u64,
    /// Offset of the tensor's bytes in the original file.
    pub offset: u64,
    /// Byte length.
    pub length: u64,
    /// How its bytes are held: HEXZ_STORAGE_STORED, _DEDUPLICATED, _PARENT,
    /// _DELTA or _EMPTY.
    pub storage_kind: u32,
}

/// One file of a folder archive. `path` is borrowed from the archive
/// (valid until hexz_close). Initialize with HEXZ_FILE_INFO_INIT (it sets
/// struct_size; see "Output structs" at the top).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_file_info {
    /// In: sizeof(hexz_file_info) as the caller compiled it. Out: the
    /// bytes the library filled.
    pub struct_size: usize,
    /// Relative path with `/` separators, NUL-terminated (path_len bytes before the NUL).
    pub path: *const c_char,
    /// Length of `path` in bytes, without the NUL.
    pub path_len: usize,
    /// HEXZ_FILE_REGULAR or HEXZ_FILE_DIRECTORY.
    pub kind: u32,
    /// HEXZ_SOURCE_RAW, _SAFETENSORS or _GGUF: what the file is.
    pub source_format: u32,
    /// Where the file's bytes start in the archive's virtual space (the
    /// space hexz_read_range reads and tensor offsets point into).
    pub offset: u64,
    /// Bytes of the file (0 for a directory).
    pub length: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time in nanoseconds since the Unix epoch; 0 when unknown.
    pub mtime_ns: i64,
}

// SAFETY (all four): repr(C), struct_size first, filled by the library.
unsafe impl OutputStruct for hexz_archive_info {}
unsafe impl OutputStruct for hexz_tensor_info {}
unsafe impl OutputStruct for hexz_file_info {}
unsafe impl OutputStruct for hexz_store_report {}

/// Reads `len` bytes (never 0) at `offset` of the archive into `buf`;
/// returns 0 on success, nonzero on failure (short reads are failures).
/// Called from the library's threads and the host's, several at once
/// unless read_slots is 1 (see hexz_open_callbacks). It must not call back
/// into the same archive (that may wait forever for a read slot).
pub type hexz_read_at_fn =
    Option<unsafe extern "C" fn(user: *mut c_void, offset: u64, buf: *mut u8, len: usize) -> c_int>;

/// Options for hexz_store. Initialize with HEXZ_STORE_OPTIONS_INIT, then
/// set fields; every 0 or NULL means the default (zstd at the default
/// levels, 1 MiB blocks, one thread per core). Pass NULL for all defaults.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_store_options {
    /// sizeof(hexz_store_options) as the caller compiled it (set by the _INIT macro).
    pub struct_size: usize,
    /// HEXZ_COMPRESSION_ZSTD (0, the default), _LZ4 or _NONE.
    pub compression: u32,
    /// zstd level 1..=22 for every block; 0 means the default: 3 for plain
    /// blocks, 1 for byte-grouped and delta blocks, 2 for quantized GGML
    /// blocks split into their fields. Only with zstd.
    pub level: i32,
    /// Block size in bytes, 4 KiB..=64 MiB (0 means 1 MiB).
    pub block_size: u32,
    /// Worker threads, at most 256 (0 means one per core).
    pub threads: u32,
    /// Path of the base (parent) archive to store against, or NULL. Tensors
    /// the base already holds are referenced; changed ones are stored as deltas.
    pub base: *const c_char,
    /// An extra folder to look for the base's own parents in, or NULL.
    pub parent_dir: *const c_char,
    /// Nonzero: refuse (HEXZ_STATUS_INVALID_ARGUMENT) when `dst` exists,
    /// atomically; zero: replace it atomically.
    pub no_clobber: u32,
    /// How bytes without tensors (raw files) are cut: HEXZ_CHUNKING_CONTENT_DEFINED
    /// (0, the default) or HEXZ_CHUNKING_FIXED.
    pub chunking: u32,
    /// The URL to store the archive to (s3://bucket/key.hxz), instead of
    /// `dst` (which must then be NULL), or NULL. The upload completes only
    /// when the archive is whole; on failure no object appears. Endpoint,
    /// region and credentials come from the standard AWS variables. Needs
    /// libhexz-remote (libhexz gives HEXZ_STATUS_UNSUPPORTED). Since 1.1.
    pub url: *const c_char,
}

// SAFETY: repr(C), starts with usize struct_size, integers and pointers only.
unsafe impl Versioned for hexz_store_options {
    fn defaults() -> Self {
        hexz_store_options {
            struct_size: std::mem::size_of::<Self>(),
            compression: 0,
            level: 0,
            block_size: 0,
            threads: 0,
            base: std::ptr::null(),
            parent_dir: std::ptr::null(),
            no_clobber: 0,
            chunking: 0,
            url: std::ptr::null(),
        }
    }
}

/// What hexz_store did. Initialize with HEXZ_STORE_REPORT_INIT (it sets
/// struct_size; see "Output structs" at the top).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct hexz_store_report {
    /// In: sizeof(hexz_store_report) as the caller compiled it. Out: the
    /// bytes the library filled.
    pub struct_size: usize,
    /// Bytes of the source (a folder: of its files together).
    pub source_size: u64,
    /// Bytes of the archive written.
    pub archive_size: u64,
    /// Blocks in the archive's index.
    pub blocks: u64,
    /// Blocks whose bytes were already stored in this archive.
    pub deduplicated_blocks: u64,
    /// Tensors found in the source.
    pub tensors: u64,
    /// Blocks referenced from the base's chain.
    pub parent_blocks: u64,
    /// Blocks stored as deltas against the base.
    pub delta_blocks: u64,
}

/// The library's version: `(major << 16) | (minor << 8) | patch`. Compare
/// with HEXZ_VERSION_NUMBER (the header's) to detect a header/library
/// mismatch: the majors must be equal, and a library with a lower minor
/// may lack functions the header declares. Never fails.
#[no_mangle]
pub extern "C" fn hexz_version() -> u32 {
    VERSION_NUMBER
}

/// The library's version as a static NUL-terminated string,
/// "MAJOR.MINOR.PATCH" (HEXZ_VERSION_STRING in the header it was built
/// with). Never NULL.
#[no_mangle]
pub extern "C" fn hexz_version_string() -> *const c_char {
    VERSION_STRING.as_ptr()
}

/// The category of a status (HEXZ_CATEGORY_*): what kind of failure it is,
/// for callers that branch on the kind rather than the exact code. The
/// Python and Go bindings choose their exception classes and sentinel
/// errors from it. Numbers that are no status give HEXZ_CATEGORY_INTERNAL.
#[no_mangle]
pub extern "C" fn hexz_status_category(status: u32) -> Category {
    ErrorCode::from_u32(status).map_or(Category::Internal, ErrorCode::category)
}

/// A static, NUL-terminated description of a status code ("unknown status"
/// for numbers that are not one). Never NULL.
#[no_mangle]
pub extern "C" fn hexz_status_str(status: u32) -> *const c_char {
    match ErrorCode::from_u32(status) {
        Some(code) => status_text(code).as_ptr(),
        None => c"unknown status".as_ptr(),
    }
}

/// The describe() text of each code, NUL-terminated, made once.
fn status_text(code: ErrorCode) -> &'static std::ffi::CStr {
    static TEXTS: std::sync::OnceLock<Vec<std::ffi::CString>> = std::sync::OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        let mut all: Vec<std::ffi::CString> = Vec::new();
        for n in 0..=ErrorCode::ALL.iter().map(|c| *c as u32).max().unwrap_or(0) {
            let text = ErrorCode::from_u32(n).map_or("unknown status", ErrorCode::describe);
            all.push(std::ffi::CString::new(text).unwrap_or_default());
        }
        all
    });
    texts.get(code as usize).map_or(c"unknown status", |t| t.as_c_str())
}

/// The message of the last failure on the calling thread, NUL-terminated;
/// empty when none. The text belongs to the calling thread: it stays valid
/// until that thread's next failing call into libhexz or until the thread
/// exits, whichever comes first. Copy it to keep it. Never NULL.
#[no_mangle]
pub extern "C" fn hexz_last_error() -> *const c_char {
    status::last_error_ptr()
}

/// Open options as hexz-io takes them.
///
/// # Safety
/// `opts` is NULL or a valid hexz_open_options whose `parents` holds
/// `parent_count` live handles.
unsafe fn open_options(opts: *const hexz_open_options) -> Result<(OpenOptions, u64), FfiError> {
    // SAFETY: option pointers are NULL or point to a struct of `struct_size` bytes (the header's contract).
    let o = unsafe { read_options(opts, "hexz_open_options") }?;
    let mut open = OpenOptions::default();
    if !o.parent_dir.is_null() {
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        open.search.push(Location::Path(unsafe { path_arg(o.parent_dir, "parent_dir") }?));
    }
    if o.parent_count > 0 {
        if o.parents.is_null() {
            return Err(FfiError::null("parents"));
        }
        if o.parent_count > 1024 {
            return Err(FfiError::invalid("parent_count must be at most 1024"));
        }
        for i in 0..o.parent_count {
            // SAFETY: `parents` holds parent_count pointers (the header's contract).
            let p = unsafe { *o.parents.add(i) };
            open.attached.push(Arc::new(unsafe { handle(p) }?.reader.archive().clone()));
        }
    }
    if o.trusted_key_count > 0 {
        if o.trusted_keys.is_null() {
            return Err(FfiError::null("trusted_keys"));
        }
        if o.trusted_key_count > 1024 {
            return Err(FfiError::invalid("trusted_key_count must be at most 1024"));
        }
        for i in 0..o.trusted_key_count {
            // SAFETY: `trusted_keys` holds trusted_key_count pointers (the header's contract).
            let p = unsafe { *o.trusted_keys.add(i) };
            // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
            let text = unsafe { cstr(p, "trusted_keys") }?
                .to_str()
                .map_err(|_| FfiError::invalid("trusted_keys: a key is not UTF-8"))?;
            let key = hexz_io::sign::parse_public_key(text, std::path::Path::new("trusted_keys"))?;
            open.trusted_keys.push(key);
        }
    }
    // SAFETY: `identity_files` and `passphrase` are as the header states.
    open.keys = unsafe { keychain(&o) }?.map(Arc::new);
    open.read_slots = o.read_slots as usize;
    if open.read_slots > hexz_io::MAX_READ_SLOTS {
        return Err(FfiError::invalid("read_slots must be at most 256"));
    }
    open.verify_hashes = o.skip_hash_check == 0;
    let max_metadata =
        if o.max_metadata_bytes == 0 { hexz_io::options::DEFAULT_MAX_METADATA_BYTES } else { o.max_metadata_bytes };
    open.limits.max_metadata_bytes = max_metadata;
    open.memory_budget = if o.memory_budget == 0 {
        hexz_io::options::DEFAULT_MEMORY_BUDGET
    } else {
        usize::try_from(o.memory_budget).unwrap_or(usize::MAX)
    };
    Ok((open, max_metadata))
}

/// The keychain of an open's identity files and passphrase, `None` when
/// neither is given. The passphrase is copied into memory wiped on drop.
///
/// # Safety
/// `identity_files` holds `identity_file_count` NUL-terminated paths;
/// `passphrase` is readable for `passphrase_len` bytes.
unsafe fn keychain(o: &hexz_open_options) -> Result<Option<hexz_io::keys::Keychain>, FfiError> {
    let mut identities = Vec::new();
    if o.identity_file_count > 0 {
        if o.identity_files.is_null() {
            return Err(FfiError::null("identity_files"));
        }
        if o.identity_file_count > 1024 {
            return Err(FfiError::invalid("identity_file_count must be at most 1024"));
        }
        for i in 0..o.identity_file_count {
            // SAFETY: `identity_files` holds identity_file_count pointers (the header's contract).
            let p = unsafe { *o.identity_files.add(i) };
            // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
            let path = unsafe { path_arg(p, "identity_files") }?;
            identities.extend(hexz_io::keys::load_identities(&path)?);
        }
    }
    let mut passphrases = Vec::new();
    if o.passphrase_len > 0 {
        if o.passphrase.is_null() {
            return Err(FfiError::null("passphrase"));
        }
        if o.passphrase_len > MAX_PASSPHRASE {
            return Err(FfiError::invalid("passphrase_len must be at most 65536"));
        }
        // SAFETY: `passphrase` is readable for passphrase_len bytes (the header's contract).
        let bytes = unsafe { std::slice::from_raw_parts(o.passphrase, o.passphrase_len) };
        passphrases.push(zeroize::Zeroizing::new(bytes.to_vec()));
    }
    let chain = hexz_io::keys::Keychain::new(identities, passphrases);
    Ok((!chain.is_empty()).then_some(chain))
}

/// Longest passphrase hexz_open_options takes.
const MAX_PASSPHRASE: usize = 65536;

/// # Safety
/// `out` is NULL or writable.
unsafe fn finish_open(reader: Reader, max_metadata: u64, out: *mut *mut hexz_archive) -> Result<(), FfiError> {
    let handle = ArchiveHandle::new(reader, max_metadata)?;
    // SAFETY: output pointers are NULL or writable (the header's contract).
    unsafe { write_out(out, Box::into_raw(Box::new(hexz_archive(handle)))) }
}

/// Open the archive at `path` (NUL-terminated) with its parent chain. `opts`
/// may be NULL. On success `*out` holds a handle to release with hexz_close;
/// on failure `*out` is not written. Never blocks on a FIFO.
///
/// Statuses: OK; NULL_ARGUMENT; INVALID_ARGUMENT (options, or `path` is not
/// a regular file); IO (the OS error, e.g. no such file); BAD_MAGIC;
/// UNSUPPORTED_VERSION; CHECKSUM; TRUNCATED; INVALID_FIELD; LIMIT_EXCEEDED
/// (max_metadata_bytes); SOURCE_FORMAT; HASH_MISMATCH or DECODE (header
/// blocks); OUT_OF_MEMORY; PARENT_NOT_FOUND; PARENT_MISMATCH;
/// CHAIN_TOO_DEEP; CHAIN_CYCLE; SIGNATURE (trusted keys given, no valid
/// signature by one); KEY_REQUIRED (an encrypted archive, no identity or
/// passphrase given); WRONG_KEY (none of the keys given opens it); DECRYPT
/// (its encrypted manifest or header blocks are damaged); PANIC. Errors of a parent name the parent.
#[no_mangle]
pub unsafe extern "C" fn hexz_open_path(
    path: *const c_char,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> ErrorCode {
    guard(|| {
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let path = unsafe { path_arg(path, "path") }?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: option pointers are NULL or point to a struct of `struct_size` bytes (the header's contract).
        let (open, max_metadata) = unsafe { open_options(opts) }?;
        let reader = Reader::open(path, &open)?;
        // SAFETY: `out` was checked non-NULL; it is writable (the header's contract).
        unsafe { finish_open(reader, max_metadata, out) }
    })
}

/// Options for hexz_open_url. Initialize with HEXZ_URL_OPTIONS_INIT, then
/// set fields; every 0 or NULL means the default. Pass NULL for all
/// defaults. S3 credentials come from the standard AWS variables
/// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), profiles
/// and instance metadata.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_url_options {
    /// sizeof(hexz_url_options) as the caller compiled it (set by the _INIT macro).
    pub struct_size: usize,
    /// S3 endpoint, e.g. "http://127.0.0.1:9000" for a local S3 server
    /// (plain HTTP allowed); NULL: AWS_ENDPOINT_URL, else AWS.
    pub endpoint: *const c_char,
    /// S3 region; NULL: AWS_REGION, else us-east-1.
    pub region: *const c_char,
    /// Bytes of fetched ranges kept for repeated reads; 0 means 64 MiB.
    pub cache_bytes: u64,
    /// Stall timeout in milliseconds, 0 means 15 s: the longest wait for a
    /// response to start or for its next bytes (a transfer that keeps
    /// moving is never cut off); a stalled request is retried.
    pub timeout_ms: u32,
    /// Connect timeout in milliseconds; 0 means 10 s.
    pub connect_timeout_ms: u32,
    /// Extra place to look for parents: a URL prefix or a local folder; or NULL.
    pub parent_location: *const c_char,
    /// Read slots, hash checks and memory caps as for hexz_open_path; NULL
    /// for the defaults (its parent_dir and parents apply too).
    pub open: *const hexz_open_options,
    /// Folder of the persistent block cache (blocks kept on disk, keyed by
    /// their BLAKE3, shared by archives and processes); NULL: HEXZ_CACHE_DIR,
    /// else $XDG_CACHE_HOME/hexz/blocks or ~/.cache/hexz/blocks; "off": none.
    pub cache_dir: *const c_char,
    /// Cap on the block cache folder in bytes (least recently used entries
    /// go first); 0: HEXZ_CACHE_MAX_BYTES, else 10 GiB.
    pub cache_max_bytes: u64,
}

// SAFETY: repr(C), integers and raw pointers: every bit pattern is valid.
unsafe impl Versioned for hexz_url_options {
    fn defaults() -> Self {
        hexz_url_options {
            struct_size: std::mem::size_of::<Self>(),
            endpoint: std::ptr::null(),
            region: std::ptr::null(),
            cache_bytes: 0,
            timeout_ms: 0,
            connect_timeout_ms: 0,
            parent_location: std::ptr::null(),
            open: std::ptr::null(),
            cache_dir: std::ptr::null(),
            cache_max_bytes: 0,
        }
    }
}

/// Open the archive at `url` (NUL-terminated: `s3://bucket/key`,
/// `http://...`, `https://...`, or a local path) with its parent chain,
/// reading on demand: opening costs two requests (header and a 256 KiB
/// suffix, sent together), a tensor read fetches only its index pages and
/// blocks. Parents named relative to the archive are looked for beside it
/// at the same kind of location. Failed and short responses are retried;
/// an object that changes while open is an IO error naming the URL.
///
/// URLs need libhexz-remote (pkg-config hexz-remote); libhexz, which has
/// no HTTP or TLS stack, opens local paths here and gives UNSUPPORTED for
/// URLs.
///
/// Statuses: as hexz_open_path, plus NOT_FOUND (no such object) and
/// UNSUPPORTED (a URL scheme this library cannot read).
#[no_mangle]
pub unsafe extern "C" fn hexz_open_url(
    url: *const c_char,
    opts: *const hexz_url_options,
    out: *mut *mut hexz_archive,
) -> ErrorCode {
    guard(|| {
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let url = unsafe { cstr(url, "url") }?.to_str().map_err(|_| FfiError::invalid("url is not UTF-8"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: option pointers are NULL or point to a struct of `struct_size` bytes (the header's contract).
        let o = unsafe { read_options(opts, "hexz_url_options") }?;
        // SAFETY: as above, for the nested open options.
        let (mut open, max_metadata) = unsafe { open_options(o.open) }?;
        let text = |p: *const c_char, what: &str| -> Result<Option<String>, FfiError> {
            if p.is_null() {
                return Ok(None);
            }
            // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
            let s =
                unsafe { cstr(p, what) }?.to_str().map_err(|_| FfiError::invalid(&format!("{what} is not UTF-8")))?;
            Ok(Some(s.to_string()))
        };
        if let Some(extra) = text(o.parent_location, "parent_location")? {
            open.search.push(Location::parse(&extra));
        }
        #[cfg(feature = "remote")]
        {
            let mut remote = hexz_remote::RemoteOptions {
                endpoint: text(o.endpoint, "endpoint")?,
                region: text(o.region, "region")?,
                ..Default::default()
            };
            if o.cache_bytes > 0 {
                remote.cache_bytes = usize::try_from(o.cache_bytes).unwrap_or(usize::MAX);
            }
            if o.timeout_ms > 0 {
                remote.stall_timeout = std::time::Duration::from_millis(u64::from(o.timeout_ms));
            }
            if o.connect_timeout_ms > 0 {
                remote.connect_timeout = std::time::Duration::from_millis(u64::from(o.connect_timeout_ms));
            }
            if let Some(dir) = text(o.cache_dir, "cache_dir")? {
                remote.block_cache.dir = hexz_remote::diskcache::dir_setting(std::path::Path::new(&dir));
            }
            if o.cache_max_bytes > 0 {
                remote.block_cache.max_bytes = o.cache_max_bytes;
            }
            remote.block_cache.check_blocks = !open.verify_hashes;
            open.resolver = Arc::new(hexz_remote::RemoteResolver { options: remote });
        }
        let location = Location::parse(url);
        #[cfg(not(feature = "remote"))]
        if let Location::Url(_) = location {
            return Err(FfiError::unsupported(&format!(
                "{url}: URLs need libhexz-remote (pkg-config hexz-remote); libhexz has no HTTP or TLS stack"
            )));
        }
        let reader = Reader::open(location, &open)?;
        // SAFETY: `out` was checked non-NULL; it is writable (the header's contract).
        unsafe { finish_open(reader, max_metadata, out) }
    })
}

/// Open an archive held in memory. The `len` bytes at `data` are borrowed,
/// not copied: they must stay valid and unchanged until hexz_close. A child
/// archive needs its parents attached (hexz_open_options.parents) or
/// findable (parent_dir).
///
/// Statuses: as hexz_open_path (IO only from attached or searched parents).
#[no_mangle]
pub unsafe extern "C" fn hexz_open_memory(
    data: *const u8,
    len: usize,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `data` is readable for `len` bytes until hexz_close (the header's contract).
        let bytes = unsafe { borrowed_bytes(data, len, "data") }?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: option pointers are NULL or point to a struct of `struct_size` bytes (the header's contract).
        let (open, max_metadata) = unsafe { open_options(opts) }?;
        let reader = Reader::open_source(Location::Label("(archive in memory)".into()), Arc::new(bytes), &open)?;
        // SAFETY: `out` was checked non-NULL; it is writable (the header's contract).
        unsafe { finish_open(reader, max_metadata, out) }
    })
}

/// Open an archive read through a caller callback (an engine's own file
/// layer). `size` is the archive's length; `user` is passed to every call
/// and must stay valid until hexz_close. A child archive needs its parents
/// attached or findable, as for hexz_open_memory.
///
/// Threads: the callback is called from several threads at once, unless
/// read_slots is 1. The library decodes on internal threads (up to
/// read_slots, one per core at most) inside single calls: this open
/// itself, whose GGUF header (a tokenizer's vocabulary, megabytes) is
/// decoded in parallel, hexz_read_tensors, hexz_memfd and large reads of
/// a hexz_fopen stream; and calls the host makes from several threads
/// overlap. With hexz_open_options.read_slots = 1 every call (this open
/// included) runs on its calling thread, so a host calling from one thread
/// at a time gets its callbacks one at a time, on that thread.
///
/// Statuses: as hexz_open_path; a failing callback gives IO.
#[no_mangle]
pub unsafe extern "C" fn hexz_open_callbacks(
    read_at: hexz_read_at_fn,
    size: u64,
    user: *mut c_void,
    opts: *const hexz_open_options,
    out: *mut *mut hexz_archive,
) -> ErrorCode {
    guard(|| {
        let read_at = read_at.ok_or_else(|| FfiError::null("read_at"))?;
        if out.is_null() {
            return Err(FfiError::null("out"));
        }
        // SAFETY: option pointers are NULL or point to a struct of `struct_size` bytes (the header's contract).
        let (open, max_metadata) = unsafe { open_options(opts) }?;
        let source = Arc::new(CallbackSource { read_at, user, size });
        let reader = Reader::open_source(Location::Label("(archive read by callback)".into()), source, &open)?;
        // SAFETY: `out` was checked non-NULL; it is writable (the header's contract).
        unsafe { finish_open(reader, max_metadata, out) }
    })
}

/// Close an archive and free everything it holds. NULL is accepted. The
/// handle must not be in use by another thread, nor attached as a parent
/// of an archive still open, nor read by a hexz_fopen stream still open.
#[no_mangle]
pub unsafe extern "C" fn hexz_close(archive: *mut hexz_archive) {
    if !archive.is_null() {
        // SAFETY: a handle from hexz_open_*, closed once (the caller's promise).
        let _ = status::contain(|| drop(unsafe { Box::from_raw(archive) }));
    }
}

/// Fill `*out` with what the archive holds.
///
/// Statuses: OK; NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn hexz_archive_get_info(archive: *const hexz_archive, out: *mut hexz_archive_info) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        let a = h.reader.archive();
        let info = hexz_archive_info {
            struct_size: 0,
            source_format: h.reader.source_format() as u32,
            has_parent: u32::from(a.parent_identity().is_some()),
            original_size: h.reader.size(),
            archive_size: hexz_format::ReadAt::len(a.source()),
            tensor_count: h.tensor_count() as u64,
            block_count: a.block_count(),
            memory_bytes: h.memory_bytes(),
            identity: a.identity(),
            parent_identity: a.parent_identity().unwrap_or([0; 32]),
            source_blake3: a.source_hash(),
        };
        // SAFETY: output structs are NULL or writable for their struct_size (the header's contract).
        unsafe { write_sized(out, info, "hexz_archive_info") }
    })
}

/// Number of tensors (0 for raw files).
///
/// Statuses: OK; NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn hexz_tensor_count(archive: *const hexz_archive, out_count: *mut usize) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        unsafe { write_out(out_count, h.tensor_count()) }
    })
}

/// Index of the tensor called `name` (NUL-terminated). In a folder
/// archive several files may hold tensors of the same name: such a name is
/// INVALID_ARGUMENT (the message lists the files), and
/// hexz_tensor_find_in_file names the file.
///
/// Statuses: OK; NULL_ARGUMENT; NOT_FOUND; INVALID_ARGUMENT (ambiguous).
#[no_mangle]
pub unsafe extern "C" fn hexz_find_tensor(
    archive: *const hexz_archive,
    name: *const c_char,
    out_index: *mut usize,
) -> ErrorCode {
    // SAFETY: the same contract; no file path looks in the whole archive.
    unsafe { hexz_tensor_find_in_file(archive, std::ptr::null(), name, out_index) }
}

/// Describe tensor `index` (0 ≤ index < hexz_tensor_count).
///
/// Statuses: OK; NULL_ARGUMENT; INVALID_ARGUMENT (index out of range).
#[no_mangle]
pub unsafe extern "C" fn hexz_tensor_get_info(
    archive: *const hexz_archive,
    index: usize,
    out: *mut hexz_tensor_info,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        let t = h.tensor(index).ok_or_else(|| FfiError::invalid("tensor index out of range"))?;
        let (name, name_len) = tables::c_str_view(t.name);
        let (dtype, dtype_len) = tables::c_str_view(t.dtype);
        let info = hexz_tensor_info {
            struct_size: 0,
            name,
            name_len,
            dtype,
            dtype_len,
            ggml_type: t.ggml_type,
            n_dims: t.dims.len() as u32,
            dims: if t.dims.is_empty() { std::ptr::null() } else { t.dims.as_ptr() },
            offset: t.offset,
            length: t.length,
            storage_kind: t.storage_kind,
        };
        // SAFETY: output structs are NULL or writable for their struct_size (the header's contract).
        unsafe { write_sized(out, info, "hexz_tensor_info") }
    })
}

/// Read through the handle's reader into `dst`; on failure `dst` is zeroed,
/// so no unverified bytes are left behind.
fn read_checked(h: &ArchiveHandle, offset: u64, dst: &mut [u8]) -> Result<(), FfiError> {
    h.reader.read_at(offset, dst).map_err(|e| {
        dst.fill(0);
        FfiError::from(e)
    })
}

/// Read tensor `index` into `buf` (`buf_len` bytes). On success `*out_len`
/// is the tensor's length. When `buf_len` is too small the status is
/// BUFFER_TOO_SMALL and `*out_len` (if not NULL) is set to the length
/// needed; `buf` may then be NULL with `buf_len` 0, to query it. When the
/// read fails after it began, the bytes of `buf` it covered are zeroed.
///
/// Statuses: OK; NULL_ARGUMENT; INVALID_ARGUMENT; BUFFER_TOO_SMALL;
/// HASH_MISMATCH; DECODE; IO; INVALID_FIELD; CHECKSUM; PARENT_REQUIRED;
/// CODEC_UNAVAILABLE; OUT_OF_MEMORY; PANIC.
#[no_mangle]
pub unsafe extern "C" fn hexz_read_tensor(
    archive: *const hexz_archive,
    index: usize,
    buf: *mut u8,
    buf_len: usize,
    out_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        // The index and length checks are hexz-io's (Reader::tensor_len).
        let len = h.reader.tensor_len(index)?;
        if buf_len < len {
            // SAFETY: output pointers are NULL or writable (the header's contract).
            unsafe { write_optional(out_len, len) };
            return Err(hexz_format::Error::BufferTooSmall {
                what: "tensor buffer",
                needed: len as u64,
                got: buf_len as u64,
            }
            .into());
        }
        if out_len.is_null() {
            return Err(FfiError::null("out_len"));
        }
        // SAFETY: `buf` is NULL or writable for the given length (the header's contract).
        let dst = unsafe { buffer(buf, len, "buf") }?;
        h.reader.read_tensor(index, dst).map_err(|e| {
            dst.fill(0);
            FfiError::from(e)
        })?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_len, len) }
    })
}

/// Read bytes [offset, offset + len) of the original file into `buf`. A
/// range past the end is OUT_OF_RANGE even when `len` is 0. When the read
/// fails after it began, `buf` is zeroed.
///
/// Statuses: as hexz_read_tensor, plus OUT_OF_RANGE.
#[no_mangle]
pub unsafe extern "C" fn hexz_read_range(
    archive: *const hexz_archive,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        let dst = unsafe { buffer(buf, len, "buf") }?;
        read_checked(h, offset, dst)
    })
}

/// The block holding byte `offset` of the original file: where it starts
/// and its length. Blocks are the unit of decoding: a read that covers
/// part of a block decodes all of it. An engine that splits a large tensor
/// among its threads should cut the pieces at block ends, so that no block
/// is decoded twice (see bench_load.c, `threads` mode).
///
/// Statuses: OK; NULL_ARGUMENT; OUT_OF_RANGE (`offset` at or past the
/// end); IO, INVALID_FIELD, CHECKSUM (the index page holding it is read).
#[no_mangle]
pub unsafe extern "C" fn hexz_block_span(
    archive: *const hexz_archive,
    offset: u64,
    out_start: *mut u64,
    out_length: *mut u64,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        if out_start.is_null() || out_length.is_null() {
            return Err(FfiError::null("out_start/out_length"));
        }
        let (start, length) = h.reader.block_span(offset)?;
        // SAFETY: both checked non-NULL; writable by the caller's promise.
        unsafe {
            out_start.write(start);
            out_length.write(length);
        }
        Ok(())
    })
}

/// One tensor for hexz_read_tensors: which, and the engine's buffer for it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hexz_tensor_read {
    /// Tensor index, 0 ≤ index < hexz_tensor_count.
    pub index: usize,
    /// Where its bytes go: at least the tensor's length (may be NULL for an
    /// empty tensor). Buffers of one call must not overlap.
    pub buf: *mut u8,
    /// Size of `buf` in bytes.
    pub buf_len: usize,
}

/// Read `count` tensors, each into its buffer, in one call: their blocks
/// are shared among up to `threads` threads (0: one per core; never more
/// than the handle's read_slots), largest pieces first, so an engine that
/// loads from one thread still decodes on every core. Every entry is
/// checked before anything is read. Unlike the other read
/// functions it allocates (a work list) and, with more than one thread,
/// starts threads and joins them before it returns. When the reads fail
/// after they began, every buffer's tensor-length prefix is zeroed.
///
/// Statuses: OK (also for `count` 0); NULL_ARGUMENT (`reads`, or a `buf`
/// of a non-empty tensor); INVALID_ARGUMENT (index out of range,
/// overlapping buffers); BUFFER_TOO_SMALL (the message names the entry);
/// and the read statuses of hexz_read_tensor.
#[no_mangle]
pub unsafe extern "C" fn hexz_read_tensors(
    archive: *const hexz_archive,
    reads: *const hexz_tensor_read,
    count: usize,
    threads: u32,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        if count == 0 {
            return Ok(());
        }
        if reads.is_null() {
            return Err(FfiError::null("reads"));
        }
        if count > isize::MAX as usize / std::mem::size_of::<hexz_tensor_read>() {
            return Err(FfiError::invalid("count too large"));
        }
        // SAFETY: non-NULL and, by the header's contract, `count` readable entries.
        let reads = unsafe { std::slice::from_raw_parts(reads, count) };
        let oom = || FfiError::new(ErrorCode::OutOfMemory, "out of memory listing the reads");
        // (buffer start, tensor length, tensor offset) of every entry.
        let mut spans: Vec<(usize, usize, u64)> = Vec::new();
        spans.try_reserve_exact(count).map_err(|_| oom())?;
        for (k, r) in reads.iter().enumerate() {
            // The index and length checks are hexz-io's (Reader::tensor_len).
            let len = h.reader.tensor_len(r.index).map_err(|e| FfiError {
                message: format!("reads[{k}]: tensor {}: {}", r.index, e),
                ..FfiError::from(e)
            })?;
            let t = &h.reader.tensors()[r.index];
            if r.buf_len < len {
                return Err(FfiError::new(
                    ErrorCode::BufferTooSmall,
                    format!("reads[{k}]: tensor {} needs {len} bytes, the buffer holds {}", r.index, r.buf_len),
                ));
            }
            if len > 0 {
                if r.buf.is_null() {
                    return Err(FfiError::null(&format!("reads[{k}].buf")));
                }
                if len > isize::MAX as usize {
                    return Err(FfiError::invalid("buffer length exceeds isize::MAX"));
                }
                spans.push((r.buf as usize, len, t.offset));
            }
        }
        // Two &mut views of one byte must never exist: overlaps are refused.
        // Sorted by start, a buffer overlapping any later one overlaps the next.
        spans.sort_unstable();
        if spans.windows(2).any(|w| w[0].0.saturating_add(w[0].1) > w[1].0) {
            return Err(FfiError::invalid("buffers of one hexz_read_tensors call overlap"));
        }
        let mut ranges: Vec<(u64, &mut [u8])> = Vec::new();
        ranges.try_reserve_exact(spans.len()).map_err(|_| oom())?;
        for &(at, len, offset) in &spans {
            // SAFETY: non-NULL, len ≤ isize::MAX, writable for `len` bytes by
            // the header's contract, and overlapping no other view (checked).
            ranges.push((offset, unsafe { std::slice::from_raw_parts_mut(at as *mut u8, len) }));
        }
        let read = h.reader.read_many_into_parallel(ranges, threads as usize, &|_| std::ops::ControlFlow::Continue(()));
        read.map_err(|e| {
            for &(at, len, _) in &spans {
                // SAFETY: as above; the views given to the reader are gone.
                unsafe { std::ptr::write_bytes(at as *mut u8, 0, len) };
            }
            FfiError::from(e)
        })
    })
}

/// Number of files and directories of a folder archive (format 1.1),
/// sorted by path; 0 for a single-file archive, whose virtual space is its
/// one file.
///
/// Statuses: OK; NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn hexz_file_count(archive: *const hexz_archive, out_count: *mut usize) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_count, h.file_count()) }
    })
}

/// Describe file `index` (0 ≤ index < hexz_file_count).
///
/// Statuses: OK; NULL_ARGUMENT; INVALID_ARGUMENT (index out of range).
#[no_mangle]
pub unsafe extern "C" fn hexz_file_get_info(
    archive: *const hexz_archive,
    index: usize,
    out: *mut hexz_file_info,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        let f = h.file(index).ok_or_else(|| FfiError::invalid("file index out of range"))?;
        let (path, path_len) = tables::c_str_view(f.path);
        let info = hexz_file_info {
            struct_size: 0,
            path,
            path_len,
            kind: f.kind,
            source_format: f.source_format,
            offset: f.offset,
            length: f.length,
            mode: f.mode,
            mtime_ns: f.mtime_ns,
        };
        // SAFETY: output structs are NULL or writable for their struct_size (the header's contract).
        unsafe { write_sized(out, info, "hexz_file_info") }
    })
}

/// Number of user metadata entries stored with the archive (`hexz store
/// --metadata`), in the order they were given.
///
/// Statuses: OK; NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn hexz_metadata_count(archive: *const hexz_archive, out_count: *mut usize) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_count, h.metadata_count()) }
    })
}

/// User metadata entry `index` (0 ≤ index < hexz_metadata_count): its key
/// and value, NUL-terminated and borrowed until hexz_close, and whether the
/// value is JSON text (`--metadata KEY:=JSON`) rather than a plain string.
/// Any of the outputs may be NULL.
///
/// Statuses: OK; NULL_ARGUMENT; INVALID_ARGUMENT (index out of range).
#[no_mangle]
pub unsafe extern "C" fn hexz_metadata_get(
    archive: *const hexz_archive,
    index: usize,
    out_key: *mut *const c_char,
    out_key_len: *mut usize,
    out_value: *mut *const c_char,
    out_value_len: *mut usize,
    out_is_json: *mut bool,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        let m = h.metadata(index).ok_or_else(|| FfiError::invalid("metadata index out of range"))?;
        let (key, key_len) = tables::c_str_view(m.key);
        let (value, value_len) = tables::c_str_view(m.value);
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe {
            write_optional(out_key, key);
            write_optional(out_key_len, key_len);
            write_optional(out_value, value);
            write_optional(out_value_len, value_len);
            write_optional(out_is_json, m.is_json);
        }
        Ok(())
    })
}

/// Index of the file at `path` (NUL-terminated, `/`-separated, as
/// hexz_file_get_info gives it).
///
/// Statuses: OK; NULL_ARGUMENT; NOT_FOUND.
#[no_mangle]
pub unsafe extern "C" fn hexz_find_file(
    archive: *const hexz_archive,
    path: *const c_char,
    out_index: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let path = unsafe { cstr(path, "path") }?;
        let index = std::str::from_utf8(path.to_bytes())
            .ok()
            .and_then(|p| h.reader.file(p))
            .map(|(i, _)| i)
            .ok_or_else(|| FfiError::not_found("no file with that path"))?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_index, index) }
    })
}

/// Read bytes [offset, offset + len) of file `index` of a folder archive
/// into `buf`: OUT_OF_RANGE past the file's end (even when `len` is 0).
/// When the read fails after it began, `buf` is zeroed.
///
/// Statuses: as hexz_read_range, plus INVALID_ARGUMENT (index out of range).
#[no_mangle]
pub unsafe extern "C" fn hexz_read_file_range(
    archive: *const hexz_archive,
    index: usize,
    offset: u64,
    buf: *mut u8,
    len: usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        let f = h.file(index).ok_or_else(|| FfiError::invalid("file index out of range"))?;
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > f.length) {
            return Err(hexz_format::Error::OutOfRange { offset, length: len as u64, size: f.length }.into());
        }
        // SAFETY: `buf` is NULL or writable for the given length (the header's contract).
        let dst = unsafe { buffer(buf, len, "buf") }?;
        read_checked(h, f.offset + offset, dst)
    })
}

/// The original file's own header, verbatim (safetensors: 8-byte length and
/// JSON; GGUF: everything before the tensor data). Borrowed until
/// hexz_close. Raw files have none: `*out_data` is NULL and `*out_len` 0.
///
/// Statuses: OK; NULL_ARGUMENT.
#[no_mangle]
pub unsafe extern "C" fn hexz_source_header(
    archive: *const hexz_archive,
    out_data: *mut *const u8,
    out_len: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        if out_data.is_null() || out_len.is_null() {
            return Err(FfiError::null("out_data/out_len"));
        }
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe {
            out_data.write(tables::view_ptr(&h.source_header));
            out_len.write(h.source_header.len());
        }
        Ok(())
    })
}

/// Linux: an anonymous in-memory file (memfd) holding the whole original
/// file, for engines that only accept a path: pass "/proc/self/fd/N". The
/// blocks are decoded in parallel (one thread per core) and written into the
/// memfd at their offsets; runs of zeros are left as holes. The descriptor is close-on-exec (clear FD_CLOEXEC to hand
/// it to a child), its offset is 0, and it is sealed against writes and
/// resizing. The caller owns it and closes it. It uses as much memory as
/// the original file. Elsewhere: UNSUPPORTED.
///
/// Statuses: OK; NULL_ARGUMENT; IO; UNSUPPORTED; and the read statuses of hexz_read_range.
#[no_mangle]
pub unsafe extern "C" fn hexz_memfd(archive: *const hexz_archive, out_fd: *mut c_int) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        if out_fd.is_null() {
            return Err(FfiError::null("out_fd"));
        }
        let fd = h.memfd(0)?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_fd, fd) }
    })
}

/// Store the file or folder at `src` into a new archive at `dst` (a folder
/// becomes a folder archive, format 1.1), written under a
/// temporary name and renamed into place when complete (replacing `dst`,
/// or refusing when it exists with `no_clobber`). `opts` and `out_report`
/// may be NULL. With `opts->url` set (and `dst` NULL), the archive is
/// uploaded to that URL instead (libhexz-remote; a file only, not a
/// folder). Never blocks on a FIFO; refuses a `dst` that is the source
/// or an archive of the base's chain; fails if the source changes while it
/// is read. Errors name the file at fault (source, destination or base).
///
/// Statuses: OK; NULL_ARGUMENT; INVALID_ARGUMENT (options, dst exists with
/// no_clobber, dst is an input, src not a regular file); IO; SOURCE_FORMAT;
/// LIMIT_EXCEEDED; OUT_OF_MEMORY; the open statuses for the base;
/// UNSUPPORTED (a url without libhexz-remote, a folder to a url); PANIC.
#[no_mangle]
pub unsafe extern "C" fn hexz_store(
    src: *const c_char,
    dst: *const c_char,
    opts: *const hexz_store_options,
    out_report: *mut hexz_store_report,
) -> ErrorCode {
    guard(|| {
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let src = unsafe { path_arg(src, "src") }?;
        // SAFETY: option pointers are NULL or point to a struct of `struct_size` bytes (the header's contract).
        let o = unsafe { read_options(opts, "hexz_store_options") }?;
        // The report's struct_size is checked before anything is written.
        // SAFETY: output structs are NULL or writable for their struct_size (the header's contract).
        unsafe { check_sized_optional(out_report, "hexz_store_report") }?;
        let kind = match o.compression {
            HEXZ_COMPRESSION_ZSTD => CompressionKind::Zstd,
            HEXZ_COMPRESSION_LZ4 => CompressionKind::Lz4,
            HEXZ_COMPRESSION_NONE => CompressionKind::None,
            _ => return Err(FfiError::invalid("unknown compression")),
        };
        let chunking = match o.chunking {
            HEXZ_CHUNKING_CONTENT_DEFINED => hexz_format::writer::Chunking::ContentDefined,
            HEXZ_CHUNKING_FIXED => hexz_format::writer::Chunking::Fixed,
            _ => return Err(FfiError::invalid("unknown chunking")),
        };
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let dst = match (dst.is_null(), o.url.is_null()) {
            (false, true) => Location::Path(unsafe { path_arg(dst, "dst") }?),
            (true, false) => Location::Url(
                unsafe { cstr(o.url, "url") }?.to_str().map_err(|_| FfiError::invalid("url is not UTF-8"))?.to_string(),
            ),
            (true, true) => return Err(FfiError::null("dst")),
            (false, false) => return Err(FfiError::invalid("give dst or opts->url, not both")),
        };
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let base = if o.base.is_null() { None } else { Some(Location::Path(unsafe { path_arg(o.base, "base") }?)) };
        let mut open = OpenOptions::default();
        if !o.parent_dir.is_null() {
            // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
            open.search.push(Location::Path(unsafe { path_arg(o.parent_dir, "parent_dir") }?));
        }
        let store = hexz_io::Store::from_path(src)
            .to(dst)
            .compression(kind)
            .level((o.level != 0).then_some(o.level))
            .threads(o.threads as usize)
            .chunking(chunking)
            .block_size(if o.block_size == 0 { hexz_io::options::DEFAULT_BLOCK_SIZE } else { o.block_size })
            .base(base)
            .open_options(open)
            .clobber(if o.no_clobber == 0 { hexz_io::Clobber::Replace } else { hexz_io::Clobber::Refuse });
        #[cfg(feature = "remote")]
        let store = store.sinks(hexz_remote::store_sinks(hexz_remote::RemoteOptions::default()));
        let report = store.run()?;
        // SAFETY: as above.
        unsafe {
            write_sized_optional(
                out_report,
                hexz_store_report {
                    struct_size: 0,
                    source_size: report.source_size,
                    archive_size: report.archive_size,
                    blocks: report.blocks,
                    deduplicated_blocks: report.deduplicated_blocks,
                    tensors: report.tensors as u64,
                    parent_blocks: report.parent_blocks,
                    delta_blocks: report.delta_blocks,
                },
                "hexz_store_report",
            )
        }
    })
}

/// Verify the archive at `path` and its parent chain; with `deep`, decode
/// every block and check every hash and the whole file's BLAKE3 (what
/// `hexz verify` does by default). OK when sound; VERIFY_FAILED when
/// problems were found, with `*out_problems` (if not NULL) set to their
/// number and hexz_last_error() naming the first. A file that cannot be
/// opened at all gives its own status (IO, BAD_MAGIC, ...), not
/// VERIFY_FAILED. Never blocks on a FIFO.
///
/// Statuses: OK; VERIFY_FAILED; NULL_ARGUMENT; IO; INVALID_ARGUMENT; the
/// open statuses of hexz_open_path for the archive itself; PANIC.
#[no_mangle]
pub unsafe extern "C" fn hexz_verify(path: *const c_char, deep: bool, out_problems: *mut usize) -> ErrorCode {
    guard(|| {
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let path: PathBuf = unsafe { path_arg(path, "path") }?;
        let source = hexz_io::FileSource::open(&path)?;
        hexz_format::Archive::open(&source)
            .map_err(|e| FfiError::from(hexz_io::Error::At { location: Location::Path(path.clone()), source: e }))?;
        drop(source);
        let depth = if deep { hexz_io::Depth::Deep } else { hexz_io::Depth::Quick };
        let report =
            hexz_io::verify_location(&Location::Path(path.clone()), &OpenOptions::default(), depth, 0, &|_, _| {});
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_optional(out_problems, report.problems.len()) };
        match report.problems.first() {
            None => Ok(()),
            Some(p) => Err(FfiError::new(
                ErrorCode::VerifyFailed,
                format!(
                    "{}: {} problem(s); first: {}: {}",
                    path.display(),
                    report.problems.len(),
                    p.location,
                    p.message
                ),
            )),
        }
    })
}

/// Index of the tensor called `name` in the file at `file_path` of a folder
/// archive (both NUL-terminated; the path as hexz_file_get_info gives it):
/// the lookup for names several files hold (`checkpoint-500/` and
/// `checkpoint-1000/` of one training run). `file_path` NULL looks the name
/// up in the whole archive, as hexz_find_tensor does.
///
/// Statuses: OK; NULL_ARGUMENT (archive, name); NOT_FOUND (no such file, or
/// no such tensor in it); INVALID_ARGUMENT (`file_path` NULL and the name
/// ambiguous).
#[no_mangle]
pub unsafe extern "C" fn hexz_tensor_find_in_file(
    archive: *const hexz_archive,
    file_path: *const c_char,
    name: *const c_char,
    out_index: *mut usize,
) -> ErrorCode {
    guard(|| {
        // SAFETY: `archive` is NULL or a live handle from hexz_open_* (the header's contract).
        let h = unsafe { handle(archive) }?;
        // SAFETY: string arguments are NULL or NUL-terminated (the header's contract).
        let name = unsafe { cstr(name, "name") }?;
        let name = std::str::from_utf8(name.to_bytes()).map_err(|_| FfiError::not_found("no tensor with that name"))?;
        let file = if file_path.is_null() {
            None
        } else {
            // SAFETY: as above.
            let path = unsafe { cstr(file_path, "file_path") }?;
            Some(std::str::from_utf8(path.to_bytes()).map_err(|_| FfiError::not_found("no file with that path"))?)
        };
        let (index, _) = h.reader.find_tensor(file, name)?;
        // SAFETY: output pointers are NULL or writable (the header's contract).
        unsafe { write_out(out_index, index) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hexz_status_category agrees with the table the Python and Go suites
    /// check their classes against.
    #[test]
    fn status_categories_are_the_shared_table() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../bindings/testdata/error-categories.json"))
                .expect("the shared table");
        let table: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        let categories = table["categories"].as_array().expect("categories");
        assert_eq!(categories.len(), Category::ALL.len());
        for (c, row) in Category::ALL.iter().zip(categories) {
            assert_eq!(row["name"], c.name());
            assert_eq!(row["code"], *c as u32);
        }
        let statuses = table["statuses"].as_array().expect("statuses");
        assert_eq!(statuses.len(), ErrorCode::ALL.len());
        for (code, row) in ErrorCode::ALL.iter().zip(statuses) {
            assert_eq!(row["name"], code.name());
            assert_eq!(row["code"], *code as u32);
            assert_eq!(row["category"], hexz_status_category(*code as u32).name(), "{code:?}");
        }
        assert_eq!(hexz_status_category(9999), Category::Internal);
    }

    /// Encrypted archives (1.3) through hexz_open_path on the real MiniLM:
    /// the passphrase (bytes, no NUL) and an identity file open it, every
    /// tensor equals the source's bytes; no key is KEY_REQUIRED, wrong keys
    /// WRONG_KEY, a flipped ciphertext byte DECRYPT on read.
    #[test]
    fn encrypted_minilm_opens_with_a_passphrase_or_an_identity_file() {
        use std::ffi::CString;
        let models = std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/fetch-models.sh"))
            .output()
            .expect("fetch-models.sh");
        let models = PathBuf::from(String::from_utf8(models.stdout).unwrap().trim());
        let src_path = models.join("minilm.safetensors");
        let src = std::fs::read(&src_path).expect("MiniLM");
        let dir = std::env::temp_dir().join(format!("hexz-ffi-enc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let id = dir.join("id.txt");
        let other = dir.join("other.txt");
        let recipient = hexz_io::keys::keygen_x25519(&id, false).unwrap();
        hexz_io::keys::keygen_x25519(&other, false).unwrap();
        let pass = b"ffi test passphrase";
        let enc = hexz_io::keys::EncryptTo {
            passphrases: vec![zeroize::Zeroizing::new(pass.to_vec())],
            recipients: vec![hexz_io::keys::parse_recipient(&recipient).unwrap()],
            cost: Some(hexz_format::crypt::Argon2Cost { memory_kib: 1024, time: 1, lanes: 1 }),
        };
        let dst = dir.join("minilm-enc.hxz");
        hexz_io::Store::from_path(&src_path)
            .to(Location::Path(dst.clone()))
            .encryption(Some(enc.encryption().unwrap()))
            .run()
            .unwrap();
        let c_dst = CString::new(dst.to_str().unwrap()).unwrap();
        let c_id = CString::new(id.to_str().unwrap()).unwrap();
        let c_other = CString::new(other.to_str().unwrap()).unwrap();
        let ids = [c_other.as_ptr(), c_id.as_ptr()];
        let open = |ids: &[*const c_char], pass: &[u8], out: &mut *mut hexz_archive| {
            let mut o = hexz_open_options::defaults();
            o.identity_files = if ids.is_empty() { std::ptr::null() } else { ids.as_ptr() };
            o.identity_file_count = ids.len();
            o.passphrase = if pass.is_empty() { std::ptr::null() } else { pass.as_ptr() };
            o.passphrase_len = pass.len();
            // SAFETY: live strings and buffers for the call.
            unsafe { hexz_open_path(c_dst.as_ptr(), &o, out) }
        };
        for (ids, pass) in [(&[][..], &pass[..]), (&ids[1..], &[][..]), (&ids[..], &b"wrong"[..])] {
            let mut a: *mut hexz_archive = std::ptr::null_mut();
            let status = open(ids, pass, &mut a);
            // SAFETY: hexz_last_error is NUL-terminated, valid until the next failing call.
            assert_eq!(status, ErrorCode::Ok, "{:?}", unsafe { std::ffi::CStr::from_ptr(hexz_last_error()) });
            let mut all = vec![0u8; src.len()];
            // SAFETY: `a` is open; `all` holds src.len() bytes.
            assert_eq!(unsafe { hexz_read_range(a, 0, all.as_mut_ptr(), all.len()) }, ErrorCode::Ok);
            assert!(all == src, "the encrypted archive decoded to other bytes");
            let mut count = 0usize;
            // SAFETY: as above.
            assert_eq!(unsafe { hexz_tensor_count(a, &mut count) }, ErrorCode::Ok);
            assert!(count > 50);
            for i in 0..count {
                // SAFETY: pointers and integers: all zero is valid.
                let mut info: hexz_tensor_info = unsafe { std::mem::zeroed() };
                info.struct_size = std::mem::size_of::<hexz_tensor_info>();
                // SAFETY: as above.
                assert_eq!(unsafe { hexz_tensor_get_info(a, i, &mut info) }, ErrorCode::Ok);
                let mut buf = vec![0u8; info.length as usize];
                let mut got = 0usize;
                // SAFETY: as above.
                assert_eq!(unsafe { hexz_read_tensor(a, i, buf.as_mut_ptr(), buf.len(), &mut got) }, ErrorCode::Ok);
                assert_eq!(&buf[..got], &src[info.offset as usize..(info.offset + info.length) as usize]);
            }
            // SAFETY: `a` is open and closed once.
            unsafe { hexz_close(a) };
        }
        let mut a: *mut hexz_archive = std::ptr::null_mut();
        assert_eq!(open(&[], &[], &mut a), ErrorCode::KeyRequired);
        assert_eq!(open(&[], b"not it", &mut a), ErrorCode::WrongKey);
        assert_eq!(open(&ids[..1], &[], &mut a), ErrorCode::WrongKey);
        assert!(a.is_null(), "*out written on failure");
        assert_eq!(hexz_status_category(ErrorCode::WrongKey as u32), Category::Key);
        assert_eq!(hexz_status_category(ErrorCode::Decrypt as u32), Category::Corrupt);

        // One flipped byte in the middle (a tensor's stored block): DECRYPT,
        // hash checks on or off.
        let mut bytes = std::fs::read(&dst).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x10;
        for skip in [0, 1] {
            let mut o = hexz_open_options::defaults();
            o.passphrase = pass.as_ptr();
            o.passphrase_len = pass.len();
            o.skip_hash_check = skip;
            let mut m: *mut hexz_archive = std::ptr::null_mut();
            // SAFETY: `bytes` outlives the handle, closed below.
            assert_eq!(unsafe { hexz_open_memory(bytes.as_ptr(), bytes.len(), &o, &mut m) }, ErrorCode::Ok);
            let mut all = vec![0u8; src.len()];
            // SAFETY: `m` is open; `all` holds src.len() bytes.
            assert_eq!(unsafe { hexz_read_range(m, 0, all.as_mut_ptr(), all.len()) }, ErrorCode::Decrypt);
            // SAFETY: `m` is open and closed once.
            unsafe { hexz_close(m) };
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
