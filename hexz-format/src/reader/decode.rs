//! Block decode: a block's stored bytes through its codec and then its
//! filter into the caller's buffer, a delta against its base read one
//! level down the chain, and the result checked against the block's BLAKE3.

use super::scratch::split_scratch;
use super::{Archive, Scratch};
use crate::codec::{self, codec_available, ZstdContext};
use crate::error::{Error, Result};
use crate::filter::delta::delta_apply_into;
use crate::filter::fields::join_fields_into;
use crate::filter::grouping::ungroup_into;
use crate::filter::planes::bit_ungroup_into;
use crate::layout::{BlockEntry, CodecId, FilterId, HEADER_SIZE};
use crate::source::ReadAt;

/// What decoding a block of one chain level needs besides the block: the
/// level, whether hashes are checked, the level's working memory, the
/// scratch of the levels below, and the zstd context.
pub(super) struct DecodeCtx<'s> {
    /// The chain member whose entries are decoded (0: the archive opened).
    pub depth: usize,
    /// Whether each decoded block is checked against its BLAKE3.
    pub verify: bool,
    /// This level's codec output and delta base: two blocks.
    pub work: &'s mut [u8],
    /// Scratch for the levels below, where a delta's base is read.
    pub rest: &'s mut [u8],
    /// The reusable zstd context, when there is one.
    pub zstd: ZstdContext<'s>,
}

impl DecodeCtx<'_> {
    /// The chain member holding the stored bytes of entry `e`: its
    /// `location` counts up from this level.
    pub fn target_depth(&self, e: &BlockEntry) -> usize {
        self.depth + usize::from(e.location)
    }

    /// The codec step alone: `stored` decoded into the first
    /// `virtual_length` bytes of `work`, for a filter to finish.
    pub fn decode_codec(&mut self, index: u64, e: &BlockEntry, codec: CodecId, stored: &[u8]) -> Result<()> {
        let target_depth = self.target_depth(e);
        let (tmp, _) = split_scratch(self.work, e.virtual_length.get() as usize)?;
        codec::decompress(codec, stored, tmp, self.zstd.as_deref_mut()).map_err(decode_error(
            e,
            index,
            codec,
            target_depth,
        ))
    }

    /// The codec output a filter starts from, in the first bytes of
    /// `work`: decoded from `input`, or already there.
    fn codec_output(&mut self, index: u64, e: &BlockEntry, codec: CodecId, input: Input<'_>) -> Result<()> {
        match input {
            Input::Stored(stored) => self.decode_codec(index, e, codec, stored),
            Input::Decoded => Ok(()),
        }
    }
}

/// A block's input to [`Archive::decode_input`].
#[derive(Clone, Copy)]
pub(super) enum Input<'a> {
    /// Its stored bytes.
    Stored(&'a [u8]),
    /// Its codec output, already in the first bytes of the level's `work`
    /// (only for [`decoded_first`](Input::decoded_first) blocks).
    Decoded,
}

impl Input<'_> {
    /// Whether a block's codec output goes to scratch before anything is
    /// written to its output (so its stored bytes may lie under it).
    pub fn decoded_first(filter: FilterId, codec: CodecId) -> bool {
        matches!(filter, FilterId::ByteGroup | FilterId::Fields) && matches!(codec, CodecId::Lz4 | CodecId::Zstd)
    }
}

impl<R: ReadAt> Archive<R> {
    /// Decode one block of this archive (as met by a walk) into `out`
    /// (exactly its virtual length), checking its hash unless hash checks
    /// are off. `index` is only used in errors.
    pub fn decode_block<S: Scratch + ?Sized>(
        &self,
        index: u64,
        e: &BlockEntry,
        out: &mut [u8],
        scratch: &mut S,
    ) -> Result<()> {
        let (bytes, zstd) = scratch.parts();
        let level = self.level_at(0, bytes)?;
        let mut ctx = DecodeCtx { depth: 0, verify: self.verify_hashes, work: level.work, rest: level.rest, zstd };
        self.decode_one(&mut ctx, level.stored, index, e, out)
    }

    /// Decode entry `e` of chain member `ctx.depth`, reading its stored
    /// bytes into `stored_buf` (or borrowing them from memory).
    pub(super) fn decode_one(
        &self,
        ctx: &mut DecodeCtx<'_>,
        stored_buf: &mut [u8],
        index: u64,
        e: &BlockEntry,
        out: &mut [u8],
    ) -> Result<()> {
        let target_depth = ctx.target_depth(e);
        let target = self.target(target_depth, e)?;
        let len = e.stored_length.get() as usize;
        if target.is_encrypted() {
            // Decrypted in place: read (or copied) into scratch, or straight
            // into `out` when the block is stored as it is.
            let raw = e.codec == CodecId::None as u8 && e.filter == FilterId::None as u8 && len == out.len();
            let read_open = |buf: &mut [u8]| -> Result<()> {
                match target.src.borrow_at(e.stored_offset.get(), len) {
                    Some(bytes) => buf.copy_from_slice(bytes),
                    None => target
                        .src
                        .read_exact_at(e.stored_offset.get(), buf)
                        .map_err(|err| err.at_depth(target_depth))?,
                }
                target.open_stored(buf, e).map_err(|err| err.at_depth(target_depth))
            };
            if raw {
                read_open(out)?;
                return check_hash(target, ctx.verify, out, e, index, target_depth);
            }
            let buf = split_scratch(stored_buf, len)?.0;
            read_open(buf)?;
            return self.decode_input(ctx, index, e, Input::Stored(buf), out);
        }
        let stored: &[u8] = match target.src.borrow_at(e.stored_offset.get(), len) {
            Some(bytes) => bytes,
            // A block stored as it is (incompressible quants, mostly) is
            // read straight into place: one copy fewer.
            None if e.codec == CodecId::None as u8 && e.filter == FilterId::None as u8 && len == out.len() => {
                target.src.read_exact_at(e.stored_offset.get(), out).map_err(|err| err.at_depth(target_depth))?;
                return check_hash(target, ctx.verify, out, e, index, target_depth);
            }
            None => {
                let buf = split_scratch(stored_buf, len)?.0;
                target.src.read_exact_at(e.stored_offset.get(), buf).map_err(|err| err.at_depth(target_depth))?;
                buf
            }
        };
        self.decode_input(ctx, index, e, Input::Stored(stored), out)
    }

