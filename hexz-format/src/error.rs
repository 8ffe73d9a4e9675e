//! The one error type of the format core. Every variant says which field or
//! structure was bad and where, so a user can find the problem in a hex dump.

/// Result alias used across the crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong while parsing, reading, writing or verifying.
///
/// The numeric [`Error::code`] of each variant is stable: the C ABI uses it as
/// its status code, so codes are never reused.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A magic number did not match.
    #[error("not a hexz archive: bad {what} magic at offset {offset}")]
    BadMagic { what: &'static str, offset: u64 },
    /// The archive declares a format version this reader does not know.
    #[error("unsupported format version {major}.{minor} (this reader supports 1.x)")]
    UnsupportedVersion { major: u16, minor: u16 },
    /// A checksum or BLAKE3 digest over a structure did not match.
    #[error("{what} at offset {offset}: checksum mismatch")]
    Checksum { what: &'static str, offset: u64 },
    /// A structure extends past the end of the available bytes.
    #[error("truncated: {what} at offset {offset} needs {needed} bytes, {available} available")]
    Truncated { what: &'static str, offset: u64, needed: u64, available: u64 },
    /// A field holds a value that is not allowed.
    #[error("invalid {field} at offset {offset}: {reason}")]
    InvalidField { field: &'static str, offset: u64, reason: &'static str },
    /// A declared size or count exceeds a hard limit.
    #[error("{what} is {value}, over the limit of {limit}")]
    LimitExceeded { what: &'static str, value: u64, limit: u64 },
    /// A block decoded to bytes whose BLAKE3 differs from the index.
    #[error("block {block} (virtual offset {offset}): decoded bytes do not match the recorded BLAKE3")]
    HashMismatch { block: u64, offset: u64 },
    /// The codec rejected a block's stored bytes, or produced the wrong length.
    #[error("block {block} (virtual offset {offset}): {codec} decode failed: {reason}")]
    Decode { block: u64, offset: u64, codec: &'static str, reason: &'static str },
    /// The requested range is outside the archive's virtual space.
    #[error("range {offset}+{length} is outside the virtual space of {size} bytes")]
    OutOfRange { offset: u64, length: u64, size: u64 },
    /// A caller-provided buffer (output or scratch) is too small.
    #[error("{what} too small: need {needed} bytes, got {got}")]
    BufferTooSmall { what: &'static str, needed: u64, got: u64 },
    /// No tensor has the requested name.
    #[error("no tensor with that name")]
    TensorNotFound,
    /// The block uses a codec this build does not include.
    #[error("codec {0} is not compiled into this build")]
    CodecUnavailable(&'static str),
    /// A block lives in a parent archive that is not attached.
    #[error("block at virtual offset {offset} lives in ancestor {depth} of the chain, which is not attached")]
    ParentRequired { offset: u64, depth: u8 },
    /// I/O on the underlying source failed.
    #[error("I/O error at offset {offset}: {kind}")]
    Io { offset: u64, kind: IoKind },
    /// The source file (safetensors or GGUF) is malformed.
    #[error("{format}: invalid {field} at offset {offset}: {reason}")]
    Source { format: &'static str, field: &'static str, offset: u64, reason: &'static str },
    /// An operation was given arguments it cannot work with.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// No file at the parent's path hint (or in the search folders).
    #[cfg(feature = "alloc")]
    #[error("parent archive with identity {expected} not found (tried {tried})")]
    ParentNotFound { expected: Hex32, tried: alloc::string::String },
    /// A file was found where the parent should be, but it is another archive.
    #[cfg(feature = "alloc")]
    #[error("{path} is not the parent archive: its identity is {found}, expected {expected}")]
    ParentMismatch { expected: Hex32, found: Hex32, path: alloc::string::String },
    /// The parent chain is deeper than the format allows.
    #[error("parent chain is deeper than {limit} archives")]
    ChainTooDeep { limit: u8 },
    /// The parent chain names an archive already in it.
    #[error("parent chain loops back to an archive already in it")]
    ChainCycle,
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

/// The kind of an I/O failure, kept small so the error type works without std.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoKind(pub &'static str);

impl core::fmt::Display for IoKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

impl Error {
    /// Stable numeric code; the C ABI's status code for this error.
    pub fn code(&self) -> u32 {
        match self {
            Error::BadMagic { .. } => 10,
            Error::UnsupportedVersion { .. } => 11,
            Error::Checksum { .. } => 12,
            Error::Truncated { .. } => 13,
            Error::InvalidField { .. } => 14,
            Error::LimitExceeded { .. } => 15,
            Error::HashMismatch { .. } => 16,
            Error::Decode { .. } => 17,
            Error::OutOfRange { .. } => 18,
            Error::BufferTooSmall { .. } => 19,
            Error::TensorNotFound => 20,
            Error::CodecUnavailable(_) => 21,
            Error::ParentRequired { .. } => 22,
            Error::Io { .. } => 23,
            Error::Source { .. } => 24,
            Error::InvalidArgument(_) => 25,
            #[cfg(feature = "alloc")]
            Error::ParentNotFound { .. } => 26,
            #[cfg(feature = "alloc")]
            Error::ParentMismatch { .. } => 27,
            Error::ChainTooDeep { .. } => 28,
            Error::ChainCycle => 29,
        }
    }

    pub(crate) fn invalid(field: &'static str, offset: u64, reason: &'static str) -> Self {
        Error::InvalidField { field, offset, reason }
    }
}

#[cfg(feature = "std")]
impl Error {
    /// Map an I/O error from std, keeping its kind.
    pub fn from_io(offset: u64, err: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match err.kind() {
            K::NotFound => "not found",
            K::PermissionDenied => "permission denied",
            K::UnexpectedEof => "unexpected end of file",
            K::Interrupted => "interrupted",
            K::InvalidInput => "invalid input",
            K::OutOfMemory => "out of memory",
            K::WriteZero | K::StorageFull => "device full",
            _ => "I/O failure",
        };
        Error::Io { offset, kind: IoKind(kind) }
    }
}
