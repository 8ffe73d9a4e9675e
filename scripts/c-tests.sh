#!/usr/bin/env bash
# C ABI tests: regenerate include/hexz.h and fail if the checked-in copy is
# stale; install libhexz and libhexz-remote into a staging prefix and check
# the libraries themselves (only hexz_* exported, the same ABI in both, one
# version in the header, the library, the soname, the file name and
# hexz.pc, no remote stack in libhexz, the ABI against the checked-in
# baseline with libabigail's abidiff); build the C tests and examples with
# -Wall -Wextra -Werror -pedantic (C11 and C++17); run the suite and the
# FILE * stream test under valgrind memcheck on the real gemma archive,
# compare the key/value and tensor dump with gguf-py's, check the
# no-allocation contract, run the fault tests (out of memory, FIFOs,
# option and output struct layouts, memfd seals, ...), the panic boundary
# on worker threads against a panic-test build, and the thread test under
# ThreadSanitizer with bindings/c/tests/tsan.supp.
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

# One version: the header's macros, the file names, the sonames and the
# pkg-config files all say hexz-ffi's version (test_hexz: == the runtime's).
version="$(sed -n 's/^#define HEXZ_VERSION_STRING "\(.*\)"/\1/p' include/hexz.h)"
major="$(sed -n 's/^#define HEXZ_VERSION_MAJOR \([0-9]*\)/\1/p' include/hexz.h)"
[ "$version" = "$(sed -n 's/^version = "\(.*\)"/\1/p' hexz-ffi/Cargo.toml | head -1)" ] \
  || { echo "the header's version is not hexz-ffi's" >&2; exit 1; }
for name in hexz hexz-remote; do
  lib="$prefix/lib/lib$name.so.$version"
  [ -f "$lib" ] || { echo "no $lib" >&2; exit 1; }
  readelf -d "$lib" | grep -q "SONAME.*\[lib$name.so.$major\]" || { echo "lib$name: soname is not lib$name.so.$major" >&2; exit 1; }
  [ "$(pkg-config --modversion "$name")" = "$version" ] || { echo "$name.pc: Version is not $version" >&2; exit 1; }
  pkg-config --atleast-version="$major.0" "$name" && ! pkg-config --atleast-version="$((major + 1)).0" "$name" \
    || { echo "pkg-config --atleast-version disagrees with $version" >&2; exit 1; }
  # Only the ABI is exported.
  others="$(nm -D --defined-only "$lib" | awk '{print $3}' | grep -v '^hexz_' || true)"
  [ -z "$others" ] || { echo "lib$name exports symbols outside hexz_*:" >&2; echo "$others" | head >&2; exit 1; }
  nm -D --defined-only "$lib" | awk '{print $3}' | sort > "$work/$name.symbols"
  strip -o "$work/stripped.so" "$lib"
  echo "lib$name.so.$version: soname lib$name.so.$major, $(wc -l < "$work/$name.symbols") symbols, all hexz_*; $(stat -c %s "$work/stripped.so") bytes stripped"
done
cmp -s "$work/hexz.symbols" "$work/hexz-remote.symbols" || { echo "libhexz and libhexz-remote export different functions" >&2; exit 1; }
# libhexz carries no async runtime, HTTP or TLS stack.
remote_stack="$(cargo tree -q -p libhexz -e normal --prefix none | grep -E '^(tokio|reqwest|hyper|rustls|ring|hexz-remote) ' || true)"
[ -z "$remote_stack" ] || { echo "libhexz depends on the remote stack:" >&2; echo "$remote_stack" | sort -u >&2; exit 1; }

# The ABI against its baseline (hexz-ffi/abi/README.md): functions removed
# (abidiff's incompatible bit, 8) fail unless the soname's major and the
# baseline change together; changed types of existing functions fail until
# the baseline is updated on purpose; added functions pass.
./scripts/abi-check.sh "$prefix/lib/libhexz.so.$version"

make -s -C bindings/c OUT="$work/build" all
# The remote library builds the same programs, shared and static.
make -s -C bindings/c OUT="$work/build-remote" HEXZ_PC=hexz-remote "$work/build-remote/load_gguf" "$work/build-remote/load_gguf_static"

