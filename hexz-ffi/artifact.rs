//! The C library: hexz-ffi's ABI linked into libhexz.so and libhexz.a (or
//! libhexz-remote.so/.a). The exported functions are hexz-ffi's; this
//! crate only links them, with its own private copy of Rust's std.
pub use hexz_ffi::*;
