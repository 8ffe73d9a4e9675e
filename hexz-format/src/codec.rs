//! Block codecs (none, lz4, zstd) and the byte-grouping filter.
//!
//! Decoding writes into caller buffers and never allocates (zstd's C context
//! aside); encoding needs `alloc` for its output buffers.

use crate::layout::{codec_id, filter_id};

/// Compression method for new blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Store blocks as they are.
    None,
    /// lz4 block format (lz4_flex).
    Lz4,
    /// zstd at the given level.
    Zstd(i32),
}

impl Compression {
    /// The codec id a block compressed this way records.
    pub fn codec_id(self) -> u8 {
        match self {
            Compression::None => codec_id::NONE,
            Compression::Lz4 => codec_id::LZ4,
            Compression::Zstd(_) => codec_id::ZSTD,
        }
    }
}

/// Human name of a codec id.
pub fn codec_name(codec: u8) -> &'static str {
    match codec {
        codec_id::NONE => "none",
        codec_id::LZ4 => "lz4",
        codec_id::ZSTD => "zstd",
        _ => "unknown",
    }
}

/// Human name of a filter id.
pub fn filter_name(filter: u8) -> &'static str {
    match filter {
        filter_id::NONE => "none",
        filter_id::BYTE_GROUP => "byte-group",
        filter_id::DELTA_XOR => "delta-xor",
        filter_id::DELTA_SUB => "delta-sub",
        _ => "unknown",
    }
}

/// Whether this build can decode `codec`.
pub fn codec_available(codec: u8) -> bool {
    (codec == codec_id::NONE)
        || (codec == codec_id::LZ4 && cfg!(feature = "lz4"))
        || (codec == codec_id::ZSTD && cfg!(feature = "zstd"))
}

/// Byte grouping: byte k of every `width`-byte element goes to stream k.
/// A tail shorter than one element is copied unchanged at the end.
/// `input` and `out` must have equal lengths.
pub fn group(input: &[u8], width: usize, out: &mut [u8]) {
    debug_assert_eq!(input.len(), out.len());
    let width = width.max(1);
    let count = input.len() / width;
    let body = count * width;
    for (k, stream) in out[..body].chunks_exact_mut(count.max(1)).enumerate().take(width) {
        for (i, byte) in stream.iter_mut().enumerate() {
            *byte = input[i * width + k];
        }
    }
    out[body..].copy_from_slice(&input[body..]);
}

