#!/usr/bin/env bash
# Generate include/hexz.h (or the file given) from hexz-ffi with the pinned
# cbindgen. The header's HEXZ_VERSION_* macros come from hexz-ffi/Cargo.toml's
# version, the library's one version source (cbindgen cannot evaluate
# env!(), so they are filled into cbindgen.toml's placeholders here).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-include/hexz.h}"
want_cbindgen=0.29.2
if [ "$(cbindgen --version 2>/dev/null)" != "cbindgen $want_cbindgen" ]; then
  cargo install --quiet --locked cbindgen --version "$want_cbindgen"
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' hexz-ffi/Cargo.toml | head -1)"
IFS=. read -r major minor patch <<<"$version"
patch="${patch%%[-+]*}"  # a pre-release tag stays in the string only
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
sed -e "s/@HEXZ_VERSION_MAJOR@/$major/g" -e "s/@HEXZ_VERSION_MINOR@/$minor/g" -e "s/@HEXZ_VERSION_PATCH@/$patch/g" \
  -e "s/@HEXZ_VERSION_STRING@/$version/g" \
  hexz-ffi/cbindgen.toml > "$config"
cbindgen --quiet --config "$config" --crate hexz-ffi --output "$out" hexz-ffi 2> >(grep -v '^WARN: Skip' >&2)
