#!/usr/bin/env python3
"""Hexz against zstd, lz4 and cat on the same files, in the same run.

For each real model (MiniLM FP32 safetensors, gemma Q4_K_M GGUF, and a BF16
safetensors file made from MiniLM): archive size (fraction of the source),
and for store and extract the wall time, CPU time (user + system) and peak
RSS, each the median of 5 rounds (each round runs every method; dirty pages
are written out before each command), with hexz's wall times as ratios of zstd's
(`zstd -3 -T2` to compress, `zstd -d` to decompress). `cat` is the floor:
copying the bytes with no codec at all. hexz fsyncs its output before it
renames it into place; zstd and cat do not, so both are also timed
followed by `sync FILE` (an fsync of that file), the same durability. Also one tensor read from the
archive against decompressing the whole zstd file first.

With --block-sizes: the block-size sweep that chose the default.
With --big (alone): peak RSS of store and extract on a synthetic 4 GB
safetensors file (it must stay under 64 MiB at any model size).
With --folders: a real checkpoint folder (MiniLM in 3 shards with its
config and tokenizer, from tests/make_folders.py) stored and extracted by
hexz against `tar -c | zstd -3 -T2` and `zstd -d | tar -x`, medians of 5.

usage: bench/bench.py [--block-sizes] [--big] [--folders]   (needs zstd, lz4, GNU time)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEXZ = os.path.join(ROOT, "target", "release", "hexz")
RUNS = 5


def models():
    d = models_dir()
    return [("MiniLM FP32 safetensors", os.path.join(d, "minilm.safetensors"), "encoder.layer.0.attention.self.query.weight"),
            ("gemma Q4_K_M GGUF", os.path.join(d, "gemma.gguf"), "blk.0.attn_q.weight"),
            ("MiniLM BF16 safetensors", bf16_model(d), "encoder.layer.0.attention.self.query.weight")]


def bf16_model(d):
    """MiniLM's weights rounded to BF16 with the safetensors library (cached next to the models)."""
    path = os.path.join(d, "minilm-bf16.safetensors")
    if not os.path.exists(path):
        code = ("import sys, numpy as np, ml_dtypes, safetensors.numpy as st\n"
                "t = st.load_file(sys.argv[1])\n"
                "st.save_file({k: v.astype(ml_dtypes.bfloat16) if v.dtype == np.float32 else v for k, v in t.items()}, sys.argv[2])\n")
        subprocess.run([sys.executable, "-c", code, os.path.join(d, "minilm.safetensors"), path + ".tmp"], check=True)
        os.replace(path + ".tmp", path)
    return path


def timed(cmd, stdout=None, writes=None):
    """Run cmd; return (wall s, CPU s, peak RSS MiB), CPU and RSS from GNU time.

    Untimed first: the file the command `writes` is removed, and dirty pages
    left by the command before are written out, so no command pays for
    deleting another's output or for its writeback."""
    if writes and os.path.exists(writes):
        os.remove(writes)
    os.sync()
    with tempfile.NamedTemporaryFile("r") as stats:
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", stats.name] + cmd, check=True,
                       stdout=stdout or subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        user, system, kb = stats.read().strip().splitlines()[-1].split()
    return wall, float(user) + float(system), int(kb) / 1024


def medians(results):
    """Medians of each of (wall, CPU, RSS) over several runs' results."""
    return tuple(statistics.median(r[i] for r in results) for i in range(3))


def median(fn, runs=RUNS):
    """Medians of each of (wall, CPU, RSS) over `runs` runs."""
    return medians([fn() for _ in range(runs)])


def best_of(n, fn):
    runs = [fn() for _ in range(n)]
    return min(r[0] for r in runs), max(r[2] for r in runs)


