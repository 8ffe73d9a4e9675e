#!/usr/bin/env bash
# Build llama.cpp's unmodified llama-simple from the llama-cpp-python sdist
# on PyPI (cached in ~/.cache/hexz-llama, never committed; about 10 minutes
# on 2 cores the first time) and print the binary's path.
set -euo pipefail
cache="${HEXZ_LLAMA_CACHE:-$HOME/.cache/hexz-llama}"
mkdir -p "$cache"
if [ ! -x "$cache/build/bin/llama-simple" ]; then
  python3 -m pip install --quiet scikit-build-core cmake ninja >&2
  (cd "$cache" && python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation llama-cpp-python==0.3.36 -d .) >&2
  tar -xzf "$cache/llama_cpp_python-0.3.36.tar.gz" -C "$cache"
  src="$cache/llama_cpp_python-0.3.36/vendor/llama.cpp"
  cmake -S "$src" -B "$cache/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF >/dev/null
  cmake --build "$cache/build" -j2 --target llama-simple >/dev/null
fi
echo "$cache/build/bin/llama-simple"
