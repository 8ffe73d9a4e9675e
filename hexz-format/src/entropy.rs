//! Entropy-coded blocks (format 1.3, codec `ans`, spec section 7.2): the
//! exponents of float blocks and the differences of delta blocks, coded
//! with rANS (the `constriction` crate's `AnsCoder`, 32-bit words, 12-bit
//! probabilities) where zstd's Huffman stage would round every code to
//! whole bits, and with the bits that carry no pattern stored as they are.
//!
//! A block is a few *symbol streams*, each one byte per element, cut into
//! [`LANES`] lanes of consecutive elements with a coder each, so a decoder
//! can run the lanes' dependency chains side by side. Each stream is raw,
//! one constant, or rANS-coded with its own frequency table; the encoder
//! takes whichever is smallest.
//!
//! Decoding allocates nothing: tables live on the stack, words are read
//! straight from the stored bytes, output goes to caller buffers.

use core::convert::Infallible;
use core::num::NonZeroU16;

use constriction::backends::ReadWords;
use constriction::stream::model::{DecoderModel, EntropyModel};
use constriction::stream::stack::AnsCoder;
use constriction::stream::{Code, Decode};
use constriction::Stack;

/// Lanes per symbol stream. Lane `k` of `n` elements covers
/// `[k*n/LANES, (k+1)*n/LANES)`.
pub const LANES: usize = 4;
/// Probability precision in bits: frequencies sum to `1 << PRECISION`.
pub const PRECISION: usize = 12;
const TOTAL: u32 = 1 << PRECISION;

/// Stream modes (the stream's first byte).
const RAW: u8 = 0;
const CONSTANT: u8 = 1;
const ANS: u8 = 2;

type Reason = &'static str;

/// Start and end of lane `k` of `n` elements.
#[inline]
fn lane(n: usize, k: usize) -> (usize, usize) {
    (k * n / LANES, (k + 1) * n / LANES)
}

/// Little-endian reads over stored bytes, failing with `reason` when short.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Reason> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or("entropy block truncated")?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Reason> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, Reason> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A stack of 32-bit words stored little-endian in bytes; the coder reads
/// from the end (the last word written is the first read).
struct Words<'a> {
    bytes: &'a [u8],
    end: usize,
}

impl ReadWords<u32, Stack> for Words<'_> {
    type ReadError = Infallible;
    #[inline(always)]
    fn read(&mut self) -> Result<Option<u32>, Infallible> {
        if self.end >= 4 {
            self.end -= 4;
            let b = &self.bytes[self.end..self.end + 4];
            Ok(Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        } else {
            Ok(None)
        }
    }
}

/// A decoding table: for each of the 4096 quantiles, the symbol, its
/// cumulative frequency and its frequency, packed in one word so that a
/// symbol costs one load.
struct Table([u32; TOTAL as usize]);

impl EntropyModel<PRECISION> for &Table {
    type Symbol = u8;
    type Probability = u16;
}

impl DecoderModel<PRECISION> for &Table {
    #[inline(always)]
    fn quantile_function(&self, quantile: u16) -> (u8, u16, NonZeroU16) {
        let e = self.0[usize::from(quantile) & (TOTAL as usize - 1)];
        // Frequencies are checked to be at least 1 when the table is built.
        let frequency = NonZeroU16::new((e & 0xFFF) as u16).unwrap_or(NonZeroU16::MIN);
        ((e >> 24) as u8, ((e >> 12) & 0xFFF) as u16, frequency)
    }
}

impl Table {
    /// Parse `count` symbols (strictly increasing) and their frequencies
    /// (each at least 1, summing to 4096; so at most 4095 each, as
    /// `count` >= 2).
    fn read(cur: &mut Cursor<'_>, table: &mut Table) -> Result<(), Reason> {
        let count = usize::from(cur.u8()?) + 1;
        if count < 2 {
            return Err("entropy table with one symbol (must be a constant stream)");
        }
        let symbols = cur.take(count)?;
        let freqs = cur.take(2 * count)?;
        if symbols.windows(2).any(|w| w[0] >= w[1]) {
            return Err("entropy table symbols not strictly increasing");
        }
        let mut left = 0u32;
        for (&symbol, f) in symbols.iter().zip(freqs.chunks_exact(2)) {
            let f = u32::from(u16::from_le_bytes([f[0], f[1]]));
            if f == 0 || left + f > TOTAL {
                return Err("entropy table frequencies zero or above 4096 in sum");
            }
            let entry = (u32::from(symbol) << 24) | (left << 12) | f;
            table.0[left as usize..(left + f) as usize].fill(entry);
            left += f;
        }
        if left != TOTAL {
            return Err("entropy table frequencies do not sum to 4096");
        }
        Ok(())
    }
}

