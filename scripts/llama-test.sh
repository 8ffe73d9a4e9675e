#!/usr/bin/env bash
# llama.cpp, unmodified, loading gemma from .hxz through a FILE *
# (bindings/c/examples/llama_hxz.c: hexz_fopen, then
# llama_model_load_from_file_ptr with mmap off): its greedy text must be
# llama-simple's on the .gguf, byte for byte, for zstd and lz4 archives.
# Builds llama.cpp first when it is not cached (scripts/llama-build.sh:
# about 10 minutes on 2 cores), so it is not part of scripts/test.sh
# unless that build is cached (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
models="${HEXZ_MODELS:-$(./scripts/fetch-models.sh)}"
llama_simple="$(./scripts/llama-build.sh | tail -1)"
llama_lib="$(dirname "$llama_simple")"
llama_src="$(dirname "$(dirname "$llama_lib")")/llama_cpp_python-0.3.36/vendor/llama.cpp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$(./scripts/install-ffi.sh "$work/prefix" hexz | tail -1)"
PKG_CONFIG_PATH="$prefix/lib/pkgconfig" make -s -C bindings/c OUT="$work/build" LLAMA_SRC="$llama_src" \
  LLAMA_LIB="$llama_lib" "$work/build/llama_hxz"
cargo build --release -q -p hexz-cli
prompt="The capital of France is"
"$llama_simple" -m "$models/gemma.gguf" -n 24 "$prompt" > "$work/direct.txt" 2>/dev/null
echo "llama-simple, .gguf: $(cat "$work/direct.txt")"
for compression in zstd lz4; do
  target/release/hexz -q store "$models/gemma.gguf" "$work/gemma-$compression.hxz" --compression "$compression"
  "$work/build/llama_hxz" -m "$work/gemma-$compression.hxz" -n 24 "$prompt" > "$work/$compression.txt" 2> "$work/$compression.err" \
    || { tail -20 "$work/$compression.err" >&2; exit 1; }
  if ! cmp -s "$work/direct.txt" "$work/$compression.txt"; then
    echo "llama_hxz ($compression): $(cat "$work/$compression.txt")" >&2
    echo "llama.cpp through hexz_fopen generated other text than llama-simple on the .gguf" >&2
    exit 1
  fi
  echo "llama_hxz, FILE * over the $compression .hxz: identical text"
done
