#!/usr/bin/env bash
# Compare a built libhexz.so with its checked-in ABI baseline
# (hexz-ffi/abi/libhexz.so.MAJOR.abi, made by libabigail's abidw; see
# hexz-ffi/abi/README.md) using abidiff:
# - the same ABI, or functions only added (abidiff bit 4, no other change):
#   pass (additions are listed; scripts/abi-baseline.sh records them);
# - functions removed or otherwise incompatible (bit 8): fail; such a change
#   needs a new major version (the soname) and a new baseline, together;
# - existing functions whose types changed (bit 4 with "Changed"): fail
#   until reviewed and recorded on purpose with scripts/abi-baseline.sh
#   (compatible: a field appended to a struct_size struct, ...).
# usage: abi-check.sh LIBHEXZ.so
set -euo pipefail
cd "$(dirname "$0")/.."
lib="${1:?usage: abi-check.sh LIBHEXZ.so}"
soname="$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
baseline="hexz-ffi/abi/$soname.abi"
if [ ! -f "$baseline" ]; then
  echo "abi-check: no baseline for $soname ($baseline). A new major version makes a new soname:" >&2
  echo "record its ABI with scripts/abi-baseline.sh (and commit it with the version change)." >&2
  exit 1
fi
grep -q "soname='$soname'" "$baseline" || { echo "abi-check: $baseline is not the ABI of $soname" >&2; exit 1; }
current="$(mktemp)"
report="$(mktemp)"
trap 'rm -f "$current" "$report"' EXIT
abidw --no-show-locs --no-corpus-path "$lib" > "$current"
status=0
abidiff --suppressions hexz-ffi/abi/suppressions "$baseline" "$current" > "$report" || status=$?
if (( status & 3 )); then
  cat "$report" >&2
  echo "abi-check: abidiff failed (status $status)" >&2
  exit 1
fi
if (( status & 8 )); then
  cat "$report" >&2
  echo "abi-check: incompatible ABI change against $baseline (functions removed or changed in an incompatible way)." >&2
  echo "Either keep the ABI, or raise the major version in hexz-ffi/Cargo.toml (a new soname) and record the new" >&2
  echo "baseline with scripts/abi-baseline.sh, in the same commit." >&2
  exit 1
fi
if (( status & 4 )) && grep -Eq '^Functions changes summary: [0-9]+ Removed, [1-9][0-9]* Changed' "$report"; then
  cat "$report" >&2
  echo "abi-check: types of existing functions changed against $baseline. Review the report: if the change is" >&2
  echo "compatible (a field appended to a struct that has struct_size, ...), record it with scripts/abi-baseline.sh;" >&2
  echo "if not, raise the major version (the soname) and record a new baseline." >&2
  exit 1
fi
added="$(sed -n 's/^Functions changes summary: .* \([0-9]*\) Added function.*/\1/p' "$report")"
echo "abi-check: $soname matches $baseline${added:+ ($added function(s) added since the baseline)}"
