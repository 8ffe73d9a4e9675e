//! Block codecs (none, lz4, zstd) and the byte-grouping filter.
//!
//! Decoding writes into caller buffers and never allocates (zstd's C context
//! aside); encoding needs `alloc` for its output buffers.

use crate::error::{Error, Result};
use crate::layout::{CodecId, FilterId};

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
    Zstd { level: i32, numeric_level: i32, quantized_level: i32 },
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

fn same_lengths(lengths: &[usize]) -> Result<()> {
    match lengths.split_first() {
        Some((first, rest)) if rest.iter().any(|n| n != first) => {
            Err(Error::InvalidArgument("transform buffers must have equal lengths"))
        }
        _ => Ok(()),
    }
}

/// Byte grouping: byte k of every `width`-byte element goes to stream k.
/// A tail shorter than one element is copied unchanged at the end.
/// `input` and `out` must have equal lengths.
pub fn group(input: &[u8], width: usize, out: &mut [u8]) -> Result<()> {
    same_lengths(&[input.len(), out.len()])?;
    group_into(input, width, out);
    Ok(())
}

/// Inverse of [`group`].
pub fn ungroup(input: &[u8], width: usize, out: &mut [u8]) -> Result<()> {
    same_lengths(&[input.len(), out.len()])?;
    ungroup_into(input, width, out);
    Ok(())
}

/// [`group`] for callers that guarantee equal lengths.
pub(crate) fn group_into(input: &[u8], width: usize, out: &mut [u8]) {
    debug_assert_eq!(input.len(), out.len());
    let width = width.max(1);
    let count = input.len() / width;
    let body = count * width;
    match width {
        2 => group_2(&input[..body], &mut out[..body]),
        4 => group_4(&input[..body], &mut out[..body]),
        // Stream-major (one output stream at a time): measured faster than
        // element-major for the quantized strides (22 and 34 bytes: 1.6x).
        _ if count > 0 => {
            for (k, stream) in out[..body].chunks_exact_mut(count).enumerate() {
                for (byte, element) in stream.iter_mut().zip(input[..body].chunks_exact(width)) {
                    *byte = element[k];
                }
            }
        }
        _ => {}
    }
    out[body..].copy_from_slice(&input[body..]);
}

/// [`ungroup`] for callers that guarantee equal lengths.
pub(crate) fn ungroup_into(input: &[u8], width: usize, out: &mut [u8]) {
    debug_assert_eq!(input.len(), out.len());
    let width = width.max(1);
    let count = input.len() / width;
    let body = count * width;
    match width {
        2 => ungroup_2(&input[..body], &mut out[..body]),
        4 => ungroup_4(&input[..body], &mut out[..body]),
        _ if count > 0 => {
            for (k, stream) in input[..body].chunks_exact(count).enumerate() {
                for (byte, element) in stream.iter().zip(out[..body].chunks_exact_mut(width)) {
                    element[k] = *byte;
                }
            }
        }
        _ => {}
    }
    out[body..].copy_from_slice(&input[body..]);
}

// Fixed-width versions for the hot float widths (FP32, BF16/F16): zipped iterators over
// exact chunks (grouping: small fixed tiles), so the compiler sees no bounds
// checks and vectorizes. Measured on 1 MiB (benches/codec.rs): FP32 ungroup
// 4.8 -> 12 GiB/s, group 3.4 -> 5.2; BF16 group 3.4 -> 4.7.
fn group_2(input: &[u8], out: &mut [u8]) {
    const T: usize = 8; // elements per step: one 16-byte load, two 8-byte stores
    let n = input.len() / 2;
    let (s0, s1) = out.split_at_mut(n);
    let tiles = n / T;
    for ((e, a), b) in
        input[..tiles * T * 2].chunks_exact(T * 2).zip(s0.chunks_exact_mut(T)).zip(s1.chunks_exact_mut(T))
    {
        let e: &[u8; T * 2] = e.try_into().unwrap_or(&[0; T * 2]);
        let mut lanes = [[0u8; T]; 2];
        for i in 0..T {
            lanes[0][i] = e[2 * i];
            lanes[1][i] = e[2 * i + 1];
        }
        a.copy_from_slice(&lanes[0]);
        b.copy_from_slice(&lanes[1]);
    }
    for i in tiles * T..n {
        (s0[i], s1[i]) = (input[2 * i], input[2 * i + 1]);
    }
}

