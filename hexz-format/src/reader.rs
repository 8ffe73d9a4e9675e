//! Reading an archive: open (validate header, footer, directory, manifest),
//! locate blocks through the two-level index, decode into caller buffers.
//!
//! Nothing here allocates: structures are read with positioned reads into
//! stack buffers, and decoding uses caller-provided scratch of
//! [`Archive::scratch_size`] bytes.

use zerocopy::FromBytes;

use crate::codec::{self, codec_available, codec_name, ZstdContext};
use crate::error::{Error, Result};
use crate::layout::{
    filter_id, limits, short_checksum, BlockEntry, DirectoryEntry, FileHeader, Footer, BLOCK_ENTRY_SIZE,
    DIRECTORY_ENTRY_SIZE, FOOTER_MAGIC, FOOTER_SIZE, HEADER_MAGIC, HEADER_SIZE, MANIFEST_HEADER_SIZE, VERSION_MAJOR,
};
use crate::manifest::ManifestView;
use crate::source::ReadAt;

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

/// An open archive over any [`ReadAt`] source.
#[derive(Debug, Clone)]
pub struct Archive<R> {
    src: R,
    header: FileHeader,
    footer: Footer,
    manifest: ManifestView,
    verify_hashes: bool,
    /// Parent, grandparent, ...: every archive a block entry's `location`
    /// can name. Only the archive that was opened holds the chain.
    #[cfg(feature = "alloc")]
    ancestors: alloc::vec::Vec<Archive<R>>,
}

/// A page whose hash has been checked, and the blocks it holds.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub index: u32,
    pub offset: u64,
    pub first_block: u64,
    pub entry_count: u32,
    pub first_virtual_offset: u64,
}

/// Stream `len` bytes at `offset` through BLAKE3 without allocating.
pub(crate) fn hash_range<R: ReadAt + ?Sized>(src: &R, offset: u64, len: u64) -> Result<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    if let Some(bytes) = usize::try_from(len).ok().and_then(|n| src.borrow_at(offset, n)) {
        hasher.update(bytes);
    } else {
        let mut chunk = [0u8; 1024];
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
    T::read_from_bytes(&raw).map_err(|_| Error::invalid(what, offset, "size mismatch"))
}

