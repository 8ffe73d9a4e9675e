#!/usr/bin/env python3
"""Encrypted vs plain archives of the same real model, in the same run
(issue #34's goals): extract and one-tensor read wall time (medians of
paired runs, output to tmpfs), archive sizes, and the time to open an
archive with a passphrase (Argon2id at the default cost). Prints ratios;
asserts nothing.

    python3 bench/encryption_bench.py [HEXZ_BINARY] [MODELS_DIR] [RUNS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEXZ = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "target" / "release" / "hexz"
MODELS = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(
    subprocess.run([str(ROOT / "scripts" / "fetch-models.sh")], check=True, capture_output=True, text=True).stdout.strip())
RUNS = int(sys.argv[3]) if len(sys.argv) > 3 else 5


def run(*args, env=None):
    subprocess.run([str(HEXZ), *map(str, args)], check=True, capture_output=True, env=env)


def timed(*args, env=None):
    t = time.perf_counter()
    run(*args, env=env)
    return time.perf_counter() - t


def main():
    out_dir = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp = Path(tmp)
        key = tmp / "me.key"
        recipient = subprocess.run([str(HEXZ), "-q", "keygen", "--x25519", str(key)], check=True,
                                   capture_output=True, text=True).stdout.strip()
        env = dict(os.environ, HEXZ_PASSPHRASE="correct horse battery staple")
        for model, tensor in [("gemma.gguf", "token_embd.weight"), ("minilm.safetensors", "embeddings.word_embeddings.weight")]:
            src = MODELS / model
            plain, enc, pw = tmp / "plain.hxz", tmp / "enc.hxz", tmp / "pw.hxz"
            run("-q", "store", src, plain, "--force")
            run("-q", "store", src, enc, "--encrypt", "-r", recipient, "--force")
            run("-q", "store", src, pw, "--encrypt", "--force", env=env)
            ids = ["--identity", key]
            times = {"extract plain": [], "extract encrypted": [], "tensor plain": [], "tensor encrypted": []}
            for _ in range(RUNS):
                times["extract plain"].append(timed("-q", "extract", plain, tmp / "o", "--force"))
                times["extract encrypted"].append(timed("-q", *ids, "extract", enc, tmp / "o", "--force"))
                times["tensor plain"].append(timed("-q", "extract", plain, "--tensor", tensor, "-o", tmp / "t", "--force"))
                times["tensor encrypted"].append(timed("-q", *ids, "extract", enc, "--tensor", tensor, "-o", tmp / "t", "--force"))
            opens = [timed("-q", "inspect", pw, env=env) for _ in range(RUNS)]
            opens_id = [timed("-q", *ids, "inspect", enc) for _ in range(RUNS)]
            med = {k: statistics.median(v) for k, v in times.items()}
            print(f"{model}: sizes plain {plain.stat().st_size} encrypted {enc.stat().st_size} "
                  f"({enc.stat().st_size / plain.stat().st_size:.6f}x)")
            for what in ("extract", "tensor"):
                p, e = med[f"{what} plain"], med[f"{what} encrypted"]
                print(f"  {what}: plain {p * 1000:.1f} ms, encrypted {e * 1000:.1f} ms, "
                      f"encrypted speed {p / e:.3f}x of plain (median of {RUNS})")
            print(f"  open with the passphrase (Argon2id 64 MiB, t=3): median {statistics.median(opens) * 1000:.0f} ms; "
                  f"with an identity {statistics.median(opens_id) * 1000:.0f} ms (whole inspect command)")


if __name__ == "__main__":
    main()
