//! The encoder policy: for each block, which filter, which codec level
//! and which zstd block boundaries make it smallest, found by trial
//! compression among a few candidates ([`BlockEncoder`]). Measured choices
//! are noted where they are made.

use alloc::vec::Vec;

use crate::codec::{codec_available, Compression};
use crate::filter::delta::{delta_encode_into, delta_width};
use crate::filter::fields::split_fields_into;
use crate::filter::grouping::group_into;
use crate::filter::planes::bit_group_into;
use crate::layout::{CodecId, FilterId};

/// Deltas compressing below 1/SPARSE_DELTA of the block also try bit planes.
const SPARSE_DELTA: usize = 6;

/// Reusable per-thread block encoder. For each block it picks the filter
/// that compresses smallest among its candidates (plain and, for numeric
/// data, byte-grouped; against a base, the XOR and SUB deltas); a block
/// that does not shrink is stored raw.
pub struct BlockEncoder {
    compression: Compression,
    /// The filtered block (grouped; or delta, then grouped or in bit planes).
    filtered: Vec<u8>,
    delta: Vec<u8>,
    /// Scratch for the bit-plane transform.
    planes_scratch: Vec<u8>,
    /// The best compressed output so far, and the buffer for the next trial.
    out: Vec<u8>,
    spare: Vec<u8>,
    #[cfg(feature = "zstd")]
    zstd: Option<zstd_safe::CCtx<'static>>,
    /// Entropy coding (codec `ans`), when enabled.
    #[cfg(feature = "ans")]
    entropy: Option<crate::entropy::EntropyEncoder>,
}

/// Whether a plain block of `len` bytes with elements `width` bytes wide
/// is byte-grouped without a trial: on the real models no float block of
/// 64 KiB or more compressed smaller plain.
pub(crate) fn groups_without_trial(len: usize, width: u8) -> bool {
    width > 1 && len >= 64 << 10
}

/// What a block holds after its filter, for the zstd level.
#[derive(Clone, Copy)]
// Only zstd reads the stream cuts.
#[cfg_attr(not(feature = "zstd"), allow(dead_code))]
enum Content {
    Plain,
    /// Byte-grouped (or delta) elements of at most 8 bytes, a stream per
    /// byte, ending at these offsets.
    Numeric(StreamCuts),
    /// Field streams, ending at these offsets.
    Quantized(StreamCuts),
}

/// Where a filtered block's streams end: one per field or byte (the last
/// one's end is the tail's start; unused entries are 0).
type StreamCuts = [usize; MAX_FIELDS];

/// The most streams a filter makes: 8 bytes of an element; GGML layouts
/// have up to 7 fields (Q5_K).
const MAX_FIELDS: usize = 8;

/// Byte grouping at width *w* is the layout of *w* one-byte fields.
const ONE_BYTE_FIELDS: [u8; MAX_FIELDS] = [1; MAX_FIELDS];

/// The stream ends of `len` bytes split into `fields`.
fn stream_cuts(len: usize, fields: &[u8]) -> StreamCuts {
    let width: usize = fields.iter().map(|&f| usize::from(f)).sum();
    let n = len / width.max(1);
    let mut cuts = [0; MAX_FIELDS];
    let mut end = 0;
    for (cut, &size) in cuts.iter_mut().zip(fields) {
        end += n * usize::from(size);
        *cut = end;
    }
    cuts
}

/// The result of encoding one block; `bytes` borrows the encoder's buffers
/// (or the input, for a block stored raw).
pub struct EncodedBlock<'a> {
    /// The codec of `bytes` (none when stored raw).
    pub codec: CodecId,
    /// The filter that won (none when stored raw).
    pub filter: FilterId,
    /// The entry's `filter_param`: the GGML type for `fields`, else 0.
    pub param: u32,
    /// The bytes to store.
    pub bytes: &'a [u8],
}

