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

use zerocopy::FromBytes;

use crate::codec::{self, codec_available, ZstdContext};
use crate::error::{Error, Result};
use crate::layout::{
    features, limits, short_checksum, CodecId, DirectoryEntry, FileHeader, FilterId, Footer, BLOCK_ENTRY_SIZE,
    DIRECTORY_ENTRY_SIZE, FOOTER_MAGIC, FOOTER_SIZE, HEADER_MAGIC, HEADER_SIZE, MANIFEST_HEADER_SIZE, VERSION_MAJOR,
};
use crate::manifest::ManifestView;
use crate::source::ReadAt;

pub use crate::index::{BlockRef, Blocks, Page};

/// Working memory for decoding: [`Archive::scratch_size`] bytes, and a
/// reusable zstd context where there is one. Implemented for byte slices and
/// arrays (no allocation anywhere) and, with `alloc`, for [`Workspace`].
pub trait Scratch {
    /// The scratch bytes and the zstd context.
    fn parts(&mut self) -> (&mut [u8], ZstdContext<'_>);
}

impl Scratch for [u8] {
    fn parts(&mut self) -> (&mut [u8], ZstdContext<'_>) {
        (self, None)
    }
}

impl<const N: usize> Scratch for [u8; N] {
    fn parts(&mut self) -> (&mut [u8], ZstdContext<'_>) {
        (self, None)
    }
}

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

/// An open archive over any [`ReadAt`] source.
#[derive(Debug, Clone)]
pub struct Archive<R> {
    src: R,
    header: FileHeader,
    footer: Footer,
    identity: [u8; 32],
    manifest: ManifestView,
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

impl<R: ReadAt> Archive<R> {
    /// Open and validate an archive with the default [`OpenLimits`].
    pub fn open(src: R) -> Result<Self> {
        Self::open_with(src, &OpenLimits::default())
    }

