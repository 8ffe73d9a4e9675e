#!/usr/bin/env bash
# Hexz beyond x86-64 Linux, proven on an x86-64 Linux machine:
#
#   x86_64-pc-windows-gnu      built with MinGW-w64, run under wine
#   aarch64-unknown-linux-gnu  built with the aarch64 cross gcc, run under qemu-user
#   aarch64-apple-darwin       cargo check only (no Apple SDK here; full mode)
#
# Usage: scripts/cross-test.sh [--quick | --full]   (default: --full)
#
# Both modes, for each of the two run targets: the Rust tests of
# hexz-format and hexz-io (built once with `cargo test --no-run` for both
# targets, then each test binary run under wine or qemu), and the `hexz`
# CLI built for the target: a byte-exact store/extract round trip (sha256)
# of MiniLM, the real model, whose archive is compared byte for byte with
# the one x86-64 writes (same settings; the writer is deterministic), every
# single-file spec vector extracted and compared with its .expected bytes,
# and a corruption sweep through `hexz verify` (every damaged copy refused
# with an error, no panic).
#
# --quick (what scripts/test.sh, and so CI, runs by default; 6 min 22 s
# cold on 2 cores with the Debian packages present, about a minute more to
# install them; docs/reference/platforms.md has the figures):
#   - the CLI is built without its `remote` feature (no tokio, reqwest,
#     rustls: URL arguments are refused), with the Rust tests in the `test`
#     profile, without debug info;
#   - under qemu (aarch64), the Rust tests that store or read the real
#     models are skipped (listed below, QEMU_SLOW: each costs 20 s to
#     2.5 minutes emulated, together over 20 minutes); the CLI round trip of
#     MiniLM stands for them there. Windows runs them all (wine runs x86-64
#     code natively);
#   - the verify sweep damages 12 copies of a small archive (a spec vector)
#     instead of MiniLM's (each deep verify of MiniLM decodes 91 MB, about
#     10 s emulated);
#   - no macOS check, no cargo check of the C library, hexz-remote and the
#     Python extension, no gemma, no throughput figure.
# --full: all of the above without those cuts, plus: the macOS cargo check
#   of every crate; cargo check of hexz-ffi, libhexz, hexz-remote and
#   hexz-python for both targets; a 32 MiB slice of gemma stored on the
#   targets and the whole gemma (253 MB, stored on x86-64) extracted there;
#   MiniLM's archive as the sweep's victim; the single-thread decode
#   throughput beside x86-64's (emulated: for the record, not an assertion).
#   About 25 minutes cold on 2 cores.
#
# Skipped in both modes, and why: hexz-cli's own test suite, hexz-remote,
# hexz-ffi and the Python package are not run on the targets: they need
# servers (moto, nginx), FUSE, valgrind or a Python for the target, which
# these emulators do not provide. hostile.rs's two exhaustive bit-flip
# sweeps (every bit of small archives, one decode each: 20 minutes under
# qemu) run only with HEXZ_CROSS_FULL=1; the CLI sweep stands for them.
#
# Needs: rustup, apt-get (to install what is missing), the real models
# (scripts/fetch-models.sh). Environment: HEXZ_MODELS (model cache),
# HEXZ_CROSS_TARGETS (default: "x86_64-pc-windows-gnu aarch64-unknown-linux-gnu"),
# HEXZ_CROSS_GEMMA=1 (full mode: store the whole gemma on aarch64),
# HEXZ_CROSS_HOST_HEXZ (an x86-64 hexz already built: the reference),
# HEXZ_CROSS_FULL=1 (also the exhaustive bit-flip sweeps).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  --quick) mode=quick ;;
  --full | "") ;;
  *) echo "usage: $0 [--quick | --full]" >&2; exit 2 ;;
esac

