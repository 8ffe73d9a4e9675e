#!/usr/bin/env python3
"""Ratio of real fine-tunes and models, measured in one run.

Fine-tunes are real: `bench/make_finetunes.py` trains MiniLM with AdamW on
CPU (FP32 every weight, FP32 layers 4-5 only, BF16 every weight) and caches
the results. For each (base, fine-tune) pair this prints the size of
storing the fine-tune, as a fraction of its file:
  zstd -3 (whole file), zstd -3 --patch-from=base, the BitX recipe (XOR
  with the base, byte-grouped by element width, zstd -3), hexz --base
  without entropy coding (`--format 1.2`, as before format 1.3) and with
  it (the default), and the order-0 floor: the entropy of the per-element
  integer differences (fine - base at the element width), per changed
  tensor.
For models alone: zstd -3, ZipNN (when the `zipnn` package is installed),
hexz 1.2 and 1.3, and the floor: per tensor, the entropy of the exponent
field plus that of each sign-and-mantissa byte.

The floors are empirical order-0 entropies. Where a tensor's values spread
over more distinct values than it has elements (dense AdamW deltas: about
2^20 values, 2^19 elements) the estimate is biased low: it grows by about
0.75 bit per element each time the sample doubles, so no coder of
independent elements reaches it there.

Also prints store and extract throughput of hexz with and without
entropy coding.

usage: bench/delta_bench.py   (needs zstd on PATH, numpy, torch, safetensors;
       `pip install zipnn` adds the ZipNN column)
"""
import json
import os
import struct
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEXZ = os.path.join(ROOT, "target", "release", "hexz")


def tensors(path):
    """name -> (dtype, raw bytes), and the file size."""
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name != "__metadata__":
            a, b = info["data_offsets"]
            out[name] = (info["dtype"], data[8 + n + a:8 + n + b])
    return out, len(data)


def entropy_bits(values):
    _, counts = np.unique(values, return_counts=True)
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


WORD = {"F32": np.uint32, "BF16": np.uint16, "F16": np.uint16, "I64": np.uint64}


def delta_floor(base_path, fine_path):
    base, _ = tensors(base_path)
    fine, size = tensors(fine_path)
    bits = 0.0
    for name, (dtype, raw) in fine.items():
        if name in base and base[name][1] == raw:
            continue
        t = WORD.get(dtype)
        if t is None or name not in base:
            bits += 8 * len(raw)
            continue
        d = np.frombuffer(raw, dtype=t) - np.frombuffer(base[name][1], dtype=t)  # wrapping
        bits += entropy_bits(d)
    return bits / 8 / size


def model_floor(path):
    model, size = tensors(path)
    bits = 0.0
    for dtype, raw in model.values():
        if dtype == "F32":
            x = np.frombuffer(raw, dtype=np.uint32)
            parts = [(x >> 23) & 0xFF, ((x >> 24) & 0x80) | ((x >> 16) & 0x7F), (x >> 8) & 0xFF, x & 0xFF]
        elif dtype == "BF16":
            x = np.frombuffer(raw, dtype=np.uint16)
            parts = [(x >> 7) & 0xFF, ((x >> 8) & 0x80) | (x & 0x7F)]
        else:
            bits += 8 * len(raw)
            continue
        bits += sum(entropy_bits(p) for p in parts)
    return bits / 8 / size


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def size_of(cmd, out):
    run(cmd)
    return os.path.getsize(out)