    /// The chain member holding the stored bytes of an entry of member
    /// `target_depth - location`, with those bytes checked to lie in its data region.
    pub(super) fn target(&self, target_depth: usize, e: &BlockEntry) -> Result<&Archive<R>> {
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

    /// Decode entry `e` of chain member `ctx.depth` from `input` into
    /// `out`: the codec, then the filter in `ctx.work`, a delta's base read
    /// with `ctx.rest`, then the hash check.
    pub(super) fn decode_input(
        &self,
        ctx: &mut DecodeCtx<'_>,
        index: u64,
        e: &BlockEntry,
        input: Input<'_>,
        out: &mut [u8],
    ) -> Result<()> {
        let vlen = e.virtual_length.get() as usize;
        let voff = e.virtual_offset.get();
        let target_depth = ctx.target_depth(e);
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
        let target =
            self.member(target_depth).ok_or(Error::ParentRequired { offset: voff, depth: target_depth as u8 })?;
        let width = usize::from(e.element_width);
        let stored = match input {
            Input::Stored(stored) => stored,
            Input::Decoded if Input::decoded_first(filter, codec) => &[],
            Input::Decoded => return Err(Error::InvalidArgument("block input not decoded ahead")),
        };
        match filter {
            FilterId::None => codec::decompress(codec, stored, out, ctx.zstd.as_deref_mut()).map_err(fail)?,
            FilterId::ByteGroup => {
                ctx.codec_output(index, e, codec, input)?;
                ungroup_into(&ctx.work[..vlen], width, out);
            }
            FilterId::Fields => {
                // Checked when the entry was parsed: a known layout of `width` bytes.
                let fields = crate::dtype::ggml_fields(e.filter_param.get()).ok_or(Error::invalid(
                    "block filter_param",
                    voff,
                    "not a GGML type with a field layout",
                ))?;
                ctx.codec_output(index, e, codec, input)?;
                join_fields_into(&ctx.work[..vlen], fields, out);
            }
            #[cfg(feature = "ans")]
            FilterId::FloatAns => {
                let (tmp, _) = split_scratch(ctx.work, vlen)?;
                crate::entropy::decode_float(stored, width, out, tmp).map_err(fail)?;
            }
            // Unreachable: codec `ans` is checked above to be available.
            #[cfg(not(feature = "ans"))]
            FilterId::FloatAns => return Err(Error::CodecUnavailable(codec.name())),
            FilterId::DeltaXor | FilterId::DeltaSub | FilterId::DeltaSubBits | FilterId::DeltaAns => {
                let (tmp, work) = split_scratch(ctx.work, vlen)?;
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
                        base_at(base, ctx.rest, ctx.zstd.as_deref_mut(), false)?;
                        crate::entropy::decode_delta(stored, width, out, base, tmp).map_err(fail)?;
                    }
                    _ => {
                        codec::decompress(codec, stored, tmp, ctx.zstd.as_deref_mut()).map_err(fail)?;
                        if filter == FilterId::DeltaSubBits {
                            // `base` is free until the base is read.
                            bit_ungroup_into(tmp, width, out, base);
                        } else {
                            ungroup_into(tmp, width, out);
                        }
                        base_at(base, ctx.rest, ctx.zstd.as_deref_mut(), false)?;
                        delta_apply_into(filter, out, base, width);
                    }
                }
                if let Err(mismatch) = check_hash(target, ctx.verify, out, e, index, target_depth) {
                    base_at(base, ctx.rest, ctx.zstd.as_deref_mut(), true)?;
                    return Err(mismatch);
                }
                return Ok(());
            }
        }
        check_hash(target, ctx.verify, out, e, index, target_depth)
    }
}

/// The error for a block whose codec failed, with `reason`.
fn decode_error(
    e: &BlockEntry,
    index: u64,
    codec: CodecId,
    target_depth: usize,
) -> impl Fn(&'static str) -> Error + '_ {
    move |reason| {
        Error::Decode { block: index, offset: e.virtual_offset.get(), codec: codec.name(), reason }
            .at_depth(target_depth)
    }
}

/// A decoded block checked against its BLAKE3 (keyed in an encrypted
/// archive, `target` the one holding it), unless `verify` is off.
pub(super) fn check_hash<R: ReadAt>(
    target: &Archive<R>,
    verify: bool,
    block: &[u8],
    e: &BlockEntry,
    index: u64,
    target_depth: usize,
) -> Result<()> {
    if verify && !target.block_matches(block, e) {
        return Err(Error::HashMismatch { block: index, offset: e.virtual_offset.get() }.at_depth(target_depth));
    }
    Ok(())
}