started=$SECONDS
step() { printf '\n== cross (%s) [%dm%02ds]: %s\n' "$mode" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*" >&2; }

targets="${HEXZ_CROSS_TARGETS:-x86_64-pc-windows-gnu aarch64-unknown-linux-gnu}"
target_dir="${CARGO_TARGET_DIR:-target}"

step "toolchains (rustup targets; Debian: MinGW-w64, wine, aarch64 gcc, qemu-user$([ $mode = full ] && echo ', clang'))"
rust_targets=(x86_64-pc-windows-gnu aarch64-unknown-linux-gnu)
[ $mode = quick ] || rust_targets+=(aarch64-apple-darwin)
rustup target add "${rust_targets[@]}" >/dev/null 2>&1 || rustup target add "${rust_targets[@]}"
need=()
# The posix flavour alone (Rust's windows-gnu std uses its threads); the
# gcc-mingw-w64-x86-64 package would bring the win32 one too (44 MB more).
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-posix)
command -v wine64 >/dev/null || [ -x /usr/lib/wine/wine64 ] || need+=(wine64)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
[ -d /usr/aarch64-linux-gnu/include ] || need+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
[ $mode = quick ] || command -v clang >/dev/null || need+=(clang)
if [ ${#need[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { echo "cross step: missing ${need[*]} (Debian package names) and no apt-get to install them; HEXZ_CROSS=0 skips the step" >&2; exit 1; }
  # A machine whose package lists were never fetched gets them first.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; } \
    || { echo "cross step: could not install ${need[*]} (root needed?); HEXZ_CROSS=0 skips the step" >&2; exit 1; }
fi
wine=$(command -v wine64 || echo /usr/lib/wine/wine64)

# One target directory for every target (target/<triple>/debug).
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
export CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER="$wine"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
# Warnings are errors on the targets too, as clippy makes them on x86-64: a
# cfg that leaves code unused on one platform shows up only here.
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-D warnings" CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-D warnings"
# macOS: the C parts of dependencies (zstd, ring's C and assembly) need a C
# compiler for the target, and Apple's headers, which are not here.
# scripts/cross-darwin-cc compiles their C as aarch64 Linux and their
# assembly as arm64 macOS, only so that their build scripts finish: cargo
# check links nothing, and what it checks is Rust, ours included, for macOS.
export CC_aarch64_apple_darwin="$PWD/scripts/cross-darwin-cc"
# wine: one prefix, initialised once (in the background while cargo
# builds), quiet.
export WINEPREFIX="${WINEPREFIX:-$HOME/.cache/hexz-wine}" WINEDEBUG=-all
wine_ready() {
  if [ ! -f "$WINEPREFIX/system.reg" ]; then
    "$wine" wineboot --init >/dev/null 2>&1 || true
  fi
  # Rust's std imports ProcessPrng from bcryptprimitives.dll, which wine 8
  # (Debian 12) lacks: a small stand-in (scripts/cross-wine-prng.c).
  if [ ! -f "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" ]; then
    x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
      scripts/cross-wine-prng.c -ladvapi32
  fi
}
wine_ready > "${TMPDIR:-/tmp}/hexz-cross-wine.log" 2>&1 &
wine_init=$!

# Emulated: the tests' time limits (a store ending promptly on a full
# disk) are stretched, not dropped.
export HEXZ_TEST_TIME_SCALE="${HEXZ_TEST_TIME_SCALE:-10}"
HEXZ_MODELS="${HEXZ_MODELS:-$(./scripts/fetch-models.sh)}"
export HEXZ_MODELS
work=$(mktemp -d "${TMPDIR:-/tmp}/hexz-cross.XXXXXX")
trap 'rm -rf "$work"' EXIT

runner() { # target: the command prefix that runs its binaries
  case "$1" in
    x86_64-pc-windows-gnu) echo "$wine" ;;
    aarch64-unknown-linux-gnu) echo "qemu-aarch64 -L /usr/aarch64-linux-gnu" ;;
  esac
}
exe() { # target: the hexz binary built for it
  case "$1" in
    *windows*) echo "$target_dir/$1/debug/hexz.exe" ;;
    *) echo "$target_dir/$1/debug/hexz" ;;
  esac
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

tflags=()
for t in $targets; do tflags+=(--target "$t"); done
cli_features=()
if [ $mode = quick ]; then
  # The test profile (opt-level 2) without debug info: the binaries run
  # emulated, so optimised code pays for itself; debug info would only
  # slow the build and the links.
  export CARGO_PROFILE_TEST_DEBUG=false CARGO_INCREMENTAL=0
  cli_features=(--no-default-features)
