#!/usr/bin/env bash
# Run every cargo-fuzz target for SECONDS each (default 20), seeded with the
# spec vectors, small archives of both formats and truncated headers of the
# real models. Prints executions per target; fails on any crash (the
# reproducer is left in fuzz/artifacts/TARGET/ — make it a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
targets=(archive structures safetensors gguf ffi roundtrip entropy signature encrypted)
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz --version 0.13.2

models="${HEXZ_MODELS:-$(./scripts/fetch-models.sh)}"
corpus=fuzz/corpus
mkdir -p "$corpus"/{archive,structures,safetensors,gguf,ffi,roundtrip,entropy,signature,encrypted}
cp spec/vectors/*.hxz "$corpus/archive/"
cp spec/vectors/*.hxz "$corpus/ffi/"
cp fuzz/seeds/* "$corpus/archive/" 2>/dev/null || true
# Truncated headers of the real models (never committed).
head -c 65536 "$models/minilm.safetensors" > "$corpus/safetensors/minilm-head"
head -c 262144 "$models/gemma.gguf" > "$corpus/gguf/gemma-head"
cp spec/vectors/safetensors-zstd.expected "$corpus/safetensors/"
cp spec/vectors/gguf-lz4.expected "$corpus/gguf/"
# Stored entropy-coded blocks of the spec vectors, each behind a control byte naming its width.
python3 - "$corpus/entropy" <<'PY'
import struct, sys
for name in ("ans-floats", "ans-delta-child"):
    b = open(f"spec/vectors/{name}.hxz", "rb").read()
    f = b[-192:]
    d, pages = struct.unpack_from("<Q", f, 24)[0], struct.unpack_from("<I", f, 32)[0]
    for p in range(pages):
        off, n = struct.unpack_from("<Q", b, d + 56 * p + 8)[0], struct.unpack_from("<I", b, d + 56 * p + 16)[0]
        for i in range(n):
            e = off + 72 * i
            so, sl, codec, width = struct.unpack_from("<Q", b, e + 8)[0], struct.unpack_from("<I", b, e + 28)[0], b[e + 32], b[e + 34]
            if codec == 3 and b[e + 35] == 0:
                control = {1: 0, 2: 1, 4: 2, 8: 3}[width] | 4 * 60
                open(f"{sys.argv[1]}/{name}-{so}", "wb").write(bytes([control]) + b[so:so + sl])
PY

cargo +nightly fuzz build -O >/dev/null 2>&1 || cargo +nightly fuzz build -O
total=0
for t in "${targets[@]}"; do
  log="$(mktemp)"
  # roundtrip stores through worker threads: std frees their thread-locals
  # after thread::scope has already returned, which LeakSanitizer reports as
  # leaks in that window. Leaks are checked by the other targets and valgrind.
  leaks=1
  [ "$t" = roundtrip ] && leaks=0
  if ! cargo +nightly fuzz run -O "$t" "$corpus/$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 \
      -detect_leaks="$leaks" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz target $t crashed; reproducer in fuzz/artifacts/$t/" >&2
    exit 1
  fi
  runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
  echo "fuzz $t: ${runs:-0} executions in ${seconds}s, no crashes"
  total=$((total + ${runs:-0}))
  rm -f "$log"
done
echo "fuzz total: $total executions"
