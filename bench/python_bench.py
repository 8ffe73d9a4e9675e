#!/usr/bin/env python3
"""Loading a checkpoint into numpy from Python, three ways, same run:

  hexz          hexz.checkpoint.load("minilm.hxz")             (archive: zstd default)
  hexz-lz4      the same from an lz4 archive
  safetensors   safetensors.numpy.load_file("minilm.safetensors")   (uncompressed file)
  zstd+st       zstandard-decompress minilm.safetensors.zst (level 3), then safetensors.numpy.load

Each runs in a fresh process: wall time is the median of 5 loads (page
cache warm), peak RSS is the process's growth over its baseline (after
imports), as a multiple of the loaded tensors' bytes. Then one gemma tensor
with Archive.get_tensor, against reading its bytes from the plain .gguf.

usage: bench/python_bench.py   (needs the hexz package installed: pip install ./bindings/python)
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def models():
    out = subprocess.run([os.path.join(ROOT, "scripts", "fetch-models.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


def peak_rss():
    """This process's peak RSS in bytes. (VmHWM, not getrusage: ru_maxrss
    keeps the parent's peak across fork and exec.)"""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise SystemExit("no VmHWM in /proc/self/status")


def child(method, path, extra):
    """Run in a fresh process: load 5 times, print JSON."""
    import numpy as np  # noqa: F401 - part of the baseline
    import hexz
    import safetensors.numpy as stn
    import zstandard

    def load():
        if method in ("hexz", "hexz-lz4"):
            return hexz.checkpoint.load(path)
        if method == "safetensors":
            return stn.load_file(path)
        if method == "zstd+st":
            with open(path, "rb") as f:
                return stn.load(zstandard.ZstdDecompressor().decompress(f.read()))
        if method == "hexz-tensor":
            with hexz.open(path) as a:
                return {extra: a.get_tensor(extra)}
        if method == "raw-tensor":
            # The tensor's bytes read from the uncompressed .gguf (offset and
            # length from the archive's table): the floor for any reader.
            name, offset, length = extra.split(",")
            with open(path, "rb") as f:
                f.seek(int(offset))
                return {name: np.fromfile(f, dtype=np.uint8, count=int(length))}
        raise SystemExit(f"unknown method {method}")

    base = peak_rss()
    times = []
    nbytes = 0
    for _ in range(5):
        t0 = time.perf_counter()
        out = load()
        times.append(time.perf_counter() - t0)
        nbytes = sum(v.nbytes for v in out.values())
        del out
    print(json.dumps({"median": statistics.median(times), "rss": peak_rss() - base, "bytes": nbytes}))


def run(method, path, extra=""):
    out = subprocess.run([sys.executable, __file__, "--child", method, path, extra], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:5])
    import hexz
    import zstandard

    d = models()
    minilm = os.path.join(d, "minilm.safetensors")
    gemma = os.path.join(d, "gemma.gguf")
    with tempfile.TemporaryDirectory() as tmp:
        hxz = os.path.join(tmp, "minilm.hxz")
        hxz_lz4 = os.path.join(tmp, "minilm-lz4.hxz")
        zst = os.path.join(tmp, "minilm.safetensors.zst")
        hexz.store(minilm, hxz)
        hexz.store(minilm, hxz_lz4, compression="lz4")
        with open(minilm, "rb") as f, open(zst, "wb") as g:
            g.write(zstandard.ZstdCompressor(level=3).compress(f.read()))
        rows = [("hexz", hxz), ("hexz-lz4", hxz_lz4), ("safetensors", minilm), ("zstd+st", zst)]
        results = {m: run(m, p) for m, p in rows}
        st = results["safetensors"]["median"]
        print(f"MiniLM ({os.path.getsize(minilm) / 1e6:.1f} MB): load every tensor into numpy, median of 5, fresh process each")
        print(f"{'method':<12} {'file MB':>8} {'load s':>8} {'vs st':>6} {'MB/s':>7} {'peak RSS / tensors':>19}")
        for m, p in rows:
            r = results[m]
            print(f"{m:<12} {os.path.getsize(p) / 1e6:8.1f} {r['median']:8.3f} {r['median'] / st:6.2f} "
                  f"{r['bytes'] / 1e6 / r['median']:7.0f} {r['rss'] / r['bytes']:19.2f}")

        ghxz = os.path.join(tmp, "gemma.hxz")
        hexz.store(gemma, ghxz)
        print("\ngemma-3-270m Q4_K_M: one tensor into numpy, median of 5 (hexz: open included)")
        with hexz.open(ghxz) as a:
            infos = {n: a.tensor_info(n) for n in ["blk.0.attn_q.weight", "token_embd.weight"]}
        for name, t in infos.items():
            h = run("hexz-tensor", ghxz, name)
            g = run("raw-tensor", gemma, f"{name},{t.offset},{t.length}")
            print(f"{name:<22} {t.dtype:<5} {h['bytes'] / 1e6:7.1f} MB  hexz get_tensor {h['median'] * 1e3:7.1f} ms   "
                  f"read from the .gguf {g['median'] * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
