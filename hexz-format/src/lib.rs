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
//! - `std`: I/O errors keep the OS error; brings `cdc`.
//! - `cdc`: content-defined cutting (FastCDC) of raw files when storing.
//! - `encryption`: encrypted archives (format 1.5, `crypt`): AES-256-GCM-SIV
//!   blocks and manifest, keys from a passphrase (Argon2id) or X25519
//!   recipients; needs `alloc`.
//!
//! Modules, along the data path:
//! - Reading: `source` (the `ReadAt` trait every source implements),
//!   `layout` (the on-disk structures), `reader` (open and validate, read
//!   ranges in runs, decode blocks), `index` (the block walker), `manifest`
//!   (tensors, files, metadata), `codec` and `filter` (undo a block's
//!   compression, then its byte rearrangement), `entropy` (codec `ans`),
//!   `verify` (every check, every problem reported).
//! - Writing: `plan` (what a source is: safetensors, GGUF, raw, a folder's
//!   files), `writer` (what a user calls: options, `store`, the report;
//!   the encoder policy in `writer/encode.rs`), `pipeline` (the stages a
//!   driver such as `hexz-io`'s parallel store runs).
//! - Parsers and tables: `safetensors`, `gguf`, `dtype`; `error` (one error
//!   type, one list of status codes).
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
#[cfg(feature = "encryption")]
pub mod crypt;
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
pub mod signature;
pub mod source;
#[cfg(feature = "alloc")]
pub mod verify;
#[cfg(feature = "alloc")]
pub mod writer;

pub use codec::Compression;
pub use error::{Category, Error, ErrorCode, Result};
pub use layout::{CodecId, FilterId, SourceFormat, StorageKind};
pub use reader::{Archive, OpenLimits};
pub use source::ReadAt;
