#!/usr/bin/env python3
"""`hexz mount` against the plain file: gemma-3-270m read whole (cat to
/dev/null) from a fresh mount, again from the same mount (kernel page
cache kept), and from the plain .gguf (warm page cache); medians of 5
fresh mounts. Also the mount daemon's peak RSS (VmHWM).

usage: bench/mount_bench.py   (needs /dev/fuse and target/release/hexz)
"""
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from conftest import HEXZ  # noqa: E402


def read_all(path):
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.read(1 << 20):
            pass
    return time.perf_counter() - t0


def main():
    models = Path(subprocess.run([str(ROOT / "scripts" / "fetch-models.sh")], check=True, capture_output=True,
                                 text=True).stdout.strip().splitlines()[-1])
    gguf = models / "gemma.gguf"
    read_all(gguf)
    plain = statistics.median(read_all(gguf) for _ in range(5))
    print(f"plain .gguf (warm page cache)          {plain * 1e3:7.0f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for compression in ["zstd", "lz4"]:
            archive = tmp / f"gemma-{compression}.hxz"
            subprocess.run([str(HEXZ), "-q", "store", str(gguf), str(archive), "--compression", compression], check=True)
            mp = tmp / "mnt"
            mp.mkdir(exist_ok=True)
            first, second, rss = [], [], []
            for _ in range(5):
                subprocess.run([str(HEXZ), "-q", "mount", str(archive), str(mp)], check=True)
                f = mp / f"gemma-{compression}.gguf"
                first.append(read_all(f))
                second.append(read_all(f))
                pid = subprocess.run(["pgrep", "-f", f"mount --foreground .* {mp}$"], capture_output=True,
                                     text=True).stdout.split()[0]
                status = Path(f"/proc/{pid}/status").read_text()
                rss.append(int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) / 1024)
                subprocess.run([str(HEXZ), "unmount", str(mp)], check=True)
                time.sleep(0.3)
            print(f"mount ({compression}), first read        {statistics.median(first) * 1e3:7.0f} ms "
                  f"({statistics.median(first) / plain:.2f}x plain)")
            print(f"mount ({compression}), second read       {statistics.median(second) * 1e3:7.0f} ms "
                  f"({statistics.median(second) / plain:.2f}x plain)")
            print(f"mount ({compression}), daemon peak RSS   {max(rss):7.0f} MiB (cache 32 MiB)")


if __name__ == "__main__":
    main()
