#!/usr/bin/env python3
"""Hexz against zstd and lz4 on the same files, in the same run.

For each real model: archive size (fraction of the source), store and
extract MB/s, peak RSS of store and extract, and the time to read one tensor,
for hexz (zstd, lz4) and the whole-file tools `zstd -3 -T2` and `lz4 -1`.
Also the block-size sweep that chose the default.

With --folders: a real checkpoint folder (MiniLM in 3 shards with its
config and tokenizer, from tests/make_folders.py) stored and extracted by
hexz against `tar -c | zstd -3 -T2` and `zstd -d | tar -x`, medians of 5.

usage: bench/bench.py [--block-sizes] [--folders]   (needs zstd, lz4, GNU time)
"""
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEXZ = os.path.join(ROOT, "target", "release", "hexz")


def models():
    out = subprocess.run([os.path.join(ROOT, "scripts", "fetch-models.sh")], check=True, capture_output=True, text=True)
    d = out.stdout.strip().splitlines()[-1]
    return [("MiniLM safetensors", os.path.join(d, "minilm.safetensors"), "encoder.layer.0.attention.self.query.weight"),
            ("gemma GGUF", os.path.join(d, "gemma.gguf"), "blk.0.attn_q.weight")]


def timed(cmd, stdout=None):
    """Run cmd; return (seconds, peak RSS in MiB) measured by GNU time."""
    with tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd, check=True, stdout=stdout or subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        kb = int(rss.read().strip().splitlines()[-1])
    return dt, kb / 1024


def best_of(n, fn):
    runs = [fn() for _ in range(n)]
    return min(r[0] for r in runs), max(r[1] for r in runs)


def row(name, size, src_size, store, extract):
    mb = src_size / 1e6
    print(f"| {name:<22} | {size / src_size:6.3f} | {mb / store[0]:7.0f} | {mb / extract[0]:8.0f} | {store[1]:6.0f} | {extract[1]:6.0f} |")


def compare(tmp):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hexz-cli"], cwd=ROOT, check=True)
    for title, src, tensor in models():
        n = os.path.getsize(src)
        print(f"\n### {title} ({n / 1e6:.1f} MB), best of 3\n")
        print("| method                 |  ratio | store MB/s | extract MB/s | store RSS MiB | extract RSS MiB |")
        print("| --- | --- | --- | --- | --- | --- |")
        out = os.path.join(tmp, "out.bin")
        for codec in ["zstd", "lz4"]:
            hxz = os.path.join(tmp, f"m-{codec}.hxz")
            store = best_of(3, lambda: timed([HEXZ, "-q", "store", src, hxz, "--compression", codec, "--force"]))
            extract = best_of(3, lambda: timed([HEXZ, "-q", "extract", hxz, out, "--force"]))
            row(f"hexz {codec}", os.path.getsize(hxz), n, store, extract)
        z = os.path.join(tmp, "f.zst")
        store = best_of(3, lambda: timed(["zstd", "-q", "-f", "-3", "-T2", src, "-o", z]))
        extract = best_of(3, lambda: timed(["zstd", "-q", "-f", "-d", "-T2", z, "-o", out]))
        row("zstd -3 -T2 (whole file)", os.path.getsize(z), n, store, extract)
        l4 = os.path.join(tmp, "f.lz4")
        store = best_of(3, lambda: timed(["lz4", "-q", "-f", "-1", src, l4]))
        extract = best_of(3, lambda: timed(["lz4", "-q", "-f", "-d", l4, out]))
        row("lz4 -1 (whole file)", os.path.getsize(l4), n, store, extract)
        # One tensor: hexz reads its blocks; whole-file tools must decompress everything before it.
        hxz = os.path.join(tmp, "m-zstd.hxz")
        t_hexz = best_of(5, lambda: timed([HEXZ, "extract", hxz, "--tensor", tensor, "-o", out, "--force"]))
        t_zstd = best_of(3, lambda: timed(["zstd", "-q", "-f", "-d", "-T2", z, "-o", out]))
        print(f"\nread one tensor ({tensor}): hexz {t_hexz[0] * 1000:.0f} ms (process start to file written) "
              f"vs {t_zstd[0] * 1000:.0f} ms to decompress the whole zstd file first")


