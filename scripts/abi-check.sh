#!/usr/bin/env bash
# libhexz's ABI against its checked-in baseline (hexz-ffi/abi/libhexz.so.MAJOR.abi,
# made by libabigail's abidw; see hexz-ffi/abi/README.md), with abidiff.
#
# abi-check.sh LIBHEXZ.so: the check scripts/c-tests.sh runs.
# - the same ABI, or functions only added (abidiff bit 4, nothing changed):
#   pass (additions are listed; --record guards them from then on);
# - functions removed or otherwise incompatible (bit 8): fail; such a change
#   needs a new major version (the soname) and a new baseline, together;
# - existing functions whose types changed (bit 4 with "Changed"): fail
#   until reviewed and recorded on purpose (a field appended to a struct
#   that has struct_size is compatible, ...).
# abi-check.sh --record [LIBHEXZ.so]: record the baseline on purpose (builds
# libhexz when no library is given). Refuses an incompatible ABI for the
# same major; for a new major, writes its file and removes the old one.
set -euo pipefail
cd "$(dirname "$0")/.."
record=
if [ "${1:-}" = "--record" ]; then record=1; shift; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -n "${1:-}" ]; then
  lib="$1"
elif [ -n "$record" ]; then
  prefix="$(./scripts/install-ffi.sh "$work/prefix" hexz | tail -1)"
  lib="$prefix/lib/libhexz.so.$(sed -n 's/^version = "\(.*\)"/\1/p' hexz-ffi/Cargo.toml | head -1)"
else
  echo "usage: abi-check.sh LIBHEXZ.so | abi-check.sh --record [LIBHEXZ.so]" >&2
  exit 2
fi
soname="$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
baseline="hexz-ffi/abi/$soname.abi"
abidw --no-show-locs --no-corpus-path "$lib" > "$work/current.abi"
if [ ! -f "$baseline" ]; then
  if [ -z "$record" ]; then
    echo "abi-check: no baseline for $soname ($baseline). A new major version makes a new soname:" >&2
    echo "record its ABI with scripts/abi-check.sh --record, and commit it with the version change." >&2
    exit 1
  fi
  # A new major: the older majors' baselines guard nothing any more.
  for old in hexz-ffi/abi/libhexz.so.*.abi; do
    [ -e "$old" ] && rm -v "$old"
  done
  cp "$work/current.abi" "$baseline"
  echo "abi-check: recorded $baseline (a new major)"
  exit 0
fi
grep -q "soname='$soname'" "$baseline" || { echo "abi-check: $baseline is not the ABI of $soname" >&2; exit 1; }
status=0
abidiff --suppressions hexz-ffi/abi/suppressions "$baseline" "$work/current.abi" > "$work/report" || status=$?
if (( status & 3 )); then
  cat "$work/report" >&2
  echo "abi-check: abidiff failed (status $status)" >&2
  exit 1
fi
if (( status & 8 )); then
  cat "$work/report" >&2
  echo "abi-check: incompatible ABI change against $baseline (functions removed or changed incompatibly)." >&2
  echo "Keep the ABI, or raise the major version in hexz-ffi/Cargo.toml (a new soname) and record the new" >&2
  echo "baseline with scripts/abi-check.sh --record, in the same commit." >&2
  exit 1
fi
if [ -n "$record" ]; then
  cat "$work/report"
  cp "$work/current.abi" "$baseline"
  echo "abi-check: recorded $baseline"
  exit 0
fi
if (( status & 4 )) && grep -Eq '^Functions changes summary: [0-9]+ Removed, [1-9][0-9]* Changed' "$work/report"; then
  cat "$work/report" >&2
  echo "abi-check: types of existing functions changed against $baseline. Review the report: if the change is" >&2
  echo "compatible (a field appended to a struct that has struct_size, ...), record it with" >&2
  echo "scripts/abi-check.sh --record; if not, raise the major version (the soname) and record a new baseline." >&2
  exit 1
fi
added="$(sed -n 's/^Functions changes summary: .* \([0-9]*\) Added function.*/\1/p' "$work/report")"
echo "abi-check: $soname matches $baseline${added:+ ($added function(s) added since the baseline)}"