fn ungroup_2(input: &[u8], out: &mut [u8]) {
    let (s0, s1) = input.split_at(input.len() / 2);
    for ((e, a), b) in out.chunks_exact_mut(2).zip(s0).zip(s1) {
        e.copy_from_slice(&[*a, *b]);
    }
}

fn group_4(input: &[u8], out: &mut [u8]) {
    const T: usize = 8; // elements per step: one 32-byte load, four 8-byte stores (measured best)
    let n = input.len() / 4;
    let (s01, s23) = out.split_at_mut(2 * n);
    let ((s0, s1), (s2, s3)) = (s01.split_at_mut(n), s23.split_at_mut(n));
    let tiles = n / T;
    for (((e, a), b), (c, d)) in input[..tiles * T * 4]
        .chunks_exact(T * 4)
        .zip(s0.chunks_exact_mut(T))
        .zip(s1.chunks_exact_mut(T))
        .zip(s2.chunks_exact_mut(T).zip(s3.chunks_exact_mut(T)))
    {
        let e: &[u8; T * 4] = e.try_into().unwrap_or(&[0; T * 4]);
        let mut lanes = [[0u8; T]; 4];
        for i in 0..T {
            for k in 0..4 {
                lanes[k][i] = e[i * 4 + k];
            }
        }
        a.copy_from_slice(&lanes[0]);
        b.copy_from_slice(&lanes[1]);
        c.copy_from_slice(&lanes[2]);
        d.copy_from_slice(&lanes[3]);
    }
    for i in tiles * T..n {
        (s0[i], s1[i], s2[i], s3[i]) = (input[4 * i], input[4 * i + 1], input[4 * i + 2], input[4 * i + 3]);
    }
}

fn ungroup_4(input: &[u8], out: &mut [u8]) {
    let n = input.len() / 4;
    let (s01, s23) = input.split_at(2 * n);
    let ((s0, s1), (s2, s3)) = (s01.split_at(n), s23.split_at(n));
    for (((e, a), b), (c, d)) in out.chunks_exact_mut(4).zip(s0).zip(s1).zip(s2.iter().zip(s3)) {
        e.copy_from_slice(&[*a, *b, *c, *d]);
    }
}

/// Field splitting (the `fields` filter, spec §7): `fields` lists the byte
/// sizes of one element's fields (a [`crate::dtype::ggml_fields`] layout).
/// With *n* whole elements, field f of every element goes, in element
/// order, to stream f of n·size bytes; the streams follow one another and
/// a tail shorter than one element is copied unchanged at the end.
/// `input` and `out` must have equal lengths.
pub fn split_fields(input: &[u8], fields: &[u8], out: &mut [u8]) -> Result<()> {
    same_lengths(&[input.len(), out.len()])?;
    split_fields_into(input, fields, out);
    Ok(())
}

/// Inverse of [`split_fields`].
pub fn join_fields(input: &[u8], fields: &[u8], out: &mut [u8]) -> Result<()> {
    same_lengths(&[input.len(), out.len()])?;
    join_fields_into(input, fields, out);
    Ok(())
}

pub(crate) fn split_fields_into(input: &[u8], fields: &[u8], out: &mut [u8]) {
    move_fields(input, fields, out, true);
}

pub(crate) fn join_fields_into(input: &[u8], fields: &[u8], out: &mut [u8]) {
    move_fields(input, fields, out, false);
}

