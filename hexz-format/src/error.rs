//! The one error type of the format core, and the one list of status codes.
//!
//! [`ErrorCode`] is the status every front end reports: the C ABI exports
//! this very enum as `hexz_status` (cbindgen reads it from here), Python and
//! Go map it to their exceptions and sentinel errors. Every [`Error`]
//! variant names the field or structure that was bad and where.

/// Result alias used across the crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Status of an operation. Numbers are stable and never reused.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullArgument = 1,
    /// An internal failure was contained (a bug; please report it).
    Panic = 2,
    /// A GGUF getter was called on a value of another type.
    TypeMismatch = 3,
    /// Verification found problems.
    VerifyFailed = 4,
    /// Not supported by this build or platform.
    Unsupported = 5,
    /// No tensor, file or key with that name.
    NotFound = 6,
    /// A progress callback asked to stop.
    Cancelled = 7,
    /// Memory could not be allocated, or an open option's memory cap was reached.
    OutOfMemory = 8,
    /// Not a hexz archive (bad magic).
    BadMagic = 10,
    /// The archive needs a newer format version or feature than this library knows.
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
    /// Retired: never returned (a missing tensor gives NOT_FOUND).
    TensorNotFound = 20,
    /// The block's codec is not in this build.
    CodecUnavailable = 21,
    /// The block lives in a parent archive that is not attached.
    ParentRequired = 22,
    /// An I/O error (including a failing read callback); the message keeps the OS error text.
    Io = 23,
    /// The source file (safetensors/GGUF) is malformed.
    SourceFormat = 24,
    /// An argument is out of range or otherwise invalid.
    InvalidArgument = 25,
    /// The parent archive was not found (the message names the identity and the places tried).
    ParentNotFound = 26,
    /// A file at the parent's path is another archive.
    ParentMismatch = 27,
    /// The parent chain is too deep.
    ChainTooDeep = 28,
    /// The parent chain loops.
    ChainCycle = 29,
    /// A trusted key is required and the archive carries no valid signature
    /// by one (unsigned, another key, or a signature that does not match).
    Signature = 30,
    /// The archive is encrypted and no key was given (format 1.5).
    KeyRequired = 31,
    /// None of the keys given opens the encrypted archive, or the chain's
    /// archives are not all under one key.
    WrongKey = 32,
    /// Encrypted bytes fail their authentication tag: damaged ciphertext.
    Decrypt = 33,
}

impl ErrorCode {
    /// Every code, in numeric order.
    pub const ALL: [ErrorCode; 33] = [
        ErrorCode::Ok,
        ErrorCode::NullArgument,
        ErrorCode::Panic,
        ErrorCode::TypeMismatch,
        ErrorCode::VerifyFailed,
        ErrorCode::Unsupported,
        ErrorCode::NotFound,
        ErrorCode::Cancelled,
        ErrorCode::OutOfMemory,
        ErrorCode::BadMagic,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Checksum,
        ErrorCode::Truncated,
        ErrorCode::InvalidField,
        ErrorCode::LimitExceeded,
        ErrorCode::HashMismatch,
        ErrorCode::Decode,
        ErrorCode::OutOfRange,
        ErrorCode::BufferTooSmall,
        ErrorCode::TensorNotFound,
        ErrorCode::CodecUnavailable,
        ErrorCode::ParentRequired,
        ErrorCode::Io,
        ErrorCode::SourceFormat,
        ErrorCode::InvalidArgument,
        ErrorCode::ParentNotFound,
        ErrorCode::ParentMismatch,
        ErrorCode::ChainTooDeep,
        ErrorCode::ChainCycle,
        ErrorCode::Signature,
        ErrorCode::KeyRequired,
        ErrorCode::WrongKey,
        ErrorCode::Decrypt,
    ];