    /// Open and validate an archive, in the order the spec gives: header,
    /// footer, directory, manifest. Blocks are checked when read.
    pub fn open_with(src: R, open_limits: &OpenLimits) -> Result<Self> {
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
        let footer_at = file_len - FOOTER_SIZE as u64;

        // A source in memory is read in place: no copy of its tail (and no allocation).
        #[cfg(feature = "alloc")]
        let in_memory = usize::try_from(file_len).ok().and_then(|n| src.borrow_at(0, n)).is_some();
        #[cfg(feature = "alloc")]
        let (footer, meta_start, meta) = if in_memory {
            let footer: Footer = read_struct::<_, FOOTER_SIZE, _>(&src, footer_at, "footer")?;
            Self::check_footer(&footer, footer_at)?;
            (footer, 0, alloc::vec::Vec::new())
        } else {
            let tail_len = (file_len - HEADER_SIZE as u64).min(TAIL_READ);
            let mut tail = crate::error::try_zeroed(tail_len as usize, "archive tail")?;
            src.read_exact_at(file_len - tail_len, &mut tail)?;
            let footer: Footer = parse_struct(&tail[tail.len() - FOOTER_SIZE..], footer_at, "footer")?;
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
            if start >= file_len - tail_len {
                (footer, file_len - tail_len, tail)
            } else {
                drop(tail);
                let mut meta = crate::error::try_zeroed(needed as usize, "directory and manifest")?;
                src.read_exact_at(start, &mut meta)?;
                (footer, start, meta)
            }
        };
        #[cfg(not(feature = "alloc"))]
        let footer = {
            let _ = open_limits;
            let footer: Footer = read_struct::<_, FOOTER_SIZE, _>(&src, footer_at, "footer")?;
            Self::check_footer(&footer, footer_at)?;
            footer
        };

        let identity = *blake3::hash(&zerocopy::IntoBytes::as_bytes(&footer)[..FOOTER_SIZE - 8]).as_bytes();
        let manifest = {
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
            let mut head = [0u8; MANIFEST_HEADER_SIZE];
            meta.read_exact_at(manifest_offset, &mut head)?;
            let files = header.incompat_features.get() & features::FILES != 0;
            let view = ManifestView::parse(&head, manifest_offset, manifest_length, footer.virtual_size.get(), files)?;
            #[cfg(feature = "alloc")]
            view.check_files(&meta)?;
            view
        };
        let archive = Archive {
            src,
            header,
            footer,
            identity,
            manifest,
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

    /// Identity of the parent this archive names, if any.
    pub fn parent_identity(&self) -> Option<[u8; 32]> {
        (self.manifest.header.has_parent == 1).then_some(self.manifest.header.parent_identity)
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

    /// Largest (page, stored, decoded) lengths over the chain.
    fn chain_limits(&self) -> (usize, usize, usize) {
        (0..self.chain_len()).filter_map(|d| self.member(d)).fold((0, 0, 0), |(p, s, b), m| {
            (
                p.max(m.page_bytes()),
                s.max(m.footer.max_stored_length.get() as usize),
                b.max(m.footer.max_block_length.get() as usize),
            )
        })
    }

    /// Scratch for one level of decoding: an index page, stored bytes,
    /// codec output, delta base, and one whole block for partial reads.
    fn level_size(&self) -> usize {
        let (page, stored, block) = self.chain_limits();
        page + stored + 3 * block
    }

    /// Scratch bytes [`read_at`](Self::read_at) and friends need: one level
    /// per archive in the chain (a delta block reads its base one level down).
    pub fn scratch_size(&self) -> usize {
        self.level_size() * self.chain_len()
    }

    /// Decode one block of this archive (as met by a walk) into `out`
    /// (exactly its virtual length), checking its hash unless hash checks
    /// are off. `index` is only used in errors.
    pub fn decode_block<S: Scratch + ?Sized>(
        &self,
        index: u64,
        e: &crate::layout::BlockEntry,
        out: &mut [u8],
        scratch: &mut S,
    ) -> Result<()> {
        let (bytes, zstd) = scratch.parts();
        let level = self.level_at(0, bytes)?;
        self.decode_one(0, index, e, out, level.stored, level.work, level.rest, zstd, self.verify_hashes)
    }

    /// Decode entry `e` of chain member `depth`, reading its stored bytes
    /// into `stored_buf` (or borrowing them from memory).
    #[allow(clippy::too_many_arguments)]
    fn decode_one(
        &self,
        depth: usize,
        index: u64,
        e: &crate::layout::BlockEntry,
        out: &mut [u8],
        stored_buf: &mut [u8],
        work: &mut [u8],
        rest: &mut [u8],
        zstd: ZstdContext<'_>,
        verify: bool,
    ) -> Result<()> {
        let target_depth = depth + usize::from(e.location);
        let target = self.target(target_depth, e)?;
        let len = e.stored_length.get() as usize;
        let stored: &[u8] = match target.src.borrow_at(e.stored_offset.get(), len) {
            Some(bytes) => bytes,
            // A block stored as it is (incompressible quants, mostly) is
            // read straight into place: one copy fewer.
            None if e.codec == CodecId::None as u8 && e.filter == FilterId::None as u8 && len == out.len() => {
                target.src.read_exact_at(e.stored_offset.get(), out).map_err(|err| err.at_depth(target_depth))?;
                return check_hash(verify, out, e, index, target_depth);
            }
            None => {
                let buf = split_scratch(stored_buf, len)?.0;
                target.src.read_exact_at(e.stored_offset.get(), buf).map_err(|err| err.at_depth(target_depth))?;
                buf
            }
        };
        self.decode_loaded(depth, index, e, stored, out, work, rest, zstd, verify)
    }

    /// The chain member holding the stored bytes of an entry of member
    /// `target_depth - location`, with those bytes checked to lie in its data region.
    fn target(&self, target_depth: usize, e: &crate::layout::BlockEntry) -> Result<&Archive<R>> {
        let voff = e.virtual_offset.get();
        let target =
            self.member(target_depth).ok_or(Error::ParentRequired { offset: voff, depth: target_depth as u8 })?;
        if e.location > 0 {
            // The entry was checked against its own archive; its bytes live in the target.
            let end = e.stored_offset.get().checked_add(u64::from(e.stored_length.get()));
            if e.stored_offset.get() < HEADER_SIZE as u64
                || end.is_none_or(|end| end > target.footer.directory_offset.get())
            {
                return Err(Error::invalid(
                    "block stored_offset",
                    voff,
                    "stored bytes outside the ancestor's data region",
                ));
            }
        }
        Ok(target)
    }

    /// Decode entry `e` of chain member `depth` from its `stored` bytes into
    /// `out`. `work` holds this level's codec and base buffers; `rest` is
    /// scratch for deeper levels (a delta's base).
    #[allow(clippy::too_many_arguments)]
    fn decode_loaded(
        &self,
        depth: usize,
        index: u64,
        e: &crate::layout::BlockEntry,
        stored: &[u8],
        out: &mut [u8],
        work: &mut [u8],
        rest: &mut [u8],
        zstd: ZstdContext<'_>,
        verify: bool,
    ) -> Result<()> {
        self.decode_input(depth, index, e, Input::Stored(stored), out, work, rest, zstd, verify)
    }

    /// As [`decode_loaded`](Self::decode_loaded), from an [`Input`].
    #[allow(clippy::too_many_arguments)]
    fn decode_input(
        &self,
        depth: usize,
        index: u64,
        e: &crate::layout::BlockEntry,
        input: Input<'_>,
        out: &mut [u8],
        work: &mut [u8],
        rest: &mut [u8],
        mut zstd: ZstdContext<'_>,
        verify: bool,
    ) -> Result<()> {
        let vlen = e.virtual_length.get() as usize;
        let voff = e.virtual_offset.get();
        let target_depth = depth + usize::from(e.location);
        if out.len() != vlen {
            return Err(Error::BufferTooSmall { what: "block buffer", needed: vlen as u64, got: out.len() as u64 });
        }
        // Checked when the entry was parsed; unknown ids cannot reach here.
        let codec = CodecId::from_u8(e.codec).ok_or(Error::invalid("block codec", voff, "unknown codec"))?;
        let filter = FilterId::from_u8(e.filter).ok_or(Error::invalid("block filter", voff, "unknown filter"))?;
        if !codec_available(codec) {
            return Err(Error::CodecUnavailable(codec.name()));
        }
        let fail = decode_error(e, index, codec, target_depth);
        let width = usize::from(e.element_width);
        let stored = match input {
            Input::Stored(stored) => stored,
            Input::Decoded if Input::decoded_first(filter, codec) => &[],
            Input::Decoded => return Err(Error::InvalidArgument("block input not decoded ahead")),
        };
        // The codec output of a filter that starts from it, unless already in `work`.
        let codec_output = |work: &mut [u8], zstd: ZstdContext<'_>| match input {
            Input::Stored(stored) => decode_codec(e, index, codec, stored, work, zstd, target_depth),
            Input::Decoded => Ok(()),
        };
        match filter {
            FilterId::None => codec::decompress(codec, stored, out, zstd).map_err(fail)?,
            FilterId::ByteGroup => {
                codec_output(work, zstd)?;
                crate::filter::grouping::ungroup_into(&work[..vlen], width, out);
            }
            FilterId::Fields => {
                // Checked when the entry was parsed: a known layout of `width` bytes.
                let fields = crate::dtype::ggml_fields(e.filter_param.get()).ok_or(Error::invalid(
                    "block filter_param",
                    voff,
                    "not a GGML type with a field layout",
                ))?;
                codec_output(work, zstd)?;
                crate::filter::fields::join_fields_into(&work[..vlen], fields, out);
            }
            #[cfg(feature = "ans")]
            FilterId::FloatAns => {
                let (tmp, _) = split_scratch(work, vlen)?;
                crate::entropy::decode_float(stored, width, out, tmp).map_err(fail)?;
            }
            // Unreachable: codec `ans` is checked above to be available.
            #[cfg(not(feature = "ans"))]
            FilterId::FloatAns => return Err(Error::CodecUnavailable(codec.name())),
            FilterId::DeltaXor | FilterId::DeltaSub | FilterId::DeltaSubBits | FilterId::DeltaAns => {
                let (tmp, work) = split_scratch(work, vlen)?;
                let (base, _) = split_scratch(work, vlen)?;
                // The base is in the archive one below the one holding the
                // delta. Its blocks' hashes are not checked on the way: this
                // block's hash covers the result, and a mismatch re-reads the
                // base checked, to name the parent when the fault is there.
                let base_at = |base: &mut [u8], rest: &mut [u8], zstd: ZstdContext<'_>, verify: bool| {
                    self.read_member(target_depth + 1, e.delta_base_offset.get(), base, rest, zstd, verify).map_err(
                        |err| match err {
                            Error::OutOfRange { .. } => {
                                Error::invalid("block delta_base_offset", voff, "base range outside the parent")
                                    .at_depth(target_depth)
                            }
                            other => other,
                        },
                    )
                };
                match filter {
                    #[cfg(feature = "ans")]
                    FilterId::DeltaAns => {
                        base_at(base, rest, zstd.as_deref_mut(), false)?;
                        crate::entropy::decode_delta(stored, width, out, base, tmp).map_err(fail)?;
                    }
                    _ => {
                        codec::decompress(codec, stored, tmp, zstd.as_deref_mut()).map_err(fail)?;
                        if filter == FilterId::DeltaSubBits {
                            // `base` is free until the base is read.
                            crate::filter::planes::bit_ungroup_into(tmp, width, out, base);
                        } else {
                            crate::filter::grouping::ungroup_into(tmp, width, out);
                        }
                        base_at(base, rest, zstd.as_deref_mut(), false)?;
                        crate::filter::delta::delta_apply_into(filter, out, base, width);
                    }
                }
                if let Err(mismatch) = check_hash(verify, out, e, index, target_depth) {
                    base_at(base, rest, zstd, true)?;
                    return Err(mismatch);
                }
                return Ok(());
            }
        }
        check_hash(verify, out, e, index, target_depth)
    }

    /// Read virtual bytes [`offset`, `offset + out.len()`) into `out`.
    pub fn read_at<S: Scratch + ?Sized>(&self, offset: u64, out: &mut [u8], scratch: &mut S) -> Result<()> {
        let (scratch, zstd) = scratch.parts();
        let need = self.scratch_size();
        if scratch.len() < need {
            return Err(Error::BufferTooSmall { what: "scratch", needed: need as u64, got: scratch.len() as u64 });
        }
        self.read_member(0, offset, out, scratch, zstd, self.verify_hashes)
    }

    /// Read a virtual range of chain member `depth`, using the first level
    /// of `scratch` and passing the rest to deeper levels.
    ///
    /// Whole blocks whose stored bytes follow each other in one archive form
    /// a run: the run's stored bytes are read in one call into the end of
    /// the run's span of `out`, then decoded front to back. Since every
    /// block's stored length is at most its virtual length, decoding block
    /// *k* never overwrites the stored bytes of blocks after *k*.
    fn read_member(
        &self,
        depth: usize,
        offset: u64,
        out: &mut [u8],
        scratch: &mut [u8],
        mut zstd: ZstdContext<'_>,
        verify: bool,
    ) -> Result<()> {
        let member = self.member(depth).ok_or(Error::ParentRequired { offset, depth: depth as u8 })?;
        let length = out.len() as u64;
        let end = offset.checked_add(length);
        if end.is_none_or(|end| end > member.virtual_size()) {
            return Err(Error::OutOfRange { offset, length, size: member.virtual_size() });
        }
        if out.is_empty() {
            return Ok(());
        }
        let level = self.level_at(depth, scratch)?;
        let Level { page, stored, work, whole, rest } = level;
        let mut blocks = member.blocks(offset, length, page).map_err(|e| e.at_depth(depth))?;
        let mut run = Run::default();
        let mut ctx = RunContext { depth, verify, stored, work, rest };
        while let Some(block) = blocks.next() {
            let block = block.map_err(|e| e.at_depth(depth))?;
            let start = block.entry.virtual_offset.get();
            let vlen = block.entry.virtual_length.get() as usize;
            let is_whole = start >= offset && block.end() <= offset + length;
            if is_whole && run.extends(&block, (start - offset) as usize) {
                run.push(&block);
            } else {
                self.flush_run(&mut run, &blocks, out, &mut ctx, zstd.as_deref_mut())?;
                if is_whole {
                    run = Run::start(&block, (start - offset) as usize);
                } else {
                    // A block cut by the range's edge: decode it whole, copy the part asked for.
                    let skip = offset.saturating_sub(start) as usize;
                    let at = start.saturating_sub(offset) as usize;
                    let take = (vlen - skip).min(out.len() - at);
                    let buf = &mut whole[..vlen];
                    let (stored, work, rest) = (&mut *ctx.stored, &mut *ctx.work, &mut *ctx.rest);
                    self.decode_one(
                        depth,
                        block.index,
                        &block.entry,
                        buf,
                        stored,
                        work,
                        rest,
                        zstd.as_deref_mut(),
                        verify,
                    )?;
                    out[at..at + take].copy_from_slice(&buf[skip..skip + take]);
                }
            }
            if blocks.page_exhausted() {
                self.flush_run(&mut run, &blocks, out, &mut ctx, zstd.as_deref_mut())?;
            }
        }
        self.flush_run(&mut run, &blocks, out, &mut ctx, zstd)
    }

    /// Split `scratch` (which starts at level `depth`) into that level's
    /// parts and the deeper levels' rest.
    fn level_at<'s>(&self, depth: usize, scratch: &'s mut [u8]) -> Result<Level<'s>> {
        let need = self.level_size() * (self.chain_len() - depth.min(self.chain_len()));
        if scratch.len() < need || need == 0 {
            return Err(Error::BufferTooSmall { what: "scratch", needed: need as u64, got: scratch.len() as u64 });
        }
        let (page, stored, block) = self.chain_limits();
        let (this, rest) = scratch.split_at_mut(self.level_size());
        let (page_buf, this) = this.split_at_mut(page);
        let (stored_buf, this) = this.split_at_mut(stored);
        let (work, whole) = this.split_at_mut(2 * block);
        Ok(Level { page: page_buf, stored: stored_buf, work, whole, rest })
    }

