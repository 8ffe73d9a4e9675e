//! Reading an archive: open (validate header, footer, directory, manifest),
//! walk blocks through the two-level index ([`crate::index`]), decode into
//! caller buffers.
//!
//! Few reads per operation, because every read may be a round trip to
//! object storage. With `alloc`, open is one read of the header and one of
//! the file's tail (footer, directory, manifest and usually the last index
//! pages; a third when the directory and manifest are larger than the
//! tail), kept for the archive's life, so tensor lookups read nothing.
//! Reading a range costs one read per index page it touches and one per
//! run of blocks stored next to each other: a run is read in one call into
//! the tail of the caller's output and decoded in place, front to back.
//!
//! Nothing on the read path allocates: decoding uses caller scratch of
//! [`Archive::scratch_size`] bytes.
//!
//! Along the data path: [`open`](Archive::open) validates the header,
//! footer, directory and manifest (`open.rs`); [`read_at`](Archive::read_at)
//! walks the index and reads runs of blocks (`run.rs`); each block is
//! decoded, codec then filter, against its base for a delta (`decode.rs`),
//! in scratch laid out per chain level (`scratch.rs`). Tensor and file
//! lookups are in `lookup.rs`; the allocating helpers in `owned.rs`.

use crate::layout::{FileHeader, Footer, BLOCK_ENTRY_SIZE};
use crate::manifest::ManifestView;
use crate::source::ReadAt;

mod decode;
mod lookup;
mod open;
#[cfg(feature = "alloc")]
mod owned;
mod run;
mod scratch;

pub use crate::index::{BlockRef, Blocks, Page};
pub use open::{OpenLimits, DEFAULT_MAX_METADATA_BYTES, TAIL_READ};
#[cfg(feature = "alloc")]
pub use owned::{Workspace, MAX_OWNED_READ};
pub use scratch::Scratch;

/// An open archive over any [`ReadAt`] source.
#[derive(Debug, Clone)]
pub struct Archive<R> {
    src: R,
    header: FileHeader,
    footer: Footer,
    identity: [u8; 32],
    manifest: ManifestView,
    /// The signature section of a signed archive (format 1.4).
    signatures: Option<crate::signature::SignatureSection>,
    /// The keys of an encrypted archive (format 1.5).
    #[cfg(feature = "encryption")]
    keys: Option<alloc::sync::Arc<crate::crypt::Keys>>,
    verify_hashes: bool,
    /// The file's tail from `meta_start`: directory, manifest, footer.
    #[cfg(feature = "alloc")]
    meta: alloc::vec::Vec<u8>,
    #[cfg(feature = "alloc")]
    meta_start: u64,
    /// Parent, grandparent, ...: every archive a block entry's `location`
    /// can name. Only the archive that was opened holds the chain.
    #[cfg(feature = "alloc")]
    ancestors: alloc::vec::Vec<Archive<R>>,
}

impl<R: ReadAt> Archive<R> {
    /// The source the archive is read from.
    pub fn source(&self) -> &R {
        &self.src
    }

    /// Length of the source file (the virtual space).
    pub fn virtual_size(&self) -> u64 {
        self.footer.virtual_size.get()
    }

    /// Number of block entries.
    pub fn block_count(&self) -> u64 {
        self.footer.block_count.get()
    }

    /// The validated footer.
    pub fn footer(&self) -> &Footer {
        &self.footer
    }

    /// The validated fixed header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The validated manifest header and section layout.
    pub fn manifest_view(&self) -> &ManifestView {
        &self.manifest
    }

    /// BLAKE3 of the source file, as recorded at store time.
    pub fn source_hash(&self) -> [u8; 32] {
        self.footer.source_hash
    }

    /// The archive's identity: BLAKE3 of footer bytes [0, 184). It commits to
    /// the index and manifest (through their digests) and to the source hash.
    pub fn identity(&self) -> [u8; 32] {
        self.identity
    }

    /// The signature section, when the archive is signed (format 1.4).
    pub fn signature_section(&self) -> Option<&crate::signature::SignatureSection> {
        self.signatures.as_ref()
    }

    /// Where the unsigned archive ends: the footer's end (the file's
    /// length, unless signed).
    pub fn archive_end(&self) -> u64 {
        match &self.signatures {
            Some(s) => s.archive_end(),
            None => self.src.len(),
        }
    }

    /// The signature records, in order (none when unsigned).
    #[cfg(feature = "alloc")]
    pub fn signature_records(&self) -> crate::Result<alloc::vec::Vec<crate::signature::Record>> {
        match &self.signatures {
            Some(section) => crate::signature::records(&self.meta(), section).collect(),
            None => Ok(alloc::vec::Vec::new()),
        }
    }

