//! Opening an archive: the header, the footer, the directory and the
//! manifest read and validated in the order the spec gives, before any
//! block is touched; and the structure reads served from the bytes kept at
//! open.

use zerocopy::FromBytes;

use super::Archive;
use crate::error::{Error, Result};
use crate::layout::{
    features, limits, short_checksum, DirectoryEntry, FileHeader, Footer, BLOCK_ENTRY_SIZE, DIRECTORY_ENTRY_SIZE,
    FOOTER_MAGIC, FOOTER_SIZE, HEADER_MAGIC, HEADER_SIZE, MANIFEST_HEADER_SIZE, VERSION_MAJOR,
};
use crate::manifest::ManifestView;
use crate::signature::{self, SignatureSection};
use crate::source::ReadAt;

/// Limits applied while opening.
#[derive(Debug, Clone, Copy)]
pub struct OpenLimits {
    /// Most bytes of directory and manifest held in memory (with `alloc`).
    pub max_metadata_bytes: u64,
}

/// Default cap on directory and manifest memory: 256 MiB.
pub const DEFAULT_MAX_METADATA_BYTES: u64 = 256 << 20;

impl Default for OpenLimits {
    fn default() -> Self {
        OpenLimits { max_metadata_bytes: DEFAULT_MAX_METADATA_BYTES }
    }
}

/// Bytes read from the end of the file at open: the footer and, for most
/// archives, the directory, manifest and last index pages in one read.
pub const TAIL_READ: u64 = 256 << 10;

/// A view of the source that serves structure reads from the bytes kept at
/// open, and the rest from the source.
pub(crate) struct Meta<'a, R: ?Sized> {
    src: &'a R,
    start: u64,
    bytes: &'a [u8],
}

impl<R: ReadAt + ?Sized> ReadAt for Meta<'_, R> {
    fn len(&self) -> u64 {
        self.src.len()
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        match self.borrow_at(offset, buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => self.src.read_exact_at(offset, buf),
        }
    }

    fn borrow_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let from_cache = offset
            .checked_sub(self.start)
            .and_then(|at| usize::try_from(at).ok())
            .and_then(|at| self.bytes.get(at..at.checked_add(len)?));
        from_cache.or_else(|| self.src.borrow_at(offset, len))
    }
}

/// Stream `len` bytes at `offset` through BLAKE3 without allocating.
pub(crate) fn hash_range<R: ReadAt + ?Sized>(src: &R, offset: u64, len: u64) -> Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    if let Some(bytes) = usize::try_from(len).ok().and_then(|n| src.borrow_at(offset, n)) {
        hasher.update(bytes);
    } else {
        let mut chunk = [0u8; 4096];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            src.read_exact_at(offset + done, &mut chunk[..n])?;
            hasher.update(&chunk[..n]);
            done += n as u64;
        }
    }
    Ok(*hasher.finalize().as_bytes())
}

fn parse_struct<T: FromBytes>(raw: &[u8], offset: u64, what: &'static str) -> Result<T> {
    T::read_from_bytes(raw).map_err(|_| Error::invalid(what, offset, "size mismatch"))
}

fn read_struct<T: FromBytes, const N: usize, R: ReadAt + ?Sized>(
    src: &R,
    offset: u64,
    what: &'static str,
) -> Result<T> {
    let mut raw = [0u8; N];
    src.read_exact_at(offset, &mut raw).map_err(|e| match e {
        Error::Truncated { offset, needed, available, .. } => Error::Truncated { what, offset, needed, available },
        other => other,
    })?;
    parse_struct(&raw, offset, what)
}

/// What opens an encrypted archive (nothing, in a build without encryption).
#[cfg(feature = "encryption")]
type Unlocker<'u> = dyn crate::crypt::Unlock + 'u;
#[cfg(not(feature = "encryption"))]
type Unlocker<'u> = ();