impl BlockEncoder {
    /// A new encoder; fails when the codec is not compiled in.
    pub fn new(compression: Compression) -> crate::Result<Self> {
        if !codec_available(compression.codec_id()) {
            return Err(crate::Error::CodecUnavailable(compression.codec_id().name()));
        }
        Ok(BlockEncoder {
            compression,
            filtered: Vec::new(),
            delta: Vec::new(),
            planes_scratch: Vec::new(),
            out: Vec::new(),
            spare: Vec::new(),
            #[cfg(feature = "zstd")]
            zstd: None,
            #[cfg(feature = "ans")]
            entropy: None,
        })
    }

    /// Let this encoder use entropy-coded blocks (format 1.3: `float-ans`
    /// for [`encode_floats`](Self::encode_floats), `delta-ans` among the
    /// delta candidates). Only with zstd: lz4 is chosen for speed.
    #[cfg_attr(not(feature = "ans"), allow(unused_mut))]
    pub fn with_entropy(mut self, on: bool) -> Self {
        #[cfg(feature = "ans")]
        {
            let zstd = matches!(self.compression, Compression::Zstd { .. });
            self.entropy = (on && zstd).then(crate::entropy::EntropyEncoder::default);
        }
        #[cfg(not(feature = "ans"))]
        let _ = on;
        self
    }

    /// Whether entropy-coded blocks are enabled.
    pub fn entropy(&self) -> bool {
        #[cfg(feature = "ans")]
        return self.entropy.is_some();
        #[cfg(not(feature = "ans"))]
        false
    }

    /// Encode a block of IEEE floats with 8-bit exponents (BF16, F32) of
    /// `width` bytes: `float-ans` when entropy coding is on, without a trial
    /// for large blocks (on the real models it beat byte grouping with zstd
    /// on every float tensor); small ones also try the plain candidates.
    /// Otherwise as [`encode`](Self::encode).
    pub fn encode_floats<'a>(&'a mut self, data: &'a [u8], width: u8) -> EncodedBlock<'a> {
        if !self.entropy() || data.is_empty() || !matches!(width, 2 | 4) {
            return self.encode(data, width);
        }
        let candidates: &[FilterId] = if groups_without_trial(data.len(), width) {
            &[FilterId::FloatAns]
        } else {
            &[FilterId::FloatAns, FilterId::None, FilterId::ByteGroup]
        };
        let best = self.best_of(data, &[], width, candidates);
        self.finish(data, best)
    }

    /// Encode `data`; `width` > 1 (numeric elements of that many bytes)
    /// adds byte grouping as a candidate.
    pub fn encode<'a>(&'a mut self, data: &'a [u8], width: u8) -> EncodedBlock<'a> {
        if self.compression == Compression::None || data.is_empty() {
            return EncodedBlock { codec: CodecId::None, filter: FilterId::None, param: 0, bytes: data };
        }
        let best = self.plain_candidates(data, width);
        self.finish(data, best)
    }

    /// Encode whole blocks of the quantized GGML type `ggml_type` split into
    /// their fields (the `fields` filter), without trials: on every GGML
    /// type with a layout it measured at least as small as both the plain
    /// and the byte-grouped block, and it is much cheaper to undo. Types
    /// without a layout go to [`encode`](Self::encode) with `width`.
    /// Still stored raw when that does not shrink.
    pub fn encode_ggml<'a>(&'a mut self, data: &'a [u8], ggml_type: u32, width: u8) -> EncodedBlock<'a> {
        let Some(fields) = crate::dtype::ggml_fields(ggml_type) else {
            return self.encode(data, width);
        };
        if self.compression == Compression::None || data.is_empty() {
            return self.encode(data, width);
        }
        let mut filtered = core::mem::take(&mut self.filtered);
        filtered.resize(data.len(), 0);
        split_fields_into(data, fields, &mut filtered);
        let mut out = core::mem::take(&mut self.out);
        let cuts = stream_cuts(data.len(), fields);
        let n = self.compress(&filtered, &mut out, Content::Quantized(cuts)).unwrap_or(usize::MAX);
        (self.out, self.filtered) = (out, filtered);
        let mut block = self.finish(data, (FilterId::Fields, n));
        if block.filter == FilterId::Fields {
            block.param = ggml_type;
        }
        block
    }

