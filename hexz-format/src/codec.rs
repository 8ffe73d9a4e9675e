//! Block codecs (none, lz4, zstd): which ones this build has, how a
//! block's stored bytes decode, the one-call compressors, and the
//! [`Compression`] a store asks for.
//!
//! Decoding writes into caller buffers and never allocates (zstd's C
//! context aside). Which level a block gets and where a zstd frame's blocks
//! end are the encoder's choices (`writer::encode`).

use crate::layout::CodecId;

/// Compression method for new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Store blocks as they are.
    None,
    /// lz4 block format (lz4_flex).
    Lz4,
    /// zstd: `level` for plain blocks, `numeric_level` for byte-grouped
    /// and delta blocks of elements up to 8 bytes wide (floats, integers;
    /// not quantized blocks). Those are streams of numbers whose low bytes are
    /// mostly noise; there zstd's fast strategy (level 1) measured both
    /// smaller and faster than levels 2 to 5, which spend bits on short matches.
    /// `quantized_level` for quantized GGML blocks split into their fields,
    /// each field stream in zstd blocks of its own: mostly literals, with
    /// repeats among the scales. Level 2 found nearly all that level 5 does
    /// (gemma: 0.9191 against 0.9181) at level 1's speed, a third less
    /// compression time than level 5.
    Zstd {
        /// Level (1 to 22) of headers, gaps and other plain blocks.
        level: i32,
        /// Level of byte-grouped and delta blocks of floats and integers.
        numeric_level: i32,
        /// Level of quantized blocks split into their fields.
        quantized_level: i32,
    },
}

impl Compression {
    /// hexz's default: zstd level 3 for plain blocks, 1 for numeric ones,
    /// 2 for quantized ones.
    pub const DEFAULT: Compression = Compression::Zstd { level: 3, numeric_level: 1, quantized_level: 2 };

    /// zstd at `level` for every block.
    pub const fn zstd(level: i32) -> Self {
        Compression::Zstd { level, numeric_level: level, quantized_level: level }
    }

    /// The codec id a block compressed this way records.
    pub fn codec_id(self) -> CodecId {
        match self {
            Compression::None => CodecId::None,
            Compression::Lz4 => CodecId::Lz4,
            Compression::Zstd { .. } => CodecId::Zstd,
        }
    }
}

/// Whether this build can decode `codec`.
pub fn codec_available(codec: CodecId) -> bool {
    match codec {
        CodecId::None => true,
        CodecId::Lz4 => cfg!(feature = "lz4"),
        CodecId::Zstd => cfg!(feature = "zstd"),
        CodecId::Ans => cfg!(feature = "ans"),
    }
}

/// A reusable zstd decompression context, when zstd is compiled in; reusing
/// one avoids the allocation `ZSTD_decompress` makes per call.
#[cfg(feature = "zstd")]
pub type ZstdContext<'a> = Option<&'a mut zstd_safe::DCtx<'static>>;
/// Without zstd there is no context.
#[cfg(not(feature = "zstd"))]
pub type ZstdContext<'a> = Option<&'a mut core::convert::Infallible>;

/// Decode `stored` with `codec` into `out`, which must come out exactly full.
/// Errors are short reasons; the caller adds which block it was.
///
/// zstd (spec section 7): exactly one frame spanning all stored bytes, not a
/// skippable frame, and a content size, when the frame declares one, equal
/// to the block length. lz4: one raw block, no frame and no length prefix.
pub fn decompress(codec: CodecId, stored: &[u8], out: &mut [u8], zstd: ZstdContext<'_>) -> Result<(), &'static str> {
    #[cfg(not(feature = "zstd"))]
    let _ = zstd;
    let produced = match codec {
        CodecId::None => {
            if stored.len() != out.len() {
                return Err("stored length differs from block length");
            }
            out.copy_from_slice(stored);
            out.len()
        }
        #[cfg(feature = "lz4")]
        CodecId::Lz4 => lz4_flex::block::decompress_into(stored, out).map_err(|_| "corrupt lz4 data")?,
        #[cfg(feature = "zstd")]
        CodecId::Zstd => {
            const ZSTD_MAGIC: [u8; 4] = 0xFD2F_B528u32.to_le_bytes();
            if stored.get(..4) != Some(&ZSTD_MAGIC[..]) {
                return Err("not a zstd frame (or a skippable frame)");
            }
            if zstd_safe::find_frame_compressed_size(stored) != Ok(stored.len()) {
                return Err("stored bytes are not exactly one zstd frame");
            }
            // The format has no dictionaries (spec section 7).
            if zstd_safe::get_dict_id_from_frame(stored).is_some() {
                return Err("zstd frame needs a dictionary");
            }
            match zstd_safe::get_frame_content_size(stored) {
                Ok(Some(n)) if n != out.len() as u64 => {
                    return Err("zstd frame content size differs from block length")
                }
                Err(_) => return Err("corrupt zstd frame header"),
                _ => {}
            }
            match zstd {
                Some(ctx) => ctx.decompress(out, stored),
                None => zstd_safe::decompress(out, stored),
            }
            .map_err(|_| "corrupt zstd data or output too large")?
        }
        #[allow(unreachable_patterns)]
        _ => return Err("codec not available"),
    };
    if produced != out.len() {
        return Err("decoded length differs from block length");
    }
    Ok(())
}

/// Compress `data` as one lz4 block into `out` (grown to the worst case);
/// `None` when it does not fit.
#[cfg(all(feature = "alloc", feature = "lz4"))]
pub(crate) fn lz4_compress(data: &[u8], out: &mut alloc::vec::Vec<u8>) -> Option<usize> {
    out.resize(lz4_flex::block::get_maximum_output_size(data.len()), 0);
    lz4_flex::block::compress_into(data, out).ok()
}

/// Compress `data` as one zstd frame at `level` into `out` (grown to the
/// worst case) with the reusable context `cctx`; `None` when it fails.
#[cfg(feature = "zstd")]
pub(crate) fn zstd_compress(
    cctx: &mut zstd_safe::CCtx<'static>,
    data: &[u8],
    level: i32,
    out: &mut alloc::vec::Vec<u8>,
) -> Option<usize> {
    out.resize(zstd_safe::compress_bound(data.len()), 0);
    cctx.compress(&mut out[..], data, level).ok()
}