/// Decrypt the manifest in `meta` (the file's tail from `meta_start`) in
/// place; returns the keys and the key section's length.
#[cfg(feature = "encryption")]
fn decrypt_manifest(
    meta: &mut [u8],
    meta_start: u64,
    offset: u64,
    length: u64,
    unlock: &dyn crate::crypt::Unlock,
) -> Result<(alloc::sync::Arc<crate::crypt::Keys>, usize)> {
    use crate::crypt::{open_manifest, KeySection};
    let at = offset.checked_sub(meta_start).and_then(|a| usize::try_from(a).ok());
    let region = at
        .and_then(|at| meta.get_mut(at..at.checked_add(usize::try_from(length).ok()?)?))
        .ok_or(Error::invalid("footer manifest_offset", offset, "manifest outside the bytes read"))?;
    let section_len = KeySection::parse(region, offset)?.bytes.len();
    let (section_bytes, ciphertext) = region.split_at_mut(section_len);
    let section = KeySection::parse(section_bytes, offset)?;
    let keys = unlock.unlock(&section)?;
    open_manifest(&keys, &section, ciphertext, offset)?;
    Ok((keys, section_len))
}

impl<R: ReadAt> Archive<R> {
    /// Open and validate an archive with the default [`OpenLimits`].
    pub fn open(src: R) -> Result<Self> {
        Self::open_with(src, &OpenLimits::default())
    }

    /// Open and validate an archive, in the order the spec gives: header,
    /// footer, directory, manifest. Blocks are checked when read. An
    /// encrypted archive (format 1.5) needs [`open_unlocked`](Self::open_unlocked).
    pub fn open_with(src: R, open_limits: &OpenLimits) -> Result<Self> {
        Self::open_inner(src, open_limits, None, false)
    }