/// `move_fields` with a copy of the one-pass loop per GGML layout, its
/// field sizes constants; and the list of those layouts, for the test that
/// [`crate::dtype::ggml_fields`] has none outside it.
macro_rules! one_pass_layouts {
    ($($n:literal: [$($size:literal),+]),+ $(,)?) => {
        /// Both directions of field splitting: `split` gathers each field of
        /// the elements in `input` into its stream in `out`; otherwise the
        /// streams in `input` are scattered back into the elements in `out`,
        /// each element read or written once, whole.
        fn move_fields(input: &[u8], fields: &[u8], out: &mut [u8], split: bool) {
            match fields {
                $([$($size),+] => fields_in_one_pass::<$n>(input, [$($size),+], out, split),)+
                _ => fields_by_layout(input, fields, out, split),
            }
        }

        #[cfg(test)]
        const ONE_PASS_LAYOUTS: &[&[u8]] = &[$(&[$($size),+]),+];
    };
}

one_pass_layouts! {
    3: [1, 1, 16],
    5: [1, 1, 1, 1, 16],
    4: [1, 1, 4, 16],
    6: [1, 1, 1, 1, 4, 16],
    3: [1, 1, 32],
    6: [16, 64, 1, 1, 1, 1],
    5: [32, 64, 12, 1, 1],
    6: [1, 1, 1, 1, 12, 128],
    7: [1, 1, 1, 1, 12, 32, 128],
    5: [128, 64, 16, 1, 1],
    6: [1, 1, 1, 1, 4, 128],
    2: [1, 16],
}

/// [`move_fields`] element by element: each element is read or written
/// once, whole, where one pass per field touched every cache line of the
/// elements once per field.
#[inline(always)]
fn fields_in_one_pass<const N: usize>(input: &[u8], sizes: [usize; N], out: &mut [u8], split: bool) {
    let width: usize = sizes.iter().sum();
    let count = input.len() / width;
    let body = count * width;
    if split {
        let mut streams: [&mut [u8]; N] = core::array::from_fn(|_| &mut [][..]);
        let mut rest = &mut out[..body];
        for (stream, size) in streams.iter_mut().zip(sizes) {
            (*stream, rest) = core::mem::take(&mut rest).split_at_mut(count * size);
        }
        for (i, element) in input[..body].chunks_exact(width).enumerate() {
            let mut at = 0;
            for (stream, size) in streams.iter_mut().zip(sizes) {
                stream[i * size..(i + 1) * size].copy_from_slice(&element[at..at + size]);
                at += size;
            }
        }
    } else {
        let mut streams: [&[u8]; N] = [&[]; N];
        let mut rest = &input[..body];
        for (stream, size) in streams.iter_mut().zip(sizes) {
            (*stream, rest) = rest.split_at(count * size);
        }
        for (i, element) in out[..body].chunks_exact_mut(width).enumerate() {
            let mut at = 0;
            for (stream, size) in streams.iter().zip(sizes) {
                element[at..at + size].copy_from_slice(&stream[i * size..(i + 1) * size]);
                at += size;
            }
        }
    }
    out[body..].copy_from_slice(&input[body..]);
}

/// [`move_fields`] for any other layout: the same single pass, with the
/// field sizes read as it goes (only the public [`split_fields`] and
/// [`join_fields`] reach it; archives hold GGML layouts only).
fn fields_by_layout(input: &[u8], fields: &[u8], out: &mut [u8], split: bool) {
    let width = fields.iter().map(|&f| usize::from(f)).sum::<usize>().max(1);
    let count = input.len() / width;
    let body = count * width;
    for i in 0..count {
        // `at`: the field's place in element i; `stream`: where its stream starts.
        let (mut at, mut stream) = (i * width, 0);
        for &size in fields {
            let size = usize::from(size);
            let (element, field) = (at..at + size, stream + i * size..stream + (i + 1) * size);
            if split {
                out[field].copy_from_slice(&input[element]);
            } else {
                out[element].copy_from_slice(&input[field]);
            }
            (at, stream) = (at + size, stream + count * size);
        }
    }
    out[body..].copy_from_slice(&input[body..]);
}

