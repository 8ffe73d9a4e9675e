#!/usr/bin/env python3
"""A real engine loading gemma-3-270m from `.hxz`: unmodified llama.cpp
`llama-simple` (scripts/llama-build.sh), load plus one token, page cache
warm, in paired rounds (each round runs every method once, in turn), medians.

Methods:
- the plain `.gguf` (llama mmaps it);
- `llama_hxz` (bindings/c/examples): llama.cpp's own
  `llama_model_load_from_file_ptr` reading the archive through the
  `FILE *` of `hexz_fopen` (mmap off), zstd and lz4 archives; and, for
  reference, the plain `.gguf` through a `fopen` `FILE *` (mmap off too);
- `hexz_exec` (bindings/c/examples): the archive rebuilt in a memfd by
  `hexz_memfd`, zstd and lz4 archives;
- `hexz mount`: a fresh mount per round, llama run twice on it (the first
  load decodes on demand; the second finds the kernel page cache kept);
  and once on an archive stored without compression, the floor of the
  mount path (no decoding: the daemon reads, hashes and replies).

Also, without the engine: the memfd fill alone (hexz_exec running `true`)
and the time to copy the plain `.gguf` into tmpfs with `cat`, which any
design that puts 253 MB of decoded bytes into fresh pages pays first.

Also: the text each method generates (greedy, 24 tokens) must be the
`.gguf`'s; peak RSS of the engine process (GNU time; with hexz_exec it
includes the memfd the model lives in) and of the mount daemon (VmHWM).

Goals for the FILE * path (issue 31): at most 1.5x the .gguf with zstd,
1.25x with lz4, peak RSS at most the .gguf run's + 64 MiB.

usage: bench/llama_bench.py [--rounds N] [--no-mount]   (the mount rows need /dev/fuse)
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEXZ = ROOT / "target" / "release" / "hexz"
PROMPT = "The capital of France is"


def sh(*args, **kw):
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw).stdout


def timed(cmd):
    """(wall s, peak RSS MiB) of one run, output discarded."""
    with tempfile.NamedTemporaryFile("r") as stats:
        t0 = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", stats.name] + [str(c) for c in cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        return wall, int(stats.read().split()[-1]) / 1024


def daemon_rss(mp):
    pid = sh("pgrep", "-f", f"mount --foreground .* {mp}$").split()[0]
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(l for l in status.splitlines() if l.startswith("VmHWM")).split()[1]) / 1024


def main():
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 7
    models = Path(sh(ROOT / "scripts" / "fetch-models.sh").strip().splitlines()[-1])
    gguf = models / "gemma.gguf"
    llama = sh(ROOT / "scripts" / "llama-build.sh").strip().splitlines()[-1]
    mount_ok = os.path.exists("/dev/fuse") and "--no-mount" not in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prefix = sh(ROOT / "scripts" / "install-ffi.sh", tmp / "prefix", "hexz").strip().splitlines()[-1]
        env = dict(os.environ, PKG_CONFIG_PATH=f"{prefix}/lib/pkgconfig")
        llama_lib = Path(llama).parent
        llama_src = llama_lib.parent.parent / "llama_cpp_python-0.3.36" / "vendor" / "llama.cpp"
        subprocess.run(["make", "-s", "-C", str(ROOT / "bindings" / "c"), f"OUT={tmp}/build", f"LLAMA_SRC={llama_src}",
                        f"LLAMA_LIB={llama_lib}", f"{tmp}/build/hexz_exec", f"{tmp}/build/llama_hxz"],
                       check=True, env=env)
        exec_bin = tmp / "build" / "hexz_exec"
        file_bin = tmp / "build" / "llama_hxz"
        sh("cargo", "build", "--release", "-q", "-p", "hexz-cli", cwd=ROOT)
        archives = {}
        for c in ["zstd", "lz4"]:
            archives[c] = tmp / f"gemma-{c}.hxz"
            sh(HEXZ, "-q", "store", gguf, archives[c], "--compression", c)
        # The floor of the mount path: an archive stored without compression
        # (the daemon only reads, hashes and replies).
        plain = tmp / "gemma-none.hxz"
        sh(HEXZ, "-q", "store", gguf, plain, "--compression", "none")
        mp = tmp / "mnt"
        mp.mkdir()

        def generate(model, wrap=()):
            return sh(*wrap, llama, "-m", model, "-n", 24, PROMPT)

        # Same text everywhere first.
        want = generate(gguf)
        for c, a in archives.items():
            assert generate("{}", (exec_bin, a)) == want, f"hexz_exec {c}: different text"
            assert sh(file_bin, "-m", a, "-n", 24, PROMPT) == want, f"llama_hxz {c}: different text"
        assert sh(file_bin, "-m", gguf, "--plain", "-n", 24, PROMPT) == want, "llama_hxz --plain: different text"
        if mount_ok:
            sh(HEXZ, "-q", "mount", archives["zstd"], mp)
            try:
                assert generate(mp / "gemma-zstd.gguf") == want, "mount: different text"
            finally:
                sh(HEXZ, "unmount", mp)
        print(f"generated text (greedy, 24 tokens), identical from every method: {want.strip()!r}\n")

        one = ["-n", "1", PROMPT]
        rows = {k: [] for k in ["gguf", "file gguf", "file zstd", "file lz4", "exec zstd", "exec lz4", "mount zstd first", "mount zstd later",
                                "mount lz4 first", "mount lz4 later", "mount none first"]}
        # What the memfd costs without the engine: the fill alone (hexz_exec
        # running `true`), and copying the plain file into tmpfs (the floor of
        # any design that must put decoded bytes into fresh pages).
        floors = {k: [] for k in ["fill zstd", "fill lz4", "copy"]}
        shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else tmp
        daemon = {"zstd": [], "lz4": []}
        timed([llama, "-m", gguf] + one)  # warm the page cache
        for _ in range(rounds):
            rows["gguf"].append(timed([llama, "-m", gguf] + one))
            rows["file gguf"].append(timed([file_bin, "-m", gguf, "--plain"] + one))
            for c, a in archives.items():
                rows[f"file {c}"].append(timed([file_bin, "-m", a] + one))
                rows[f"exec {c}"].append(timed([exec_bin, a, llama, "-m", "{}"] + one))
                floors[f"fill {c}"].append(timed([exec_bin, a, "true", "{}"]))
            copy = shm / f"hexz-llama-bench-{os.getpid()}"
            floors["copy"].append(timed(["sh", "-c", f"cat '{gguf}' > '{copy}'"]))
            copy.unlink()
            if mount_ok:
                for c, a in archives.items():
                    sh(HEXZ, "-q", "mount", a, mp)
                    try:
                        f = mp / f"gemma-{c}.gguf"
                        rows[f"mount {c} first"].append(timed([llama, "-m", f] + one))
                        rows[f"mount {c} later"].append(timed([llama, "-m", f] + one))
                        daemon[c].append(daemon_rss(mp))
                    finally:
                        sh(HEXZ, "unmount", mp)
                    time.sleep(0.3)
                sh(HEXZ, "-q", "mount", plain, mp)
                try:
                    rows["mount none first"].append(timed([llama, "-m", mp / "gemma-none.gguf"] + one))
                finally:
                    sh(HEXZ, "unmount", mp)
                time.sleep(0.3)
        base = statistics.median(r[0] for r in rows["gguf"])
        base_rss = statistics.median(r[1] for r in rows["gguf"])
        print(f"llama.cpp (llama-simple; llama_hxz for the FILE * rows), load + 1 token, median of {rounds} "
              "paired rounds\n")
        print("| source | wall s | vs .gguf | engine peak RSS MiB | vs .gguf RSS |")
        print("| --- | --- | --- | --- | --- |")
        names = {"gguf": "`gemma.gguf` (mmap)", "file gguf": "`gemma.gguf` through a fopen `FILE *` (no mmap)",
                 "file zstd": "`.hxz` zstd through hexz_fopen's `FILE *`",
                 "file lz4": "`.hxz` lz4 through hexz_fopen's `FILE *`", "exec zstd": "`.hxz` zstd via hexz_exec (memfd)",
                 "exec lz4": "`.hxz` lz4 via hexz_exec (memfd)",
                 "mount zstd first": "`hexz mount` zstd, first load", "mount zstd later": "`hexz mount` zstd, next load",
                 "mount lz4 first": "`hexz mount` lz4, first load", "mount lz4 later": "`hexz mount` lz4, next load",
                 "mount none first": "`hexz mount`, no compression, first load (the mount's floor)"}
        for key, runs in rows.items():
            if not runs:
                continue
            wall = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            print(f"| {names[key]} | {wall:.3f} | {wall / base:.2f}x | {rss:.0f} | {rss - base_rss:+.0f} |")
        fill = {k: statistics.median(r[0] for r in runs) for k, runs in floors.items()}
        print(f"\nwithout the engine: hexz_memfd fill (hexz_exec running `true`) {fill['fill zstd']:.3f} s zstd, "
              f"{fill['fill lz4']:.3f} s lz4; copying the .gguf into tmpfs (`cat`) {fill['copy']:.3f} s "
              f"= {fill['copy'] / base:.2f} of the .gguf run")
        for c, rss in daemon.items():
            if rss:
                print(f"\nmount daemon ({c}) peak RSS: {max(rss):.0f} MiB (cache setting 32 MiB)")
        if not mount_ok:
            print("\n(mount rows skipped: --no-mount, or /dev/fuse is missing)")


if __name__ == "__main__":
    main()
