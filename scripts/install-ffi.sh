#!/usr/bin/env bash
# Build the C libraries and install them under PREFIX:
#   lib/libhexz.so.X.Y.Z (soname libhexz.so.X), its symlinks, lib/libhexz.a,
#   lib/pkgconfig/hexz.pc: local paths, memory and callbacks, no remote stack;
#   lib/libhexz-remote.so.X.Y.Z (soname libhexz-remote.so.X), its symlinks,
#   lib/libhexz-remote.a, lib/pkgconfig/hexz-remote.pc: the same ABI, with
#   s3:// and http(s):// URLs in hexz_open_url;
#   include/hexz.h.
# X.Y.Z is hexz-ffi's version (hexz-ffi/Cargo.toml), the one version source.
# Each library is built by its own cargo invocation (together, Cargo would
# unify hexz-ffi's features and put the remote stack in both). The shared
# libraries are linked here from the static ones with hexz-ffi/libhexz.map,
# so they export hexz_* and nothing else (a Cargo cdylib also exports every
# dependency's #[no_mangle] C functions). The last line printed is PREFIX.
#
# usage: install-ffi.sh PREFIX [hexz|hexz-remote]...   (default: both)
# HEXZ_FFI_FEATURES: extra features of the libhexz package (test builds
# only: scripts/c-tests.sh builds its panic-test library with it).
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="$(realpath -m "${1:?usage: install-ffi.sh PREFIX [hexz|hexz-remote]...}")"
shift
libs=("$@")
[ ${#libs[@]} -gt 0 ] || libs=(hexz hexz-remote)
version="$(sed -n 's/^version = "\(.*\)"/\1/p' hexz-ffi/Cargo.toml | head -1)"
major="${version%%.*}"
# What Rust's std needs from the system when the static library is linked.
static_deps="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
mkdir -p "$prefix/lib/pkgconfig" "$prefix/include"
for name in "${libs[@]}"; do
  case "$name" in
    hexz)
      cargo build --release -p libhexz ${HEXZ_FFI_FEATURES:+--features "$HEXZ_FFI_FEATURES"} >&2
      archive=target/release/libhexz.a
      description="Seekable, deduplicated archives (.hxz) for ML model checkpoints: local files, memory, callbacks" ;;
    hexz-remote)
      cargo build --release -p libhexz-remote >&2
      archive=target/release/libhexz_remote.a
      description="Seekable, deduplicated archives (.hxz) for ML model checkpoints, with s3:// and http(s):// URLs" ;;
    *) echo "install-ffi.sh: unknown library $name (hexz or hexz-remote)" >&2; exit 2 ;;
  esac
  so="lib$name.so"
  # --whole-archive: nothing references the ABI yet; --gc-sections then
  # drops what the exported functions do not reach.
  cc -shared -o "$prefix/lib/$so.$version" -Wl,-soname,"$so.$major" \
    -Wl,--version-script=hexz-ffi/libhexz.map -Wl,--gc-sections -Wl,--no-undefined \
    -Wl,--whole-archive "$archive" -Wl,--no-whole-archive -Wl,--as-needed $static_deps
  ln -sf "$so.$version" "$prefix/lib/$so.$major"
  ln -sf "$so.$major" "$prefix/lib/$so"
  install -m 0644 "$archive" "$prefix/lib/lib$name.a"
  sed -e "s|@PREFIX@|$prefix|" -e "s|@NAME@|$name|g" -e "s|@VERSION@|$version|" \
    -e "s|@DESCRIPTION@|$description|" -e "s|@STATIC_DEPS@|$static_deps|" \
    hexz-ffi/hexz.pc.in > "$prefix/lib/pkgconfig/$name.pc"
done
install -m 0644 include/hexz.h "$prefix/include/hexz.h"
echo "$prefix"