    /// A short description, as `hexz_status_str` returns it.
    pub const fn describe(self) -> &'static str {
        match self {
            ErrorCode::Ok => "ok",
            ErrorCode::NullArgument => "a required pointer argument was NULL",
            ErrorCode::Panic => "internal failure (contained panic)",
            ErrorCode::TypeMismatch => "value has another type",
            ErrorCode::VerifyFailed => "verification found problems",
            ErrorCode::Unsupported => "not supported",
            ErrorCode::NotFound => "not found",
            ErrorCode::Cancelled => "cancelled",
            ErrorCode::OutOfMemory => "out of memory",
            ErrorCode::BadMagic => "not a hexz archive",
            ErrorCode::UnsupportedVersion => "needs a newer format version",
            ErrorCode::Checksum => "checksum mismatch",
            ErrorCode::Truncated => "truncated",
            ErrorCode::InvalidField => "invalid field",
            ErrorCode::LimitExceeded => "limit exceeded",
            ErrorCode::HashMismatch => "block hash mismatch",
            ErrorCode::Decode => "block decode failed",
            ErrorCode::OutOfRange => "range outside the original file",
            ErrorCode::BufferTooSmall => "buffer too small",
            ErrorCode::TensorNotFound => "tensor not found (retired status)",
            ErrorCode::CodecUnavailable => "codec not available",
            ErrorCode::ParentRequired => "parent archive required",
            ErrorCode::Io => "I/O error",
            ErrorCode::SourceFormat => "malformed source file",
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::ParentNotFound => "parent archive not found",
            ErrorCode::ParentMismatch => "parent archive has another identity",
            ErrorCode::ChainTooDeep => "parent chain too deep",
            ErrorCode::ChainCycle => "parent chain loops",
            ErrorCode::Signature => "no valid signature by a trusted key",
            ErrorCode::KeyRequired => "the archive is encrypted and no key was given",
            ErrorCode::WrongKey => "no key given opens the encrypted archive",
            ErrorCode::Decrypt => "encrypted bytes are damaged (authentication tag mismatch)",
        }
    }

    /// The status's name: the C enum value without `HEXZ_STATUS_`.
    pub const fn name(self) -> &'static str {
        match self {
            ErrorCode::Ok => "OK",
            ErrorCode::NullArgument => "NULL_ARGUMENT",
            ErrorCode::Panic => "PANIC",
            ErrorCode::TypeMismatch => "TYPE_MISMATCH",
            ErrorCode::VerifyFailed => "VERIFY_FAILED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Cancelled => "CANCELLED",
            ErrorCode::OutOfMemory => "OUT_OF_MEMORY",
            ErrorCode::BadMagic => "BAD_MAGIC",
            ErrorCode::UnsupportedVersion => "UNSUPPORTED_VERSION",
            ErrorCode::Checksum => "CHECKSUM",
            ErrorCode::Truncated => "TRUNCATED",
            ErrorCode::InvalidField => "INVALID_FIELD",
            ErrorCode::LimitExceeded => "LIMIT_EXCEEDED",
            ErrorCode::HashMismatch => "HASH_MISMATCH",
            ErrorCode::Decode => "DECODE",
            ErrorCode::OutOfRange => "OUT_OF_RANGE",
            ErrorCode::BufferTooSmall => "BUFFER_TOO_SMALL",
            ErrorCode::TensorNotFound => "TENSOR_NOT_FOUND",
            ErrorCode::CodecUnavailable => "CODEC_UNAVAILABLE",
            ErrorCode::ParentRequired => "PARENT_REQUIRED",
            ErrorCode::Io => "IO",
            ErrorCode::SourceFormat => "SOURCE_FORMAT",
            ErrorCode::InvalidArgument => "INVALID_ARGUMENT",
            ErrorCode::ParentNotFound => "PARENT_NOT_FOUND",
            ErrorCode::ParentMismatch => "PARENT_MISMATCH",
            ErrorCode::ChainTooDeep => "CHAIN_TOO_DEEP",
            ErrorCode::ChainCycle => "CHAIN_CYCLE",
            ErrorCode::Signature => "SIGNATURE",
            ErrorCode::KeyRequired => "KEY_REQUIRED",
            ErrorCode::WrongKey => "WRONG_KEY",
            ErrorCode::Decrypt => "DECRYPT",
        }
    }

    /// The code with this number, if there is one.
    pub fn from_u32(n: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.iter().copied().find(|c| *c as u32 == n)
    }

    /// The kind of failure this code is: what a caller does about it.
    /// Every front end maps codes to its error classes through this one
    /// table (C: `hexz_status_category`; Python's exception classes; Go's
    /// sentinel errors; checked against bindings/testdata/error-categories.json).
    pub const fn category(self) -> Category {
        match self {
            ErrorCode::Ok => Category::Ok,
            ErrorCode::NullArgument
            | ErrorCode::TypeMismatch
            | ErrorCode::BadMagic
            | ErrorCode::OutOfRange
            | ErrorCode::BufferTooSmall
            | ErrorCode::SourceFormat
            | ErrorCode::InvalidArgument => Category::InvalidInput,
            ErrorCode::NotFound | ErrorCode::TensorNotFound => Category::NotFound,
            ErrorCode::VerifyFailed
            | ErrorCode::Checksum
            | ErrorCode::Truncated
            | ErrorCode::InvalidField
            | ErrorCode::LimitExceeded
            | ErrorCode::HashMismatch
            | ErrorCode::Decode
            | ErrorCode::Decrypt => Category::Corrupt,
            ErrorCode::ParentRequired
            | ErrorCode::ParentNotFound
            | ErrorCode::ParentMismatch
            | ErrorCode::ChainTooDeep
            | ErrorCode::ChainCycle => Category::ParentMissing,
            ErrorCode::Unsupported | ErrorCode::UnsupportedVersion | ErrorCode::CodecUnavailable => {
                Category::Unsupported
            }
            ErrorCode::Io => Category::Io,
            ErrorCode::OutOfMemory => Category::OutOfMemory,
            ErrorCode::Cancelled => Category::Cancelled,
            ErrorCode::Panic => Category::Internal,
            ErrorCode::Signature => Category::Signature,
            ErrorCode::KeyRequired | ErrorCode::WrongKey => Category::Key,
        }
    }
}

