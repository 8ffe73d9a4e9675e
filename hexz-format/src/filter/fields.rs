//! Field splitting (the `fields` filter, spec section 7): each field of a
//! quantized GGML block (scales, minimums, quants) goes to a stream of its
//! own.

use super::same_lengths;
use crate::error::Result;

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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn every_ggml_layout_has_its_own_one_pass_loop() {
        for t in crate::dtype::GGML_TYPES {
            if let Some(fields) = crate::dtype::ggml_fields(t.id) {
                assert!(ONE_PASS_LAYOUTS.contains(&fields), "{}: {fields:?} takes the generic loop", t.name);
            }
        }
    }
}
