//! Entropy-coded blocks (format 1.3, spec section 7.2) on their own:
//! arbitrary stored bytes given to the `float-ans` and `delta-ans`
//! decoders must give an error or bytes, never a panic or a read past the
//! input; and any input encoded by the reference encoder must decode back
//! unchanged.
#![no_main]

use hexz_format::entropy::{decode_delta, decode_float, EntropyEncoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else { return };
    let width = [1usize, 2, 4, 8][usize::from(control & 3)];
    // Output lengths from the control byte, so short inputs still reach
    // the lanes and tails of longer blocks.
    let len = usize::from(control >> 2) * 37 + usize::from(control & 7);
    let base: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
    let mut out = vec![0u8; len];
    let mut scratch = vec![0u8; len];
    if width == 2 || width == 4 {
        let _ = decode_float(rest, width, &mut out, &mut scratch);
    }
    let _ = decode_delta(rest, width, &mut out, &base, &mut scratch);

    // Round trip: `rest` as a block (and as a fine-tune of a base derived from it).
    let mut enc = EntropyEncoder::default();
    let mut stored = Vec::new();
    let mut back = vec![0u8; rest.len()];
    let mut scratch = vec![0u8; rest.len()];
    if width == 2 || width == 4 {
        enc.encode_float(rest, width, &mut stored).expect("encode_float");
        decode_float(&stored, width, &mut back, &mut scratch).expect("decode_float of its own output");
        assert_eq!(back, rest);
    }
    let base: Vec<u8> = rest.iter().enumerate().map(|(i, &b)| b.wrapping_add((i % 3) as u8)).collect();
    enc.encode_delta(rest, &base, width, &mut stored).expect("encode_delta");
    decode_delta(&stored, width, &mut back, &base, &mut scratch).expect("decode_delta of its own output");
    assert_eq!(back, rest);
});