/// What kind of failure a status is, for callers that branch on the kind
/// rather than the exact code. Numbers are stable and never reused; C
/// exports them as `HEXZ_CATEGORY_*`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// Success.
    Ok = 0,
    /// The caller's input or arguments: not an archive, a malformed source,
    /// an option or index out of range, a NULL pointer, a buffer too small.
    InvalidInput = 1,
    /// No tensor, file or key of that name.
    NotFound = 2,
    /// The archive is damaged: checksums, block hashes, truncation, fields
    /// out of range, blocks that do not decode; or verification found problems.
    Corrupt = 3,
    /// A parent archive cannot be found, or is another archive, or the chain is bad.
    ParentMissing = 4,
    /// A newer format version, a codec or an operation this build lacks.
    Unsupported = 5,
    /// Reading or writing failed (the OS error, a read callback, the network).
    Io = 6,
    /// Memory could not be allocated, or a memory cap was reached.
    OutOfMemory = 7,
    /// A progress callback (or the reader of an output) asked to stop.
    Cancelled = 8,
    /// A contained internal failure (a bug).
    Internal = 9,
    /// A trusted key was required and the archive is not signed by one,
    /// or its signature does not match (format 1.4).
    Signature = 10,
    /// The archive is encrypted and no key given opens it (format 1.5).
    Key = 11,
}

impl Category {
    /// Every category, in numeric order.
    pub const ALL: [Category; 12] = [
        Category::Ok,
        Category::InvalidInput,
        Category::NotFound,
        Category::Corrupt,
        Category::ParentMissing,
        Category::Unsupported,
        Category::Io,
        Category::OutOfMemory,
        Category::Cancelled,
        Category::Internal,
        Category::Signature,
        Category::Key,
    ];

    /// The category's name as the bindings spell it ("CORRUPT", ...).
    pub const fn name(self) -> &'static str {
        match self {
            Category::Ok => "OK",
            Category::InvalidInput => "INVALID_INPUT",
            Category::NotFound => "NOT_FOUND",
            Category::Corrupt => "CORRUPT",
            Category::ParentMissing => "PARENT_MISSING",
            Category::Unsupported => "UNSUPPORTED",
            Category::Io => "IO",
            Category::OutOfMemory => "OUT_OF_MEMORY",
            Category::Cancelled => "CANCELLED",
            Category::Internal => "INTERNAL",
            Category::Signature => "SIGNATURE",
            Category::Key => "KEY",
        }
    }
}

