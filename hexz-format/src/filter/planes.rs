//! Bit planes (the layout of `delta-sub-bits`, spec section 9): bit p of
//! every element goes to plane p, so a sparse delta leaves most planes zero.

use super::delta::delta_width;
use super::grouping::{group_into, ungroup_into};
use super::same_lengths;
use crate::error::Result;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
