//! # hexz-format
//!
//! The `.hxz` archive format core: a compressed, deduplicated, seekable image
//! of a model file (safetensors, GGUF, or any file). The archive's virtual
//! byte space is the source file, byte for byte; blocks follow tensor
//! boundaries; a two-level index finds any offset with one directory search
//! and one page read. See `spec/FORMAT.md` for the normative layout.
//!
//! The crate is `#![no_std]`. Features:
//! - `lz4`, `zstd`: codecs (`zstd` needs `std`).
//! - `alloc`: the directory and manifest held in memory (fewer reads),
//!   owned manifest, parsers for safetensors and GGUF, the writer,
//!   verification.
//! - `ans`: entropy-coded blocks (codec `ans`, format 1.3) with rANS
//!   from `constriction`; needs `alloc`.
//! - `std`: I/O errors keep the OS error.
//!
//! Files, parent resolution, threads and atomic output live in `hexz-io`.
//!
//! Without `alloc`, [`Archive`] still opens an archive held in a `&[u8]` and
//! reads any range or tensor into caller buffers with caller scratch.
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod codec;
pub mod dtype;
#[cfg(feature = "ans")]
pub mod entropy;
pub mod error;
pub mod filter;
#[cfg(feature = "alloc")]
pub mod gguf;
pub mod index;
pub mod layout;
pub mod manifest;
#[cfg(feature = "alloc")]
pub mod pipeline;
#[cfg(feature = "alloc")]
pub mod plan;
pub mod reader;
#[cfg(feature = "alloc")]
pub mod safetensors;
pub mod source;
#[cfg(feature = "alloc")]
pub mod verify;
#[cfg(feature = "alloc")]
pub mod writer;

pub use codec::Compression;
pub use error::{Error, ErrorCode, Result};
pub use layout::{CodecId, FilterId, SourceFormat, StorageKind};
pub use reader::{Archive, OpenLimits};
pub use source::ReadAt;
