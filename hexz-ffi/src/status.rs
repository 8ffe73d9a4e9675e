//! Status codes, the per-thread last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Status of every call. Numbers are stable and never reused; 10 and above
/// mirror hexz-format's error codes.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum hexz_status {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An internal failure was contained (a bug; please report it).
    Panic = 2,
    /// A GGUF getter was called on a value of another type.
    TypeMismatch = 3,
    /// hexz_verify found problems.
    VerifyFailed = 4,
    /// Not supported by this build or platform.
    Unsupported = 5,
    /// No tensor or key with that name.
    NotFound = 6,
    /// Not a hexz archive (bad magic).
    BadMagic = 10,
    /// A newer format version.
    UnsupportedVersion = 11,
    /// A header, footer, index or manifest checksum did not match.
    Checksum = 12,
    /// The archive (or source) ends early.
    Truncated = 13,
    /// A field holds a value that is not allowed.
    InvalidField = 14,
    /// A declared size or count exceeds a limit.
    LimitExceeded = 15,
    /// A block's bytes do not match their BLAKE3.
    HashMismatch = 16,
    /// A block failed to decode.
    Decode = 17,
    /// The range lies outside the original file.
    OutOfRange = 18,
    /// A caller buffer is too small.
    BufferTooSmall = 19,
    /// No tensor with that name.
    TensorNotFound = 20,
    /// The block's codec is not in this build.
    CodecUnavailable = 21,
    /// The block lives in a parent archive that is not available.
    ParentRequired = 22,
    /// An I/O error (including a failing read callback).
    Io = 23,
    /// The source file (safetensors/GGUF) is malformed.
    SourceFormat = 24,
    /// An argument is out of range or otherwise invalid.
    InvalidArgument = 25,
    /// The parent archive was not found (hexz_last_error names the identity and paths tried).
    ParentNotFound = 26,
    /// A file at the parent's path is another archive.
    ParentMismatch = 27,
    /// The parent chain is too deep.
    ChainTooDeep = 28,
    /// The parent chain loops.
    ChainCycle = 29,
}

pub fn describe(status: u32) -> &'static CStr {
    match status {
        0 => c"ok",
        1 => c"a required pointer argument was NULL",
        2 => c"internal failure (contained panic)",
        3 => c"value has another type",
        4 => c"verification found problems",
        5 => c"not supported",
        6 => c"not found",
        10 => c"not a hexz archive",
        11 => c"unsupported format version",
        12 => c"checksum mismatch",
        13 => c"truncated",
        14 => c"invalid field",
        15 => c"limit exceeded",
        16 => c"block hash mismatch",
        17 => c"block decode failed",
        18 => c"range outside the original file",
        19 => c"buffer too small",
        20 => c"tensor not found",
        21 => c"codec not available",
        22 => c"parent archive required",
        23 => c"I/O error",
        24 => c"malformed source file",
        25 => c"invalid argument",
        26 => c"parent archive not found",
        27 => c"parent archive has another identity",
        28 => c"parent chain too deep",
        29 => c"parent chain loops",
        _ => c"unknown status",
    }
}

/// An error on its way to the C caller.
#[derive(Debug)]
pub struct FfiError {
    pub status: hexz_status,
    pub message: String,
}

impl FfiError {
    pub fn new(status: hexz_status, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into() }
    }
    pub fn null(what: &str) -> Self {
        Self::new(hexz_status::NullArgument, format!("{what} is NULL"))
    }
    pub fn invalid(what: &str) -> Self {
        Self::new(hexz_status::InvalidArgument, what)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(hexz_status::NotFound, what)
    }
    pub fn unsupported(what: &str) -> Self {
        Self::new(hexz_status::Unsupported, what)
    }
    pub fn type_mismatch(what: &str) -> Self {
        Self::new(hexz_status::TypeMismatch, what)
    }
    pub fn verify_failed(message: String) -> Self {
        Self::new(hexz_status::VerifyFailed, message)
    }
    pub fn format(e: hexz_format::Error) -> Self {
        use hexz_format::Error as E;
        let status = match &e {
            E::BadMagic { .. } => hexz_status::BadMagic,
            E::UnsupportedVersion { .. } => hexz_status::UnsupportedVersion,
            E::Checksum { .. } => hexz_status::Checksum,
            E::Truncated { .. } => hexz_status::Truncated,
            E::InvalidField { .. } => hexz_status::InvalidField,
            E::LimitExceeded { .. } => hexz_status::LimitExceeded,
            E::HashMismatch { .. } => hexz_status::HashMismatch,
            E::Decode { .. } => hexz_status::Decode,
            E::OutOfRange { .. } => hexz_status::OutOfRange,
            E::BufferTooSmall { .. } => hexz_status::BufferTooSmall,
            E::TensorNotFound => hexz_status::TensorNotFound,
            E::CodecUnavailable(_) => hexz_status::CodecUnavailable,
            E::ParentRequired { .. } => hexz_status::ParentRequired,
            E::Io { .. } => hexz_status::Io,
            E::Source { .. } => hexz_status::SourceFormat,
            E::ParentNotFound { .. } => hexz_status::ParentNotFound,
            E::ParentMismatch { .. } => hexz_status::ParentMismatch,
            E::ChainTooDeep { .. } => hexz_status::ChainTooDeep,
            E::ChainCycle => hexz_status::ChainCycle,
            _ => hexz_status::InvalidArgument,
        };
        Self::new(status, e.to_string())
    }
    /// Prefix the message with the file it concerns.
    pub fn context(self, path: &std::path::Path) -> Self {
        let prefix = format!("{}: ", path.display());
        if self.message.starts_with(&prefix) {
            return self;
        }
        FfiError { status: self.status, message: prefix + &self.message }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|slot| *slot.borrow_mut() = text);
}

pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.try_with(|slot| slot.borrow().as_ptr()).unwrap_or(c"".as_ptr())
}

/// Run an ABI body: catch panics, record the message of a failure.
pub fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> hexz_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => hexz_status::Ok,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            e.status
        }
        Err(_) => {
            set_last_error("internal failure: a panic was caught at the C ABI boundary");
            hexz_status::Panic
        }
    }
}
