//! The two-level index: the directory (one entry per page) and the pages
//! of block entries. [`Blocks`] walks the entries covering a virtual range
//! in order. It reads each page once into a caller buffer, checks the page
//! hash on those bytes and parses entries from the same bytes, so the bytes
//! checked are the bytes used. Contiguity (each block starts where the
//! previous one ended, and the walk covers the range) is checked here and
//! nowhere else.

use zerocopy::FromBytes;

use crate::error::{Error, Result};
use crate::layout::{BlockEntry, CodecId, FilterId, BLOCK_ENTRY_SIZE, HEADER_SIZE};
use crate::reader::Archive;
use crate::source::ReadAt;

/// A loaded index page: which page, and the blocks it holds.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    /// The page's number in the directory.
    pub index: u32,
    /// Archive offset of the page.
    pub offset: u64,
    /// Index of the page's first block.
    pub first_block: u64,
    /// Block entries in the page.
    pub entry_count: u32,
    /// Virtual offset of the page's first block, as the directory records it.
    pub first_virtual_offset: u64,
}

/// One block entry met by a walk.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef {
    /// Block number, 0..block_count.
    pub index: u64,
    /// The page holding the entry.
    pub page: u32,
    /// The entry's position in its page.
    pub slot: u32,
    /// The entry, checked.
    pub entry: BlockEntry,
}

impl BlockRef {
    /// Virtual offset one past the block's end.
    pub fn end(&self) -> u64 {
        self.entry.virtual_offset.get() + u64::from(self.entry.virtual_length.get())
    }
}

impl<R: ReadAt> Archive<R> {
    /// Load page `index` into `buf` (at least [`page_bytes`](Self::page_bytes)
    /// long), check its hash over exactly those bytes, and check that its
    /// first entry starts where the directory says.
    pub fn load_page(&self, index: u32, buf: &mut [u8]) -> Result<Page> {
        let dir = self.directory_entry(index)?;
        let count = dir.entry_count.get();
        let offset = dir.page_offset.get();
        let len = count as usize * BLOCK_ENTRY_SIZE;
        let got = buf.len() as u64;
        let bytes =
            buf.get_mut(..len).ok_or(Error::BufferTooSmall { what: "index page buffer", needed: len as u64, got })?;
        self.meta().read_exact_at(offset, bytes)?;
        if *blake3::hash(bytes).as_bytes() != dir.page_hash {
            return Err(Error::Checksum { what: "index page", offset });
        }
        let page = Page {
            index,
            offset,
            first_block: u64::from(index) * u64::from(self.footer().entries_per_page.get()),
            entry_count: count,
            first_virtual_offset: dir.first_virtual_offset.get(),
        };
        if self.parse_entry(&page, bytes, 0)?.virtual_offset.get() != page.first_virtual_offset {
            return Err(Error::invalid(
                "block virtual_offset",
                offset,
                "the page's first block does not start at the directory's first_virtual_offset",
            ));
        }
        Ok(page)
    }

    /// Parse and check entry `slot` of a page loaded into `bytes`. The
    /// entry's own fields are checked here; contiguity by [`Blocks`].
    pub fn parse_entry(&self, page: &Page, bytes: &[u8], slot: u32) -> Result<BlockEntry> {
        if slot >= page.entry_count {
            return Err(Error::InvalidArgument("block slot out of range"));
        }
        let at = page.offset + u64::from(slot) * BLOCK_ENTRY_SIZE as u64;
        let start = slot as usize * BLOCK_ENTRY_SIZE;
        let raw = bytes.get(start..start + BLOCK_ENTRY_SIZE).ok_or(Error::InvalidArgument("page not loaded"))?;
        let e = BlockEntry::read_from_bytes(raw).map_err(|_| Error::invalid("block entry", at, "size"))?;
        self.check_entry(&e, at)?;
        Ok(e)
    }