/// A coder reading one lane's words.
fn lane_coder(bytes: &[u8]) -> Result<AnsCoder<u32, u64, Words<'_>>, Reason> {
    AnsCoder::from_compressed(Words { bytes, end: bytes.len() }).map_err(|_| "entropy lane ends in a zero word")
}

/// Decode one symbol stream of `out.len()` symbols into `out`.
fn decode_stream(cur: &mut Cursor<'_>, out: &mut [u8]) -> Result<(), Reason> {
    match cur.u8()? {
        RAW => out.copy_from_slice(cur.take(out.len())?),
        CONSTANT => out.fill(cur.u8()?),
        ANS => {
            let mut table = Table([0; TOTAL as usize]);
            Table::read(cur, &mut table)?;
            let mut lengths = [0usize; LANES];
            for l in &mut lengths {
                *l = cur.u32()? as usize;
            }
            let mut lanes = [&[][..]; LANES];
            for (lane, &words) in lanes.iter_mut().zip(&lengths) {
                *lane = cur.take(words.checked_mul(4).ok_or("entropy block truncated")?)?;
            }
            // Four coders in locals (not an array behind a reference) so
            // that their states stay in registers.
            let (mut c0, mut c1, mut c2, mut c3) =
                (lane_coder(lanes[0])?, lane_coder(lanes[1])?, lane_coder(lanes[2])?, lane_coder(lanes[3])?);
            let n = out.len();
            let (s1, s2, s3) = (lane(n, 1).0, lane(n, 2).0, lane(n, 3).0);
            let (l0, rest) = out.split_at_mut(s1);
            let (l1, rest) = rest.split_at_mut(s2 - s1);
            let (l2, l3) = rest.split_at_mut(s3 - s2);
            let t = &table;
            // Lanes 0..2 are as long as lane 3 or one shorter.
            let common = l0.len().min(l1.len()).min(l2.len());
            let (h0, t0) = l0.split_at_mut(common);
            let (h1, t1) = l1.split_at_mut(common);
            let (h2, t2) = l2.split_at_mut(common);
            let (h3, t3) = l3.split_at_mut(common);
            for (((a, b), c), d) in h0.iter_mut().zip(h1.iter_mut()).zip(h2.iter_mut()).zip(h3.iter_mut()) {
                *a = c0.decode_symbol(t).unwrap_or(0);
                *b = c1.decode_symbol(t).unwrap_or(0);
                *c = c2.decode_symbol(t).unwrap_or(0);
                *d = c3.decode_symbol(t).unwrap_or(0);
            }
            for (c, l) in [(&mut c0, t0), (&mut c1, t1), (&mut c2, t2), (&mut c3, t3)] {
                for s in l {
                    *s = c.decode_symbol(t).unwrap_or(0);
                }
            }
            // Every word read and the coder back at its initial state: a
            // stream that decodes differently from how it was written fails
            // here, before the block hash is even computed.
            for c in [&c0, &c1, &c2, &c3] {
                if c.bulk().end != 0 || c.state() != 0 {
                    return Err("entropy lane not consumed exactly");
                }
            }
        }
        _ => return Err("unknown entropy stream mode"),
    }
    Ok(())
}

/// Elements of a `float-ans` block: IEEE floats of `width` 2 (BF16) or 4
/// (F32) bytes with an 8-bit exponent.
pub fn float_supported(width: usize) -> bool {
    matches!(width, 2 | 4)
}

/// The streams of one float element `x` of `width` bytes: the exponent,
/// then the sign with the top 7 mantissa bits, then (F32) the mantissa's
/// byte 1 and byte 0.
#[inline(always)]
fn float_symbols(x: u32, width: usize) -> [u8; 4] {
    let top = 8 * width as u32;
    let exponent = (x >> (top - 9)) as u8;
    let sign_mantissa = ((x >> (top - 8)) as u8 & 0x80) | ((x >> (top - 16)) as u8 & 0x7F);
    [exponent, sign_mantissa, (x >> 8) as u8, x as u8]
}

