// stdio streams with custom I/O (hexz_fopen): fopencookie on Linux (glibc,
// musl), funopen on macOS and the BSDs; elsewhere hexz_fopen is UNSUPPORTED.
fn main() {
    println!("cargo:rustc-check-cfg=cfg(hexz_stdio_cookies)");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if ["linux", "macos", "ios", "freebsd", "netbsd", "openbsd", "dragonfly"].contains(&os.as_str()) {
        println!("cargo:rustc-cfg=hexz_stdio_cookies");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
