#!/usr/bin/env bash
# Record libhexz's ABI as the baseline scripts/abi-check.sh compares with
# (hexz-ffi/abi/libhexz.so.MAJOR.abi; see hexz-ffi/abi/README.md). Run it
# on purpose: after adding functions, after a reviewed compatible change,
# or with a new major version. Refuses to overwrite the baseline of the
# same major with an incompatible ABI: that change needs a new major.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$(./scripts/install-ffi.sh "$work/prefix" hexz | tail -1)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' hexz-ffi/Cargo.toml | head -1)"
lib="$prefix/lib/libhexz.so.$version"
soname="$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
baseline="hexz-ffi/abi/$soname.abi"
abidw --no-show-locs --no-corpus-path "$lib" > "$work/new.abi"
if [ -f "$baseline" ]; then
  status=0
  abidiff --suppressions hexz-ffi/abi/suppressions "$baseline" "$work/new.abi" > "$work/report" || status=$?
  if (( status & 8 )); then
    cat "$work/report" >&2
    echo "abi-baseline: incompatible with $baseline: raise the major version in hexz-ffi/Cargo.toml first" >&2
    exit 1
  fi
  cat "$work/report"
else
  # A new major: the older majors' baselines guard nothing any more.
  for old in hexz-ffi/abi/libhexz.so.*.abi; do
    [ -e "$old" ] && rm -v "$old"
  done
fi
cp "$work/new.abi" "$baseline"
echo "abi-baseline: recorded $baseline"