    /// Decode the blocks of `run` (entries of the page `blocks` holds) into
    /// their span of `out`, reading their stored bytes in one call.
    fn flush_run(
        &self,
        run: &mut Run,
        blocks: &Blocks<'_, R>,
        out: &mut [u8],
        ctx: &mut RunContext<'_>,
        mut zstd: ZstdContext<'_>,
    ) -> Result<()> {
        if run.count == 0 {
            return Ok(());
        }
        let taken = core::mem::take(run);
        let target_depth = ctx.depth + usize::from(taken.location);
        let span = &mut out[taken.out_start..taken.out_start + taken.virtual_len];
        let first = blocks.entry(taken.first_slot)?;
        let target = self.target(target_depth, &first)?;
        let stored_total = taken.stored_len;
        let borrowed = target.src.borrow_at(taken.stored_start, stored_total);
        let tail_at = taken.virtual_len - stored_total;
        if borrowed.is_none() {
            target.src.read_exact_at(taken.stored_start, &mut span[tail_at..]).map_err(|e| e.at_depth(target_depth))?;
        }
        let (mut in_pos, mut out_pos) = (0usize, 0usize);
        for k in 0..taken.count {
            let e = blocks.entry(taken.first_slot + k)?;
            let (slen, vlen) = (e.stored_length.get() as usize, e.virtual_length.get() as usize);
            let index = taken.first_index + u64::from(k);
            let (src_pos, dst_at) = (in_pos, out_pos);
            in_pos += slen;
            out_pos += vlen;
            let dst_range = dst_at..dst_at + vlen;
            let (input, dst): (&[u8], &mut [u8]) = match borrowed {
                Some(bytes) => (&bytes[src_pos..src_pos + slen], &mut span[dst_range]),
                None => {
                    let src_at = tail_at + src_pos;
                    if e.codec == CodecId::None as u8 {
                        // Stored bytes are the block: move them into place (no-op when already there).
                        span.copy_within(src_at..src_at + slen, dst_at);
                        check_hash(ctx.verify, &span[dst_range], &e, index, target_depth)?;
                        continue;
                    } else if src_at >= dst_range.end {
                        let (low, high) = span.split_at_mut(src_at);
                        (&high[..slen], &mut low[dst_range])
                    } else if let Some(codec) = CodecId::from_u8(e.codec).filter(|&c| {
                        codec_available(c)
                            && Input::decoded_first(FilterId::from_u8(e.filter).unwrap_or(FilterId::None), c)
                    }) {
                        // The block's input overlaps its output, but its codec
                        // output goes to scratch first: decode that, then the
                        // filter may overwrite the input.
                        let input = &span[src_at..src_at + slen];
                        decode_codec(&e, index, codec, input, ctx.work, zstd.as_deref_mut(), target_depth)?;
                        self.decode_input(
                            ctx.depth,
                            index,
                            &e,
                            Input::Decoded,
                            &mut span[dst_range],
                            &mut *ctx.work,
                            &mut *ctx.rest,
                            zstd.as_deref_mut(),
                            ctx.verify,
                        )?;
                        continue;
                    } else {
                        // The block's own input overlaps its output: decode from a copy.
                        let copy = split_scratch(&mut *ctx.stored, slen)?.0;
                        copy.copy_from_slice(&span[src_at..src_at + slen]);
                        (copy, &mut span[dst_range])
                    }
                }
            };
            self.decode_loaded(
                ctx.depth,
                index,
                &e,
                input,
                dst,
                &mut *ctx.work,
                &mut *ctx.rest,
                zstd.as_deref_mut(),
                ctx.verify,
            )?;
        }
        Ok(())
    }