/// Everything that can go wrong while parsing, reading, writing or verifying.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A magic number did not match.
    #[error("not a hexz archive: bad {what} magic at offset {offset}")]
    BadMagic {
        /// The structure whose magic was read ("header").
        what: &'static str,
        /// Where its magic starts in the file.
        offset: u64,
    },
    /// The archive declares a major format version this reader does not know.
    #[error("unsupported format version {major}.{minor} (this reader supports 1.x)")]
    UnsupportedVersion {
        /// The major version the header declares.
        major: u16,
        /// The minor version the header declares.
        minor: u16,
    },
    /// The archive uses format features this reader does not know.
    #[error("needs format 1.{minor} or newer: unknown feature bits {bits:#x} (this reader knows format 1.{known})")]
    UnsupportedFeatures {
        /// The minor version the header declares.
        minor: u16,
        /// The incompatible feature bits this reader does not know.
        bits: u64,
        /// The newest minor version this reader reads.
        known: u16,
    },
    /// A checksum or BLAKE3 digest over a structure did not match.
    #[error("{what} at offset {offset}: checksum mismatch")]
    Checksum {
        /// The structure whose checksum failed ("footer", "index page", ...).
        what: &'static str,
        /// Where that structure starts in the file.
        offset: u64,
    },
    /// A structure extends past the end of the available bytes.
    #[error("truncated: {what} at offset {offset} needs {needed} bytes, {available} available")]
    Truncated {
        /// The structure being read.
        what: &'static str,
        /// Where the read started.
        offset: u64,
        /// Bytes the structure needs from `offset`.
        needed: u64,
        /// Bytes there are from `offset` to the end.
        available: u64,
    },
    /// A field holds a value that is not allowed.
    #[error("invalid {field} at offset {offset}: {reason}")]
    InvalidField {
        /// The structure and field, as the spec names them ("footer page_count").
        field: &'static str,
        /// The field's offset in the file (for a block entry, its virtual offset).
        offset: u64,
        /// What rule the value breaks.
        reason: &'static str,
    },
    /// A declared size or count exceeds a hard limit.
    #[error("{what} is {value}, over the limit of {limit}")]
    LimitExceeded {
        /// The size or count that is too large.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The most allowed.
        limit: u64,
    },
    /// A block decoded to bytes whose BLAKE3 differs from the index.
    #[error("block {block} (virtual offset {offset}): decoded bytes do not match the recorded BLAKE3")]
    HashMismatch {
        /// The block's number in its archive's index.
        block: u64,
        /// The block's virtual offset.
        offset: u64,
    },
    /// The codec rejected a block's stored bytes, or produced the wrong length.
    #[error("block {block} (virtual offset {offset}): {codec} decode failed: {reason}")]
    Decode {
        /// The block's number in its archive's index.
        block: u64,
        /// The block's virtual offset.
        offset: u64,
        /// The codec's name ("zstd").
        codec: &'static str,
        /// What the codec or the length check found.
        reason: &'static str,
    },
    /// The requested range is outside the archive's virtual space.
    #[error("range {offset}+{length} is outside the virtual space of {size} bytes")]
    OutOfRange {
        /// Start of the requested range.
        offset: u64,
        /// Its length.
        length: u64,
        /// The virtual space's size.
        size: u64,
    },
    /// A caller-provided buffer (output or scratch) is too small.
    #[error("{what} too small: need {needed} bytes, got {got}")]
    BufferTooSmall {
        /// The buffer ("scratch", "tensor buffer", ...).
        what: &'static str,
        /// Bytes it must hold.
        needed: u64,
        /// Bytes it holds.
        got: u64,
    },
    /// No tensor (or file) has the requested name.
    #[error("no {what} with that name")]
    NotFound {
        /// What was looked up ("tensor", "file", "key").
        what: &'static str,
    },
    /// The block uses a codec this build does not include.
    #[error("codec {0} is not compiled into this build")]
    CodecUnavailable(&'static str),
    /// A block lives in a parent archive that is not attached.
    #[error("block at virtual offset {offset} lives in ancestor {depth} of the chain, which is not attached")]
    ParentRequired {
        /// The block's virtual offset.
        offset: u64,
        /// The ancestor holding it (1 = the parent).
        depth: u8,
    },
    /// I/O on the underlying source failed.
    #[error("I/O error at offset {offset}: {cause}")]
    Io {
        /// Where the failing read started.
        offset: u64,
        /// The OS error (or the source's description).
        cause: IoCause,
    },
    /// The source file (safetensors or GGUF) is malformed.
    #[error("{format}: invalid {field} at offset {offset}: {reason}")]
    Source {
        /// The source format ("safetensors", "gguf").
        format: &'static str,
        /// The bad field of the source header.
        field: &'static str,
        /// Its offset in the source file.
        offset: u64,
        /// What rule it breaks.
        reason: &'static str,
    },
    /// An operation was given arguments it cannot work with.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// Memory for something the input or the options size could not be had.
    #[error("out of memory: {what} needs {bytes} bytes")]
    OutOfMemory {
        /// What the memory was for.
        what: &'static str,
        /// Bytes asked for.
        bytes: u64,
    },
    /// A progress callback asked to stop.
    #[error("cancelled")]
    Cancelled,
    /// No file at the parent's path hint (or in the search folders).
    #[cfg(feature = "alloc")]
    #[error("parent archive with identity {expected} not found (tried {tried})")]
    ParentNotFound {
        /// The identity the child records for its parent.
        expected: Hex32,
        /// The paths looked at, comma-separated.
        tried: alloc::string::String,
    },
    /// A file was found where the parent should be, but it is another archive.
    #[cfg(feature = "alloc")]
    #[error("{path} is not the parent archive: its identity is {found}, expected {expected}")]
    ParentMismatch {
        /// The identity the child records for its parent.
        expected: Hex32,
        /// The identity of the archive found.
        found: Hex32,
        /// Where it was found.
        path: alloc::string::String,
    },
    /// The parent chain is deeper than the format allows.
    #[error("parent chain is deeper than {limit} archives")]
    ChainTooDeep {
        /// The most archives a chain may hold.
        limit: u8,
    },
    /// The parent chain names an archive already in it.
    #[error("parent chain loops back to an archive already in it")]
    ChainCycle,
    /// A trusted key was required and no signature by one matches the
    /// archive (format 1.4, spec section 15).
    #[error("signature check failed: {reason}")]
    Signature {
        /// Why: unsigned, another key, a signature that does not match.
        reason: &'static str,
    },
    /// The archive is encrypted (format 1.5) and no key was given.
    #[error("the archive is encrypted: give an identity file or the passphrase")]
    KeyRequired,
    /// No key given opens the archive, or a chain mixes keys.
    #[error("wrong key: {reason}")]
    WrongKey {
        /// Which: no stanza opened, or the chain's archives differ in key.
        reason: &'static str,
    },
    /// Encrypted bytes fail their authentication tag (format 1.5).
    #[error("{what} at offset {offset}: encrypted bytes are damaged (authentication tag mismatch)")]
    Decrypt {
        /// The structure ("block", "manifest").
        what: &'static str,
        /// For a block its virtual offset, else the archive offset.
        offset: u64,
    },
    /// The error happened in ancestor `depth` of the chain (1 = the parent):
    /// its bytes or structures are at fault, not the archive that was opened.
    /// Front ends replace the depth with the ancestor's path.
    #[cfg(feature = "alloc")]
    #[error("in ancestor {depth} of the chain: {error}")]
    Ancestor {
        /// The ancestor at fault (1 = the parent).
        depth: u8,
        /// What went wrong there.
        error: alloc::boxed::Box<Error>,
    },
}

