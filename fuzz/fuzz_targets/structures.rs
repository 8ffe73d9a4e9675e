//! Each fixed structure in context: the first input byte picks one (header,
//! footer, directory, an index page, the manifest) of a valid archive, the
//! rest overwrites it; checksums and hashes are then recomputed half of the
//! time so the fuzzer also reaches the field checks behind them.
#![no_main]
use hexz_format::layout::{short_checksum, FOOTER_SIZE, HEADER_SIZE};
use hexz_format::Archive;
use libfuzzer_sys::fuzz_target;

include!("common.rs");

static SEED: &[u8] = include_bytes!("../../spec/vectors/gguf-lz4.hxz");

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    let mut bytes = SEED.to_vec();
    let good = Archive::open(SEED).expect("seed archive");
    let footer_at = bytes.len() - FOOTER_SIZE;
    let f = *good.footer();
    let (start, len) = match selector % 5 {
        0 => (0, HEADER_SIZE),
        1 => (footer_at, FOOTER_SIZE),
        2 => (f.directory_offset.get() as usize, f.page_count.get() as usize * 56),
        3 => {
            let mut buf = vec![0u8; good.page_bytes()];
            let page = good.load_page(u32::from(selector / 5) % f.page_count.get(), &mut buf).expect("page");
            (page.offset as usize, page.entry_count as usize * 72)
        }
        _ => (f.manifest_offset.get() as usize, f.manifest_length.get() as usize),
    };
    let n = payload.len().min(len);
    bytes[start..start + n].copy_from_slice(&payload[..n]);
    if selector & 0x80 != 0 {
        reseal(&mut bytes, &good);
    }
    exercise(&bytes);
});

/// Recompute page hashes, directory and manifest hashes and both checksums.
fn reseal(bytes: &mut [u8], good: &Archive<&[u8]>) {
    let f = *good.footer();
    let dir = f.directory_offset.get() as usize;
    for p in 0..f.page_count.get() as usize {
        let at = dir + p * 56;
        let page_offset = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().unwrap()) as usize;
        let count = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as usize;
        if let Some(page) =
            page_offset.checked_add(count.saturating_mul(72)).and_then(|end| bytes.get(page_offset..end))
        {
            let h = *blake3::hash(page).as_bytes();
            bytes[at + 24..at + 56].copy_from_slice(&h);
        }
    }
    let footer_at = bytes.len() - FOOTER_SIZE;
    let dir_hash = *blake3::hash(&bytes[dir..dir + f.page_count.get() as usize * 56]).as_bytes();
    let m = f.manifest_offset.get() as usize;
    let man_hash = *blake3::hash(&bytes[m..m + f.manifest_length.get() as usize]).as_bytes();
    bytes[footer_at + 104..footer_at + 136].copy_from_slice(&dir_hash);
    bytes[footer_at + 136..footer_at + 168].copy_from_slice(&man_hash);
    let c = short_checksum(&bytes[..HEADER_SIZE - 8]);
    bytes[HEADER_SIZE - 8..HEADER_SIZE].copy_from_slice(&c.to_le_bytes());
    let c = short_checksum(&bytes[footer_at..footer_at + FOOTER_SIZE - 8]);
    bytes[footer_at + FOOTER_SIZE - 8..].copy_from_slice(&c.to_le_bytes());
}