/// The element width delta filters work at: `width` when it is 1, 2, 4 or
/// 8 (an integer the filters can add), else 1 (quantized blocks: bytes).
pub fn delta_width(width: usize) -> u8 {
    match width {
        1 | 2 | 4 | 8 => width as u8,
        _ => 1,
    }
}

/// Transpose an 8×8 bit matrix held in a u64: bit `r` of byte `i` moves to
/// bit `i` of byte `r` (Hacker's Delight, transpose8). Its own inverse.
fn transpose8(mut x: u64) -> u64 {
    let mut t = (x ^ (x >> 7)) & 0x00AA_00AA_00AA_00AA;
    x ^= t ^ (t << 7);
    t = (x ^ (x >> 14)) & 0x0000_CCCC_0000_CCCC;
    x ^= t ^ (t << 14);
    t = (x ^ (x >> 28)) & 0x0000_0000_F0F0_F0F0;
    x ^ t ^ (t << 28)
}

/// Bit planes (the layout of delta-sub-bits, spec §9). With *n* whole
/// `width`-byte elements and *m* = ⌊n/8⌋·8: 8·width planes of m/8 bytes,
/// where bit i of byte j of plane p is bit p of element 8j + i (little-
/// endian); then elements m..n as they are, then the tail. A sparse delta
/// (mostly 0 and ±1) leaves most planes zero, which any codec removes, and
/// packs the rest eight elements to a byte. Widths other than 1, 2, 4, 8
/// are treated as 1. `input`, `out` and `scratch` have equal lengths.
///
/// Done as byte grouping of the first *m* elements (stream b holds byte b)
/// and then an 8×8 bit transpose of every 8 bytes of each stream.
pub fn bit_group(input: &[u8], width: usize, out: &mut [u8], scratch: &mut [u8]) -> Result<()> {
    same_lengths(&[input.len(), out.len(), scratch.len()])?;
    bit_group_into(input, width, out, scratch);
    Ok(())
}

/// Inverse of [`bit_group`].
pub fn bit_ungroup(input: &[u8], width: usize, out: &mut [u8], scratch: &mut [u8]) -> Result<()> {
    same_lengths(&[input.len(), out.len(), scratch.len()])?;
    bit_ungroup_into(input, width, out, scratch);
    Ok(())
}

pub(crate) fn bit_group_into(input: &[u8], width: usize, out: &mut [u8], scratch: &mut [u8]) {
    let w = usize::from(delta_width(width));
    let body = input.len() / w / 8 * 8 * w;
    group_into(&input[..body], w, &mut scratch[..body]);
    let stream = body / w;
    if stream > 0 {
        for (bytes, planes) in scratch[..body].chunks_exact(stream).zip(out[..body].chunks_exact_mut(stream)) {
            stream_to_planes(bytes, planes);
        }
    }
    out[body..].copy_from_slice(&input[body..]);
}

pub(crate) fn bit_ungroup_into(input: &[u8], width: usize, out: &mut [u8], scratch: &mut [u8]) {
    let w = usize::from(delta_width(width));
    let body = input.len() / w / 8 * 8 * w;
    let stream = body / w;
    if stream > 0 {
        for (planes, bytes) in input[..body].chunks_exact(stream).zip(scratch[..body].chunks_exact_mut(stream)) {
            planes_to_stream(planes, bytes);
        }
    }
    ungroup_into(&scratch[..body], w, &mut out[..body]);
    out[body..].copy_from_slice(&input[body..]);
}

/// One stream of 8k bytes to 8 planes of k bytes: plane r byte j bit i =
/// stream byte 8j + i bit r.
fn stream_to_planes(bytes: &[u8], planes: &mut [u8]) {
    let k = bytes.len() / 8;
    let mut rest = planes;
    let mut p: [&mut [u8]; 8] = core::array::from_fn(|_| {
        let (head, tail) = core::mem::take(&mut rest).split_at_mut(k);
        rest = tail;
        head
    });
    for (j, chunk) in bytes.chunks_exact(8).enumerate() {
        let t = transpose8(u64::from_le_bytes(chunk.try_into().unwrap_or_default())).to_le_bytes();
        for (plane, byte) in p.iter_mut().zip(t) {
            if let Some(slot) = plane.get_mut(j) {
                *slot = byte;
            }
        }
    }
}