/// A 32-byte digest shown as hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hex32(pub [u8; 32]);

impl core::fmt::Display for Hex32 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why an I/O operation failed. With `std` it keeps the OS error (its text
/// and kind reach the user); without, a static description.
#[derive(Debug, Clone)]
pub struct IoCause(
    #[cfg(feature = "std")] pub std::sync::Arc<std::io::Error>,
    #[cfg(not(feature = "std"))] pub &'static str,
);

impl IoCause {
    /// A cause described by text alone (a failing callback, a remote error).
    pub fn message(text: &'static str) -> Self {
        #[cfg(feature = "std")]
        return IoCause(std::sync::Arc::new(std::io::Error::other(text)));
        #[cfg(not(feature = "std"))]
        return IoCause(text);
    }
}

impl core::fmt::Display for IoCause {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(&self.0, f)
    }
}

impl Error {
    /// The status code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::BadMagic { .. } => ErrorCode::BadMagic,
            Error::UnsupportedVersion { .. } | Error::UnsupportedFeatures { .. } => ErrorCode::UnsupportedVersion,
            Error::Checksum { .. } => ErrorCode::Checksum,
            Error::Truncated { .. } => ErrorCode::Truncated,
            Error::InvalidField { .. } => ErrorCode::InvalidField,
            Error::LimitExceeded { .. } => ErrorCode::LimitExceeded,
            Error::HashMismatch { .. } => ErrorCode::HashMismatch,
            Error::Decode { .. } => ErrorCode::Decode,
            Error::OutOfRange { .. } => ErrorCode::OutOfRange,
            Error::BufferTooSmall { .. } => ErrorCode::BufferTooSmall,
            Error::NotFound { .. } => ErrorCode::NotFound,
            Error::CodecUnavailable(_) => ErrorCode::CodecUnavailable,
            Error::ParentRequired { .. } => ErrorCode::ParentRequired,
            Error::Io { .. } => ErrorCode::Io,
            Error::Source { .. } => ErrorCode::SourceFormat,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::OutOfMemory { .. } => ErrorCode::OutOfMemory,
            Error::Cancelled => ErrorCode::Cancelled,
            #[cfg(feature = "alloc")]
            Error::ParentNotFound { .. } => ErrorCode::ParentNotFound,
            #[cfg(feature = "alloc")]
            Error::ParentMismatch { .. } => ErrorCode::ParentMismatch,
            Error::ChainTooDeep { .. } => ErrorCode::ChainTooDeep,
            Error::ChainCycle => ErrorCode::ChainCycle,
            Error::Signature { .. } => ErrorCode::Signature,
            Error::KeyRequired => ErrorCode::KeyRequired,
            Error::WrongKey { .. } => ErrorCode::WrongKey,
            Error::Decrypt { .. } => ErrorCode::Decrypt,
            #[cfg(feature = "alloc")]
            Error::Ancestor { error, .. } => error.code(),
        }
    }

    /// An [`Error::InvalidField`].
    pub fn invalid(field: &'static str, offset: u64, reason: &'static str) -> Self {
        Error::InvalidField { field, offset, reason }
    }

    /// The error without its [`Error::Ancestor`] wrapping, and the chain
    /// depth it happened at (0 when it is not wrapped).
    pub fn innermost(&self) -> (u8, &Error) {
        match self {
            #[cfg(feature = "alloc")]
            Error::Ancestor { depth, error } => (*depth, error),
            other => (0, other),
        }
    }

    /// An error of the parent archive, seen from its child: its chain
    /// depths move down by one (the parent itself is depth 1).
    pub fn in_parent(self) -> Self {
        #[cfg(feature = "alloc")]
        return match self {
            Error::Ancestor { depth, error } => Error::Ancestor { depth: depth.saturating_add(1), error },
            other => Error::Ancestor { depth: 1, error: alloc::boxed::Box::new(other) },
        };
        #[cfg(not(feature = "alloc"))]
        self
    }

    /// Mark an error as belonging to ancestor `depth` (0: leave it as is).
    pub(crate) fn at_depth(self, depth: usize) -> Self {
        #[cfg(feature = "alloc")]
        if depth > 0 && !matches!(self, Error::Ancestor { .. }) {
            return Error::Ancestor { depth: depth as u8, error: alloc::boxed::Box::new(self) };
        }
        let _ = depth;
        self
    }
}

