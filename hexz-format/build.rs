//! Sets `cfg(aws_lc)` where encryption uses aws-lc-rs (feature `aws-lc`
//! on the targets whose dependency table in Cargo.toml carries it).
use std::env;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(aws_lc)");
    let cfg = |name: &str| env::var(format!("CARGO_CFG_TARGET_{name}")).unwrap_or_default();
    let feature = env::var_os("CARGO_FEATURE_AWS_LC").is_some();
    // The same condition as the dependency table in Cargo.toml.
    if feature
        && cfg("OS") == "linux"
        && (cfg("ARCH") == "x86_64" || cfg("ARCH") == "aarch64")
        && cfg("ENDIAN") == "little"
        && cfg("POINTER_WIDTH") == "64"
        && (cfg("ENV") == "gnu" || cfg("ENV") == "musl")
    {
        println!("cargo::rustc-cfg=aws_lc");
    }
}
