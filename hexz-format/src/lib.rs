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
//! - `alloc`: owned manifest, parsers for safetensors and GGUF, verification.
//! - `std`: files and the parallel streaming writer.
//!
//! Without `alloc`, [`Archive`] still opens an archive held in a `&[u8]` and
//! reads any range or tensor into caller buffers with caller scratch.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

#[cfg(feature = "std")]
pub mod chain;
pub mod codec;
pub mod dtype;
pub mod error;
#[cfg(feature = "alloc")]
pub mod gguf;
pub mod layout;
pub mod manifest;
pub mod reader;
#[cfg(feature = "alloc")]
pub mod safetensors;
pub mod source;
#[cfg(feature = "alloc")]
pub mod verify;
#[cfg(feature = "std")]
pub mod writer;

pub use codec::Compression;
pub use error::{Error, Result};
pub use reader::Archive;
#[cfg(feature = "std")]
pub use source::FileSource;
pub use source::ReadAt;
