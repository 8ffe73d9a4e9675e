//! Any bytes as an archive: open, read every tensor and the whole virtual
//! space, verify deeply. Must never panic; a read that succeeds returns the
//! bytes deep verification vouches for.
#![no_main]
use libfuzzer_sys::fuzz_target;

include!("common.rs");

fuzz_target!(|data: &[u8]| {
    exercise(data);
});