    /// Require a valid signature by one of `trusted` (spec section 15).
    /// Returns the index of the key that matched; refuses an unsigned
    /// archive, one signed by other keys, and any signature that does not
    /// match the archive's identity.
    pub fn check_signature(&self, trusted: &[crate::signature::PublicKey]) -> crate::Result<usize> {
        if trusted.is_empty() {
            return Err(crate::Error::InvalidArgument("no trusted key given"));
        }
        crate::signature::check(&self.meta(), self.signatures.as_ref(), &self.identity, trusted)
    }

    /// Identity of the parent this archive names, if any.
    pub fn parent_identity(&self) -> Option<[u8; 32]> {
        (self.manifest.header.has_parent == 1).then_some(self.manifest.header.parent_identity)
    }

    /// Whether the archive is encrypted (format 1.5).
    pub fn is_encrypted(&self) -> bool {
        self.header.incompat_features.get() & crate::layout::features::ENCRYPTED != 0
    }

    /// The keys of an encrypted archive, once opened with them.
    #[cfg(feature = "encryption")]
    pub fn keys(&self) -> Option<&alloc::sync::Arc<crate::crypt::Keys>> {
        self.keys.as_ref()
    }

    /// The hasher of the whole virtual space whose digest the footer's
    /// `source_hash` records: keyed in an encrypted archive.
    pub fn source_hasher(&self) -> blake3::Hasher {
        #[cfg(feature = "encryption")]
        if let Some(keys) = &self.keys {
            return keys.source_hasher();
        }
        blake3::Hasher::new()
    }

    /// Whether the archive is encrypted and was opened without its keys
    /// ([`open_locked`](Self::open_locked)): structure only.
    pub fn is_locked(&self) -> bool {
        #[cfg(feature = "encryption")]
        return self.is_encrypted() && self.keys.is_none();
        #[cfg(not(feature = "encryption"))]
        return self.is_encrypted();
    }

    /// The key section of an encrypted archive (format 1.5).
    #[cfg(feature = "encryption")]
    pub fn key_section(&self) -> crate::Result<crate::crypt::KeySection<'_>> {
        if !self.is_encrypted() {
            return Err(crate::Error::InvalidArgument("the archive is not encrypted"));
        }
        let offset = self.footer.manifest_offset.get();
        let at = offset.checked_sub(self.meta_start).and_then(|a| usize::try_from(a).ok());
        let region = at.and_then(|at| self.meta.get(at..)).ok_or(crate::Error::invalid(
            "footer manifest_offset",
            offset,
            "manifest outside the bytes read",
        ))?;
        crate::crypt::KeySection::parse(region, offset)
    }

    /// Decrypt a block's stored bytes in place (nothing for a plain archive).
    #[inline]
    pub(crate) fn open_stored(&self, stored: &mut [u8], e: &crate::layout::BlockEntry) -> crate::Result<()> {
        #[cfg(feature = "encryption")]
        if let Some(keys) = &self.keys {
            return keys.open_block(stored, e);
        }
        if self.is_encrypted() {
            return Err(crate::Error::KeyRequired);
        }
        let _ = (stored, e);
        Ok(())
    }

    /// Whether a decoded block matches its entry's hash (keyed when encrypted).
    #[inline]
    pub(crate) fn block_matches(&self, decoded: &[u8], e: &crate::layout::BlockEntry) -> bool {
        #[cfg(feature = "encryption")]
        if let Some(keys) = &self.keys {
            return keys.block_matches(decoded, e);
        }
        *blake3::hash(decoded).as_bytes() == e.hash
    }

    /// Whether decoded blocks are checked against their BLAKE3 (default: yes).
    pub fn set_verify_hashes(&mut self, verify: bool) {
        self.verify_hashes = verify;
    }

    /// Number of archives in the chain: 1 plus the attached ancestors.
    pub fn chain_len(&self) -> usize {
        #[cfg(feature = "alloc")]
        return 1 + self.ancestors.len();
        #[cfg(not(feature = "alloc"))]
        return 1;
    }

    /// Archive `depth` of the chain: 0 is this one, 1 its parent, ...
    pub fn member(&self, depth: usize) -> Option<&Archive<R>> {
        match depth {
            0 => Some(self),
            #[cfg(feature = "alloc")]
            d => self.ancestors.get(d - 1),
            #[cfg(not(feature = "alloc"))]
            _ => None,
        }
    }

    /// Bytes of one index page of this archive.
    pub fn page_bytes(&self) -> usize {
        self.footer.entries_per_page.get() as usize * BLOCK_ENTRY_SIZE
    }
}