else
  step "macOS (aarch64-apple-darwin): cargo check of every crate"
  cargo check --quiet --target aarch64-apple-darwin --workspace --all-targets
fi

step "build for $targets: the tests of hexz-format and hexz-io, the hexz CLI${cli_features:+ (without remote)}"
# One invocation for both targets (cargo builds them side by side), with
# the CLI in it: built apart, the CLI's features (without the tests'
# dev-dependencies) would differ and half the dependencies, hexz-format and
# hexz-io included, would be built twice per target. hexz-cli's integration
# tests come along (they make cargo build the real `hexz` binary); they are
# built, not run. (--no-default-features only drops hexz-cli's `remote`:
# hexz-io asks for hexz-format's defaults.)
cargo test --no-run --quiet "${tflags[@]}" -p hexz-format -p hexz-io -p hexz-cli "${cli_features[@]}" \
  --lib --tests --message-format=json > "$work/tests.json"
if [ $mode = full ]; then
  cargo check --quiet "${tflags[@]}" -p hexz-ffi -p libhexz -p hexz-remote -p hexz-python
fi

step "x86-64 reference: the hexz CLI (release), archives"
# scripts/test.sh passes the one it has just built (the oracle step).
host="${HEXZ_CROSS_HOST_HEXZ:-}"
if [ -z "$host" ]; then
  cargo build --quiet --release -p hexz-cli
  host="$target_dir/release/hexz"
fi
models=(minilm.safetensors)
[ $mode = quick ] || models+=(gemma-slice.gguf)
if [ $mode = full ]; then
  head -c $((32 << 20)) "$HEXZ_MODELS/gemma.gguf" > "$work/gemma-slice.gguf"
  "$host" -q store --threads 2 "$HEXZ_MODELS/gemma.gguf" "$work/gemma.gguf.host.hxz"
fi
for m in "${models[@]}"; do
  src="$HEXZ_MODELS/$m"
  [ -f "$src" ] || src="$work/$m"
  "$host" -q store --threads 2 "$src" "$work/$m.host.hxz"
done
if [ $mode = full ]; then
  t0=$(date +%s.%N)
  "$host" -q extract --threads 1 "$work/minilm.safetensors.host.hxz" - > /dev/null
  t1=$(date +%s.%N)
  host_mbs=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/1e6/(float(sys.argv[3])-float(sys.argv[2])):.0f}')" \
    "$HEXZ_MODELS/minilm.safetensors" "$t0" "$t1")
fi
wait "$wine_init"

# Tests that store or read the real models (MiniLM, gemma), some several
# times over: each costs 20 s to 2.5 minutes under qemu, together over 20
# minutes. The quick mode skips them under qemu only (wine runs x86-64 code
# natively); the CLI round trip of MiniLM stands for them there.
QEMU_SLOW=(
  # hexz-format: deltas.rs (fine-tunes of MiniLM stored as deltas),
  # real_models.rs (both models stored with three codecs, read back).
  full_fine_tune_fp32_is_stored_as_deltas partial_fine_tune_costs_only_its_changed_tensors
  bf16_fine_tune_reshaped_and_new_tensors chain_of_three_and_wrong_or_missing_bases
  minilm_safetensors_round_trips gemma_gguf_round_trips real_archives_verify_deep
  # hexz-io: chain_store.rs, faults.rs, reads.rs, cache.rs, the memfd test.
  the_parallel_writer_writes_what_the_core_writes_at_every_thread_count
  parents_are_found_by_hint_and_confirmed_by_identity_on_disk
  store_file_refuses_its_inputs_and_a_changed_source
  a_full_destination_ends_the_store_and_names_it a_failing_source_ends_the_store_and_names_it
  a_corrupt_parent_ends_the_store_and_names_the_parent a_panicking_read_returns_its_workspace
  a_panic_on_a_worker_is_a_panic_error_with_its_message a_failing_sink_ends_a_parallel_read
  block_spans_tile_the_file gemma_reads_are_few minilm_reads_are_few
  small_reads_through_the_cache_match_the_file_and_decode_each_block_once
  memfd_holds_the_whole_file_sealed
)

