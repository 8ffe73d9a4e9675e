#!/usr/bin/env bash
# Build llama.cpp's unmodified llama-simple from the llama-cpp-python sdist
# on PyPI (cached in ~/.cache/hexz-llama, never committed; about 10 minutes
# on 2 cores the first time) and print the binary's path.
#
# One build at a time: a second call waits on the cache's lock and then
# finds the binary (.ci/run starts the build in the background while the
# machine is busy downloading; the test that needs it waits here). Its
# build tools live in a venv of their own, so it can run beside other pip
# installs.
set -euo pipefail
cache="${HEXZ_LLAMA_CACHE:-$HOME/.cache/hexz-llama}"
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -x "$cache/build/bin/llama-simple" ]; then
  py=python3   # where venv is missing, the system's pip as before
  if [ -x "$cache/venv/bin/python" ] || python3 -m venv "$cache/venv" >&2; then py="$cache/venv/bin/python"; fi
  "$py" -m pip install --quiet --disable-pip-version-check scikit-build-core cmake ninja >&2
  (cd "$cache" && "$py" -m pip download --quiet --disable-pip-version-check --no-deps \
    --no-binary :all: --no-build-isolation llama-cpp-python==0.3.36 -d .) >&2
  tar -xzf "$cache/llama_cpp_python-0.3.36.tar.gz" -C "$cache"
  src="$cache/llama_cpp_python-0.3.36/vendor/llama.cpp"
  PATH="$cache/venv/bin:$PATH" cmake -S "$src" -B "$cache/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_CURL=OFF -DGGML_NATIVE=OFF >/dev/null
  PATH="$cache/venv/bin:$PATH" cmake --build "$cache/build" -j2 --target llama-simple >/dev/null
fi
echo "$cache/build/bin/llama-simple"
