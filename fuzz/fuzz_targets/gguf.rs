//! The GGUF parser on any bytes (as a header prefix of files of several
//! lengths): an error or tensors inside the file that do not overlap.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for file_len in [data.len() as u64, data.len() as u64 * 4 + 4096, u64::MAX / 2] {
        if let Ok(h) = hexz_format::gguf::parse(data, file_len) {
            let mut spans: Vec<(u64, u64)> = h.tensors.iter().map(|t| (t.offset, t.offset + t.length)).collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                assert!(w[0].1 <= w[1].0);
            }
            assert!(spans.iter().all(|s| s.1 <= file_len));
        }
    }
});