#[cfg(feature = "std")]
impl Error {
    /// An I/O error from std at `offset`, keeping the OS error.
    pub fn from_io(offset: u64, err: std::io::Error) -> Self {
        Error::Io { offset, cause: IoCause(std::sync::Arc::new(err)) }
    }

    /// The OS error behind an [`Error::Io`], if there is one.
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self.innermost().1 {
            Error::Io { cause, .. } => Some(&cause.0),
            _ => None,
        }
    }
}

/// Fallibly allocate a zeroed vector of `len` bytes: input-sized buffers
/// must fail with a status, never abort the host.
#[cfg(feature = "alloc")]
pub fn try_zeroed(len: usize, what: &'static str) -> Result<alloc::vec::Vec<u8>> {
    let mut v = alloc::vec::Vec::new();
    v.try_reserve_exact(len).map_err(|_| Error::OutOfMemory { what, bytes: len as u64 })?;
    v.resize(len, 0);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_described() {
        let mut seen = [false; 64];
        for c in ErrorCode::ALL {
            assert!(!seen[c as usize], "{c:?} listed twice");
            seen[c as usize] = true;
            assert_eq!(ErrorCode::from_u32(c as u32), Some(c));
            assert!(!c.describe().is_empty());
        }
        assert_eq!(ErrorCode::from_u32(9), None);
    }
}