    /// Encode `data` (against `base` for a delta filter) with `filter` only,
    /// skipping the trials: for blocks like one just encoded (the next
    /// blocks of a tensor). Still stored raw when that does not shrink.
    /// `width` is the element width, as for [`encode`](Self::encode); delta
    /// filters work at [`delta_width`] of it.
    pub fn encode_as<'a>(&'a mut self, data: &'a [u8], base: &[u8], width: u8, filter: FilterId) -> EncodedBlock<'a> {
        let usable = match filter {
            FilterId::None => true,
            FilterId::ByteGroup => width > 1,
            // Needs its GGML type: `encode_ggml`.
            FilterId::Fields => false,
            FilterId::FloatAns => self.entropy() && matches!(width, 2 | 4),
            FilterId::DeltaAns => self.entropy() && base.len() == data.len(),
            f => f.is_delta() && base.len() == data.len(),
        };
        if self.compression == Compression::None || data.is_empty() || !usable {
            return self.encode(data, width);
        }
        let n = self.filter_and_compress(filter, data, base, width);
        self.finish(data, (filter, n))
    }

    /// Encode `data` against `base` (same length) as the smaller of the XOR
    /// and SUB deltas (and SUB in bit planes when those are small); when
    /// none shrinks the block by a tenth (unrelated content), the candidates
    /// of [`encode`](Self::encode) are tried too. `width` is the element
    /// width; delta filters work at [`delta_width`] of it.
    pub fn encode_with_base<'a>(&'a mut self, data: &'a [u8], base: &[u8], width: u8) -> EncodedBlock<'a> {
        if self.compression == Compression::None || data.is_empty() || data.len() != base.len() {
            return self.encode(data, width);
        }
        let candidates: &[FilterId] = if self.entropy() {
            &[FilterId::DeltaAns, FilterId::DeltaXor, FilterId::DeltaSub]
        } else {
            &[FilterId::DeltaXor, FilterId::DeltaSub]
        };
        let mut delta = self.best_of(data, base, width, candidates);
        if delta.1.saturating_mul(SPARSE_DELTA) < data.len() {
            // Few bits changed per element: bit planes usually win (BF16 with
            // mostly unchanged weights: 0.09 -> 0.05 of the block).
            let saved = core::mem::replace(&mut self.out, core::mem::take(&mut self.spare));
            let n = self.filter_and_compress(FilterId::DeltaSubBits, data, base, width);
            if n < delta.1 {
                delta = (FilterId::DeltaSubBits, n);
                self.spare = saved;
            } else {
                self.spare = core::mem::replace(&mut self.out, saved);
            }
        }
        if delta.1.saturating_mul(10) > data.len() * 9 {
            let saved = core::mem::take(&mut self.out);
            let plain = self.plain_candidates(data, width);
            if plain.1 < delta.1 {
                return self.finish(data, plain);
            }
            self.out = saved;
        }
        self.finish(data, delta)
    }

    /// The candidates of [`encode`](Self::encode), as [`best_of`](Self::best_of).
    fn plain_candidates(&mut self, data: &[u8], width: u8) -> (FilterId, usize) {
        let candidates: &[FilterId] = if groups_without_trial(data.len(), width) {
            &[FilterId::ByteGroup]
        } else if width > 1 && data.len() >= 2 * usize::from(width) {
            &[FilterId::None, FilterId::ByteGroup]
        } else {
            &[FilterId::None]
        };
        self.best_of(data, &[], width, candidates)
    }

    /// The encoded block for `best` = (filter, compressed length in
    /// `self.out`), or the raw bytes when that did not shrink.
    fn finish<'a>(&'a self, data: &'a [u8], best: (FilterId, usize)) -> EncodedBlock<'a> {
        if best.1 >= data.len() {
            return EncodedBlock { codec: CodecId::None, filter: FilterId::None, param: 0, bytes: data };
        }
        let codec = if best.0.is_entropy_coded() { CodecId::Ans } else { self.compression.codec_id() };
        EncodedBlock { codec, filter: best.0, param: 0, bytes: &self.out[..best.1] }
    }