    /// Section 10 step 5: every field of one entry, at archive offset `at`.
    fn check_entry(&self, e: &BlockEntry, at: u64) -> Result<()> {
        let footer = self.footer();
        let vlen = e.virtual_length.get();
        if vlen == 0 || vlen > footer.max_block_length.get() {
            return Err(Error::invalid("block virtual_length", at + 24, "zero or above max_block_length"));
        }
        let vend = e.virtual_offset.get().checked_add(u64::from(vlen));
        if vend.is_none_or(|end| end > self.virtual_size()) {
            return Err(Error::invalid("block virtual_offset", at, "block extends past the virtual space"));
        }
        let slen = e.stored_length.get();
        if slen > footer.max_stored_length.get() {
            return Err(Error::invalid("block stored_length", at + 28, "above max_stored_length"));
        }
        if slen > vlen {
            return Err(Error::invalid("block stored_length", at + 28, "larger than virtual_length"));
        }
        let codec = CodecId::from_u8(e.codec).ok_or(Error::invalid("block codec", at + 32, "unknown codec"))?;
        let filter = FilterId::from_u8(e.filter).ok_or(Error::invalid("block filter", at + 33, "unknown filter"))?;
        if e.element_width == 0 || (filter.is_delta() && !matches!(e.element_width, 1 | 2 | 4 | 8)) {
            return Err(Error::invalid("block element_width", at + 34, "zero, or not 1, 2, 4 or 8 on a delta block"));
        }
        if codec == CodecId::None && (filter != FilterId::None || slen != vlen) {
            return Err(Error::invalid(
                "block codec",
                at + 32,
                "uncompressed block must be unfiltered and full length",
            ));
        }
        if (codec == CodecId::Ans) != filter.is_entropy_coded() {
            return Err(Error::invalid(
                "block codec",
                at + 32,
                "codec ans goes with filters float-ans and delta-ans only",
            ));
        }
        if codec == CodecId::Ans {
            // Features are declared by the archive holding the stored bytes:
            // an entry kept in an ancestor was checked against that one.
            if e.location == 0 && self.header().incompat_features.get() & crate::layout::features::ENTROPY == 0 {
                return Err(Error::invalid("block codec", at + 32, "codec ans without the ENTROPY feature"));
            }
            if filter == FilterId::FloatAns && !matches!(e.element_width, 2 | 4) {
                return Err(Error::invalid("block element_width", at + 34, "not 2 or 4 on a float-ans block"));
            }
        }
        if e.location >= crate::layout::limits::MAX_CHAIN_DEPTH {
            return Err(Error::invalid("block location", at + 35, "deeper than the chain limit"));
        }
        if !filter.is_delta() && e.delta_base_offset.get() != 0 {
            return Err(Error::invalid("block delta_base_offset", at + 16, "set on a non-delta block"));
        }
        if filter == FilterId::Fields {
            if e.location == 0 && self.header().incompat_features.get() & crate::layout::features::FIELDS == 0 {
                return Err(Error::invalid("block filter", at + 33, "fields filter without the FIELDS feature"));
            }
            let ggml = e.filter_param.get();
            let layout = crate::dtype::ggml_fields(ggml).ok_or(Error::invalid(
                "block filter_param",
                at + 36,
                "not a GGML type with a field layout",
            ))?;
            if layout.iter().map(|&f| u32::from(f)).sum::<u32>() != u32::from(e.element_width) {
                return Err(Error::invalid("block element_width", at + 34, "not the block size of the GGML type"));
            }
        } else if e.filter_param.get() != 0 {
            return Err(Error::invalid("block filter_param", at + 36, "must be zero for this filter"));
        }
        if e.location == 0 {
            let send = e.stored_offset.get().checked_add(u64::from(slen));
            if e.stored_offset.get() < HEADER_SIZE as u64 || send.is_none_or(|end| end > footer.directory_offset.get())
            {
                return Err(Error::invalid("block stored_offset", at + 8, "stored bytes outside the data region"));
            }
        }
        Ok(())
    }