    /// Number of tensors in the manifest.
    pub fn tensor_count(&self) -> u32 {
        self.manifest.tensor_count()
    }

    /// Index of the tensor called `name` (a scan of the manifest, which
    /// `alloc` builds hold in memory; front ends keep a name index).
    pub fn find_tensor(&self, name: &str) -> Result<u32> {
        let meta = self.meta();
        for i in 0..self.tensor_count() {
            let r = self.manifest.tensor(&meta, i)?;
            if self.manifest.string_eq(&meta, r.name_offset.get(), r.name_length.get(), name.as_bytes())? {
                return Ok(i);
            }
        }
        Err(Error::NotFound { what: "tensor" })
    }

    /// Entries of the file table (0 unless this is a folder archive).
    pub fn file_count(&self) -> u32 {
        self.manifest.file_count()
    }

    /// File record `index`, checked.
    pub fn file_record(&self, index: u32) -> Result<crate::layout::FileRecord> {
        self.manifest.file(&self.meta(), index)
    }

    /// Index of the file at `path` (a binary search: paths are sorted).
    pub fn find_file(&self, path: &str) -> Result<u32> {
        let meta = self.meta();
        let (mut lo, mut hi) = (0u32, self.file_count());
        let mut chunk = [0u8; 64];
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let r = self.manifest.file(&meta, mid)?;
            // Compare the stored path with `path` byte by byte, in chunks.
            let (at, len) = (r.path_offset.get(), r.path_length.get() as usize);
            let mut order = core::cmp::Ordering::Equal;
            let mut done = 0usize;
            while done < len.min(path.len()) && order == core::cmp::Ordering::Equal {
                let n = (len.min(path.len()) - done).min(chunk.len());
                meta.read_exact_at(self.manifest.string_offset(at) + done as u64, &mut chunk[..n])?;
                order = chunk[..n].cmp(&path.as_bytes()[done..done + n]);
                done += n;
            }
            if order == core::cmp::Ordering::Equal {
                order = len.cmp(&path.len());
            }
            match order {
                core::cmp::Ordering::Less => lo = mid + 1,
                core::cmp::Ordering::Greater => hi = mid,
                core::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(Error::NotFound { what: "file" })
    }

    /// Tensor record `index`, checked.
    pub fn tensor_record(&self, index: u32) -> Result<crate::layout::TensorRecord> {
        self.manifest.tensor(&self.meta(), index)
    }

    /// Read tensor `index` into the start of `out`; returns its length.
    pub fn read_tensor<S: Scratch + ?Sized>(&self, index: u32, out: &mut [u8], scratch: &mut S) -> Result<usize> {
        let r = self.tensor_record(index)?;
        let len = usize::try_from(r.length.get()).map_err(|_| Error::InvalidArgument("tensor too large"))?;
        let got = out.len() as u64;
        let dst = out.get_mut(..len).ok_or(Error::BufferTooSmall { what: "tensor buffer", needed: len as u64, got })?;
        self.read_at(r.virtual_offset.get(), dst, scratch)?;
        Ok(len)
    }
}

/// One level of scratch.
struct Level<'s> {
    page: &'s mut [u8],
    stored: &'s mut [u8],
    work: &'s mut [u8],
    whole: &'s mut [u8],
    rest: &'s mut [u8],
}

/// What [`Archive::flush_run`] needs besides the run.
struct RunContext<'s> {
    depth: usize,
    verify: bool,
    stored: &'s mut [u8],
    work: &'s mut [u8],
    rest: &'s mut [u8],
}

