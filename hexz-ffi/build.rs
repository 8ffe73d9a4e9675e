// Give libhexz.so a versioned soname so programs link against the ABI
// major version (libhexz.so.0), not an unversioned file.
fn main() {
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").unwrap_or_else(|_| "0".into());
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libhexz.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
