#!/usr/bin/env python3
"""Remote reads over loopback nginx with gemma-3-270m (the real model):
requests and bytes to open, to read one tensor, to read 10 random
tensors (from the server's access log), and the time of `hexz extract
--tensor` from the URL against downloading the whole file with curl.
Medians of 5.

usage: bench/remote_bench.py   (needs nginx, curl, target/release/hexz and
the hexz Python package: pip install ./bindings/python)
"""
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import HEXZ, Nginx  # noqa: E402

import hexz  # noqa: E402


def models():
    out = subprocess.run([str(ROOT / "scripts" / "fetch-models.sh")], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def median_time(cmd, n=5):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    gguf = models() / "gemma.gguf"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = tmp / "www"
        root.mkdir()
        (tmp / "nginx").mkdir()
        subprocess.run([str(HEXZ), "-q", "store", str(gguf), str(root / "gemma.hxz")], check=True)
        (root / "gemma.gguf").symlink_to(gguf)
        server = Nginx(root, tmp / "nginx")
        url = f"{server.url}/gemma.hxz"
        try:
            def measured(what, action):
                server.clear()
                action()
                reqs = server.requests()
                print(f"{what:<40} {len(reqs):5d} requests {sum(r[3] for r in reqs) / 1e6:9.3f} MB")

            size = (root / "gemma.hxz").stat().st_size
            print(f"gemma.hxz over loopback nginx: {size / 1e6:.1f} MB archive of {gguf.stat().st_size / 1e6:.1f} MB")
            a = None

            def open_it():
                nonlocal a
                a = hexz.open(url)

            measured("open", open_it)
            names = a.keys()
            measured("read blk.0.attn_q.weight (0.5 MB)", lambda: a.get_tensor("blk.0.attn_q.weight"))
            rng = random.Random(7)
            pick = rng.sample(names, 10)
            nbytes = sum(a.tensor_info(n).length for n in pick)
            measured(f"read 10 random tensors ({nbytes / 1e6:.1f} MB)", lambda: [a.get_tensor(n) for n in pick])
            measured("read them again (cache)", lambda: [a.get_tensor(n) for n in pick])
            a.close()

            out = tmp / "t.bin"
            for name in ["blk.0.attn_q.weight", "token_embd.weight"]:
                t = median_time([str(HEXZ), "-q", "extract", url, "--tensor", name, "-o", str(out), "--force"])
                server.clear()
                subprocess.run([str(HEXZ), "-q", "extract", url, "--tensor", name, "-o", str(out), "--force"],
                               check=True)
                got = sum(r[3] for r in server.requests())
                print(f"extract --tensor {name:<22} {t * 1e3:8.1f} ms  {got / 1e6:8.2f} MB transferred")
            t = median_time(["curl", "-s", "-o", str(tmp / "whole.gguf"), f"{server.url}/gemma.gguf"])
            print(f"curl the whole .gguf                       {t * 1e3:8.1f} ms  {gguf.stat().st_size / 1e6:8.2f} MB transferred")
            t = median_time(["curl", "-s", "-o", str(tmp / "whole.hxz"), url])
            print(f"curl the whole .hxz                        {t * 1e3:8.1f} ms  {size / 1e6:8.2f} MB transferred")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
