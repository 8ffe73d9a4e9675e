//! Scratch: the caller's working memory for decoding, laid out as one
//! level per archive in the chain (a delta block reads its base one level
//! down), each level an index page, stored bytes, codec output, a delta
//! base and one whole block for reads that cut a block.

use super::Archive;
use crate::codec::ZstdContext;
use crate::error::{Error, Result};
use crate::source::ReadAt;

/// Working memory for decoding: [`Archive::scratch_size`] bytes, and a
/// reusable zstd context where there is one. Implemented for byte slices and
/// arrays (no allocation anywhere) and, with `alloc`, for
/// [`Workspace`](super::Workspace).
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

/// One level of scratch.
pub(super) struct Level<'s> {
    /// An index page of the level's archive.
    pub page: &'s mut [u8],
    /// Stored bytes of one block, read from the source.
    pub stored: &'s mut [u8],
    /// Codec output and a delta's base: two blocks.
    pub work: &'s mut [u8],
    /// One whole block, for a block the read range cuts.
    pub whole: &'s mut [u8],
    /// The deeper levels.
    pub rest: &'s mut [u8],
}

impl<R: ReadAt> Archive<R> {
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

    /// Split `scratch` (which starts at level `depth`) into that level's
    /// parts and the deeper levels' rest.
    pub(super) fn level_at<'s>(&self, depth: usize, scratch: &'s mut [u8]) -> Result<Level<'s>> {
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
}

/// The first `n` bytes of `scratch` and the rest, or an error when it is shorter.
pub(super) fn split_scratch(scratch: &mut [u8], n: usize) -> Result<(&mut [u8], &mut [u8])> {
    if scratch.len() < n {
        return Err(Error::BufferTooSmall { what: "scratch", needed: n as u64, got: scratch.len() as u64 });
    }
    Ok(scratch.split_at_mut(n))
}