/// Consecutive whole blocks of one page whose stored bytes follow each
/// other in one archive.
#[derive(Default)]
struct Run {
    first_slot: u32,
    first_index: u64,
    count: u32,
    location: u8,
    stored_start: u64,
    stored_len: usize,
    out_start: usize,
    virtual_len: usize,
}

impl Run {
    fn start(block: &BlockRef, out_at: usize) -> Self {
        Run {
            first_slot: block.slot,
            first_index: block.index,
            count: 1,
            location: block.entry.location,
            stored_start: block.entry.stored_offset.get(),
            stored_len: block.entry.stored_length.get() as usize,
            out_start: out_at,
            virtual_len: block.entry.virtual_length.get() as usize,
        }
    }

    fn extends(&self, block: &BlockRef, out_at: usize) -> bool {
        self.count > 0
            && block.slot == self.first_slot + self.count
            && block.entry.location == self.location
            && block.entry.stored_offset.get() == self.stored_start + self.stored_len as u64
            && out_at == self.out_start + self.virtual_len
    }

    fn push(&mut self, block: &BlockRef) {
        self.count += 1;
        self.stored_len += block.entry.stored_length.get() as usize;
        self.virtual_len += block.entry.virtual_length.get() as usize;
    }
}

/// A block's input to [`Archive::decode_input`].
#[derive(Clone, Copy)]
enum Input<'a> {
    /// Its stored bytes.
    Stored(&'a [u8]),
    /// Its codec output, already in the first bytes of the level's `work`
    /// (only for [`decoded_first`](Input::decoded_first) blocks).
    Decoded,
}

