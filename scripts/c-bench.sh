#!/usr/bin/env bash
# Loading all gemma tensors through the C API from .hxz (lz4 and zstd)
# against pread() of the same bytes from the .gguf, same run, page cache warm:
# on the caller's one thread, and from two engine threads taking 8 MiB pieces.
set -euo pipefail
cd "$(dirname "$0")/.."
models="${HEXZ_MODELS:-$(./scripts/fetch-models.sh)}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$(./scripts/install-ffi.sh "$work/prefix" | tail -1)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
cc -O2 -std=c11 bindings/c/bench/bench_load.c -o "$work/bench_load" $(pkg-config --cflags --libs hexz) -lpthread
cargo build --release -q -p hexz-cli
for c in lz4 zstd; do target/release/hexz -q store "$models/gemma.gguf" "$work/g-$c.hxz" --compression "$c"; done
cat "$models/gemma.gguf" > /dev/null
for run in 1 2; do
  "$work/bench_load" gguf "$work/g-lz4.hxz" "$models/gemma.gguf"
  "$work/bench_load" hxz "$work/g-lz4.hxz" | sed 's/hexz C API/hexz C API (lz4)/'
  "$work/bench_load" hxz "$work/g-zstd.hxz" | sed 's/hexz C API/hexz C API (zstd)/'
  "$work/bench_load" threads 2 "$work/g-lz4.hxz" | sed 's/hexz C API/hexz C API (lz4)/'
  "$work/bench_load" threads 2 "$work/g-zstd.hxz" | sed 's/hexz C API/hexz C API (zstd)/'
done
"$work/bench_load" one "$work/g-zstd.hxz" blk.0.attn_q.weight | sed 's/^/zstd: /'
"$work/bench_load" one "$work/g-lz4.hxz" blk.0.attn_q.weight | sed 's/^/lz4: /'