def block_sizes(tmp):
    print("\n### block size sweep (hexz zstd -3)\n")
    print("| model | block | ratio | store MB/s | extract MB/s |")
    print("| --- | --- | --- | --- | --- |")
    out = os.path.join(tmp, "out.bin")
    for title, src, _ in models():
        n = os.path.getsize(src)
        for bs in ["256K", "1M", "4M", "16M"]:
            hxz = os.path.join(tmp, "bs.hxz")
            store = best_of(2, lambda: timed([HEXZ, "-q", "store", src, hxz, "--block-size", bs, "--force"]))
            extract = best_of(2, lambda: timed([HEXZ, "-q", "extract", hxz, out, "--force"]))
            print(f"| {title} | {bs} | {os.path.getsize(hxz) / n:.4f} | {n / 1e6 / store[0]:.0f} | {n / 1e6 / extract[0]:.0f} |")


def median_of(n, fn):
    runs = sorted(fn() for _ in range(n))
    return runs[n // 2]


def folders(tmp):
    d = models_dir()
    src = os.path.join(d, "minilm-sharded")
    if not os.path.isdir(src):
        subprocess.run([sys.executable, os.path.join(ROOT, "tests", "make_folders.py"), d], check=True, capture_output=True)
    n = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(src) for f in fs)
    files = sum(len(fs) for _, _, fs in os.walk(src))
    print(f"\n### checkpoint folder: {files} files, {n / 1e6:.1f} MB (MiniLM in 3 shards + config, tokenizer), median of 5\n")
    print("| method | size / source | store s | extract s | store MB/s | extract MB/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    hxz = os.path.join(tmp, "folder.hxz")
    out = os.path.join(tmp, "out")

    def hexz_store():
        return timed([HEXZ, "-q", "store", src, hxz, "--force"])

    def hexz_extract():
        subprocess.run(["rm", "-rf", out], check=True)
        return timed([HEXZ, "-q", "extract", hxz, out])

    s, e = median_of(5, hexz_store), median_of(5, hexz_extract)
    subprocess.run(["diff", "-r", src, out], check=True, capture_output=True)
    print(f"| hexz (zstd) | {os.path.getsize(hxz) / n:.3f} | {s[0]:.2f} | {e[0]:.2f} | {n / 1e6 / s[0]:.0f} | {n / 1e6 / e[0]:.0f} |")
    tz = os.path.join(tmp, "folder.tar.zst")
    parent, name = os.path.dirname(src), os.path.basename(src)

    def tar_store():
        return timed(["sh", "-c", f"tar -C '{parent}' -cf - '{name}' | zstd -q -3 -T2 -f -o '{tz}'"])

    def tar_extract():
        subprocess.run(["rm", "-rf", out], check=True)
        os.makedirs(out)
        return timed(["sh", "-c", f"zstd -q -d -c '{tz}' | tar -C '{out}' -xf -"])

    s, e = median_of(5, tar_store), median_of(5, tar_extract)
    print(f"| tar \\| zstd -3 -T2 | {os.path.getsize(tz) / n:.3f} | {s[0]:.2f} | {e[0]:.2f} | {n / 1e6 / s[0]:.0f} | {n / 1e6 / e[0]:.0f} |")


def models_dir():
    out = subprocess.run([os.path.join(ROOT, "scripts", "fetch-models.sh")], check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        if "--folders" in sys.argv:
            subprocess.run(["cargo", "build", "--release", "-q", "-p", "hexz-cli"], cwd=ROOT, check=True)
            folders(tmp)
            sys.exit(0)
        compare(tmp)
        if "--block-sizes" in sys.argv:
            block_sizes(tmp)