    /// Compress `data` with the best of `candidates` into `self.out`;
    /// returns (filter, compressed length), the length being `usize::MAX`
    /// when the codec failed. (Judging on a sample does not work: zstd
    /// codes each 128 KiB with one Huffman table, so grouping only pays
    /// across tables, at full size.)
    fn best_of(&mut self, data: &[u8], base: &[u8], width: u8, candidates: &[FilterId]) -> (FilterId, usize) {
        let mut pick = candidates[0];
        // Keep the best output in `self.out` (swapped with the spare buffer).
        let mut best = usize::MAX;
        let mut spare = core::mem::take(&mut self.spare);
        for &filter in candidates {
            let n = self.filter_and_compress(filter, data, base, width);
            if n < best {
                (best, pick) = (n, filter);
                core::mem::swap(&mut self.out, &mut spare);
            }
        }
        core::mem::swap(&mut self.out, &mut spare);
        self.spare = spare;
        (pick, best)
    }

    /// Apply `filter` (against `base` for deltas) and compress into
    /// `self.out`; the compressed length, or `usize::MAX` on codec failure.
    fn filter_and_compress(&mut self, filter: FilterId, data: &[u8], base: &[u8], width: u8) -> usize {
        #[cfg(feature = "ans")]
        if filter.is_entropy_coded() {
            let Some(entropy) = self.entropy.as_mut() else { return usize::MAX };
            let n = match filter {
                FilterId::FloatAns => entropy.encode_float(data, usize::from(width), &mut self.out),
                _ => entropy.encode_delta(data, base, usize::from(delta_width(usize::from(width))), &mut self.out),
            };
            return n.unwrap_or(usize::MAX);
        }
        let w = match filter {
            FilterId::None | FilterId::ByteGroup => usize::from(width.max(1)),
            _ => usize::from(delta_width(usize::from(width))),
        };
        let mut filtered = core::mem::take(&mut self.filtered);
        let input: &[u8] = match filter {
            FilterId::None => data,
            FilterId::ByteGroup => {
                filtered.resize(data.len(), 0);
                group_into(data, w, &mut filtered);
                &filtered
            }
            _ => {
                self.delta.resize(data.len(), 0);
                delta_encode_into(filter, data, base, w, &mut self.delta);
                filtered.resize(data.len(), 0);
                if filter == FilterId::DeltaSubBits {
                    let mut scratch = core::mem::take(&mut self.planes_scratch);
                    scratch.resize(data.len(), 0);
                    bit_group_into(&self.delta, w, &mut filtered, &mut scratch);
                    self.planes_scratch = scratch;
                } else {
                    group_into(&self.delta, w, &mut filtered);
                }
                &filtered
            }
        };
        // Element streams of floats and integers; quantized blocks (wider
        // "elements") keep the plain level, measured better on them.
        let content = if filter != FilterId::None && w <= MAX_FIELDS {
            Content::Numeric(stream_cuts(input.len(), &ONE_BYTE_FIELDS[..w]))
        } else {
            Content::Plain
        };
        let mut out = core::mem::take(&mut self.out);
        let n = self.compress(input, &mut out, content).unwrap_or(usize::MAX);
        (self.out, self.filtered) = (out, filtered);
        n
    }

