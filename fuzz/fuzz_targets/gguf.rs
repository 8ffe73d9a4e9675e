//! The GGUF parser on any bytes (as a header prefix of files of several
//! lengths): an error, or tensors inside the file that do not overlap and
//! string arrays whose strings fill their span exactly.
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
            for kv in &h.kvs {
                if let hexz_format::gguf::GgufValue::Array(a) = &kv.value {
                    if a.elem_type == hexz_format::gguf::value_type::STRING {
                        let (count, bytes) =
                            a.strings(data).fold((0u64, 0u64), |(n, b), s| (n + 1, b + 8 + s.len() as u64));
                        assert_eq!((count, bytes), (a.len, a.data.len));
                    }
                }
            }
        }
    }
});