/// Decode a `float-ans` block of elements `width` bytes wide into `out`,
/// using `scratch` (at least `out.len()` bytes) for the streams.
pub fn decode_float(stored: &[u8], width: usize, out: &mut [u8], scratch: &mut [u8]) -> Result<(), Reason> {
    if !float_supported(width) {
        return Err("float-ans element width not 2 or 4");
    }
    let n = out.len() / width;
    let body = n * width;
    let mut cur = Cursor { bytes: stored, at: 0 };
    // Each stream's symbols: raw ones straight from the stored bytes (the
    // low mantissa bytes mostly are), others decoded into `scratch`.
    let mut free = scratch.get_mut(..body).ok_or("scratch too small")?;
    let mut streams: [&[u8]; 4] = [&[]; 4];
    for s in streams.iter_mut().take(width) {
        let (mine, rest) = free.split_at_mut(n);
        free = rest;
        *s = if stored.get(cur.at) == Some(&RAW) {
            cur.at += 1;
            cur.take(n)?
        } else {
            decode_stream(&mut cur, mine)?;
            mine
        };
    }
    let [e, sm, b1, b0] = streams;
    // Byte by byte (element byte 0 is the least significant): the exponent
    // straddles the top two bytes.
    if width == 2 {
        for ((o, &e), &sm) in out[..body].chunks_exact_mut(2).zip(e).zip(sm) {
            o[0] = (e << 7) | (sm & 0x7F);
            o[1] = (sm & 0x80) | (e >> 1);
        }
    } else {
        for ((((o, &e), &sm), &b1), &b0) in out[..body].chunks_exact_mut(4).zip(e).zip(sm).zip(b1).zip(b0) {
            o[0] = b0;
            o[1] = b1;
            o[2] = (e << 7) | (sm & 0x7F);
            o[3] = (sm & 0x80) | (e >> 1);
        }
    }
    let tail = cur.take(out.len() - body)?;
    out[body..].copy_from_slice(tail);
    if cur.at != stored.len() {
        return Err("bytes after the entropy block");
    }
    Ok(())
}

/// The slot of a difference magnitude `m`: 0 to 3 for themselves, then two
/// slots per bit length (the bit after the leading one), so values inside
/// a slot are close to equally likely and their low bits go raw.
#[inline(always)]
fn slot_of(m: u64) -> (u8, u32) {
    if m < 4 {
        return (m as u8, 0);
    }
    let bits = 64 - m.leading_zeros();
    let extra = bits - 2;
    ((2 * bits - 2 + ((m >> extra) & 1) as u32) as u8, extra)
}

/// Raw bit count and the implied high part of slot `slot` (a table: the
/// decoder's inner loop then has no branch on small slots).
#[inline(always)]
fn slot_base(slot: u8) -> (u32, u64) {
    let (extra, high) = SLOT_BASES[usize::from(slot & 127)];
    (u32::from(extra), high)
}

const SLOT_BASES: [(u8, u64); 128] = {
    let mut t = [(0u8, 0u64); 128];
    let mut slot = 0;
    while slot < 128 {
        t[slot] = if slot < 4 {
            (0, slot as u64)
        } else {
            let extra = (slot >> 1) - 1;
            (extra as u8, (2 | (slot as u64 & 1)) << extra)
        };
        slot += 1;
    }
    t
};

/// Little-endian bit reader over one lane's raw bits.
struct Bits<'a> {
    bytes: &'a [u8],
    at: usize,
    buf: u64,
    count: u32,
}

impl Bits<'_> {
    /// Top the buffer up to at least 56 bits, or to the end of the bytes.
    /// The fast path loads 8 bytes and keeps the whole ones that fit; the
    /// bits of a byte loaded in part are loaded again, unchanged, next time.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(b) = self.bytes.get(self.at..self.at + 8) {
            let v = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            self.buf |= v << self.count;
            let whole = (63 - self.count) >> 3;
            self.at += whole as usize;
            self.count += 8 * whole;
        } else {
            while self.count <= 56 && self.at < self.bytes.len() {
                self.buf |= u64::from(self.bytes[self.at]) << self.count;
                self.at += 1;
                self.count += 8;
            }
        }
    }

    /// `n` bits (at most 56).
    #[inline(always)]
    fn read(&mut self, n: u32) -> Result<u64, Reason> {
        if self.count < n {
            self.refill();
            if self.count < n {
                return Err("entropy raw bits truncated");
            }
        }
        let v = self.buf & ((1u64 << n) - 1);
        self.buf >>= n;
        self.count -= n;
        Ok(v)
    }
    #[inline(always)]
    fn read_wide(&mut self, n: u32) -> Result<u64, Reason> {
        if n <= 56 {
            self.read(n)
        } else {
            let lo = self.read(32)?;
            Ok(lo | (self.read(n - 32)? << 32))
        }
    }
    /// All bytes used, and no whole byte or set bit left over.
    fn finished(&self) -> bool {
        self.at == self.bytes.len() && self.count < 8 && self.buf == 0
    }
}