    /// Compress into `out`; `None` when the codec failed (treated as "store raw").
    fn compress(&mut self, data: &[u8], out: &mut Vec<u8>, content: Content) -> Option<usize> {
        #[cfg(not(feature = "zstd"))]
        let _ = content;
        // Built without any codec, every block is stored raw.
        #[cfg(not(any(feature = "lz4", feature = "zstd")))]
        let _ = (data, out);
        match self.compression {
            Compression::None => None,
            #[cfg(feature = "lz4")]
            Compression::Lz4 => crate::codec::lz4_compress(data, out),
            #[cfg(feature = "zstd")]
            Compression::Zstd { level, numeric_level, quantized_level } => {
                if self.zstd.is_none() {
                    self.zstd = Some(zstd_safe::CCtx::try_create()?);
                }
                let cctx = self.zstd.as_mut()?;
                match content {
                    Content::Plain => crate::codec::zstd_compress(cctx, data, level, out),
                    Content::Numeric(cuts) => zstd_in_streams(cctx, data, &cuts, numeric_level, out),
                    Content::Quantized(cuts) => zstd_in_streams(cctx, data, &cuts, quantized_level, out),
                }
            }
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// One zstd frame of `data`, with its zstd blocks ending at each of `cuts`
/// (a flush): each stream gets Huffman and sequence tables of its own,
/// where zstd's 128 KiB blocks would otherwise mix the end of one stream
/// with the start of the next (a block's small scale streams with its
/// quants; exponent bytes with mantissa bytes whenever a stream is not a
/// multiple of 128 KiB). On gemma's Q8_0 that makes level 1 smaller than
/// level 5 without cuts (0.9294 against 0.9385) at 1.8x the speed; an F16
/// MiniLM comes out 0.7% smaller. Decoders see an ordinary frame.
#[cfg(feature = "zstd")]
fn zstd_in_streams(
    cctx: &mut zstd_safe::CCtx<'static>,
    data: &[u8],
    cuts: &[usize],
    level: i32,
    out: &mut Vec<u8>,
) -> Option<usize> {
    use zstd_safe::zstd_sys::ZSTD_EndDirective::{ZSTD_e_end, ZSTD_e_flush};
    cctx.reset(zstd_safe::ResetDirective::SessionOnly).ok()?;
    cctx.set_parameter(zstd_safe::CParameter::CompressionLevel(level)).ok()?;
    cctx.set_pledged_src_size(Some(data.len() as u64)).ok()?;
    // Each flush closes a block: a few header bytes beyond the bound.
    out.resize(zstd_safe::compress_bound(data.len()) + 16 * (cuts.len() + 1), 0);
    let mut output = zstd_safe::OutBuffer::around(&mut out[..]);
    let mut start = 0;
    // A block's tables cost more than they save on a short stream: those
    // share a zstd block with the next one (spec vector `tails-zstd`, 4 KiB
    // blocks: 2323 bytes so, 2752 cut at every stream; gemma the same).
    const MIN_STREAM: usize = 1024;
    let mut last = 0;
    let ends = cuts
        .iter()
        .copied()
        .filter(|&c| {
            let keep = c >= last + MIN_STREAM && c + MIN_STREAM <= data.len();
            if keep {
                last = c;
            }
            keep
        })
        .chain([data.len()]);
    for end in ends {
        let op = if end == data.len() { ZSTD_e_end } else { ZSTD_e_flush };
        let mut input = zstd_safe::InBuffer::around(&data[start..end]);
        loop {
            let before = (input.pos(), output.pos());
            let left = cctx.compress_stream2(&mut output, &mut input, op).ok()?;
            if left == 0 && input.pos() == end - start {
                break;
            }
            if (input.pos(), output.pos()) == before {
                // No room left (incompressible data): the caller stores raw.
                return None;
            }
        }
        start = end;
    }
    Some(output.pos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decompress;
    use crate::filter::{bit_ungroup, delta_apply, join_fields, split_fields};

    #[test]
    fn sparse_deltas_choose_bit_planes_and_decode() {
        // BF16-like block where one element in twelve moved by one step.
        let base: Vec<u8> = (0..(256u32 << 10)).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        let mut fine = base.clone();
        for (j, e) in fine.chunks_exact_mut(2).enumerate() {
            let step = (j as u32).wrapping_mul(2_246_822_519) >> 24;
            let v = u16::from_le_bytes([e[0], e[1]]);
            let v = match step % 24 {
                0 => v.wrapping_add(1),
                1 => v.wrapping_sub(1),
                _ => v,
            };
            e.copy_from_slice(&v.to_le_bytes());
        }
        let mut enc = BlockEncoder::new(Compression::Lz4).unwrap();
        let e = enc.encode_with_base(&fine, &base, 2);
        assert_eq!(e.filter, FilterId::DeltaSubBits);
        let mut tmp = alloc::vec![0u8; fine.len()];
        decompress(e.codec, e.bytes, &mut tmp, None).unwrap();
        let mut out = alloc::vec![0u8; fine.len()];
        let mut scratch = alloc::vec![0u8; fine.len()];
        bit_ungroup(&tmp, 2, &mut out, &mut scratch).unwrap();
        delta_apply(e.filter, &mut out, &base, 2).unwrap();
        assert!(out == fine);
    }

    fn xorshift(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    /// A fields block is one zstd frame (spec section 7) declaring its
    /// size, whatever the cuts, and each stream is coded on its own.
    #[cfg(feature = "zstd")]
    #[test]
    fn field_streams_are_one_frame_with_a_block_each() {
        for t in crate::dtype::GGML_TYPES {
            let Some(fields) = crate::dtype::ggml_fields(t.id) else { continue };
            assert!(fields.len() <= MAX_FIELDS, "{}", t.name);
            let width = t.block_bytes as usize;
            for len in [0, 5, width, width * 3000 + 7] {
                let data: Vec<u8> = (0..len)
                    .map(|i| if i % width < 2 { 1 } else { (i as u32).wrapping_mul(2_654_435_761) as u8 >> 1 })
                    .collect();
                let mut encoder = BlockEncoder::new(Compression::DEFAULT).unwrap();
                let block = encoder.encode_ggml(&data, t.id, width as u8);
                let mut back = alloc::vec![0u8; len];
                if block.codec == CodecId::None {
                    assert!(len < width * 2, "{} {len}: stored raw", t.name);
                    continue;
                }
                assert_eq!(block.filter, FilterId::Fields);
                assert_eq!(zstd_safe::get_frame_content_size(block.bytes).ok(), Some(Some(len as u64)), "{}", t.name);
                assert_eq!(zstd_safe::find_frame_compressed_size(block.bytes), Ok(block.bytes.len()), "{}", t.name);
                let mut split = alloc::vec![0u8; len];
                decompress(block.codec, block.bytes, &mut split, None).unwrap();
                join_fields(&split, fields, &mut back).unwrap();
                assert_eq!(back, data, "{} {len}", t.name);
            }
        }
        // Noise does not shrink: stored raw, whatever the cuts.
        let q8 = crate::dtype::GGML_TYPES.iter().find(|t| t.name == "Q8_0").unwrap();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let noise: Vec<u8> = (0..34 * 4000).map(|_| (xorshift(&mut state) >> 32) as u8).collect();
        let mut encoder = BlockEncoder::new(Compression::DEFAULT).unwrap();
        let raw = encoder.encode_ggml(&noise, q8.id, 34);
        assert_eq!((raw.codec, raw.filter, raw.bytes), (CodecId::None, FilterId::None, &noise[..]));

        // Q8_0: noisy low scale bytes, high bytes of 4 values, 6-bit quants.
        // With a zstd block per stream each is coded near its entropy; in
        // one 128 KiB block they share a Huffman table.
        let n = 3000;
        let data: Vec<u8> = (0..n * 34)
            .map(|i| {
                let r = xorshift(&mut state) as u8;
                match i % 34 {
                    0 => r,
                    1 => 0x3c | (r & 3),
                    _ => r & 0x3f,
                }
            })
            .collect();
        let mut encoder = BlockEncoder::new(Compression::DEFAULT).unwrap();
        let cut = encoder.encode_ggml(&data, q8.id, 34).bytes.len();
        let mut split = alloc::vec![0u8; data.len()];
        split_fields(&data, crate::dtype::ggml_fields(q8.id).unwrap(), &mut split).unwrap();
        let mut whole = alloc::vec![0u8; zstd_safe::compress_bound(split.len())];
        let one = zstd_safe::compress(&mut whole[..], &split, 2).unwrap();
        // Entropy: 8 bits for the low scale bytes, 2 for the high, 6 per quant.
        let ideal = n + n * 2 / 8 + n * 32 * 6 / 8;
        assert!(cut < one, "with cuts {cut}, without {one}");
        assert!(cut < ideal + ideal / 100, "{cut} bytes for {ideal} bytes of entropy");
    }
}
