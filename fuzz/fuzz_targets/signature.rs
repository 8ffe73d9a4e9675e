//! The signature section and trailer of a signed archive (format 1.4): the
//! first input byte picks where the rest goes (the section, the trailer,
//! the footer, the header, or appended after a truncation), the trailer's
//! checksum is recomputed half of the time so the record checks behind it
//! are reached. Whatever the bytes, opening never panics, and a signature
//! check with the test key passes only for the vector's own identity.
#![no_main]
use hexz_format::layout::{FOOTER_SIZE, HEADER_SIZE};
use hexz_format::signature::{trailer_checksum, PublicKey, TRAILER_SIZE};
use hexz_format::Archive;
use libfuzzer_sys::fuzz_target;

include!("common.rs");

static SEED: &[u8] = include_bytes!("../../spec/vectors/signed-gguf-lz4.hxz");
/// spec/vectors/signed-test.pub: key id 0123456789abcdef, seed 0x42 × 32.
const KEY_ID: [u8; 8] = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let good = Archive::open(SEED).expect("seed archive");
    let section = *good.signature_section().expect("signed seed");
    let mut bytes = SEED.to_vec();
    let end = section.archive_end() as usize;
    let (start, len) = match selector % 5 {
        0 => (end, section.length as usize),
        1 => (bytes.len() - TRAILER_SIZE, TRAILER_SIZE),
        2 => (end - FOOTER_SIZE, FOOTER_SIZE),
        3 => (0, HEADER_SIZE),
        _ => {
            // Cut somewhere in the tail and append the payload.
            let cut = end - FOOTER_SIZE + usize::from(selector / 5) * 7 % (bytes.len() - end + FOOTER_SIZE);
            bytes.truncate(cut);
            bytes.extend_from_slice(&payload[..payload.len().min(4096)]);
            (0, 0)
        }
    };
    let n = payload.len().min(len);
    bytes[start..start + n].copy_from_slice(&payload[..n]);
    if selector & 0x80 != 0 && bytes.len() >= end + TRAILER_SIZE {
        // Reseal the trailer over whatever section it now describes.
        let t = bytes.len() - TRAILER_SIZE;
        let length = u64::from_le_bytes(bytes[t + 8..t + 16].try_into().unwrap()) as usize;
        if let Some(s) = t.checked_sub(length) {
            let sum = trailer_checksum(&bytes[s..t], &bytes[t..t + 24]);
            bytes[t + 24..].copy_from_slice(&sum.to_le_bytes());
        }
    }
    let key = ed25519_key();
    if let Ok(archive) = Archive::open(bytes.as_slice()) {
        let _ = archive.signature_records();
        if archive.check_signature(&[PublicKey { key_id: KEY_ID, key }]).is_ok() {
            assert_eq!(archive.identity(), good.identity(), "a signature verified for another identity");
        }
    }
    exercise(&bytes);
});

/// The test key's public half, as the vector's key file holds it.
fn ed25519_key() -> [u8; 32] {
    let text = include_str!("../../spec/vectors/signed-test.pub");
    let line = text.lines().nth(1).expect("key line");
    let raw = decode_base64(line);
    raw[10..42].try_into().expect("42-byte minisign key")
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let mut acc = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            acc |= u32::from(*d) << (18 - 6 * i);
        }
        out.extend_from_slice(&acc.to_be_bytes()[1..chunk.len()]);
    }
    out
}
