#!/usr/bin/env bash
# C ABI tests: regenerate include/hexz.h and fail if the checked-in copy is
# stale, install libhexz into a staging prefix, build the C tests and the
# example with -Wall -Wextra -Werror -pedantic (C11 and C++17), run the suite
# and the FILE * stream test under valgrind memcheck on the real gemma
# archive, compare the key/value and tensor dump with gguf-py's, check the no-allocation contract, run the
# fault tests (out of memory, FIFOs, option layouts, memfd seals, ...) and
# the thread test under ThreadSanitizer with bindings/c/tests/tsan.supp.
set -euo pipefail
cd "$(dirname "$0")/.."
models="${HEXZ_MODELS:-$(./scripts/fetch-models.sh)}"

fresh="$(mktemp)"
./scripts/gen-header.sh "$fresh"
if ! diff -u include/hexz.h "$fresh"; then
  echo "include/hexz.h is stale: regenerate it with scripts/gen-header.sh (cbindgen 0.29.2)" >&2
  exit 1
fi
rm -f "$fresh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$(./scripts/install-ffi.sh "$work/prefix" | tail -1)"
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
readelf -d "$prefix/lib/libhexz.so" | grep -q 'SONAME.*libhexz.so.1' || { echo "libhexz.so has no versioned soname" >&2; exit 1; }
make -s -C bindings/c OUT="$work/build" all

cargo build --release -q -p hexz-cli
target/release/hexz -q store "$models/gemma.gguf" "$work/gemma-lz4.hxz" --compression lz4 \
  --metadata run=c-tests --metadata 'cfg:={"lr":0.001}'
target/release/hexz -q store "$models/gemma.gguf" "$work/gemma-zstd.hxz" --compression zstd

"$work/build/header_cpp"
"$work/build/load_gguf" "$work/gemma-zstd.hxz"
"$work/build/load_gguf_static" "$work/gemma-lz4.hxz" | tail -1
"$work/build/test_noalloc" "$work/gemma-lz4.hxz" "$work/gemma-zstd.hxz"

valgrind --quiet --error-exitcode=99 --suppressions=bindings/c/tests/valgrind.supp --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible \
  "$work/build/test_hexz" "$work/gemma-lz4.hxz" "$models/gemma.gguf" "$work/dump.txt"
mkdir -p "$work/faults"
[ -d "$models/minilm-sharded" ] || python3 tests/make_folders.py "$models" >/dev/null
target/release/hexz -q store "$models/minilm-sharded" "$work/folder.hxz"
valgrind --quiet --error-exitcode=99 --suppressions=bindings/c/tests/valgrind.supp --leak-check=full --show-leak-kinds=definite,indirect,possible \
  --errors-for-leak-kinds=definite,indirect,possible \
  "$work/build/test_stream" "$work/gemma-lz4.hxz" "$models/gemma.gguf" "$work/folder.hxz" "$models/minilm-sharded"
"$work/build/test_faults" "$work/gemma-zstd.hxz" "$work/faults" "$work/folder.hxz" "$models/minilm-sharded"

# ThreadSanitizer over the thread test: clean with the shipped suppressions,
# and still catching a race planted in the C code.
gcc -std=c11 -O1 -g -fsanitize=thread $(pkg-config --cflags hexz) bindings/c/tests/test_threads.c \
  -o "$work/build/test_threads_tsan" $(pkg-config --libs hexz) -lpthread -Wl,-rpath,"$prefix/lib"
export TSAN_OPTIONS="suppressions=$PWD/bindings/c/tests/tsan.supp halt_on_error=1 exitcode=66"
"$work/build/test_threads_tsan" "$work/gemma-lz4.hxz" "$models/gemma.gguf"
if "$work/build/test_threads_tsan" "$work/gemma-lz4.hxz" "$models/gemma.gguf" race 2>/dev/null; then
  echo "ThreadSanitizer missed a race planted in the C code: the suppressions hide too much" >&2
  exit 1
fi
echo "ThreadSanitizer: no report on libhexz with tsan.supp; a planted race in the caller is still reported"
unset TSAN_OPTIONS

python3 tests/oracle/gguf_dump.py "$models/gemma.gguf" > "$work/expected.txt"
if ! cmp -s "$work/dump.txt" "$work/expected.txt"; then
  diff "$work/dump.txt" "$work/expected.txt" | head -20 >&2
  echo "C API key/values or tensors differ from gguf-py's" >&2
  exit 1
fi
echo "C API: $(grep -c '^kv ' "$work/dump.txt") key/values and $(grep -c '^tensor ' "$work/dump.txt") tensors equal gguf-py's"
