//! Reading a virtual range: walk the index over it and read the blocks in
//! runs, each run's stored bytes in one call into the tail of its span of
//! the output, then decoded in place, front to back.

use super::decode::{check_hash, DecodeCtx, Input};
use super::scratch::{split_scratch, Level};
use super::{Archive, BlockRef, Blocks, Scratch};
use crate::codec::{codec_available, ZstdContext};
use crate::error::{Error, Result};
use crate::layout::{CodecId, FilterId};
use crate::source::ReadAt;

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

impl<R: ReadAt> Archive<R> {
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
    pub(super) fn read_member(
        &self,
        depth: usize,
        offset: u64,
        out: &mut [u8],
        scratch: &mut [u8],
        zstd: ZstdContext<'_>,
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
        let Level { page, stored, work, whole, rest } = self.level_at(depth, scratch)?;
        let mut blocks = member.blocks(offset, length, page).map_err(|e| e.at_depth(depth))?;
        let mut run = Run::default();
        let mut ctx = DecodeCtx { depth, verify, work, rest, zstd };
        while let Some(block) = blocks.next() {
            let block = block.map_err(|e| e.at_depth(depth))?;
            let start = block.entry.virtual_offset.get();
            let vlen = block.entry.virtual_length.get() as usize;
            let is_whole = start >= offset && block.end() <= offset + length;
            if is_whole && run.extends(&block, (start - offset) as usize) {
                run.push(&block);
            } else {
                self.flush_run(&mut run, &blocks, out, stored, &mut ctx)?;
                if is_whole {
                    run = Run::start(&block, (start - offset) as usize);
                } else {
                    // A block cut by the range's edge: decode it whole, copy the part asked for.
                    let skip = offset.saturating_sub(start) as usize;
                    let at = start.saturating_sub(offset) as usize;
                    let take = (vlen - skip).min(out.len() - at);
                    let buf = &mut whole[..vlen];
                    self.decode_one(&mut ctx, stored, block.index, &block.entry, buf)?;
                    out[at..at + take].copy_from_slice(&buf[skip..skip + take]);
                }
            }
            if blocks.page_exhausted() {
                self.flush_run(&mut run, &blocks, out, stored, &mut ctx)?;
            }
        }
        self.flush_run(&mut run, &blocks, out, stored, &mut ctx)
    }

    /// Decode the blocks of `run` (entries of the page `blocks` holds) into
    /// their span of `out`, reading their stored bytes in one call;
    /// `stored` takes a copy of a block whose input overlaps its output.
    fn flush_run(
        &self,
        run: &mut Run,
        blocks: &Blocks<'_, R>,
        out: &mut [u8],
        stored: &mut [u8],
        ctx: &mut DecodeCtx<'_>,
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
        // An encrypted run is decrypted in place: read into `span` even
        // from memory.
        let encrypted = target.is_encrypted();
        let borrowed = if encrypted { None } else { target.src.borrow_at(taken.stored_start, stored_total) };
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
                    if encrypted {
                        target
                            .open_stored(&mut span[src_at..src_at + slen], &e)
                            .map_err(|err| err.at_depth(target_depth))?;
                    }
                    if e.codec == CodecId::None as u8 {
                        // Stored bytes are the block: move them into place (no-op when already there).
                        span.copy_within(src_at..src_at + slen, dst_at);
                        check_hash(target, ctx.verify, &span[dst_range], &e, index, target_depth)?;
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
                        ctx.decode_codec(index, &e, codec, &span[src_at..src_at + slen])?;
                        self.decode_input(ctx, index, &e, Input::Decoded, &mut span[dst_range])?;
                        continue;
                    } else {
                        // The block's own input overlaps its output: decode from a copy.
                        let copy = split_scratch(stored, slen)?.0;
                        copy.copy_from_slice(&span[src_at..src_at + slen]);
                        (copy, &mut span[dst_range])
                    }
                }
            };
            self.decode_input(ctx, index, &e, Input::Stored(input), dst)?;
        }
        Ok(())
    }
}