impl Input<'_> {
    /// Whether a block's codec output goes to scratch before anything is
    /// written to its output (so its stored bytes may lie under it).
    fn decoded_first(filter: FilterId, codec: CodecId) -> bool {
        matches!(filter, FilterId::ByteGroup | FilterId::Fields) && matches!(codec, CodecId::Lz4 | CodecId::Zstd)
    }
}

/// The error for a block whose codec failed, with `reason`.
fn decode_error(
    e: &crate::layout::BlockEntry,
    index: u64,
    codec: CodecId,
    target_depth: usize,
) -> impl Fn(&'static str) -> Error + '_ {
    move |reason| {
        Error::Decode { block: index, offset: e.virtual_offset.get(), codec: codec.name(), reason }
            .at_depth(target_depth)
    }
}

/// The codec step alone: `stored` decoded into the first `virtual_length`
/// bytes of `work`, for a filter to finish.
fn decode_codec(
    e: &crate::layout::BlockEntry,
    index: u64,
    codec: CodecId,
    stored: &[u8],
    work: &mut [u8],
    zstd: ZstdContext<'_>,
    target_depth: usize,
) -> Result<()> {
    let (tmp, _) = split_scratch(work, e.virtual_length.get() as usize)?;
    codec::decompress(codec, stored, tmp, zstd).map_err(decode_error(e, index, codec, target_depth))
}

/// A decoded block checked against its BLAKE3 (unless `verify` is off).
fn check_hash(
    verify: bool,
    block: &[u8],
    e: &crate::layout::BlockEntry,
    index: u64,
    target_depth: usize,
) -> Result<()> {
    if verify && *blake3::hash(block).as_bytes() != e.hash {
        return Err(Error::HashMismatch { block: index, offset: e.virtual_offset.get() }.at_depth(target_depth));
    }
    Ok(())
}

fn split_scratch(scratch: &mut [u8], n: usize) -> Result<(&mut [u8], &mut [u8])> {
    if scratch.len() < n {
        return Err(Error::BufferTooSmall { what: "scratch", needed: n as u64, got: scratch.len() as u64 });
    }
    Ok(scratch.split_at_mut(n))
}

#[cfg(feature = "alloc")]
mod owned {
    use alloc::vec::Vec;

    use super::*;
    use crate::error::try_zeroed;
    use crate::layout::SourceFormat;
    use crate::manifest::{Manifest, TensorInfo};

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
}

#[cfg(feature = "alloc")]
pub use owned::{Workspace, MAX_OWNED_READ};