/// Widths a `delta-ans` block may have.
pub fn delta_supported(width: usize) -> bool {
    matches!(width, 1 | 2 | 4 | 8)
}

/// Symbols from this value up name an entry of the block's dictionary of
/// frequent differences; below it, a slot and a sign (`2 * slot + sign`).
pub const DICTIONARY_SYMBOL: u8 = 128;

/// Most dictionary entries a block of `width`-byte elements may have: the
/// symbols above the slot codes (none for 8-byte elements, whose 64 slots
/// and signs take all 256 symbols).
pub const fn max_dictionary(width: usize) -> usize {
    if width == 8 {
        0
    } else {
        256 - DICTIONARY_SYMBOL as usize
    }
}

macro_rules! delta_lane_apply {
    ($name:ident, $t:ty, $n:expr) => {
        fn $name(
            symbols: &[u8],
            dictionary: &[u8],
            bits: &mut Bits<'_>,
            out: &mut [u8],
            base: &[u8],
        ) -> Result<(), Reason> {
            for ((&sym, o), b) in symbols.iter().zip(out.chunks_exact_mut($n)).zip(base.chunks_exact($n)) {
                let d = if $n < 8 && sym >= DICTIONARY_SYMBOL {
                    let at = usize::from(sym - DICTIONARY_SYMBOL) * $n;
                    let v = dictionary.get(at..at + $n).ok_or("delta-ans symbol past the dictionary")?;
                    <$t>::from_le_bytes(v.try_into().unwrap_or_default())
                } else {
                    let (extra, high) = slot_base(sym >> 1);
                    // (Reading 0 bits reads nothing: no branch on it.)
                    let m = high | if $n <= 4 { bits.read(extra)? } else { bits.read_wide(extra)? };
                    if sym & 1 != 0 {
                        (m as $t).wrapping_neg()
                    } else {
                        m as $t
                    }
                };
                let b = <$t>::from_le_bytes(b.try_into().unwrap_or_default());
                o.copy_from_slice(&b.wrapping_add(d).to_le_bytes());
            }
            Ok(())
        }
    };
}
delta_lane_apply!(delta_lane_1, u8, 1);
delta_lane_apply!(delta_lane_2, u16, 2);
delta_lane_apply!(delta_lane_4, u32, 4);
delta_lane_apply!(delta_lane_8, u64, 8);

/// Decode a `delta-ans` block into `out`, given the base bytes `base`
/// (same length) and `scratch` of at least `out.len() / width` bytes.
pub fn decode_delta(
    stored: &[u8],
    width: usize,
    out: &mut [u8],
    base: &[u8],
    scratch: &mut [u8],
) -> Result<(), Reason> {
    if !delta_supported(width) || base.len() != out.len() {
        return Err("delta-ans width not 1, 2, 4 or 8, or base of another length");
    }
    let n = out.len() / width;
    let body = n * width;
    let symbols = scratch.get_mut(..n).ok_or("scratch too small")?;
    let mut cur = Cursor { bytes: stored, at: 0 };
    let entries = usize::from(cur.u8()?);
    if entries > max_dictionary(width) {
        return Err("delta-ans dictionary too large for the element width");
    }
    let dictionary = cur.take(entries * width)?;
    decode_stream(&mut cur, symbols)?;
    // Slots of differences wider than the element do not exist.
    let max_slot = 16 * width as u8 - 1;
    let mut lengths = [0usize; LANES];
    for l in &mut lengths {
        *l = cur.u32()? as usize;
    }
    for (k, &len) in lengths.iter().enumerate() {
        let mut bits = Bits { bytes: cur.take(len)?, at: 0, buf: 0, count: 0 };
        let (a, b) = lane(n, k);
        let syms = &symbols[a..b];
        // (Slot codes below 128 cannot exceed the slots of 4- and 8-byte elements.)
        // Branch-free (it vectorizes): the largest slot code, dictionary symbols as 0.
        let largest = syms.iter().fold(0u8, |m, &s| m.max(s & (s >> 7).wrapping_sub(1)));
        if width <= 2 && largest >> 1 > max_slot {
            return Err("delta-ans slot too large for the element width");
        }
        let (o, bs) = (&mut out[a * width..b * width], &base[a * width..b * width]);
        match width {
            1 => delta_lane_1(syms, dictionary, &mut bits, o, bs)?,
            2 => delta_lane_2(syms, dictionary, &mut bits, o, bs)?,
            4 => delta_lane_4(syms, dictionary, &mut bits, o, bs)?,
            _ => delta_lane_8(syms, dictionary, &mut bits, o, bs)?,
        }
        if !bits.finished() {
            return Err("delta-ans raw bits not consumed exactly");
        }
    }
    let tail = cur.take(out.len() - body)?;
    for ((o, &t), &b) in out[body..].iter_mut().zip(tail).zip(&base[body..]) {
        *o = t ^ b;
    }
    if cur.at != stored.len() {
        return Err("bytes after the entropy block");
    }
    Ok(())
}