/// Inverse of [`stream_to_planes`].
fn planes_to_stream(planes: &[u8], bytes: &mut [u8]) {
    let k = bytes.len() / 8;
    let p: [&[u8]; 8] = core::array::from_fn(|r| &planes[r * k..(r + 1) * k]);
    for (j, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        let gathered: [u8; 8] = core::array::from_fn(|r| p[r].get(j).copied().unwrap_or(0));
        chunk.copy_from_slice(&transpose8(u64::from_le_bytes(gathered)).to_le_bytes());
    }
}

macro_rules! sub_loops {
    ($encode:ident, $apply:ident, $t:ty, $s:ty, $n:expr) => {
        fn $encode(fine: &[u8], base: &[u8], out: &mut [u8]) {
            for ((o, f), b) in out.chunks_exact_mut($n).zip(fine.chunks_exact($n)).zip(base.chunks_exact($n)) {
                let d = <$t>::from_le_bytes(f.try_into().unwrap_or_default())
                    .wrapping_sub(<$t>::from_le_bytes(b.try_into().unwrap_or_default())) as $s;
                let z = ((d << 1) ^ (d >> (<$t>::BITS - 1))) as $t;
                o.copy_from_slice(&z.to_le_bytes());
            }
        }
        fn $apply(data: &mut [u8], base: &[u8]) {
            for (d, b) in data.chunks_exact_mut($n).zip(base.chunks_exact($n)) {
                let z = <$t>::from_le_bytes((&*d).try_into().unwrap_or_default());
                let v = ((z >> 1) ^ (z & 1).wrapping_neg())
                    .wrapping_add(<$t>::from_le_bytes(b.try_into().unwrap_or_default()));
                d.copy_from_slice(&v.to_le_bytes());
            }
        }
    };
}
sub_loops!(sub_encode_1, sub_apply_1, u8, i8, 1);
sub_loops!(sub_encode_2, sub_apply_2, u16, i16, 2);
sub_loops!(sub_encode_4, sub_apply_4, u32, i32, 4);
sub_loops!(sub_encode_8, sub_apply_8, u64, i64, 8);

/// Delta of `fine` against `base` (equal lengths) into `out`, before
/// grouping. XOR: byte-wise. SUB: per `width`-byte little-endian element,
/// `fine − base` wrapping at the element width, zigzag-encoded, so small
/// changes of either sign stay small numbers. A tail shorter than one
/// element is XORed in both. Widths other than 1, 2, 4, 8 are treated as 1.
pub fn delta_encode(filter: FilterId, fine: &[u8], base: &[u8], width: usize, out: &mut [u8]) -> Result<()> {
    same_lengths(&[fine.len(), base.len(), out.len()])?;
    delta_encode_into(filter, fine, base, width, out);
    Ok(())
}

pub(crate) fn delta_encode_into(filter: FilterId, fine: &[u8], base: &[u8], width: usize, out: &mut [u8]) {
    let width = usize::from(delta_width(width));
    let body =
        if matches!(filter, FilterId::DeltaSub | FilterId::DeltaSubBits) { fine.len() / width * width } else { 0 };
    let (f, b, o) = (&fine[..body], &base[..body], &mut out[..body]);
    match width {
        1 => sub_encode_1(f, b, o),
        2 => sub_encode_2(f, b, o),
        4 => sub_encode_4(f, b, o),
        _ => sub_encode_8(f, b, o),
    }
    for ((o, f), b) in out[body..].iter_mut().zip(&fine[body..]).zip(&base[body..]) {
        *o = f ^ b;
    }
}

/// Inverse of [`delta_encode`], in place: `data` holds the (ungrouped) delta
/// and becomes the fine bytes.
pub fn delta_apply(filter: FilterId, data: &mut [u8], base: &[u8], width: usize) -> Result<()> {
    same_lengths(&[data.len(), base.len()])?;
    delta_apply_into(filter, data, base, width);
    Ok(())
}

