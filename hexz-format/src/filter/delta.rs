//! Deltas against a base block (spec section 9): XOR, or the difference of
//! the elements' bit patterns as integers, zigzag-encoded.

use super::same_lengths;
use crate::error::Result;
use crate::layout::FilterId;

/// The element width delta filters work at: `width` when it is 1, 2, 4 or
/// 8 (an integer the filters can add), else 1 (quantized blocks: bytes).
pub fn delta_width(width: usize) -> u8 {
    match width {
        1 | 2 | 4 | 8 => width as u8,
        _ => 1,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