#[cfg(feature = "alloc")]
pub use encode::*;

#[cfg(feature = "alloc")]
mod encode {
    use super::*;
    use alloc::vec::Vec;
    use constriction::stream::model::{IterableEntropyModel, SmallContiguousCategoricalEntropyModel};
    use constriction::stream::Encode;

    /// Reusable buffers for encoding entropy-coded blocks.
    #[derive(Default)]
    pub struct EntropyEncoder {
        streams: Vec<u8>,
        sample: Vec<u64>,
        dictionary: Vec<u64>,
        words: [Vec<u32>; LANES],
        bits: [Vec<u8>; LANES],
    }

    /// Append one symbol stream, choosing raw, constant or rANS by size.
    fn encode_stream(symbols: &[u8], words: &mut [Vec<u32>; LANES], out: &mut Vec<u8>) -> Option<()> {
        let n = symbols.len();
        // Four tables, summed after: a run of one symbol (exponents) would
        // otherwise make every increment wait for the one before.
        let mut tables = [[0u32; 256]; 4];
        let mut quads = symbols.chunks_exact(4);
        for q in &mut quads {
            tables[0][usize::from(q[0])] += 1;
            tables[1][usize::from(q[1])] += 1;
            tables[2][usize::from(q[2])] += 1;
            tables[3][usize::from(q[3])] += 1;
        }
        for &s in quads.remainder() {
            tables[0][usize::from(s)] += 1;
        }
        let mut counts = [0u32; 256];
        for (i, c) in counts.iter_mut().enumerate() {
            *c = tables[0][i] + tables[1][i] + tables[2][i] + tables[3][i];
        }
        let present: Vec<u8> = (0..=255u8).filter(|&s| counts[usize::from(s)] > 0).collect();
        if present.len() <= 1 {
            out.push(CONSTANT);
            out.push(present.first().copied().unwrap_or(0));
            return Some(());
        }
        // Estimate first: a near-uniform stream (low mantissa bytes) is not
        // worth coding, and that is most of them.
        let total = n as f64;
        let entropy_bits: f64 = present
            .iter()
            .map(|&s| {
                let c = f64::from(counts[usize::from(s)]);
                -c * libm::log2(c / total)
            })
            .sum();
        let header = 1 + 1 + 3 * present.len() + 4 * LANES;
        if entropy_bits / 8.0 + header as f64 + 4.0 * LANES as f64 >= n as f64 * 0.995 {
            out.push(RAW);
            out.extend_from_slice(symbols);
            return Some(());
        }
        let probabilities: Vec<f64> = present.iter().map(|&s| f64::from(counts[usize::from(s)])).collect();
        let model = SmallContiguousCategoricalEntropyModel::<Vec<u16>>::from_floating_point_probabilities_perfect(
            &probabilities,
        )
        .ok()?;
        let mut dense = [0u8; 256];
        for (i, &s) in present.iter().enumerate() {
            dense[usize::from(s)] = i as u8;
        }
        let start = out.len();
        out.push(ANS);
        out.push((present.len() - 1) as u8);
        out.extend_from_slice(&present);
        for (_, _, p) in model.symbol_table() {
            out.extend_from_slice(&p.get().to_le_bytes());
        }
        let lengths_at = out.len();
        out.resize(lengths_at + 4 * LANES, 0);
        let code = |i: usize| usize::from(dense[usize::from(symbols[i])]);
        // Each lane's coder borrows its word buffer, given back at the end.
        let mut coders = words.each_mut().map(|w| {
            let mut v = core::mem::take(w);
            v.clear();
            AnsCoder::<u32, u64>::from_compressed(v).ok()
        });
        let [Some(c0), Some(c1), Some(c2), Some(c3)] = &mut coders else { return None };
        // Reverse order (a stack: the last symbol encoded is decoded
        // first): each lane's extra last symbols, then the common part with
        // the four lanes interleaved, so their divisions overlap.
        let starts = [lane(n, 0).0, lane(n, 1).0, lane(n, 2).0, lane(n, 3).0];
        let common = (0..LANES).map(|k| lane(n, k).1 - starts[k]).min().unwrap_or(0);
        for (k, c) in [&mut *c0, &mut *c1, &mut *c2, &mut *c3].into_iter().enumerate() {
            for i in (starts[k] + common..lane(n, k).1).rev() {
                c.encode_symbol(code(i), &model).ok()?;
            }
        }
        for j in (0..common).rev() {
            c0.encode_symbol(code(starts[0] + j), &model).ok()?;
            c1.encode_symbol(code(starts[1] + j), &model).ok()?;
            c2.encode_symbol(code(starts[2] + j), &model).ok()?;
            c3.encode_symbol(code(starts[3] + j), &model).ok()?;
        }
        for (k, coder) in coders.into_iter().enumerate() {
            let compressed = coder?.into_compressed().ok()?;
            out[lengths_at + 4 * k..lengths_at + 4 * k + 4].copy_from_slice(&(compressed.len() as u32).to_le_bytes());
            for w in &compressed {
                out.extend_from_slice(&w.to_le_bytes());
            }
            words[k] = compressed;
        }
        // The estimate can be optimistic on small streams: fall back to raw.
        if out.len() - start > n + 1 {
            out.truncate(start);
            out.push(RAW);
            out.extend_from_slice(symbols);
        }
        Some(())
    }