def timed(cmd, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        run(cmd)
        best = min(best, time.perf_counter() - t0)
    return best


def bitx(base_path, fine_path, width, tmp):
    """BitX: each tensor XORed with the base's tensor of that name,
    byte-grouped by element width, all of it zstd -3 (the two files'
    headers may differ in length, so XOR goes tensor by tensor)."""
    base, _ = tensors(base_path)
    fine, _ = tensors(fine_path)
    parts = []
    for name, (_, raw) in fine.items():
        f = np.frombuffer(raw, dtype=np.uint8)
        b = np.frombuffer(base[name][1], dtype=np.uint8) if name in base else None
        x = np.bitwise_xor(f, b) if b is not None and len(b) == len(f) else f
        n = len(x) // width * width
        parts += [x[:n].reshape(-1, width).T.reshape(-1), x[n:]]
    raw = os.path.join(tmp, "bitx.bin")
    np.concatenate(parts).tofile(raw)
    return size_of(["zstd", "-q", "-f", "-3", raw, "-o", raw + ".zst"], raw + ".zst")


def zipnn_size(path, dtype):
    try:
        from zipnn import ZipNN
    except ImportError:
        return None
    raw = open(path, "rb").read()
    z = ZipNN(bytearray_dtype={"BF16": "bfloat16", "F32": "float32"}[dtype])
    return len(z.compress(raw))


def checked_extract(hxz, want, out):
    run([HEXZ, "-q", "extract", hxz, out, "--force"])
    if open(out, "rb").read() != open(want, "rb").read():
        raise SystemExit(f"{hxz}: extracted bytes differ from {want}")


def main():
    models = subprocess.run([os.path.join(ROOT, "bench", "make_finetunes.py")], check=True, capture_output=True,
                            text=True).stdout.strip().splitlines()[-1]
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hexz-cli"], cwd=ROOT, check=True)
    m = lambda name: os.path.join(models, name)
    pairs = [
        ("FP32, every weight (AdamW)", m("minilm.safetensors"), m("minilm-adamw-fp32.safetensors"), 4),
        ("FP32, layers 4-5 only", m("minilm.safetensors"), m("minilm-adamw-fp32-partial.safetensors"), 4),
        ("BF16, every weight (AdamW)", m("minilm-bf16-base.safetensors"), m("minilm-adamw-bf16.safetensors"), 2),
    ]
    alone = [("BF16 model", m("minilm-bf16-base.safetensors"), "BF16"), ("FP32 model", m("minilm.safetensors"), "F32")]
    timing = []
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out.bin")
        print("Fine-tunes stored against their base, fraction of the fine-tune's file:\n")
        print("| fine-tune | zstd -3 | zstd -3 --patch-from | BitX | hexz 1.2 --base | hexz 1.3 --base | order-0 floor | 1.3 / floor |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for title, base_p, fine_p, width in pairs:
            n = os.path.getsize(fine_p)
            z = size_of(["zstd", "-q", "-f", "-3", fine_p, "-o", os.path.join(tmp, "f.zst")], os.path.join(tmp, "f.zst"))
            zp = size_of(["zstd", "-q", "-f", "-3", "--patch-from=" + base_p, fine_p, "-o", os.path.join(tmp, "f.pzst")],
                         os.path.join(tmp, "f.pzst"))
            bx = bitx(base_p, fine_p, width, tmp)
            sizes = {}
            for fmt in ("1.2", "1.3"):
                base_h, fine_h = os.path.join(tmp, f"base{fmt}.hxz"), os.path.join(tmp, f"fine{fmt}.hxz")
                run([HEXZ, "-q", "store", base_p, base_h, "--force", "--format", fmt])
                store = [HEXZ, "-q", "store", fine_p, fine_h, "--base", base_h, "--force", "--format", fmt]
                t_store = timed(store)
                checked_extract(fine_h, fine_p, out)
                t_extract = timed([HEXZ, "-q", "extract", fine_h, out, "--force"])
                sizes[fmt] = os.path.getsize(fine_h)
                timing.append((title + " --base", fmt, n / 1e6 / t_store, n / 1e6 / t_extract))
            floor = delta_floor(base_p, fine_p)
            after = sizes["1.3"] / n
            print(f"| {title} | {z / n:.3f} | {zp / n:.3f} | {bx / n:.3f} | {sizes['1.2'] / n:.4f} | {after:.4f} "
                  f"| {floor:.4f} | {after / floor:.3f} |")

        print("\nModels alone, fraction of the file:\n")
        print("| model | zstd -3 | ZipNN | hexz 1.2 | hexz 1.3 | order-0 floor | 1.3 / floor |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for title, path, dtype in alone:
            n = os.path.getsize(path)
            z = size_of(["zstd", "-q", "-f", "-3", path, "-o", os.path.join(tmp, "m.zst")], os.path.join(tmp, "m.zst"))
            zn = zipnn_size(path, dtype)
            sizes = {}
            for fmt in ("1.2", "1.3"):
                h = os.path.join(tmp, f"m{fmt}.hxz")
                store = [HEXZ, "-q", "store", path, h, "--force", "--format", fmt]
                t_store = timed(store)
                checked_extract(h, path, out)
                t_extract = timed([HEXZ, "-q", "extract", h, out, "--force"])
                sizes[fmt] = os.path.getsize(h)
                timing.append((title, fmt, n / 1e6 / t_store, n / 1e6 / t_extract))
            floor = model_floor(path)
            zn_text = f"{zn / n:.4f}" if zn else "n/a"
            print(f"| {title} | {z / n:.4f} | {zn_text} | {sizes['1.2'] / n:.4f} | {sizes['1.3'] / n:.4f} "
                  f"| {floor:.4f} | {sizes['1.3'] / n / floor:.3f} |")

    print("\nhexz throughput (best of 3, MB/s of the source file):\n")
    print("| input | format | store MB/s | extract MB/s |")
    print("| --- | --- | --- | --- |")
    for title, fmt, s, x in timing:
        print(f"| {title} | {fmt} | {s:.0f} | {x:.0f} |")


if __name__ == "__main__":
    main()