    /// The page holding virtual `offset`: one binary search of the directory.
    fn page_of(&self, offset: u64) -> Result<u32> {
        let (mut lo, mut hi) = (0u32, self.footer().page_count.get());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.directory_entry(mid)?.first_virtual_offset.get() <= offset {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Walk the blocks covering virtual `[offset, offset + length)`, using
    /// `page_buf` ([`page_bytes`](Self::page_bytes) long) for index pages.
    /// Stops at the first error (the range is then unusable).
    pub fn blocks<'a>(&'a self, offset: u64, length: u64, page_buf: &'a mut [u8]) -> Result<Blocks<'a, R>> {
        let end = offset.checked_add(length);
        if end.is_none_or(|end| end > self.virtual_size()) {
            return Err(Error::OutOfRange { offset, length, size: self.virtual_size() });
        }
        let mut walk = Blocks {
            archive: self,
            buf: page_buf,
            page: None,
            next_page: 0,
            slot: 0,
            expected: None,
            end: offset + length,
            tolerant: false,
            finished: length == 0,
        };
        if length > 0 {
            let index = self.page_of(offset)?;
            let page = self.load_page(index, walk.buf)?;
            // Last entry starting at or before `offset`: binary search in the loaded page.
            let (mut a, mut b) = (0u32, page.entry_count);
            while b - a > 1 {
                let mid = a + (b - a) / 2;
                if self.parse_entry(&page, walk.buf, mid)?.virtual_offset.get() <= offset {
                    a = mid;
                } else {
                    b = mid;
                }
            }
            let first = self.parse_entry(&page, walk.buf, a)?;
            let start = first.virtual_offset.get();
            if start > offset || offset - start >= u64::from(first.virtual_length.get()) {
                return Err(Error::invalid(
                    "block virtual_offset",
                    page.offset,
                    "the index does not cover this offset",
                ));
            }
            walk.expected = Some(start);
            walk.page = Some(page);
            walk.next_page = index + 1;
            walk.slot = a;
        }
        Ok(walk)
    }

    /// Walk every block of the archive, reporting problems and going on:
    /// a bad page yields its error and the walk resumes at the next page;
    /// a gap or overlap yields an error and the walk re-anchors. For verify.
    pub fn all_blocks<'a>(&'a self, page_buf: &'a mut [u8]) -> Blocks<'a, R> {
        Blocks {
            archive: self,
            buf: page_buf,
            page: None,
            next_page: 0,
            slot: 0,
            expected: Some(0),
            end: self.virtual_size(),
            tolerant: true,
            finished: self.virtual_size() == 0,
        }
    }
}

/// A walk over block entries in virtual order; see [`Archive::blocks`].
pub struct Blocks<'a, R> {
    archive: &'a Archive<R>,
    buf: &'a mut [u8],
    page: Option<Page>,
    next_page: u32,
    slot: u32,
    /// Where the next block must start.
    expected: Option<u64>,
    end: u64,
    tolerant: bool,
    finished: bool,
}

impl<R: ReadAt> Blocks<'_, R> {
    /// Whether the loaded page has no entries left: the next call to
    /// `next` loads another page into the buffer, so entries of this page
    /// must be re-read (with [`entry`](Self::entry)) before then.
    pub fn page_exhausted(&self) -> bool {
        self.page.is_none_or(|p| self.slot >= p.entry_count)
    }

    /// Entry `slot` of the loaded page again (it was checked when met).
    pub fn entry(&self, slot: u32) -> Result<BlockEntry> {
        let page = self.page.ok_or(Error::InvalidArgument("no page loaded"))?;
        self.archive.parse_entry(&page, self.buf, slot)
    }

    fn advance(&mut self) -> Option<Result<BlockRef>> {
        if self.page_exhausted() {
            if self.next_page >= self.archive.footer().page_count.get() {
                self.finished = true;
                // (After a bad page the position is unknown; that page was reported.)
                return self.expected.filter(|&reached| reached < self.end).map(|_| {
                    Err(Error::invalid("block virtual_offset", 0, "the index ends before the end of the range"))
                });
            }
            let index = self.next_page;
            self.next_page += 1;
            self.slot = 0;
            match self.archive.load_page(index, self.buf) {
                Ok(p) => self.page = Some(p),
                Err(e) => {
                    self.page = None;
                    // Resume at the next page, anchored at its directory entry.
                    self.expected = None;
                    return Some(Err(e));
                }
            }
        }
        let page = self.page?;
        let slot = self.slot;
        self.slot += 1;
        let entry = match self.archive.parse_entry(&page, self.buf, slot) {
            Ok(e) => e,
            Err(e) => {
                self.expected = None;
                return Some(Err(e));
            }
        };
        let block = BlockRef { index: page.first_block + u64::from(slot), page: page.index, slot, entry };
        let start = entry.virtual_offset.get();
        let expected = self.expected.replace(block.end());
        if expected.is_some_and(|x| x != start) {
            return Some(Err(Error::invalid(
                "block virtual_offset",
                page.offset + u64::from(slot) * BLOCK_ENTRY_SIZE as u64,
                "blocks are not contiguous (gap or overlap)",
            )));
        }
        // A tolerant walk reads every page, so entries past the end show up as overlaps.
        if block.end() >= self.end && !self.tolerant {
            self.finished = true;
        }
        Some(Ok(block))
    }
}

impl<R: ReadAt> Iterator for Blocks<'_, R> {
    type Item = Result<BlockRef>;

    fn next(&mut self) -> Option<Result<BlockRef>> {
        if self.finished {
            return None;
        }
        let item = self.advance();
        if matches!(item, Some(Err(_))) && !self.tolerant {
            self.finished = true;
        }
        item
    }
}