    impl EntropyEncoder {
        /// Encode `data` as a `float-ans` block of `width`-byte elements into
        /// `out` (cleared first). `None` when the width is not supported or
        /// the coder failed.
        pub fn encode_float(&mut self, data: &[u8], width: usize, out: &mut Vec<u8>) -> Option<usize> {
            if !float_supported(width) {
                return None;
            }
            out.clear();
            let n = data.len() / width;
            let body = n * width;
            self.streams.clear();
            self.streams.resize(body, 0);
            let (e, rest) = self.streams.split_at_mut(n);
            let (sm, rest) = rest.split_at_mut(n);
            if width == 2 {
                for (i, x) in data[..body].chunks_exact(2).enumerate() {
                    let s = float_symbols(u32::from(u16::from_le_bytes([x[0], x[1]])), 2);
                    (e[i], sm[i]) = (s[0], s[1]);
                }
            } else {
                let (b1, b0) = rest.split_at_mut(n);
                for (i, x) in data[..body].chunks_exact(4).enumerate() {
                    let s = float_symbols(u32::from_le_bytes([x[0], x[1], x[2], x[3]]), 4);
                    (e[i], sm[i], b1[i], b0[i]) = (s[0], s[1], s[2], s[3]);
                }
            }
            for k in 0..width {
                encode_stream(&self.streams[k * n..(k + 1) * n], &mut self.words, out)?;
            }
            out.extend_from_slice(&data[body..]);
            Some(out.len())
        }

        /// Encode `fine` against `base` (same length) as a `delta-ans` block
        /// of `width`-byte integers into `out` (cleared first).
        pub fn encode_delta(&mut self, fine: &[u8], base: &[u8], width: usize, out: &mut Vec<u8>) -> Option<usize> {
            if !delta_supported(width) || fine.len() != base.len() {
                return None;
            }
            out.clear();
            let n = fine.len() / width;
            let body = n * width;
            match width {
                1 => self.classify::<1>(&fine[..body], &base[..body]),
                2 => self.classify::<2>(&fine[..body], &base[..body]),
                4 => self.classify::<4>(&fine[..body], &base[..body]),
                _ => self.classify::<8>(&fine[..body], &base[..body]),
            }
            out.push(self.dictionary.len() as u8);
            for &v in &self.dictionary {
                out.extend_from_slice(&v.to_le_bytes()[..width]);
            }
            encode_stream(&self.streams, &mut self.words, out)?;
            for bits in &self.bits {
                out.extend_from_slice(&(bits.len() as u32).to_le_bytes());
            }
            for bits in &self.bits {
                out.extend_from_slice(bits);
            }
            out.extend(fine[body..].iter().zip(&base[body..]).map(|(f, b)| f ^ b));
            Some(out.len())
        }

