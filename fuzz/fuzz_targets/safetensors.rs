//! The safetensors header parser on any bytes: an error or a header whose
//! tensors lie inside the file, contiguous, with dtype × shape = length.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = hexz_format::safetensors::parse(data, data.len() as u64) {
        let mut end = h.header_length;
        for t in &h.tensors {
            assert_eq!(t.offset, end);
            end += t.length;
        }
        assert_eq!(end, data.len() as u64);
    }
});