    /// Open and validate an archive that may be encrypted (format 1.5):
    /// `unlock` gives the keys from its key section. A plain archive opens
    /// as with [`open_with`](Self::open_with).
    #[cfg(feature = "encryption")]
    pub fn open_unlocked(src: R, open_limits: &OpenLimits, unlock: &(dyn crate::crypt::Unlock + '_)) -> Result<Self> {
        Self::open_inner(src, open_limits, Some(unlock), false)
    }

    /// Open an archive's structure without its keys: header, footer,
    /// directory, signatures and index are read and validated; an encrypted
    /// archive's manifest stays encrypted (its view is empty and
    /// [`manifest`](Self::manifest) says a key is required) and its blocks
    /// cannot be read. What signing and structure checks need; a plain
    /// archive opens fully.
    pub fn open_locked(src: R, open_limits: &OpenLimits) -> Result<Self> {
        Self::open_inner(src, open_limits, None, true)
    }

    fn open_inner(src: R, open_limits: &OpenLimits, unlock: Option<&Unlocker<'_>>, locked: bool) -> Result<Self> {
        let file_len = src.len();
        let min = (HEADER_SIZE + FOOTER_SIZE) as u64;
        if file_len < min {
            let mut magic = [0u8; 8];
            if file_len >= 8 && src.read_exact_at(0, &mut magic).is_ok() && magic != HEADER_MAGIC {
                return Err(Error::BadMagic { what: "header", offset: 0 });
            }
            return Err(Error::Truncated { what: "archive", offset: 0, needed: min, available: file_len });
        }
        let header: FileHeader = read_struct::<_, HEADER_SIZE, _>(&src, 0, "header")?;
        Self::check_header(&header)?;
        let signed = header.incompat_features.get() & features::SIGNED != 0;
        let encrypted = header.incompat_features.get() & features::ENCRYPTED != 0;
        if encrypted && !cfg!(feature = "encryption") {
            return Err(Error::CodecUnavailable("encryption"));
        }
        if encrypted && unlock.is_none() && !locked {
            return Err(Error::KeyRequired);
        }
        // Unsigned: the footer is the last 192 bytes. Signed (1.4): it ends
        // where the signature section starts, which the trailer gives.
        let footer_end = |tail: &dyn ReadAt| -> Result<(u64, Option<SignatureSection>)> {
            if !signed {
                return Ok((file_len, None));
            }
            let section = signature::read_trailer(tail, file_len)?;
            Ok((section.archive_end(), Some(section)))
        };

        // A source in memory is read in place: no copy of its tail (and no allocation).
        #[cfg(feature = "alloc")]
        // (Not an encrypted one: its manifest is decrypted in the bytes kept.)
        let in_memory = !encrypted && usize::try_from(file_len).ok().and_then(|n| src.borrow_at(0, n)).is_some();
        #[cfg(feature = "alloc")]
        let (footer, meta_start, meta, signatures) = if in_memory {
            let (end, signatures) = footer_end(&src)?;
            let footer_at = end - FOOTER_SIZE as u64;
            let footer: Footer = read_struct::<_, FOOTER_SIZE, _>(&src, footer_at, "footer")?;
            Self::check_footer(&footer, footer_at)?;
            (footer, 0, alloc::vec::Vec::new(), signatures)
        } else {
            let tail_len = (file_len - HEADER_SIZE as u64).min(TAIL_READ);
            let mut tail = crate::error::try_zeroed(tail_len as usize, "archive tail")?;
            let tail_start = file_len - tail_len;
            src.read_exact_at(tail_start, &mut tail)?;
            // The trailer and signature section come within the tail read
            // (a section is at most 73 KiB): no extra read for a signed archive.
            let (end, signatures) = footer_end(&Meta { src: &src, start: tail_start, bytes: &tail })?;
            let footer_at = end - FOOTER_SIZE as u64;
            let footer: Footer = read_struct::<_, FOOTER_SIZE, _>(
                &Meta { src: &src, start: tail_start, bytes: &tail },
                footer_at,
                "footer",
            )?;
            Self::check_footer(&footer, footer_at)?;
            let start = footer.directory_offset.get();
            let needed = file_len - start;
            if needed > open_limits.max_metadata_bytes {
                return Err(Error::LimitExceeded {
                    what: "directory and manifest bytes",
                    value: needed,
                    limit: open_limits.max_metadata_bytes,
                });
            }
            if start >= tail_start {
                (footer, tail_start, tail, signatures)
            } else {
                drop(tail);
                let mut meta = crate::error::try_zeroed(needed as usize, "directory and manifest")?;
                src.read_exact_at(start, &mut meta)?;
                (footer, start, meta, signatures)
            }
        };
        #[cfg(feature = "alloc")]
        #[allow(unused_mut)]
        let mut meta = meta;
        #[cfg(not(feature = "alloc"))]
        let (footer, signatures) = {
            let _ = open_limits;
            let (end, signatures) = footer_end(&src)?;
            let footer_at = end - FOOTER_SIZE as u64;
            let footer: Footer = read_struct::<_, FOOTER_SIZE, _>(&src, footer_at, "footer")?;
            Self::check_footer(&footer, footer_at)?;
            (footer, signatures)
        };

        let identity = *blake3::hash(&zerocopy::IntoBytes::as_bytes(&footer)[..FOOTER_SIZE - 8]).as_bytes();
        {
            #[cfg(feature = "alloc")]
            let meta = Meta { src: &src, start: meta_start, bytes: &meta };
            #[cfg(not(feature = "alloc"))]
            let meta = Meta { src: &src, start: 0, bytes: &[] };
            let directory_offset = footer.directory_offset.get();
            let directory_length = u64::from(footer.page_count.get()) * DIRECTORY_ENTRY_SIZE as u64;
            if hash_range(&meta, directory_offset, directory_length)? != footer.directory_hash {
                return Err(Error::Checksum { what: "directory", offset: directory_offset });
            }
            let manifest_offset = footer.manifest_offset.get();
            let manifest_length = footer.manifest_length.get();
            if hash_range(&meta, manifest_offset, manifest_length)? != footer.manifest_hash {
                return Err(Error::Checksum { what: "manifest", offset: manifest_offset });
            }
        }
        // Encrypted (1.5): the manifest region is a key section and the
        // manifest's ciphertext, decrypted here in the bytes kept.
        #[cfg(feature = "encryption")]
        let (keys, manifest_offset, manifest_length) = match unlock {
            Some(unlock) if encrypted => {
                let (keys, section_len) = decrypt_manifest(
                    &mut meta,
                    meta_start,
                    footer.manifest_offset.get(),
                    footer.manifest_length.get(),
                    unlock,
                )?;
                let offset = footer.manifest_offset.get() + section_len as u64;
                (Some(keys), offset, footer.manifest_length.get() - section_len as u64)
            }
            _ => (None, footer.manifest_offset.get(), footer.manifest_length.get()),
        };
        #[cfg(not(feature = "encryption"))]
        let (manifest_offset, manifest_length) = {
            let _ = unlock;
            (footer.manifest_offset.get(), footer.manifest_length.get())
        };
        let manifest = {
            #[cfg(feature = "alloc")]
            let meta = Meta { src: &src, start: meta_start, bytes: &meta };
            #[cfg(not(feature = "alloc"))]
            let meta = Meta { src: &src, start: 0, bytes: &[] };
            if encrypted && unlock.is_none() {
                // Locked: the manifest stays encrypted; an empty view stands in.
                let mut empty = [0u8; MANIFEST_HEADER_SIZE];
                empty[..8].copy_from_slice(&crate::layout::MANIFEST_MAGIC);
                ManifestView::parse(
                    &empty,
                    manifest_offset,
                    MANIFEST_HEADER_SIZE as u64,
                    footer.virtual_size.get(),
                    false,
                )?
            } else {
                if manifest_length < MANIFEST_HEADER_SIZE as u64 {
                    return Err(Error::invalid("footer manifest_length", manifest_offset, "manifest too short"));
                }
                let mut head = [0u8; MANIFEST_HEADER_SIZE];
                meta.read_exact_at(manifest_offset, &mut head)?;
                let files = header.incompat_features.get() & features::FILES != 0;
                let view =
                    ManifestView::parse(&head, manifest_offset, manifest_length, footer.virtual_size.get(), files)?;
                #[cfg(feature = "alloc")]
                view.check_files(&meta)?;
                view
            }
        };
        let archive = Archive {
            src,
            header,
            footer,
            identity,
            manifest,
            signatures,
            #[cfg(feature = "encryption")]
            keys,
            verify_hashes: true,
            #[cfg(feature = "alloc")]
            meta,
            #[cfg(feature = "alloc")]
            meta_start,
            #[cfg(feature = "alloc")]
            ancestors: alloc::vec::Vec::new(),
        };
        archive.check_directory()?;
        Ok(archive)
    }

    fn check_header(header: &FileHeader) -> Result<()> {
        if header.magic != HEADER_MAGIC {
            return Err(Error::BadMagic { what: "header", offset: 0 });
        }
        if short_checksum(&zerocopy::IntoBytes::as_bytes(header)[..HEADER_SIZE - 8]) != header.checksum.get() {
            return Err(Error::Checksum { what: "header", offset: 0 });
        }
        let (major, minor) = (header.version_major.get(), header.version_minor.get());
        if major != VERSION_MAJOR {
            return Err(Error::UnsupportedVersion { major, minor });
        }
        if header.header_size.get() != HEADER_SIZE as u32 {
            return Err(Error::invalid("header header_size", 12, "must be 64 in version 1"));
        }
        // Forward compatibility (spec section 4): unknown incompatible
        // features refuse the archive; unknown compatible ones are ignored.
        let incompat = header.incompat_features.get();
        let unknown = incompat & !features::KNOWN_INCOMPAT;
        if unknown != 0 {
            return Err(Error::UnsupportedFeatures { minor, bits: unknown, known: features::KNOWN_MINOR });
        }
        if minor < features::minor_for(incompat) {
            return Err(Error::invalid("header version_minor", 10, "lower than its features need"));
        }
        if header.reserved != [0; 24] {
            return Err(Error::invalid("header reserved bytes", 32, "must be zero"));
        }
        Ok(())
    }

    fn check_footer(footer: &Footer, at: u64) -> Result<()> {
        if footer.magic != FOOTER_MAGIC {
            // The header was valid: this is an archive whose end is missing
            // or damaged, not some other kind of file.
            return Err(Error::invalid(
                "footer magic",
                at,
                "no footer at the end: the archive is truncated or damaged",
            ));
        }
        if short_checksum(&zerocopy::IntoBytes::as_bytes(footer)[..FOOTER_SIZE - 8]) != footer.checksum.get() {
            return Err(Error::Checksum { what: "footer", offset: at });
        }
        if footer.flags.get() != 0 {
            return Err(Error::invalid("footer flags", at + 64, "must be zero"));
        }
        if footer.reserved != [0; 16] {
            return Err(Error::invalid("footer reserved bytes", at + 168, "must be zero"));
        }
        let epp = footer.entries_per_page.get();
        if epp == 0 || epp > limits::MAX_ENTRIES_PER_PAGE {
            return Err(Error::invalid("footer entries_per_page", at + 36, "must be 1 to 4096"));
        }
        let blocks = footer.block_count.get();
        let pages = u64::from(footer.page_count.get());
        if pages != blocks.div_ceil(u64::from(epp)) {
            return Err(Error::invalid("footer page_count", at + 32, "does not match block_count / entries_per_page"));
        }
        if (blocks == 0) != (footer.virtual_size.get() == 0) {
            return Err(Error::invalid("footer block_count", at + 16, "zero blocks must mean an empty source"));
        }
        if footer.max_block_length.get() > limits::MAX_BLOCK_LENGTH {
            return Err(Error::LimitExceeded {
                what: "footer max_block_length",
                value: u64::from(footer.max_block_length.get()),
                limit: u64::from(limits::MAX_BLOCK_LENGTH),
            });
        }
        if footer.max_stored_length.get() > footer.max_block_length.get() {
            return Err(Error::invalid("footer max_stored_length", at + 60, "larger than max_block_length"));
        }
        if blocks > 0 && footer.max_block_length.get() == 0 {
            return Err(Error::invalid("footer max_block_length", at + 56, "zero with blocks present"));
        }
        let directory_offset = footer.directory_offset.get();
        if directory_offset < HEADER_SIZE as u64 {
            return Err(Error::invalid("footer directory_offset", at + 24, "inside the header"));
        }
        // Pages sit in [HEADER_SIZE, directory_offset); the block count must fit there.
        if blocks > (directory_offset - HEADER_SIZE as u64) / BLOCK_ENTRY_SIZE as u64 {
            return Err(Error::invalid("footer block_count", at + 16, "more block entries than the file can hold"));
        }
        let directory_end = directory_offset.checked_add(pages * DIRECTORY_ENTRY_SIZE as u64);
        if directory_end != Some(footer.manifest_offset.get()) {
            return Err(Error::invalid("footer manifest_offset", at + 40, "manifest must follow the directory"));
        }
        let manifest_length = footer.manifest_length.get();
        if manifest_length < MANIFEST_HEADER_SIZE as u64 || manifest_length > limits::MAX_MANIFEST_LENGTH {
            return Err(Error::invalid("footer manifest_length", at + 48, "out of range"));
        }
        if footer.manifest_offset.get().checked_add(manifest_length) != Some(at) {
            return Err(Error::invalid("footer manifest_length", at + 48, "manifest must end where the footer starts"));
        }
        Ok(())
    }

    /// Structure reads: from the bytes kept at open when they hold the range.
    pub(crate) fn meta(&self) -> Meta<'_, R> {
        #[cfg(feature = "alloc")]
        return Meta { src: &self.src, start: self.meta_start, bytes: &self.meta };
        #[cfg(not(feature = "alloc"))]
        return Meta { src: &self.src, start: 0, bytes: &[] };
    }