cargo build --release -q -p hexz-cli
target/release/hexz -q store "$models/gemma.gguf" "$work/gemma-lz4.hxz" --compression lz4 \
  --metadata run=c-tests --metadata 'cfg:={"lr":0.001}'
target/release/hexz -q store "$models/gemma.gguf" "$work/gemma-zstd.hxz" --compression zstd

"$work/build/header_cpp"
"$work/build/load_gguf" "$work/gemma-zstd.hxz"
"$work/build/load_gguf_static" "$work/gemma-lz4.hxz" | tail -1
"$work/build-remote/load_gguf" "$work/gemma-zstd.hxz" | tail -1
"$work/build-remote/load_gguf_static" "$work/gemma-lz4.hxz" | tail -1
"$work/build/test_noalloc" "$work/gemma-lz4.hxz" "$work/gemma-zstd.hxz"

memcheck=(valgrind --quiet --error-exitcode=99 --suppressions=bindings/c/tests/valgrind.supp --leak-check=full
  --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible)
"${memcheck[@]}" "$work/build/test_hexz" "$work/gemma-lz4.hxz" "$models/gemma.gguf" "$work/dump.txt"
mkdir -p "$work/faults"
[ -d "$models/minilm-runs" ] || python3 tests/make_folders.py "$models" >/dev/null
target/release/hexz -q store "$models/minilm-sharded" "$work/folder.hxz"
target/release/hexz -q store "$models/minilm-runs" "$work/runs.hxz"
"${memcheck[@]}" "$work/build/test_stream" "$work/gemma-lz4.hxz" "$models/gemma.gguf" "$work/folder.hxz" "$models/minilm-sharded"
"$work/build/test_faults" "$work/gemma-zstd.hxz" "$work/faults" "$work/folder.hxz" "$models/minilm-sharded" \
  "$work/runs.hxz" "$models/minilm-runs"

# Encrypted archives (libhexz 1.3): MiniLM stored for a passphrase and an
# X25519 recipient, read back with either; missing, wrong keys and a damaged
# ciphertext byte give their statuses. Keys from bindings/testdata/age_keygen.py.
printf 'c-tests passphrase\n' > "$work/pass.txt"
recipient="$(python3 bindings/testdata/age_keygen.py "$work/id.txt")"
python3 bindings/testdata/age_keygen.py "$work/other-id.txt" >/dev/null
target/release/hexz -q store "$models/minilm.safetensors" "$work/minilm-enc.hxz" --encrypt \
  --passphrase-file "$work/pass.txt" --recipient "$recipient"
"${memcheck[@]}" "$work/build/test_encrypted" "$work/minilm-enc.hxz" "$models/minilm.safetensors" \
  "$work/id.txt" "$work/other-id.txt" "c-tests passphrase"

# The panic boundary, against a libhexz built with the panic-test feature
# (a read callback can make the library panic inside that read; never in a
# shipped library): HEXZ_STATUS_PANIC from worker threads, stderr empty.
panic_prefix="$(HEXZ_FFI_FEATURES=panic-test ./scripts/install-ffi.sh "$work/panic-prefix" hexz | tail -1)"
panic_pc() { PKG_CONFIG_PATH="$panic_prefix/lib/pkgconfig" pkg-config "$@" hexz; }
gcc -std=c11 -Wall -Wextra -Werror -g -O1 $(panic_pc --cflags) bindings/c/tests/test_panic.c \
  -o "$work/build/test_panic" $(panic_pc --libs) -lpthread
"$work/build/test_panic" "$work/gemma-zstd.hxz" "$models/gemma.gguf" "$work/panic-stderr.txt" 2> "$work/panic-stderr-all.txt"
[ ! -s "$work/panic-stderr-all.txt" ] || { cat "$work/panic-stderr-all.txt" >&2; echo "test_panic printed on stderr" >&2; exit 1; }
# The shipped library again (cargo's libhexz.a was the panic-test one).
cargo build --release -q -p libhexz

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
