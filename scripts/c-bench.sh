#!/usr/bin/env bash
# Loading all gemma tensors through the C API from .hxz (lz4 and zstd)
# against pread() of the same bytes from the .gguf, same run, page cache warm:
# on the caller's one thread, from two engine threads taking 8 MiB pieces
# cut at block ends (hexz_block_span),
# and in one hexz_read_tensors call on two threads.
# Two pread() baselines: one buffer per tensor freed as the loop goes (the
# heap reuses the memory of small tensors, so they fault no pages), and the
# threaded mode's own pieces into held buffers, as an engine holds its model.
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
# Rounds alternate every row (this VM's speed drifts); each row's lines, then
# its median and its ratio to the two read() medians.
rounds="${HEXZ_BENCH_ROUNDS:-5}"
for run in $(seq "$rounds"); do
  "$work/bench_load" gguf "$work/g-lz4.hxz" "$models/gemma.gguf" | sed 's/^read() .gguf/A read() .gguf, buffers freed/'
  "$work/bench_load" threads 1 "$work/g-lz4.hxz" "$models/gemma.gguf" | sed 's/^read() .gguf, 1 thread/B read() .gguf, buffers held/'
  "$work/bench_load" hxz "$work/g-lz4.hxz" | sed 's/^hexz C API/C hexz C API (lz4)/'
  "$work/bench_load" hxz "$work/g-zstd.hxz" | sed 's/^hexz C API/D hexz C API (zstd)/'
  "$work/bench_load" threads 2 "$work/g-lz4.hxz" | sed 's/^hexz C API/E hexz C API (lz4)/'
  "$work/bench_load" threads 2 "$work/g-zstd.hxz" | sed 's/^hexz C API/F hexz C API (zstd)/'
  "$work/bench_load" batch 2 "$work/g-lz4.hxz" | sed 's/^hexz_read_tensors/G hexz_read_tensors (lz4), one call/'
  "$work/bench_load" batch 2 "$work/g-zstd.hxz" | sed 's/^hexz_read_tensors/H hexz_read_tensors (zstd), one call/'
done | sort -s -k1,1 | tee "$work/runs" | cut -c3-
echo
echo "medians of $rounds (seconds; ratio to read() with buffers freed / held):"
awk '{ for (i = 1; i <= NF; i++) if ($i == "in") t = $(i + 1); key = $1; sub(/^. /, ""); sub(/: .*/, "");
       name[key] = $0; n[key]++; v[key, n[key]] = t }
     END {
       for (k in n) { m = n[k]; for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[k, j] < v[k, i]) { x = v[k, i]; v[k, i] = v[k, j]; v[k, j] = x }
                      med[k] = (m % 2) ? v[k, (m + 1) / 2] : (v[k, m / 2] + v[k, m / 2 + 1]) / 2 }
       split("A B C D E F G H", keys, " ")
       for (i = 1; i <= 8; i++) { k = keys[i]; printf "  %-48s %.3f s  %.2fx / %.2fx\n", name[k], med[k], med[k] / med["A"], med[k] / med["B"] }
     }' "$work/runs"
"$work/bench_load" open "$work/g-zstd.hxz" | sed 's/^/zstd: /'
"$work/bench_load" open "$work/g-lz4.hxz" | sed 's/^/lz4: /'
"$work/bench_load" one "$work/g-zstd.hxz" blk.0.attn_q.weight | sed 's/^/zstd: /'
"$work/bench_load" one "$work/g-lz4.hxz" blk.0.attn_q.weight | sed 's/^/lz4: /'
