//! Sets `cfg(aws_lc)` where encryption uses aws-lc-rs (feature `aws-lc`
//! on the targets whose dependency table in Cargo.toml carries it).
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(aws_lc)");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let feature = env::var_os("CARGO_FEATURE_AWS_LC").is_some();
    if feature && os == "linux" && (arch == "x86_64" || arch == "aarch64") {
        println!("cargo::rustc-cfg=aws_lc");
    }
}