impl<R: ReadAt> Archive<R> {
    /// Open and validate an archive, in the order the spec gives:
    /// header, footer, directory, manifest. Blocks are checked when read.
    pub fn open(src: R) -> Result<Self> {
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
        let footer: Footer = read_struct::<_, FOOTER_SIZE, _>(&src, footer_at, "footer")?;
        Self::check_footer(&footer, footer_at)?;

        let directory_offset = footer.directory_offset.get();
        let directory_length = u64::from(footer.page_count.get()) * DIRECTORY_ENTRY_SIZE as u64;
        if hash_range(&src, directory_offset, directory_length)? != footer.directory_hash {
            return Err(Error::Checksum { what: "directory", offset: directory_offset });
        }
        let manifest_offset = footer.manifest_offset.get();
        let manifest_length = footer.manifest_length.get();
        if hash_range(&src, manifest_offset, manifest_length)? != footer.manifest_hash {
            return Err(Error::Checksum { what: "manifest", offset: manifest_offset });
        }
        let manifest_head: [u8; MANIFEST_HEADER_SIZE] = {
            let mut raw = [0u8; MANIFEST_HEADER_SIZE];
            src.read_exact_at(manifest_offset, &mut raw)?;
            raw
        };
        let manifest =
            ManifestView::parse(&manifest_head, manifest_offset, manifest_length, footer.virtual_size.get())?;
        let archive = Archive {
            src,
            header,
            footer,
            manifest,
            verify_hashes: true,
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
        if header.version_major.get() != VERSION_MAJOR {
            return Err(Error::UnsupportedVersion {
                major: header.version_major.get(),
                minor: header.version_minor.get(),
            });
        }
        if header.header_size.get() as usize != HEADER_SIZE {
            return Err(Error::invalid("header header_size", 12, "must be 64"));
        }
        if header.flags.get() != 0 {
            return Err(Error::invalid("header flags", 16, "unknown flags set"));
        }
        if header.reserved != [0; 32] {
            return Err(Error::invalid("header reserved bytes", 24, "must be zero"));
        }
        Ok(())
    }

    fn check_footer(footer: &Footer, at: u64) -> Result<()> {
        if footer.magic != FOOTER_MAGIC {
            return Err(Error::BadMagic { what: "footer", offset: at });
        }
        if short_checksum(&zerocopy::IntoBytes::as_bytes(footer)[..FOOTER_SIZE - 8]) != footer.checksum.get() {
            return Err(Error::Checksum { what: "footer", offset: at });
        }
        if footer.flags.get() != 0 {
            return Err(Error::invalid("footer flags", at + 64, "unknown flags set"));
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
        let directory_end = directory_offset + pages * DIRECTORY_ENTRY_SIZE as u64;
        if footer.manifest_offset.get() != directory_end {
            return Err(Error::invalid("footer manifest_offset", at + 40, "manifest must follow the directory"));
        }
        let manifest_length = footer.manifest_length.get();
        if manifest_length < MANIFEST_HEADER_SIZE as u64 || manifest_length > limits::MAX_MANIFEST_LENGTH {
            return Err(Error::invalid("footer manifest_length", at + 48, "out of range"));
        }
        if directory_end.checked_add(manifest_length) != Some(at) {
            return Err(Error::invalid("footer manifest_length", at + 48, "manifest must end where the footer starts"));
        }
        Ok(())
    }

    fn directory_entry(&self, page: u32) -> Result<DirectoryEntry> {
        let at = self.footer.directory_offset.get() + u64::from(page) * DIRECTORY_ENTRY_SIZE as u64;
        read_struct::<_, DIRECTORY_ENTRY_SIZE, _>(&self.src, at, "directory entry")
    }

    /// Check every directory entry once at open: ascending first offsets,
    /// exact entry counts, pages inside the data region.
    fn check_directory(&self) -> Result<()> {
        let pages = self.footer.page_count.get();
        let mut previous: Option<u64> = None;
        for p in 0..pages {
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
        *blake3::hash(&zerocopy::IntoBytes::as_bytes(&self.footer)[..FOOTER_SIZE - 8]).as_bytes()
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

    /// Largest (stored, decoded) block lengths over the chain.
    fn chain_block_limits(&self) -> (usize, usize) {
        (0..self.chain_len()).filter_map(|d| self.member(d)).fold((0, 0), |(s, b), m| {
            (s.max(m.footer.max_stored_length.get() as usize), b.max(m.footer.max_block_length.get() as usize))
        })
    }

    /// Scratch for one level of decoding: stored bytes, codec output, delta
    /// base, and one whole block for partial reads.
    fn level_size(&self) -> usize {
        let (stored, block) = self.chain_block_limits();
        stored + 3 * block
    }

    /// Scratch bytes [`read_at`](Self::read_at) and friends need: one level
    /// per archive in the chain (a delta block reads its base one level down).
    pub fn scratch_size(&self) -> usize {
        self.level_size() * self.chain_len()
    }

    /// Load page `index` and check its hash.
    pub fn page(&self, index: u32) -> Result<Page> {
        if index >= self.footer.page_count.get() {
            return Err(Error::InvalidArgument("page index out of range"));
        }
        let entry = self.directory_entry(index)?;
        let offset = entry.page_offset.get();
        let count = entry.entry_count.get();
        if hash_range(&self.src, offset, u64::from(count) * BLOCK_ENTRY_SIZE as u64)? != entry.page_hash {
            return Err(Error::Checksum { what: "index page", offset });
        }
        Ok(Page {
            index,
            offset,
            first_block: u64::from(index) * u64::from(self.footer.entries_per_page.get()),
            entry_count: count,
            first_virtual_offset: entry.first_virtual_offset.get(),
        })
    }

    /// Read and validate entry `slot` of a page. The entry's own fields are
    /// checked; contiguity with its neighbours is checked by the callers that
    /// walk blocks in order.
    pub fn entry(&self, page: &Page, slot: u32) -> Result<BlockEntry> {
        if slot >= page.entry_count {
            return Err(Error::InvalidArgument("block slot out of range"));
        }
        let at = page.offset + u64::from(slot) * BLOCK_ENTRY_SIZE as u64;
        let e: BlockEntry = read_struct::<_, BLOCK_ENTRY_SIZE, _>(&self.src, at, "block entry")?;
        let vlen = e.virtual_length.get();
        if vlen == 0 || vlen > self.footer.max_block_length.get() {
            return Err(Error::invalid("block virtual_length", at + 24, "zero or above max_block_length"));
        }
        let vend = e.virtual_offset.get().checked_add(u64::from(vlen));
        if vend.is_none_or(|end| end > self.virtual_size()) {
            return Err(Error::invalid("block virtual_offset", at, "block extends past the virtual space"));
        }
        if e.stored_length.get() > self.footer.max_stored_length.get() {
            return Err(Error::invalid("block stored_length", at + 28, "above max_stored_length"));
        }
        if !matches!(e.codec, 0..=2) {
            return Err(Error::invalid("block codec", at + 32, "unknown codec"));
        }
        if e.filter > filter_id::MAX {
            return Err(Error::invalid("block filter", at + 33, "unknown filter"));
        }
        let is_delta = filter_id::is_delta(e.filter);
        if e.element_width == 0 || (is_delta && !matches!(e.element_width, 1 | 2 | 4 | 8)) {
            return Err(Error::invalid("block element_width", at + 34, "zero, or not 1, 2, 4 or 8 on a delta block"));
        }
        if e.codec == 0 && (e.filter != filter_id::NONE || e.stored_length.get() != vlen) {
            return Err(Error::invalid(
                "block codec",
                at + 32,
                "uncompressed block must be unfiltered and full length",
            ));
        }
        if e.location > limits::MAX_CHAIN_DEPTH {
            return Err(Error::invalid("block location", at + 35, "deeper than the chain limit"));
        }
        if !is_delta && e.delta_base_offset.get() != 0 {
            return Err(Error::invalid("block delta_base_offset", at + 16, "set on a non-delta block"));
        }
        if e.reserved != [0; 4] {
            return Err(Error::invalid("block reserved bytes", at + 36, "must be zero"));
        }
        if e.location == 0 {
            let send = e.stored_offset.get().checked_add(u64::from(e.stored_length.get()));
            if e.stored_offset.get() < HEADER_SIZE as u64
                || send.is_none_or(|end| end > self.footer.directory_offset.get())
            {
                return Err(Error::invalid("block stored_offset", at + 8, "stored bytes outside the data region"));
            }
        }
        Ok(e)
    }

    /// Block `index`, with its page checked.
    pub fn block(&self, index: u64) -> Result<BlockEntry> {
        let epp = u64::from(self.footer.entries_per_page.get());
        if index >= self.block_count() {
            return Err(Error::InvalidArgument("block index out of range"));
        }
        let page = self.page((index / epp) as u32)?;
        self.entry(&page, (index % epp) as u32)
    }

    /// Find the block holding virtual `offset`: one binary search over the
    /// directory, one page load, one binary search in the page.
    pub fn locate(&self, offset: u64) -> Result<(Page, u32, BlockEntry)> {
        if offset >= self.virtual_size() {
            return Err(Error::OutOfRange { offset, length: 1, size: self.virtual_size() });
        }
        let (mut lo, mut hi) = (0u32, self.footer.page_count.get());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.directory_entry(mid)?.first_virtual_offset.get() <= offset {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let page = self.page(lo)?;
        let (mut a, mut b) = (0u32, page.entry_count);
        while b - a > 1 {
            let mid = a + (b - a) / 2;
            if self.entry(&page, mid)?.virtual_offset.get() <= offset {
                a = mid;
            } else {
                b = mid;
            }
        }
        let entry = self.entry(&page, a)?;
        let start = entry.virtual_offset.get();
        if start > offset || offset - start >= u64::from(entry.virtual_length.get()) {
            return Err(Error::invalid("block virtual_offset", page.offset, "index does not cover this offset"));
        }
        if a == 0 && start != page.first_virtual_offset {
            return Err(Error::invalid(
                "block virtual_offset",
                page.offset,
                "differs from the directory's first offset",
            ));
        }
        Ok((page, a, entry))
    }

    /// The block after (`page`, `slot`): the next slot, or the first of the
    /// next page. Callers check that it starts where the previous one ended.
    pub fn next_block(&self, page: &Page, slot: u32) -> Result<(Page, u32, BlockEntry)> {
        let (page, slot) =
            if slot + 1 < page.entry_count { (*page, slot + 1) } else { (self.page(page.index + 1)?, 0) };
        let entry = self.entry(&page, slot)?;
        Ok((page, slot, entry))
    }

    /// Decode one block of this archive into `out` (exactly its virtual
    /// length) and check its hash unless hash checks are off. `index` is
    /// only used in errors.
    pub fn decode_block<S: Scratch + ?Sized>(
        &self,
        index: u64,
        e: &BlockEntry,
        out: &mut [u8],
        scratch: &mut S,
    ) -> Result<()> {
        let (bytes, zstd) = scratch.parts();
        let level = self.level_size();
        if bytes.len() < self.scratch_size() {
            return Err(Error::BufferTooSmall {
                what: "scratch",
                needed: self.scratch_size() as u64,
                got: bytes.len() as u64,
            });
        }
        let (work, rest) = bytes.split_at_mut(level);
        let block = self.chain_block_limits().1;
        self.decode_entry(0, index, e, out, &mut work[..level - block], rest, zstd, self.verify_hashes)
    }

    /// Decode entry `e` of chain member `depth`. `work` holds this level's
    /// stored, codec and base buffers; `rest` is scratch for deeper levels.
    #[allow(clippy::too_many_arguments)]
    fn decode_entry(
        &self,
        depth: usize,
        index: u64,
        e: &BlockEntry,
        out: &mut [u8],
        work: &mut [u8],
        rest: &mut [u8],
        mut zstd: ZstdContext<'_>,
        verify: bool,
    ) -> Result<()> {
        let vlen = e.virtual_length.get() as usize;
        let voff = e.virtual_offset.get();
        if out.len() != vlen {
            return Err(Error::BufferTooSmall { what: "block buffer", needed: vlen as u64, got: out.len() as u64 });
        }
        let target_depth = depth + usize::from(e.location);
        let target = self.member(target_depth).ok_or(Error::ParentRequired { offset: voff, depth: e.location })?;
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
        if !codec_available(e.codec) {
            return Err(Error::CodecUnavailable(codec_name(e.codec)));
        }
        let stored_len = e.stored_length.get() as usize;
        let (stored_buf, work) = split_scratch(work, stored_len)?;
        let stored: &[u8] = match target.src.borrow_at(e.stored_offset.get(), stored_len) {
            Some(bytes) => bytes,
            None => {
                target.src.read_exact_at(e.stored_offset.get(), stored_buf)?;
                stored_buf
            }
        };
        let fail = |reason| Error::Decode { block: index, offset: voff, codec: codec_name(e.codec), reason };
        let width = usize::from(e.element_width);
        match e.filter {
            filter_id::NONE => codec::decompress(e.codec, stored, out, zstd).map_err(fail)?,
            filter_id::BYTE_GROUP => {
                let (tmp, _) = split_scratch(work, vlen)?;
                codec::decompress(e.codec, stored, tmp, zstd).map_err(fail)?;
                codec::ungroup(tmp, width, out);
            }
            _ => {
                let (tmp, work) = split_scratch(work, vlen)?;
                codec::decompress(e.codec, stored, tmp, zstd.as_deref_mut()).map_err(fail)?;
                let (base, _) = split_scratch(work, vlen)?;
                if e.filter == filter_id::DELTA_SUB_BITS {
                    // The base buffer is free until the base is read.
                    codec::bit_ungroup(tmp, width, out, base);
                } else {
                    codec::ungroup(tmp, width, out);
                }
                // The base is in the archive one below the one holding the
                // delta. Its blocks' hashes are not checked on the way: this
                // block's hash covers the result, and a mismatch re-reads the
                // base checked, to name the parent when the fault is there.
                let base_at = |base: &mut [u8], rest: &mut [u8], zstd: ZstdContext<'_>, verify: bool| {
                    self.read_member(target_depth + 1, e.delta_base_offset.get(), base, rest, zstd, verify).map_err(
                        |err| match err {
                            Error::OutOfRange { .. } => {
                                Error::invalid("block delta_base_offset", voff, "base range outside the parent")
                            }
                            other => other,
                        },
                    )
                };
                base_at(base, rest, zstd.as_deref_mut(), false)?;
                codec::delta_apply(e.filter, out, base, width);
                if verify && *blake3::hash(out).as_bytes() != e.hash {
                    base_at(base, rest, zstd, true)?;
                    return Err(Error::HashMismatch { block: index, offset: voff });
                }
                return Ok(());
            }
        }
        if verify && *blake3::hash(out).as_bytes() != e.hash {
            return Err(Error::HashMismatch { block: index, offset: voff });
        }
        Ok(())
    }

    /// Read virtual bytes [`offset`, `offset + out.len()`) into `out`.
    /// Blocks wholly inside the range decode straight into `out`.
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
        let level = self.level_size();
        let block = self.chain_block_limits().1;
        let (work, rest) = split_scratch(scratch, level)?;
        let (work, whole) = work.split_at_mut(level - block);
        let (mut page, mut slot, mut entry) = member.locate(offset)?;
        let mut pos = offset;
        let mut written = 0usize;
        loop {
            let index = page.first_block + u64::from(slot);
            let bstart = entry.virtual_offset.get();
            let blen = entry.virtual_length.get() as usize;
            let skip = (pos - bstart) as usize;
            let take = (blen - skip).min(out.len() - written);
            if skip == 0 && take == blen {
                let dst = &mut out[written..written + blen];
                self.decode_entry(depth, index, &entry, dst, work, rest, zstd.as_deref_mut(), verify)?;
            } else {
                self.decode_entry(depth, index, &entry, &mut whole[..blen], work, rest, zstd.as_deref_mut(), verify)?;
                out[written..written + take].copy_from_slice(&whole[skip..skip + take]);
            }
            written += take;
            pos += take as u64;
            if written == out.len() {
                return Ok(());
            }
            (page, slot, entry) = member.next_block(&page, slot)?;
            if entry.virtual_offset.get() != pos {
                return Err(Error::invalid("block virtual_offset", page.offset, "blocks are not contiguous"));
            }
        }
    }

    /// Number of tensors in the manifest.
    pub fn tensor_count(&self) -> u32 {
        self.manifest.tensor_count()
    }

    /// Index of the tensor called `name`.
    pub fn find_tensor(&self, name: &str) -> Result<u32> {
        for i in 0..self.tensor_count() {
            let r = self.manifest.tensor(&self.src, i)?;
            if self.manifest.string_eq(&self.src, r.name_offset.get(), r.name_length.get(), name.as_bytes())? {
                return Ok(i);
            }
        }
        Err(Error::TensorNotFound)
    }

    /// Read tensor `index` into the start of `out`; returns its length.
    pub fn read_tensor<S: Scratch + ?Sized>(&self, index: u32, out: &mut [u8], scratch: &mut S) -> Result<usize> {
        let r = self.manifest.tensor(&self.src, index)?;
        let len = usize::try_from(r.length.get()).map_err(|_| Error::InvalidArgument("tensor too large"))?;
        let got = out.len() as u64;
        let dst = out.get_mut(..len).ok_or(Error::BufferTooSmall { what: "tensor buffer", needed: len as u64, got })?;
        self.read_at(r.virtual_offset.get(), dst, scratch)?;
        Ok(len)
    }
}

fn split_scratch(scratch: &mut [u8], n: usize) -> Result<(&mut [u8], &mut [u8])> {
    if scratch.len() < n {
        return Err(Error::BufferTooSmall { what: "scratch", needed: n as u64, got: scratch.len() as u64 });
    }
    Ok(scratch.split_at_mut(n))
}

#[cfg(feature = "alloc")]
mod owned {
    use alloc::vec;
    use alloc::vec::Vec;

    use super::*;
    use crate::manifest::Manifest;

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
        /// A workspace of `size` bytes.
        pub fn new(size: usize) -> Self {
            Workspace {
                buf: vec![0u8; size],
                #[cfg(feature = "zstd")]
                zstd: zstd_safe::DCtx::create(),
            }
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

        /// A workspace of [`scratch_size`](Self::scratch_size) bytes.
        pub fn new_scratch(&self) -> Workspace {
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
            let mut out = vec![0u8; length as usize];
            self.read_at(offset, &mut out, &mut self.new_scratch())?;
            Ok(out)
        }

        /// The whole manifest, decoded.
        pub fn manifest(&self) -> Result<Manifest> {
            self.manifest.decode(&self.src)
        }

        /// The bytes of a tensor, by name.
        pub fn tensor_bytes(&self, name: &str) -> Result<Vec<u8>> {
            let r = self.manifest.tensor(&self.src, self.find_tensor(name)?)?;
            self.read_vec(r.virtual_offset.get(), r.length.get())
        }

        /// The source file's own header (safetensors JSON or GGUF header), verbatim.
        pub fn source_header(&self) -> Result<Vec<u8>> {
            self.read_vec(0, self.manifest.header.source_header_length.get())
        }

        /// The GGUF header with its key/values, parsed from the archived bytes;
        /// returns the header bytes too, which string and array spans refer to.
        pub fn gguf_header(&self) -> Result<(Vec<u8>, crate::gguf::GgufHeader)> {
            if self.manifest.source_format() != crate::layout::source_format::GGUF {
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
