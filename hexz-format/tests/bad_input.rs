//! Truncation at every offset and corruption of every byte of small
//! archives: each read returns an error or exactly the right bytes.

mod common;

use common::*;
use hexz_format::{Archive, Compression};

/// Open and read everything; `Ok` only with exactly the source bytes.
fn read_all(hxz: &[u8], src: &[u8]) -> Result<(), hexz_format::Error> {
    let archive = Archive::open(hxz)?;
    let data = archive.read_vec(0, archive.virtual_size())?;
    assert!(data == src, "wrong bytes reported as success");
    for t in archive.manifest()?.tensors {
        let got = archive.tensor_bytes(&t.name)?;
        assert!(
            got == src[t.offset as usize..(t.offset + t.length) as usize],
            "wrong tensor bytes reported as success"
        );
    }
    Ok(())
}

fn fixtures() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let st = tiny_safetensors();
    let gg = tiny_gguf();
    vec![
        ("safetensors/zstd", store_bytes(&st, Compression::zstd(3), 4096), st.clone()),
        ("gguf/lz4", store_bytes(&gg, Compression::Lz4, 4096), gg.clone()),
        ("gguf/none", store_bytes(&gg, Compression::None, 4096), gg),
    ]
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    for (name, hxz, src) in fixtures() {
        for cut in 0..hxz.len() {
            let r = read_all(&hxz[..cut], &src);
            assert!(r.is_err(), "{name}: truncated at {cut} still read");
            let report = hexz_format::verify::verify(&hxz[..cut], true, &|_| {});
            assert!(!report.is_ok(), "{name}: verify passed a file truncated at {cut}");
        }
    }
}

#[test]
fn corrupting_any_byte_never_yields_wrong_bytes() {
    for (name, hxz, src) in fixtures() {
        let archive = Archive::open(hxz.as_slice()).unwrap();
        let compressed: Vec<(usize, usize)> = all_entries(&archive)
            .into_iter()
            .filter(|e| e.codec != 0)
            .map(|e| {
                (e.stored_offset.get() as usize, (e.stored_offset.get() + u64::from(e.stored_length.get())) as usize)
            })
            .collect();
        let mut caught = 0usize;
        for at in 0..hxz.len() {
            let mut bad = hxz.clone();
            bad[at] ^= 0xA5;
            let read = read_all(&bad, &src);
            if read.is_err() {
                caught += 1;
            }
            // Every byte is covered by a checksum, a hash or a validity rule,
            // except compressed stream bytes whose change still decodes to the
            // same block (an lz4 match offset pointing at identical bytes):
            // the format protects decoded bytes, so that is not a corruption.
            let report = hexz_format::verify::verify(bad.as_slice(), true, &|_| {});
            if report.is_ok() {
                let in_stream = compressed.iter().any(|&(a, b)| (a..b).contains(&at));
                assert!(in_stream && read.is_ok(), "{name}: deep verify missed a corruption at byte {at}");
            }
        }
        eprintln!("{name}: {caught} of {} corruptions were read errors (the rest read exact bytes)", hxz.len());
    }
}