summary=()
for t in $targets; do
  run=$(runner "$t")
  t_start=$SECONDS
  step "$t: the tests of hexz-format and hexz-io (under ${run%% *})"
  skip=()
  # hostile.rs's exhaustive sweeps: every bit of small archives, one
  # decode each (20 minutes under qemu); HEXZ_CROSS_FULL=1 runs them.
  [ -n "${HEXZ_CROSS_FULL:-}" ] || skip+=(every_bit_flip_of_small_archives every_bit_flip_of_entropy_coded_archives)
  if [ $mode = quick ] && [ "$t" = aarch64-unknown-linux-gnu ]; then skip+=("${QEMU_SLOW[@]}"); fi
  skip_args=()
  for s in "${skip[@]}"; do skip_args+=(--skip "$s"); done
  # Each test binary of this target, run from its package's folder (as
  # cargo test does).
  mapfile -t bins < <(python3 - "$work/tests.json" "$t" <<'EOF'
import json, os, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"] \
            and f"/{sys.argv[2]}/" in m["executable"] \
            and os.path.basename(os.path.dirname(m["manifest_path"])) in ("hexz-format", "hexz-io"):
        print(os.path.dirname(m["manifest_path"]) + "\t" + m["executable"])
EOF
  )
  [ ${#bins[@]} -gt 0 ] || { echo "$t: no test binaries built" >&2; exit 1; }
  passed=0
  for b in "${bins[@]}"; do
    dir=${b%%$'\t'*} bin=${b#*$'\t'}
    if ! (cd "$dir" && $run "$bin" -q "${skip_args[@]}" < /dev/null) > "$work/test.log" 2>&1; then
      cat "$work/test.log" >&2
      echo "$t: $(basename "$bin") failed" >&2
      exit 1
    fi
    echo "$(basename "$dir")/$(basename "$bin"): $(grep '^test result' "$work/test.log")" >&2
    n=$(sed -n 's/^test result: ok\. \([0-9]*\) passed.*/\1/p' "$work/test.log")
    passed=$((passed + ${n:-0}))
  done
  echo "$t: ${#bins[@]} test binaries, $passed tests passed, ${#skip[@]} names skipped" >&2

  hexz="$run $(exe "$t")"
  step "$t: real models stored and extracted on the target, byte-exact (sha256)"
  target_models=("${models[@]}")
  if [ -n "${HEXZ_CROSS_GEMMA:-}" ] && [ $mode = full ] && [ "$t" = aarch64-unknown-linux-gnu ]; then target_models+=(gemma.gguf); fi
  for m in "${target_models[@]}"; do
    src="$HEXZ_MODELS/$m"
    [ -f "$src" ] || src="$work/$m"
    $hexz -q store --threads 2 "$src" "$work/$m.$t.hxz" < /dev/null
    $hexz -q extract --threads 2 "$work/$m.$t.hxz" "$work/$m.$t.out" < /dev/null
    [ "$(sha "$work/$m.$t.out")" = "$(sha "$src")" ] || { echo "$t: $m: extracted bytes differ" >&2; exit 1; }
    if [ -f "$work/$m.host.hxz" ]; then
      cmp "$work/$m.$t.hxz" "$work/$m.host.hxz" || { echo "$t: $m: archive differs from x86-64's" >&2; exit 1; }
    fi
    echo "$t: $m round trip ok, sha256 $(sha "$src"), archive identical to x86-64's" >&2
    rm -f "$work/$m.$t.out" "$work/$m.$t.hxz"
  done
  if [ $mode = full ]; then
    # The whole gemma, stored on x86-64, decoded on the target.
    $hexz -q extract --threads 2 "$work/gemma.gguf.host.hxz" "$work/gemma.$t.out" < /dev/null
    [ "$(sha "$work/gemma.$t.out")" = "$(sha "$HEXZ_MODELS/gemma.gguf")" ] \
      || { echo "$t: gemma.gguf from the x86-64 archive: bytes differ" >&2; exit 1; }
    echo "$t: gemma.gguf (x86-64 archive) extracted on the target, sha256 $(sha "$HEXZ_MODELS/gemma.gguf")" >&2
    rm -f "$work/gemma.$t.out"
  fi

  if [ $mode = quick ]; then
    # Built without `remote`: a URL is refused, saying why.
    set +e
    $hexz inspect s3://hexz-test/none.hxz > /dev/null 2> "$work/url.err" < /dev/null
    rc=$?
    set -e
    if [ "$rc" -eq 0 ] || ! grep -q "built without remote support" "$work/url.err"; then
      echo "$t: a URL argument: exit $rc, $(cat "$work/url.err")" >&2
      exit 1
    fi
    echo "$t: a URL argument refused: $(cat "$work/url.err")" >&2
  fi

  step "$t: the spec vectors through the CLI"
  n=0
  for v in spec/vectors/*.hxz; do
    name=$(basename "$v" .hxz)
    # The encrypted vectors' published test keys (spec section 16.12).
    keys=()
    case "$name" in
      encrypted-passphrase) printf 'hexz test vector passphrase' > "$work/vector.pass"; keys=(--passphrase-file "$work/vector.pass") ;;
      encrypted-x25519) keys=(--identity spec/vectors/encrypted-test.age) ;;
    esac
    # Folder archives extract to a folder (the Rust vector test above
    # checks them against their .expected bytes).
    if "$host" "${keys[@]}" inspect --json "$v" | grep -q '"source_format": *"folder"'; then continue; fi
    $hexz -q "${keys[@]}" extract "$v" "$work/$name.$t.out" < /dev/null
    cmp "$work/$name.$t.out" "spec/vectors/$name.expected" || { echo "$t: vector $name differs" >&2; exit 1; }
    rm -f "$work/$name.$t.out"
    n=$((n + 1))
  done
  echo "$t: $n spec vectors decoded byte-exact by the CLI" >&2

  # The victim: MiniLM's archive (full), or a spec vector with tensors,
  # zstd blocks, an index and a manifest (quick: each deep verify of
  # MiniLM decodes 91 MB, about 10 s emulated).
  if [ $mode = full ]; then archive="$work/minilm.safetensors.host.hxz"; else archive=spec/vectors/gguf-fields-zstd.hxz; fi
  step "$t: corruption sweep over $(basename "$archive") (hexz verify must fail cleanly on every damaged copy)"
  size=$(stat -c %s "$archive")
  bad=0
  for k in 0 1 2 3 4 5 6 7 8 9 10 11; do
    at=$(( (size / 12) * k + 13 * k ))
    cp "$archive" "$work/bad.hxz"
    printf '\xff' | dd of="$work/bad.hxz" bs=1 seek="$at" conv=notrunc status=none
    if cmp -s "$work/bad.hxz" "$archive"; then printf '\x00' | dd of="$work/bad.hxz" bs=1 seek="$at" conv=notrunc status=none; fi
    set +e
    $hexz -q verify "$work/bad.hxz" >/dev/null 2>"$work/verify.err" < /dev/null
    rc=$?
    set -e
    if [ "$rc" -eq 0 ] || grep -q panicked "$work/verify.err"; then
      echo "$t: a flipped byte at $at: verify exit $rc" >&2
      cat "$work/verify.err" >&2
      bad=1
    fi
  done
  rm -f "$work/bad.hxz"
  [ "$bad" -eq 0 ] || exit 1
  echo "$t: 12 damaged copies, each refused by verify with an error (no panic)" >&2

  if [ $mode = full ]; then
    step "$t: single-thread decode throughput (for the record)"
    t0=$(date +%s.%N)
    $hexz -q extract --threads 1 "$work/minilm.safetensors.host.hxz" - > /dev/null < /dev/null
    t1=$(date +%s.%N)
    mbs=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/1e6/(float(sys.argv[3])-float(sys.argv[2])):.1f}')" \
      "$HEXZ_MODELS/minilm.safetensors" "$t0" "$t1")
    summary+=("$t: $passed Rust tests passed; decode $mbs MB/s single-thread (x86-64 native: $host_mbs MB/s), step $((SECONDS - t_start)) s")
  else
    summary+=("$t: $passed Rust tests passed (${#skip[@]} names skipped), MiniLM round trip, $n spec vectors, 12 damaged copies refused; step $((SECONDS - t_start)) s")
  fi
done

step "summary"
for line in "${summary[@]}"; do echo "$line"; done
echo "cross step ($mode): $((SECONDS - started)) s"