/// Inverse of [`group`].
pub fn ungroup(input: &[u8], width: usize, out: &mut [u8]) {
    debug_assert_eq!(input.len(), out.len());
    let width = width.max(1);
    let count = input.len() / width;
    let body = count * width;
    for (k, stream) in input[..body].chunks_exact(count.max(1)).enumerate().take(width) {
        for (i, byte) in stream.iter().enumerate() {
            out[i * width + k] = *byte;
        }
    }
    out[body..].copy_from_slice(&input[body..]);
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
pub fn decompress(codec: u8, stored: &[u8], out: &mut [u8], zstd: ZstdContext<'_>) -> Result<(), &'static str> {
    #[cfg(not(feature = "zstd"))]
    let _ = zstd;
    let produced = match codec {
        codec_id::NONE => {
            if stored.len() != out.len() {
                return Err("stored length differs from block length");
            }
            out.copy_from_slice(stored);
            out.len()
        }
        #[cfg(feature = "lz4")]
        codec_id::LZ4 => lz4_flex::block::decompress_into(stored, out).map_err(|_| "corrupt lz4 data")?,
        #[cfg(feature = "zstd")]
        codec_id::ZSTD => match zstd {
            Some(ctx) => ctx.decompress(out, stored),
            None => zstd_safe::decompress(out, stored),
        }
        .map_err(|_| "corrupt zstd data or output too large")?,
        _ => return Err("codec not available"),
    };
    if produced != out.len() {
        return Err("decoded length differs from block length");
    }
    Ok(())
}

/// Reusable per-thread block encoder: tries the codec on the plain bytes and,
/// for floating-point data, on the byte-grouped bytes, and keeps the smallest;
/// a block that does not shrink is stored raw.
#[cfg(feature = "alloc")]
pub struct BlockEncoder {
    compression: Compression,
    grouped: alloc::vec::Vec<u8>,
    plain_out: alloc::vec::Vec<u8>,
    grouped_out: alloc::vec::Vec<u8>,
    #[cfg(feature = "zstd")]
    zstd: Option<zstd_safe::CCtx<'static>>,
}

/// The result of encoding one block; `bytes` borrows the encoder's buffers.
#[cfg(feature = "alloc")]
pub struct EncodedBlock<'a> {
    pub codec: u8,
    pub filter: u8,
    pub bytes: &'a [u8],
}

#[cfg(feature = "alloc")]
impl BlockEncoder {
    /// A new encoder; fails when the codec is not compiled in.
    pub fn new(compression: Compression) -> crate::Result<Self> {
        if !codec_available(compression.codec_id()) {
            return Err(crate::Error::CodecUnavailable(codec_name(compression.codec_id())));
        }
        Ok(BlockEncoder {
            compression,
            grouped: alloc::vec::Vec::new(),
            plain_out: alloc::vec::Vec::new(),
            grouped_out: alloc::vec::Vec::new(),
            #[cfg(feature = "zstd")]
            zstd: None,
        })
    }

    /// Encode `data`; `width` > 1 enables the byte-grouping trial.
    pub fn encode<'a>(&'a mut self, data: &'a [u8], width: u8) -> EncodedBlock<'a> {
        let raw = EncodedBlock { codec: codec_id::NONE, filter: filter_id::NONE, bytes: data };
        if self.compression == Compression::None || data.is_empty() {
            return raw;
        }
        let mut plain_out = core::mem::take(&mut self.plain_out);
        let plain_len = self.compress(data, &mut plain_out);
        let mut grouped_len = None;
        let mut grouped_out = core::mem::take(&mut self.grouped_out);
        if width > 1 && data.len() >= 2 * width as usize {
            self.grouped.resize(data.len(), 0);
            group(data, width as usize, &mut self.grouped);
            let grouped = core::mem::take(&mut self.grouped);
            grouped_len = self.compress(&grouped, &mut grouped_out);
            self.grouped = grouped;
        }
        self.plain_out = plain_out;
        self.grouped_out = grouped_out;
        let codec = self.compression.codec_id();
        let best_plain = plain_len.filter(|&n| n < data.len());
        match (best_plain, grouped_len.filter(|&n| n < data.len())) {
            (Some(p), Some(g)) if g < p => {
                EncodedBlock { codec, filter: filter_id::BYTE_GROUP, bytes: &self.grouped_out[..g] }
            }
            (_, Some(g)) if best_plain.is_none() => {
                EncodedBlock { codec, filter: filter_id::BYTE_GROUP, bytes: &self.grouped_out[..g] }
            }
            (Some(p), _) => EncodedBlock { codec, filter: filter_id::NONE, bytes: &self.plain_out[..p] },
            _ => raw,
        }
    }

    /// Compress into `out`; `None` when the codec failed (treated as "store raw").
    fn compress(&mut self, data: &[u8], out: &mut alloc::vec::Vec<u8>) -> Option<usize> {
        match self.compression {
            Compression::None => None,
            #[cfg(feature = "lz4")]
            Compression::Lz4 => {
                out.resize(lz4_flex::block::get_maximum_output_size(data.len()), 0);
                lz4_flex::block::compress_into(data, out).ok()
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd(level) => {
                out.resize(zstd_safe::compress_bound(data.len()), 0);
                let cctx = self.zstd.get_or_insert_with(zstd_safe::CCtx::create);
                cctx.compress(&mut out[..], data, level).ok()
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_round_trips_with_tail() {
        let input: [u8; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let mut grouped = [0u8; 11];
        group(&input, 4, &mut grouped);
        assert_eq!(grouped, [1, 5, 2, 6, 3, 7, 4, 8, 9, 10, 11]);
        let mut back = [0u8; 11];
        ungroup(&grouped, 4, &mut back);
        assert_eq!(back, input);
    }
}
