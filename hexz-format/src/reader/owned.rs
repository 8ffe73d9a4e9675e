//! What `alloc` adds to reading: owned scratch ([`Workspace`]), the parent
//! chain attached to an archive, and helpers that return new vectors.

use alloc::vec::Vec;

use super::{Archive, Scratch};
use crate::codec::ZstdContext;
use crate::error::{try_zeroed, Error, Result};
use crate::layout::SourceFormat;
use crate::manifest::{Manifest, TensorInfo};
use crate::source::ReadAt;

/// Most bytes the allocating helpers will read in one call.
pub const MAX_OWNED_READ: u64 = 1 << 34;

/// Owned scratch: a buffer and, with zstd, a reusable decompression
/// context. Make one per thread with [`Archive::new_scratch`].
pub struct Workspace {
    buf: Vec<u8>,
    #[cfg(feature = "zstd")]
    zstd: zstd_safe::DCtx<'static>,
}

impl Workspace {
    /// A workspace of `size` bytes; an error (not an abort) when memory is short.
    pub fn new(size: usize) -> Result<Self> {
        Ok(Workspace {
            buf: try_zeroed(size, "read scratch")?,
            #[cfg(feature = "zstd")]
            zstd: zstd_safe::DCtx::try_create().ok_or(Error::OutOfMemory { what: "zstd context", bytes: 0 })?,
        })
    }

    /// Bytes of scratch held.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the workspace holds no scratch bytes.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}

impl core::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Workspace").field("len", &self.buf.len()).finish()
    }
}

impl Scratch for Workspace {
    fn parts(&mut self) -> (&mut [u8], ZstdContext<'_>) {
        #[cfg(feature = "zstd")]
        return (&mut self.buf, Some(&mut self.zstd));
        #[cfg(not(feature = "zstd"))]
        return (&mut self.buf, None);
    }
}

impl Scratch for Vec<u8> {
    fn parts(&mut self) -> (&mut [u8], ZstdContext<'_>) {
        (self.as_mut_slice(), None)
    }
}

impl<R: ReadAt> Archive<R> {
    /// Attach the parent chain: `ancestors[0]` is the parent, then its
    /// parent, and so on. Each must have the identity its child names.
    pub fn with_ancestors(mut self, ancestors: Vec<Archive<R>>) -> Result<Self> {
        if ancestors.len() >= usize::from(crate::layout::limits::MAX_CHAIN_DEPTH) {
            return Err(Error::ChainTooDeep { limit: crate::layout::limits::MAX_CHAIN_DEPTH });
        }
        let mut child_parent = self.parent_identity();
        for a in &ancestors {
            // A chain is under one key, or none (spec section 16).
            if a.is_encrypted() != self.is_encrypted() {
                return Err(Error::WrongKey { reason: "the chain mixes encrypted and plain archives" });
            }
            #[cfg(feature = "encryption")]
            if a.keys.as_ref().map(|k| k.id()) != self.keys.as_ref().map(|k| k.id()) {
                return Err(Error::WrongKey { reason: "the chain's archives are encrypted under different keys" });
            }
            match child_parent {
                Some(id) if id == a.identity() => child_parent = a.parent_identity(),
                Some(id) => {
                    return Err(Error::ParentMismatch {
                        expected: crate::error::Hex32(id),
                        found: crate::error::Hex32(a.identity()),
                        path: alloc::string::String::from("(attached archive)"),
                    })
                }
                None => return Err(Error::InvalidArgument("an attached archive is not a parent in the chain")),
            }
        }
        self.ancestors = ancestors;
        Ok(self)
    }

    /// The attached ancestors (parent first).
    pub fn ancestors(&self) -> &[Archive<R>] {
        &self.ancestors
    }

    /// This archive alone, without its attached ancestors.
    pub fn detached(&self) -> Archive<R>
    where
        R: Clone,
    {
        Archive {
            src: self.src.clone(),
            header: self.header,
            footer: self.footer,
            identity: self.identity,
            manifest: self.manifest,
            signatures: self.signatures,
            #[cfg(feature = "encryption")]
            keys: self.keys.clone(),
            verify_hashes: self.verify_hashes,
            meta: self.meta.clone(),
            meta_start: self.meta_start,
            ancestors: Vec::new(),
        }
    }

    /// The parent this archive names: its identity and path hint.
    pub fn parent_ref(&self) -> Result<Option<crate::manifest::ParentRef>> {
        self.manifest.parent_ref(&self.meta())
    }

    /// Bytes held for this archive alone (directory and manifest kept at open).
    pub fn held_bytes(&self) -> usize {
        self.meta.len()
    }

    /// A workspace of [`scratch_size`](Self::scratch_size) bytes.
    pub fn new_scratch(&self) -> Result<Workspace> {
        Workspace::new(self.scratch_size())
    }

    /// Read a virtual range into a new vector.
    pub fn read_vec(&self, offset: u64, length: u64) -> Result<Vec<u8>> {
        let end = offset.checked_add(length);
        if end.is_none_or(|end| end > self.virtual_size()) {
            return Err(Error::OutOfRange { offset, length, size: self.virtual_size() });
        }
        if length > MAX_OWNED_READ {
            return Err(Error::LimitExceeded { what: "read length", value: length, limit: MAX_OWNED_READ });
        }
        let mut out = try_zeroed(length as usize, "read buffer")?;
        self.read_at(offset, &mut out, &mut self.new_scratch()?)?;
        Ok(out)
    }

    /// The whole manifest, decoded (from the bytes kept at open).
    pub fn manifest(&self) -> Result<Manifest> {
        if self.is_locked() {
            return Err(Error::KeyRequired);
        }
        self.manifest.decode(&self.meta())
    }

    /// File `index` of a folder archive, decoded.
    pub fn file_info(&self, index: u32) -> Result<crate::manifest::FileInfo> {
        self.manifest.file_info(&self.meta(), index)
    }

    /// Tensor `index`, decoded.
    pub fn tensor_info(&self, index: u32) -> Result<TensorInfo> {
        self.manifest.tensor_info(&self.meta(), index)
    }

    /// The bytes of a tensor, by name.
    pub fn tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
        let r = self.tensor_record(self.find_tensor(name)?)?;
        self.read_vec(r.virtual_offset.get(), r.length.get())
    }

    /// Length of the source file's own header (`[0, this)` of the virtual space).
    pub fn source_header_length(&self) -> u64 {
        self.manifest.header.source_header_length.get()
    }

    /// The source file's own header (safetensors JSON or GGUF header), verbatim.
    pub fn source_header(&self) -> Result<Vec<u8>> {
        self.read_vec(0, self.source_header_length())
    }

    /// The GGUF header with its key/values, parsed from the archived bytes;
    /// returns the header bytes too, which string and array spans refer to.
    pub fn gguf_header(&self) -> Result<(Vec<u8>, crate::gguf::GgufHeader)> {
        if self.manifest.source_format() != SourceFormat::Gguf {
            return Err(Error::InvalidArgument("the archived file is not GGUF"));
        }
        let bytes = self.source_header()?;
        let header = crate::gguf::parse(&bytes, self.virtual_size())?;
        Ok((bytes, header))
    }
}