pub(crate) fn delta_apply_into(filter: FilterId, data: &mut [u8], base: &[u8], width: usize) {
    let width = usize::from(delta_width(width));
    let body =
        if matches!(filter, FilterId::DeltaSub | FilterId::DeltaSubBits) { data.len() / width * width } else { 0 };
    let (d, b) = (&mut data[..body], &base[..body]);
    match width {
        1 => sub_apply_1(d, b),
        2 => sub_apply_2(d, b),
        4 => sub_apply_4(d, b),
        _ => sub_apply_8(d, b),
    }
    for (d, b) in data[body..].iter_mut().zip(&base[body..]) {
        *d ^= b;
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

/// Deltas compressing below 1/SPARSE_DELTA of the block also try bit planes.
#[cfg(feature = "alloc")]
const SPARSE_DELTA: usize = 6;

/// Reusable per-thread block encoder. For each block it picks the filter
/// that compresses smallest among its candidates (plain and, for numeric
/// data, byte-grouped; against a base, the XOR and SUB deltas); a block
/// that does not shrink is stored raw.
#[cfg(feature = "alloc")]
pub struct BlockEncoder {
    compression: Compression,
    /// The filtered block (grouped; or delta, then grouped or in bit planes).
    filtered: alloc::vec::Vec<u8>,
    delta: alloc::vec::Vec<u8>,
    /// Scratch for the bit-plane transform.
    planes_scratch: alloc::vec::Vec<u8>,
    /// The best compressed output so far, and the buffer for the next trial.
    out: alloc::vec::Vec<u8>,
    spare: alloc::vec::Vec<u8>,
    #[cfg(feature = "zstd")]
    zstd: Option<zstd_safe::CCtx<'static>>,
    /// Entropy coding (codec `ans`), when enabled.
    #[cfg(feature = "ans")]
    entropy: Option<crate::entropy::EntropyEncoder>,
}

/// Whether a plain block of `len` bytes with elements `width` bytes wide
/// is byte-grouped without a trial: on the real models no float block of
/// 64 KiB or more compressed smaller plain.
#[cfg(feature = "alloc")]
pub(crate) fn groups_without_trial(len: usize, width: u8) -> bool {
    width > 1 && len >= 64 << 10
}

/// What a block holds after its filter, for the zstd level.
#[cfg(feature = "alloc")]
#[derive(Clone, Copy)]
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
#[cfg(feature = "alloc")]
type StreamCuts = [usize; MAX_FIELDS];

/// The most streams a filter makes: 8 bytes of an element; GGML layouts
/// have up to 7 fields (Q5_K).
#[cfg(feature = "alloc")]
const MAX_FIELDS: usize = 8;

/// Byte grouping at width *w* is the layout of *w* one-byte fields.
#[cfg(feature = "alloc")]
const ONE_BYTE_FIELDS: [u8; MAX_FIELDS] = [1; MAX_FIELDS];

/// The stream ends of `len` bytes split into `fields`.
#[cfg(feature = "alloc")]
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
#[cfg(feature = "alloc")]
pub struct EncodedBlock<'a> {
    pub codec: CodecId,
    pub filter: FilterId,
    /// The entry's `filter_param`: the GGML type for `fields`, else 0.
    pub param: u32,
    pub bytes: &'a [u8],
}

#[cfg(feature = "alloc")]
impl BlockEncoder {
    /// A new encoder; fails when the codec is not compiled in.
    pub fn new(compression: Compression) -> crate::Result<Self> {
        if !codec_available(compression.codec_id()) {
            return Err(crate::Error::CodecUnavailable(compression.codec_id().name()));
        }
        Ok(BlockEncoder {
            compression,
            filtered: alloc::vec::Vec::new(),
            delta: alloc::vec::Vec::new(),
            planes_scratch: alloc::vec::Vec::new(),
            out: alloc::vec::Vec::new(),
            spare: alloc::vec::Vec::new(),
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
    fn compress(&mut self, data: &[u8], out: &mut alloc::vec::Vec<u8>, content: Content) -> Option<usize> {
        #[cfg(not(feature = "zstd"))]
        let _ = content;
        match self.compression {
            Compression::None => None,
            #[cfg(feature = "lz4")]
            Compression::Lz4 => {
                out.resize(lz4_flex::block::get_maximum_output_size(data.len()), 0);
                lz4_flex::block::compress_into(data, out).ok()
            }
            #[cfg(feature = "zstd")]
            Compression::Zstd { level, numeric_level, quantized_level } => {
                out.resize(zstd_safe::compress_bound(data.len()), 0);
                if self.zstd.is_none() {
                    self.zstd = Some(zstd_safe::CCtx::try_create()?);
                }
                let cctx = self.zstd.as_mut()?;
                match content {
                    Content::Plain => cctx.compress(&mut out[..], data, level).ok(),
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
    out: &mut alloc::vec::Vec<u8>,
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

    #[test]
    fn grouping_matches_the_definition_and_inverts() {
        // Lengths around the fast paths' tile sizes, with partial tails.
        let data: alloc::vec::Vec<u8> = (0..1200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for width in [1, 2, 3, 4, 5, 8, 22, 144] {
            for len in [0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 513, 1200] {
                let input = &data[..len];
                let mut grouped = alloc::vec![0u8; len];
                group(input, width, &mut grouped).unwrap();
                let count = len / width;
                for (i, element) in input[..count * width].chunks_exact(width).enumerate() {
                    for (k, byte) in element.iter().enumerate() {
                        assert_eq!(grouped[k * count + i], *byte, "width {width} len {len} element {i} byte {k}");
                    }
                }
                assert_eq!(grouped[count * width..], input[count * width..], "tail, width {width} len {len}");
                let mut back = alloc::vec![0u8; len];
                ungroup(&grouped, width, &mut back).unwrap();
                assert_eq!(back, input, "width {width} len {len}");
            }
        }
    }

    #[test]
    fn bit_planes_match_the_definition_and_invert() {
        let data: alloc::vec::Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        for width in [1usize, 2, 3, 4, 8] {
            let w = if width == 3 { 1 } else { width };
            for len in [0, 1, 7, 8, 15, 16, 17, 63, 64, 65, 127, 128, 129, 700] {
                let input = &data[..len];
                let mut planes = alloc::vec![0u8; len];
                let mut scratch = alloc::vec![0u8; len];
                bit_group(input, width, &mut planes, &mut scratch).unwrap();
                let m = len / w / 8 * 8;
                for e in 0..m {
                    for p in 0..8 * w {
                        let want = (input[e * w + p / 8] >> (p % 8)) & 1;
                        let got = (planes[p * (m / 8) + e / 8] >> (e % 8)) & 1;
                        assert_eq!(got, want, "width {width} len {len} element {e} bit {p}");
                    }
                }
                assert_eq!(planes[m * w..], input[m * w..], "rest, width {width} len {len}");
                let mut back = alloc::vec![0u8; len];
                bit_ungroup(&planes, width, &mut back, &mut scratch).unwrap();
                assert_eq!(back, input, "width {width} len {len}");
            }
        }
    }

    #[test]
    fn sparse_deltas_choose_bit_planes_and_decode() {
        // BF16-like block where one element in twelve moved by one step.
        let base: alloc::vec::Vec<u8> =
            (0..(256u32 << 10)).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
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

    #[test]
    fn deltas_round_trip_at_every_width() {
        let base: [u8; 19] = [0, 1, 2, 250, 255, 128, 7, 9, 200, 3, 3, 3, 0, 0, 1, 90, 91, 92, 93];
        let fine: [u8; 19] = [1, 0, 2, 5, 255, 127, 8, 9, 100, 3, 4, 3, 255, 255, 1, 90, 0, 92, 7];
        for filter in [FilterId::DeltaXor, FilterId::DeltaSub, FilterId::DeltaSubBits] {
            for width in [1, 2, 4, 8] {
                let mut delta = [0u8; 19];
                delta_encode(filter, &fine, &base, width, &mut delta).unwrap();
                delta_apply(filter, &mut delta, &base, width).unwrap();
                assert_eq!(delta, fine, "filter {filter} width {width}");
            }
        }
        // Small changes stay small under SUB: +1 and -1 on a u32 element.
        let mut d = [0u8; 8];
        delta_encode(FilterId::DeltaSub, &[6, 0, 0, 0, 4, 0, 0, 0], &[5, 0, 0, 0, 5, 0, 0, 0], 4, &mut d).unwrap();
        assert_eq!(d, [2, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn group_round_trips_with_tail() {
        let input: [u8; 11] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        let mut grouped = [0u8; 11];
        group(&input, 4, &mut grouped).unwrap();
        assert_eq!(grouped, [1, 5, 2, 6, 3, 7, 4, 8, 9, 10, 11]);
        let mut back = [0u8; 11];
        ungroup(&grouped, 4, &mut back).unwrap();
        assert_eq!(back, input);
    }

    #[test]
    fn fields_match_the_definition_and_invert() {
        // Two 5-byte elements of fields [1, 1, 3], then a 2-byte tail.
        let input: [u8; 12] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let mut split = [0u8; 12];
        split_fields(&input, &[1, 1, 3], &mut split).unwrap();
        assert_eq!(split, [1, 6, 2, 7, 3, 4, 5, 8, 9, 10, 11, 12]);
        let mut back = [0u8; 12];
        join_fields(&split, &[1, 1, 3], &mut back).unwrap();
        assert_eq!(back, input);
    }

    #[test]
    fn every_ggml_layout_round_trips_and_fills_its_block() {
        for t in crate::dtype::GGML_TYPES {
            let Some(fields) = crate::dtype::ggml_fields(t.id) else { continue };
            let width: u32 = fields.iter().map(|&f| u32::from(f)).sum();
            assert_eq!(width, t.block_bytes, "{}", t.name);
            // Per field, the stream holds exactly that field of each block.
            let len = t.block_bytes as usize * 7 + 5;
            let input: alloc::vec::Vec<u8> = (0..len).map(|i| (i * 7 + i / 256) as u8).collect();
            let mut split = alloc::vec![0u8; len];
            split_fields(&input, fields, &mut split).unwrap();
            let (mut at, mut offset) = (0, 0);
            for &size in fields {
                let size = usize::from(size);
                for block in 0..7 {
                    let from = block * t.block_bytes as usize + offset;
                    assert_eq!(split[at + block * size..][..size], input[from..from + size], "{}", t.name);
                }
                (at, offset) = (at + 7 * size, offset + size);
            }
            let mut back = alloc::vec![0u8; len];
            join_fields(&split, fields, &mut back).unwrap();
            assert_eq!(back, input, "{}", t.name);
        }
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
                let data: alloc::vec::Vec<u8> = (0..len)
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
        let noise: alloc::vec::Vec<u8> = (0..34 * 4000).map(|_| (xorshift(&mut state) >> 32) as u8).collect();
        let mut encoder = BlockEncoder::new(Compression::DEFAULT).unwrap();
        let raw = encoder.encode_ggml(&noise, q8.id, 34);
        assert_eq!((raw.codec, raw.filter, raw.bytes), (CodecId::None, FilterId::None, &noise[..]));

        // Q8_0: noisy low scale bytes, high bytes of 4 values, 6-bit quants.
        // With a zstd block per stream each is coded near its entropy; in
        // one 128 KiB block they share a Huffman table.
        let n = 3000;
        let data: alloc::vec::Vec<u8> = (0..n * 34)
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

    #[test]
    fn every_ggml_layout_has_its_own_one_pass_loop() {
        for t in crate::dtype::GGML_TYPES {
            if let Some(fields) = crate::dtype::ggml_fields(t.id) {
                assert!(ONE_PASS_LAYOUTS.contains(&fields), "{}: {fields:?} takes the generic loop", t.name);
            }
        }
    }
}
