#!/usr/bin/env bash
# End to end with a real engine: build llama.cpp's unmodified llama-simple
# (scripts/llama-build.sh: cached, about 10 minutes on 2 cores the first
# time), then generate from gemma twice, once
# from the .gguf and once from a .hxz through hexz_exec (memfd, nothing
# written to disk). Greedy sampling: the two outputs must be identical.
set -euo pipefail
cd "$(dirname "$0")/.."
models="${HEXZ_MODELS:-$(./scripts/fetch-models.sh)}"
llama="$(./scripts/llama-build.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$(./scripts/install-ffi.sh "$work/prefix" | tail -1)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
make -s -C bindings/c OUT="$work/build" "$work/build/hexz_exec"
cargo build --release -q -p hexz-cli
target/release/hexz -q store "$models/gemma.gguf" "$work/gemma.hxz"
prompt="The capital of France is"
"$llama" -m "$models/gemma.gguf" -n 24 "$prompt" > "$work/direct.txt" 2>/dev/null
"$work/build/hexz_exec" "$work/gemma.hxz" "$llama" -m {} -n 24 "$prompt" > "$work/hxz.txt" 2>/dev/null
echo "from .gguf: $(cat "$work/direct.txt")"
echo "from .hxz:  $(cat "$work/hxz.txt")"
cmp -s "$work/direct.txt" "$work/hxz.txt" && echo "identical output" || { echo "outputs differ" >&2; exit 1; }