        /// Choose the block's dictionary, then give every element of `fine`
        /// against `base` (whole `W`-byte elements) its symbol in
        /// `self.streams` and its raw bits in its lane of `self.bits`.
        /// Differences are computed where used, not stored (8 bytes each).
        fn classify<const W: usize>(&mut self, fine: &[u8], base: &[u8]) {
            let n = fine.len() / W;
            let diff = |i: usize| difference::<W>(&fine[i * W..(i + 1) * W], &base[i * W..(i + 1) * W]);
            self.choose_dictionary(W, (0..n).step_by(SAMPLE_STRIDE).map(diff));
            self.streams.clear();
            self.streams.resize(n, 0);
            for k in 0..LANES {
                let (a, b) = lane(n, k);
                let mut acc = 0u128;
                let mut count = 0u32;
                let lane_bits = &mut self.bits[k];
                lane_bits.clear();
                let dictionary = &self.dictionary;
                // The dictionary as an open-addressed hash table (at most 128
                // entries in 512 slots): one probe or two per element.
                let mut keys = [0u64; 512];
                let mut index = [u8::MAX; 512];
                for (at, &v) in dictionary.iter().enumerate() {
                    let mut h = hash_slot(v);
                    while index[h] != u8::MAX {
                        h = (h + 1) & 511;
                    }
                    (keys[h], index[h]) = (v, at as u8);
                }
                for (i, sym) in (a..b).zip(&mut self.streams[a..b]) {
                    let d = diff(i);
                    let mut h = hash_slot(d);
                    while index[h] != u8::MAX && keys[h] != d {
                        h = (h + 1) & 511;
                    }
                    if index[h] != u8::MAX {
                        *sym = DICTIONARY_SYMBOL + index[h];
                        continue;
                    }
                    let d = d as i64;
                    let m = d.unsigned_abs();
                    let (slot, extra) = slot_of(m);
                    *sym = 2 * slot + u8::from(d < 0);
                    if extra > 0 {
                        acc |= u128::from(m & ((1u64 << extra) - 1)) << count;
                        count += extra;
                        while count >= 8 {
                            lane_bits.push(acc as u8);
                            acc >>= 8;
                            count -= 8;
                        }
                    }
                }
                if count > 0 {
                    lane_bits.push(acc as u8);
                }
            }
        }

        /// The block's frequent differences that carry raw bits (so naming
        /// them saves bits), sorted: found in `sample` (every
        /// [`SAMPLE_STRIDE`]th element), kept when seen at least
        /// [`SAMPLE_MIN`] times. AdamW's weight decay alone moves every weight
        /// by the same factor, so most differences of rows it did not
        /// otherwise touch (embeddings) take a handful of values.
        fn choose_dictionary(&mut self, width: usize, sample: impl Iterator<Item = u64>) {
            self.dictionary.clear();
            if max_dictionary(width) == 0 {
                return;
            }
            self.sample.clear();
            self.sample.extend(sample.filter(|&d| (d as i64).unsigned_abs() >= 4));
            self.sample.sort_unstable();
            let mut runs: Vec<(usize, u64)> = Vec::new();
            for run in self.sample.chunk_by(|a, b| a == b) {
                if run.len() >= SAMPLE_MIN {
                    runs.push((run.len(), run[0]));
                }
            }
            runs.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            self.dictionary.extend(runs.iter().take(max_dictionary(width)).map(|r| r.1));
            self.dictionary.sort_unstable();
        }
    }

    /// The home slot of difference `d` in the 512-slot dictionary table.
    #[inline(always)]
    fn hash_slot(d: u64) -> usize {
        (d.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 55) as usize
    }

    /// The difference `fine - base` of one `W`-byte little-endian integer,
    /// wrapped at the width and sign-extended.
    #[inline(always)]
    fn difference<const W: usize>(fine: &[u8], base: &[u8]) -> u64 {
        let shift = 64 - 8 * W as u32;
        let (mut fb, mut bb) = ([0u8; 8], [0u8; 8]);
        fb[..W].copy_from_slice(fine);
        bb[..W].copy_from_slice(base);
        (((u64::from_le_bytes(fb).wrapping_sub(u64::from_le_bytes(bb)) << shift) as i64) >> shift) as u64
    }

    /// Every how many elements the dictionary sample takes one.
    const SAMPLE_STRIDE: usize = 8;
    /// Sample count from which a difference enters the dictionary.
    const SAMPLE_MIN: usize = 8;
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;

