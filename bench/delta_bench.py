#!/usr/bin/env python3
"""Fine-tune storage, measured on the real MiniLM in one run.

Makes fine-tunes of MiniLM (every float x -> x + x*eps, eps ~ N(0, sigma),
rounded to the dtype; FP32 and a BF16 cast; full and partial) and compares
the size of storing the fine-tune, as a fraction of its file:
  zstd -3 (whole file), zstd -3 --patch-from=base, the BitX recipe
  (XOR with the base, byte-grouped by element width, zstd -3), hexz alone,
  and hexz --base. Also store/extract time with and without the base, and a
  floor: the order-0 entropy of the element differences (fine - base, as
  integers of the element width), the size an ideal coder of independent
  differences would need. No delta scheme of this kind gets far below it.

usage: bench/delta_bench.py   (needs zstd on PATH, numpy, safetensors)
"""
import json
import os
import struct
import subprocess
import tempfile
import time

import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEXZ = os.path.join(ROOT, "target", "release", "hexz")


def write_st(path, tensors):
    """tensors: list of (name, dtype string, shape, raw bytes)."""
    header, offset = {}, 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for t in tensors:
            f.write(t[3])


def bf16_bits(a32):
    bits = a32.astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)


def variant(base, rng, sigma, dtype, changed=lambda name: True):
    out = []
    for name, a in base.items():
        if a.dtype == np.float32 and changed(name) and sigma > 0:
            a = (a.astype(np.float64) * (1 + sigma * rng.standard_normal(a.shape))).astype(np.float32)
        if a.dtype == np.float32 and dtype == "BF16":
            out.append((name, "BF16", a.shape, bf16_bits(a).tobytes()))
        elif a.dtype == np.float32:
            out.append((name, "F32", a.shape, a.tobytes()))
        else:
            out.append((name, "I64", a.shape, a.astype(np.int64).tobytes()))
    return out


def entropy_floor(base, fine):
    """Bytes an ideal order-0 coder needs for the per-element differences."""
    bits = 0.0
    for (_, dtype, _, b), (_, _, _, f) in zip(base, fine):
        t = {"F32": np.uint32, "BF16": np.uint16, "I64": np.uint64}[dtype]
        d = np.frombuffer(f, dtype=t) - np.frombuffer(b, dtype=t)  # wrapping
        _, counts = np.unique(d, return_counts=True)
        p = counts / counts.sum()
        bits += -(counts * np.log2(p)).sum()
    return bits / 8


def size_of(cmd, out):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return os.path.getsize(out)


def timed(cmd):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def bitx(base_path, fine_path, width, tmp):
    b = np.fromfile(base_path, dtype=np.uint8)
    f = np.fromfile(fine_path, dtype=np.uint8)
    x = np.bitwise_xor(b, f)
    n = len(x) // width * width
    grouped = np.concatenate([x[:n].reshape(-1, width).T.reshape(-1), x[n:]])
    raw = os.path.join(tmp, "bitx.bin")
    grouped.tofile(raw)
    return size_of(["zstd", "-q", "-f", "-3", raw, "-o", raw + ".zst"], raw + ".zst")


def main():
    models = subprocess.run([os.path.join(ROOT, "scripts", "fetch-models.sh")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hexz-cli"], cwd=ROOT, check=True)
    base32 = load_file(os.path.join(models, "minilm.safetensors"))
    rng = np.random.default_rng(1)
    partial = lambda name: name.startswith("encoder.layer.4.") or name.startswith("encoder.layer.5.")
    cases = [
        ("FP32 full, sigma 1e-3", "F32", 1e-3, lambda n: True),
        ("FP32 partial (2 of 6 layers)", "F32", 1e-3, partial),
        ("BF16 full, sigma 1e-3", "BF16", 1e-3, lambda n: True),
        ("BF16 full, sigma 1e-2", "BF16", 1e-2, lambda n: True),
    ]
    print("| fine-tune | zstd -3 | zstd -3 --patch-from | BitX (XOR+group+zstd -3) | hexz | hexz --base | hexz --base / BitX | entropy floor |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    timing = []
    with tempfile.TemporaryDirectory() as tmp:
        for title, dtype, sigma, changed in cases:
            base_p, fine_p = os.path.join(tmp, "base.safetensors"), os.path.join(tmp, "fine.safetensors")
            base_t, fine_t = variant(base32, rng, 0, dtype), variant(base32, rng, sigma, dtype, changed)
            write_st(base_p, base_t)
            write_st(fine_p, fine_t)
            floor = entropy_floor(base_t, fine_t)
            n = os.path.getsize(fine_p)
            z = size_of(["zstd", "-q", "-f", "-3", fine_p, "-o", fine_p + ".zst"], fine_p + ".zst")
            zp = size_of(["zstd", "-q", "-f", "-3", "--patch-from=" + base_p, fine_p, "-o", fine_p + ".pzst"], fine_p + ".pzst")
            bx = bitx(base_p, fine_p, 4 if dtype == "F32" else 2, tmp)
            base_h, fine_h, alone_h = (os.path.join(tmp, x) for x in ("base.hxz", "fine.hxz", "alone.hxz"))
            subprocess.run([HEXZ, "-q", "store", base_p, base_h, "--force"], check=True)
            t_alone = min(timed([HEXZ, "-q", "store", fine_p, alone_h, "--force"]) for _ in range(5))
            t_delta = min(timed([HEXZ, "-q", "store", fine_p, fine_h, "--base", base_h, "--force"]) for _ in range(5))
            out = os.path.join(tmp, "out.bin")
            x_alone = min(timed([HEXZ, "-q", "extract", alone_h, out, "--force"]) for _ in range(5))
            x_delta = min(timed([HEXZ, "-q", "extract", fine_h, out, "--force"]) for _ in range(5))
            alone, delta = os.path.getsize(alone_h), os.path.getsize(fine_h)
            print(f"| {title} | {z / n:.3f} | {zp / n:.3f} | {bx / n:.3f} | {alone / n:.3f} | {delta / n:.3f} | {delta / bx:.2f} | {floor / n:.3f} |")
            timing.append((title, n / 1e6 / t_alone, n / 1e6 / t_delta, n / 1e6 / x_alone, n / 1e6 / x_delta))
    print("\n| fine-tune | store MB/s alone | store MB/s --base | extract MB/s alone | extract MB/s with base |")
    print("| --- | --- | --- | --- | --- |")
    for t in timing:
        print(f"| {t[0]} | {t[1]:.0f} | {t[2]:.0f} | {t[3]:.0f} | {t[4]:.0f} |")


if __name__ == "__main__":
    main()
