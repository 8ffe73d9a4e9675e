#!/usr/bin/env bash
# Build libhexz and install it under PREFIX: lib/libhexz.so.MAJOR.MINOR.PATCH
# (soname libhexz.so.MAJOR) with its symlinks, lib/libhexz.a,
# include/hexz.h and lib/pkgconfig/hexz.pc.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(realpath -m "${1:?usage: install-ffi.sh PREFIX}")"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
major=${version%%.*}
cargo build --release -p hexz-ffi
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 target/release/libhexz.so "$prefix/lib/libhexz.so.$version"
ln -sf "libhexz.so.$version" "$prefix/lib/libhexz.so.$major"
ln -sf "libhexz.so.$major" "$prefix/lib/libhexz.so"
install -m 0644 target/release/libhexz.a "$prefix/lib/libhexz.a"
install -m 0644 include/hexz.h "$prefix/include/hexz.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" hexz-ffi/hexz.pc.in > "$prefix/lib/pkgconfig/hexz.pc"
echo "$prefix"