def compare(tmp):
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hexz-cli"], cwd=ROOT, check=True)
    for title, src, tensor in models():
        n = os.path.getsize(src)
        mb = n / 1e6
        out = os.path.join(tmp, "out.bin")
        print(f"\n### {title} ({mb:.1f} MB), medians of {RUNS}\n")
        print("| method | size / source | store wall s | store CPU s | store RSS MiB | extract wall s | extract CPU s "
              "| extract RSS MiB | store vs zstd | extract vs zstd -d | extract MB/s |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        z = os.path.join(tmp, "f.zst")
        l4 = os.path.join(tmp, "f.lz4")
        hxz = {codec: os.path.join(tmp, f"m-{codec}.hxz") for codec in ["zstd", "lz4"]}
        sh = lambda script: ["sh", "-c", script]
        # (name, store command, extract command, file the store makes;
        # every extract writes `out`).
        # hexz fsyncs what it writes before renaming it into place (a crash
        # never leaves a partial file under the final name); zstd and cat do
        # not, so they are also run followed by coreutils' `sync FILE`.
        methods = [(f"hexz {codec}", [HEXZ, "-q", "store", src, hxz[codec], "--compression", codec, "--force"],
                    [HEXZ, "-q", "extract", hxz[codec], out, "--force"], hxz[codec]) for codec in ["zstd", "lz4"]]
        methods += [
            ("zstd -3 -T2 / zstd -d", ["zstd", "-q", "-f", "-3", "-T2", src, "-o", z], ["zstd", "-q", "-f", "-d", z, "-o", out], z),
            ("lz4 -1 / lz4 -d", ["lz4", "-q", "-f", "-1", src, l4], ["lz4", "-q", "-f", "-d", l4, out], l4),
            ("cat (no codec)", sh(f"cat '{src}' > '{out}'"), sh(f"cat '{src}' > '{out}'"), src),
            ("zstd, then fsync (durable)", sh(f"zstd -q -f -3 -T2 '{src}' -o '{z}' && sync '{z}'"),
             sh(f"zstd -q -f -d '{z}' -o '{out}' && sync '{out}'"), z),
            ("cat, then fsync (durable)", sh(f"cat '{src}' > '{out}' && sync '{out}'"),
             sh(f"cat '{src}' > '{out}' && sync '{out}'"), src),
        ]
        # Rounds alternate the methods, so a drift in this VM's speed is
        # shared out rather than landing on one method's five runs.
        times = {name: ([], []) for name, *_ in methods}
        for _ in range(RUNS):
            for name, store_cmd, extract_cmd, made in methods:
                times[name][0].append(timed(store_cmd, writes=out if made == src else made))
                times[name][1].append(timed(extract_cmd, writes=out))
                subprocess.run(["cmp", "-s", src, out], check=True)
        rows = [(name, os.path.getsize(made), medians(times[name][0]), medians(times[name][1]))
                for name, _s, _e, made in methods]
        zstd_store, zstd_extract = rows[2][2], rows[2][3]
        durable_store, durable_extract = rows[5][2], rows[5][3]
        for name, size, store, extract in rows:
            print(f"| {name} | {size / n:.4f} | {store[0]:.3f} | {store[1]:.3f} | {store[2]:.0f} | {extract[0]:.3f} "
                  f"| {extract[1]:.3f} | {extract[2]:.0f} | {store[0] / zstd_store[0]:.2f}x | {extract[0] / zstd_extract[0]:.2f}x "
                  f"| {mb / extract[0]:.0f} |")
        hexz = rows[0]
        print(f"\nhexz zstd against zstd made as durable: store {hexz[2][0] / durable_store[0]:.2f}x, "
              f"extract {hexz[3][0] / durable_extract[0]:.2f}x")
        # One tensor: hexz reads its blocks; whole-file tools must decompress everything before it.
        t_hexz = median(lambda: timed([HEXZ, "extract", hxz["zstd"], "--tensor", tensor, "-o", out, "--force"]))
        print(f"\nread one tensor ({tensor}): hexz {t_hexz[0] * 1000:.0f} ms (process start to file written) "
              f"vs {zstd_extract[0] * 1000:.0f} ms to decompress the whole zstd file first")


def big(tmp):
    """Peak RSS at a size far above any buffer: a 4 GB FP32 safetensors file."""
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "hexz-cli"], cwd=ROOT, check=True)
    src = os.path.join(tmp, "big.safetensors")
    code = ("import sys, json, struct, numpy as np\n"
            "n, rows = 64, 64 << 20\n"
            "hdr = {f'layer.{i}.weight': {'dtype': 'F32', 'shape': [rows // 4], 'data_offsets': [i * rows, (i + 1) * rows]} for i in range(n)}\n"
            "h = json.dumps(hdr).encode(); h += b' ' * (-len(h) % 8)\n"
            "rng = np.random.default_rng(0)\n"
            "with open(sys.argv[1], 'wb') as f:\n"
            "    f.write(struct.pack('<Q', len(h)) + h)\n"
            "    for i in range(n):\n"
            "        f.write((rng.standard_normal(rows // 4, dtype=np.float32) * 0.02).tobytes())\n")
    subprocess.run([sys.executable, "-c", code, src], check=True)
    n = os.path.getsize(src)
    hxz, out = os.path.join(tmp, "big.hxz"), os.path.join(tmp, "big.out")
    store = timed([HEXZ, "-q", "store", src, hxz])
    extract = timed([HEXZ, "-q", "extract", hxz, out])
    subprocess.run(["cmp", "-s", src, out], check=True)
    print(f"\n### synthetic FP32 safetensors, {n / 1e9:.2f} GB\n")
    print("| step | wall s | CPU s | peak RSS MiB |")
    print("| --- | --- | --- | --- |")
    print(f"| hexz store | {store[0]:.2f} | {store[1]:.2f} | {store[2]:.0f} |")
    print(f"| hexz extract | {extract[0]:.2f} | {extract[1]:.2f} | {extract[2]:.0f} |")


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
        if "--big" in sys.argv:
            big(tmp)
            sys.exit(0)
        compare(tmp)
        if "--block-sizes" in sys.argv:
            block_sizes(tmp)