    fn noise(seed: u64, n: usize) -> Vec<u64> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect()
    }

    /// Float-like data: exponents bunched, mantissas noise.
    fn floats(n: usize, width: usize) -> Vec<u8> {
        noise(7, n)
            .iter()
            .flat_map(|&r| {
                let e = 120 + (r % 7) as u32 - (r >> 60) as u32 % 3;
                let x = (((r >> 40) as u32 & 1) << 31) | (e << 23) | (r as u32 & 0x7F_FFFF);
                if width == 4 {
                    x.to_le_bytes().to_vec()
                } else {
                    ((x >> 16) as u16).to_le_bytes().to_vec()
                }
            })
            .collect()
    }

    #[test]
    fn float_blocks_round_trip_and_shrink() {
        let mut enc = EntropyEncoder::default();
        for width in [2, 4] {
            for n in [0usize, 1, 3, 4, 5, 17, 1000, 40_000] {
                let mut data = floats(n, width);
                data.extend_from_slice(&[9u8; 3][..n % width.min(3)]);
                let mut stored = Vec::new();
                let len = enc.encode_float(&data, width, &mut stored).unwrap();
                assert_eq!(len, stored.len());
                let mut out = vec![0u8; data.len()];
                let mut scratch = vec![0u8; data.len()];
                decode_float(&stored, width, &mut out, &mut scratch).unwrap();
                assert_eq!(out, data, "width {width} n {n}");
                if n == 40_000 {
                    assert!(stored.len() < data.len() * 95 / 100, "{} of {}", stored.len(), data.len());
                }
            }
        }
    }

    #[test]
    fn delta_blocks_round_trip() {
        let mut enc = EntropyEncoder::default();
        for width in [1, 2, 4, 8] {
            for n in [0usize, 1, 2, 5, 999, 20_000] {
                let base: Vec<u8> = noise(3, n * width + 1).iter().map(|&r| r as u8).collect();
                let mut fine = base.clone();
                for (i, r) in noise(5, n).iter().enumerate() {
                    // Small changes of both signs, some large, some none.
                    let d: i64 = match r % 8 {
                        0 => 0,
                        1 => i64::MIN >> (64 - 8 * width),
                        2 => (*r as i64) >> 1,
                        // Repeated values: the dictionary.
                        3 => -574,
                        4 => 1 << (4 * width),
                        _ => (*r as i64 >> 40) % 300,
                    };
                    let at = i * width;
                    let mut v = [0u8; 8];
                    v[..width].copy_from_slice(&fine[at..at + width]);
                    let x = u64::from_le_bytes(v).wrapping_add(d as u64);
                    fine[at..at + width].copy_from_slice(&x.to_le_bytes()[..width]);
                }
                *fine.last_mut().unwrap() ^= 0x5A;
                let mut stored = Vec::new();
                enc.encode_delta(&fine, &base, width, &mut stored).unwrap();
                let mut out = vec![0u8; fine.len()];
                let mut scratch = vec![0u8; fine.len()];
                decode_delta(&stored, width, &mut out, &base, &mut scratch).unwrap();
                assert_eq!(out, fine, "width {width} n {n}");
                if n == 20_000 && width < 8 {
                    assert!(stored[0] >= 1, "width {width}: no dictionary");
                }
            }
        }
    }

    #[test]
    fn damaged_blocks_fail_cleanly() {
        let mut enc = EntropyEncoder::default();
        let data = floats(5000, 4);
        let mut stored = Vec::new();
        enc.encode_float(&data, 4, &mut stored).unwrap();
        let mut out = vec![0u8; data.len()];
        let mut scratch = vec![0u8; data.len()];
        for cut in [0, 1, 5, stored.len() / 2, stored.len() - 1] {
            assert!(decode_float(&stored[..cut], 4, &mut out, &mut scratch).is_err(), "cut {cut}");
        }
        let mut longer = stored.clone();
        longer.push(0);
        assert!(decode_float(&longer, 4, &mut out, &mut scratch).is_err());
        // Any byte flipped: an error or other bytes, never a panic.
        for i in 0..stored.len().min(400) {
            let mut bad = stored.clone();
            bad[i] ^= 0x41;
            if decode_float(&bad, 4, &mut out, &mut scratch).is_ok() {
                assert_ne!(out, data, "flip at {i} decoded the same");
            }
        }
        let base = vec![0u8; data.len()];
        enc.encode_delta(&data, &base, 4, &mut stored).unwrap();
        for i in 0..stored.len().min(400) {
            let mut bad = stored.clone();
            bad[i] ^= 0x41;
            let _ = decode_delta(&bad, 4, &mut out, &base, &mut scratch);
        }
    }
}