    pub(crate) fn directory_entry(&self, page: u32) -> Result<DirectoryEntry> {
        if page >= self.footer.page_count.get() {
            return Err(Error::InvalidArgument("page index out of range"));
        }
        let at = self.footer.directory_offset.get() + u64::from(page) * DIRECTORY_ENTRY_SIZE as u64;
        read_struct::<_, DIRECTORY_ENTRY_SIZE, _>(&self.meta(), at, "directory entry")
    }

    /// Check every directory entry once at open: ascending first offsets,
    /// exact entry counts, pages inside the data region.
    fn check_directory(&self) -> Result<()> {
        let mut previous: Option<u64> = None;
        for p in 0..self.footer.page_count.get() {
            let at = self.footer.directory_offset.get() + u64::from(p) * DIRECTORY_ENTRY_SIZE as u64;
            let entry = self.directory_entry(p)?;
            let first = entry.first_virtual_offset.get();
            let ok_first = match previous {
                None => first == 0,
                Some(prev) => first > prev,
            };
            if !ok_first || first >= self.virtual_size() {
                return Err(Error::invalid(
                    "directory first_virtual_offset",
                    at,
                    "not ascending from 0 inside the virtual space",
                ));
            }
            previous = Some(first);
            if entry.entry_count.get() != self.expected_entries(p) {
                return Err(Error::invalid("directory entry_count", at + 16, "does not match entries_per_page"));
            }
            if entry.reserved != [0; 4] {
                return Err(Error::invalid("directory reserved bytes", at + 20, "must be zero"));
            }
            let page_len = u64::from(entry.entry_count.get()) * BLOCK_ENTRY_SIZE as u64;
            let end = entry.page_offset.get().checked_add(page_len);
            if entry.page_offset.get() < HEADER_SIZE as u64
                || end.is_none_or(|e| e > self.footer.directory_offset.get())
            {
                return Err(Error::invalid("directory page_offset", at + 8, "page outside the data region"));
            }
        }
        Ok(())
    }

    fn expected_entries(&self, page: u32) -> u32 {
        let epp = u64::from(self.footer.entries_per_page.get());
        let before = u64::from(page) * epp;
        (self.footer.block_count.get() - before).min(epp) as u32
    }
}
