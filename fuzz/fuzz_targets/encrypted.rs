//! Encrypted archives (format 1.5): the spec's two encrypted vectors, one
//! picked by the first input byte, with the rest of the input written over
//! one of their parts (the key section, the manifest's ciphertext, the
//! pages, the stored blocks, the footer, the header) or appended after a
//! cut. Half of the time the footer's manifest and directory hashes, the
//! page hashes and the footer checksum are recomputed, so the key section
//! parser, the stanzas and the decryptions behind them are reached. Opened
//! with the published keys, locked and without a key, and read in full:
//! never a panic, and whatever opens and reads decodes, with hash checks
//! on, to what the unmodified vector holds (the GCM-SIV tags and keyed
//! hashes let nothing else through).
#![no_main]
use hexz_format::crypt::KeyRing;
use hexz_format::layout::{short_checksum, FOOTER_SIZE, HEADER_SIZE};
use hexz_format::{Archive, OpenLimits};
use libfuzzer_sys::fuzz_target;

static PASSPHRASE_SEED: &[u8] = include_bytes!("../../spec/vectors/encrypted-passphrase.hxz");
static PASSPHRASE_EXPECTED: &[u8] = include_bytes!("../../spec/vectors/encrypted-passphrase.expected");
static X25519_SEED: &[u8] = include_bytes!("../../spec/vectors/encrypted-x25519.hxz");
static X25519_EXPECTED: &[u8] = include_bytes!("../../spec/vectors/encrypted-x25519.expected");
/// Spec section 16.12: the published test passphrase and identity.
const PASSPHRASE: &[u8] = b"hexz test vector passphrase";
const IDENTITY: [u8; 32] = [0x24; 32];

fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let (seed, expected) =
        if selector & 1 == 0 { (PASSPHRASE_SEED, PASSPHRASE_EXPECTED) } else { (X25519_SEED, X25519_EXPECTED) };
    let mut bytes = seed.to_vec();
    let footer_at = bytes.len() - FOOTER_SIZE;
    let directory = u64_at(&bytes, footer_at + 24);
    let manifest = u64_at(&bytes, footer_at + 40);
    let section_len = u32::from_le_bytes(bytes[manifest + 8..manifest + 12].try_into().unwrap()) as usize;
    let (start, len) = match (selector >> 1) % 7 {
        0 => (manifest, section_len),
        1 => (manifest + section_len, footer_at - manifest - section_len),
        2 => (directory, manifest - directory),
        3 => (HEADER_SIZE, directory - HEADER_SIZE),
        4 => (footer_at, FOOTER_SIZE),
        5 => (0, HEADER_SIZE),
        _ => {
            let cut = HEADER_SIZE + usize::from(selector >> 4) * 97 % (bytes.len() - HEADER_SIZE);
            bytes.truncate(cut);
            bytes.extend_from_slice(&payload[..payload.len().min(8192)]);
            (0, 0)
        }
    };
    // Small payloads land at an offset they choose (two bytes), in the part picked.
    let (offset, payload) = match payload {
        [a, b, rest @ ..] if len > 0 && rest.len() < len => (usize::from(u16::from_le_bytes([*a, *b])) % len, rest),
        _ => (0, payload),
    };
    let n = payload.len().min(len - offset.min(len));
    bytes[start + offset..start + offset + n].copy_from_slice(&payload[..n]);
    if selector & 0x80 != 0 && bytes.len() == seed.len() {
        reseal(&mut bytes);
    }

    let limits = OpenLimits::default();
    let ring = KeyRing { passphrases: vec![PASSPHRASE.to_vec()], identities: vec![IDENTITY] };
    if let Ok(archive) = Archive::open_unlocked(bytes.as_slice(), &limits, &ring) {
        let size = archive.virtual_size();
        if size <= 1 << 20 {
            if let Ok(whole) = archive.read_vec(0, size) {
                // Equal blocks, equal ciphertexts: a moved block may still decode, but
                // only to bytes whose keyed hash the entry names.
                if bytes.len() == seed.len() && bytes[footer_at..] == seed[footer_at..] {
                    assert_eq!(whole, expected, "bytes decrypted that the key never sealed");
                }
            }
        }
        if let Ok(m) = archive.manifest() {
            let mut scratch = archive.new_scratch().expect("scratch");
            for t in m.tensors.iter().take(64) {
                if t.length <= 1 << 20 {
                    let mut buf = vec![0u8; t.length as usize];
                    let _ = archive.read_at(t.offset, &mut buf, &mut scratch);
                }
            }
        }
        let _ = archive.gguf_header();
    }
    if let Ok(locked) = Archive::open_locked(bytes.as_slice(), &limits) {
        let _ = locked.read_vec(0, locked.virtual_size().min(1 << 20));
        let _ = locked.manifest();
    }
    let _ = Archive::open(bytes.as_slice());
    let _ = hexz_format::verify::verify(bytes.as_slice(), true, &|_| {});
});

/// Recompute the page hashes, the directory and manifest hashes and the
/// footer checksum over whatever the bytes now say (bounds checked: the
/// footer may be the payload's).
fn reseal(bytes: &mut [u8]) {
    let footer_at = bytes.len() - FOOTER_SIZE;
    let directory = u64_at(bytes, footer_at + 24);
    let pages = u32::from_le_bytes(bytes[footer_at + 32..footer_at + 36].try_into().unwrap()) as usize;
    let manifest = u64_at(bytes, footer_at + 40);
    let manifest_len = u64_at(bytes, footer_at + 48);
    if directory > footer_at || pages > 4096 || directory + pages * 56 > footer_at {
        return;
    }
    for p in 0..pages {
        let d = directory + 56 * p;
        let page = u64_at(bytes, d + 8);
        let count = u32::from_le_bytes(bytes[d + 16..d + 20].try_into().unwrap()) as usize;
        if let Some(end) = count.checked_mul(72).and_then(|l| l.checked_add(page)).filter(|&e| e <= footer_at) {
            let h = blake3::hash(&bytes[page..end]);
            bytes[d + 24..d + 56].copy_from_slice(h.as_bytes());
        }
    }
    let h = blake3::hash(&bytes[directory..directory + pages * 56]);
    bytes[footer_at + 104..footer_at + 136].copy_from_slice(h.as_bytes());
    if let Some(end) = manifest.checked_add(manifest_len).filter(|&e| e <= footer_at) {
        let h = blake3::hash(&bytes[manifest..end]);
        bytes[footer_at + 136..footer_at + 168].copy_from_slice(h.as_bytes());
    }
    let sum = short_checksum(&bytes[footer_at..footer_at + 184]);
    bytes[footer_at + 184..].copy_from_slice(&sum.to_le_bytes());
}
