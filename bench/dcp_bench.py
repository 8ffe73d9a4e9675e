#!/usr/bin/env python3
"""torch.distributed.checkpoint through hexz.dcp.HexzStorageWriter against
DCP's own FileSystemWriter, in the same run: consecutive checkpoints of a
real fine-tuning run (MiniLM's real weights, all 6 layers plus a 2-class
head, AdamW), one process, CPU.

    python3 bench/dcp_bench.py [--checkpoints 5] [--steps 2] [--lr 2e-5]

Per checkpoint: bytes written by each (hexz's broken down into weights,
first moments, second moments and the rest by saving each part alone
through its own chain as well), and the save time; at the end the load time
of the last checkpoint (hexz: its whole chain). Needs the models
(./scripts/fetch-models.sh, or HEXZ_MODELS) and torch."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import hexz
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bindings" / "python" / "tests"))
from minilm_torch import load_minilm, train  # noqa: E402

from hexz.dcp import DEFAULT_FULL_EVERY, HexzStorageReader, HexzStorageWriter  # noqa: E402

PARTS = ("weights", "exp_avg", "exp_avg_sq", "other")


def models_dir() -> Path:
    if os.environ.get("HEXZ_MODELS"):
        return Path(os.environ["HEXZ_MODELS"])
    out = subprocess.run([str(ROOT / "scripts" / "fetch-models.sh")], check=True, stdout=subprocess.PIPE, text=True)
    return Path(out.stdout.strip())


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def part_of(key: str) -> str:
    """Which part a flattened DCP key belongs to."""
    if key.startswith("model."):
        return "weights" if not key.endswith("position_ids") else "other"
    if key.endswith(".exp_avg"):
        return "exp_avg"
    if key.endswith(".exp_avg_sq"):
        return "exp_avg_sq"
    return "other"


def split(state: Dict[str, Any]) -> Dict[str, Dict[str, Any]]:
    """The state as one flat dict per part (DCP's flattened names)."""
    out: Dict[str, Dict[str, Any]] = {p: {} for p in PARTS}
    for k, v in state["model"].items():
        out[part_of(f"model.{k}")][f"model.{k}"] = v
    for pk, d in state["optim"]["state"].items():
        for name, v in d.items():
            key = f"optim.state.{pk}.{name}"
            out[part_of(key)][key] = v
    out["other"]["optim.param_groups"] = state["optim"]["param_groups"]
    return out


def zeroed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: zeroed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [zeroed(v) for v in value]
    if isinstance(value, torch.Tensor):
        return torch.zeros_like(value)
    return value


def timed(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoints", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2, help="training steps between checkpoints")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--full-every", type=int, default=DEFAULT_FULL_EVERY)
    ap.add_argument("--compression", default="zstd", help="hexz codec: zstd (default), lz4 or none")
    ap.add_argument("--level", type=int, default=None, help="zstd level for hexz (default: its own choice)")
    ap.add_argument("--threads", type=int, default=0, help="hexz compression threads (0: all cores)")
    ap.add_argument("--no-parts", action="store_true", help="skip the per-part breakdown (faster)")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    torch.manual_seed(0)
    model = load_minilm(models_dir(), layers=6)
    optim = torch.optim.AdamW(model.parameters(), lr=args.lr)
    work = Path(tempfile.mkdtemp(prefix="dcp_bench_"))
    rows: List[Dict[str, Any]] = []
    try:
        for n in range(1, args.checkpoints + 1):
            train(model, optim, n * args.steps, args.steps)
            state = {"model": model.state_dict(), "optim": optim.state_dict()}
            fs_dir, hx_dir = work / "fs" / f"step-{n}", work / "hexz" / f"step-{n}"
            t_fs = timed(lambda: dcp.save(state, storage_writer=FileSystemWriter(fs_dir)))
            writer = HexzStorageWriter(hx_dir, base="auto", full_every=args.full_every, compression=args.compression,
                                       level=args.level, threads=args.threads)
            t_hx = timed(lambda: dcp.save(state, storage_writer=writer))
            row: Dict[str, Any] = {"checkpoint": n, "fs_bytes": du(fs_dir), "hexz_bytes": du(hx_dir),
                                   "fs_save_s": t_fs, "hexz_save_s": t_hx}
            if not args.no_parts:
                fs_md = FileSystemReader(fs_dir).read_metadata()
                fs_parts = {p: 0 for p in PARTS}
                for idx, info in fs_md.storage_data.items():
                    fs_parts[part_of(idx.fqn)] += info.length
                row["fs_parts"] = fs_parts
                row["hexz_parts"] = {}
                for part, sd in split(state).items():
                    d = work / f"hexz-{part}" / f"step-{n}"
                    dcp.save(sd, storage_writer=HexzStorageWriter(d, base="auto", full_every=args.full_every,
                                                                   compression=args.compression, level=args.level,
                                                                   threads=args.threads))
                    row["hexz_parts"][part] = du(d)
            rows.append(row)
            print(f"checkpoint {n}: FileSystemWriter {row['fs_bytes']:>11,} B {t_fs:6.2f} s | "
                  f"hexz {row['hexz_bytes']:>11,} B ({row['hexz_bytes'] / row['fs_bytes']:.3f}) {t_hx:6.2f} s"
                  + ("" if args.no_parts else "  parts " + ", ".join(
                      f"{p} {row['hexz_parts'][p] / max(row['fs_parts'][p], 1):.3f}" for p in PARTS)), flush=True)

        like = {"model": model.state_dict(), "optim": optim.state_dict()}
        # The last checkpoint, and the one at the end of the longest chain.
        deepest = min(args.full_every, args.checkpoints)
        loads: Dict[str, List[float]] = {}
        for n in sorted({args.checkpoints, deepest}):
            for kind, reader in (("fs", lambda: FileSystemReader(work / "fs" / f"step-{n}")),
                                 ("hexz", lambda: HexzStorageReader(work / "hexz" / f"step-{n}"))):
                for _ in range(3):
                    target = zeroed(like)
                    loads.setdefault(f"{kind}-{n}", []).append(
                        timed(lambda: dcp.load(target, storage_reader=reader())))
        fs_total = sum(r["fs_bytes"] for r in rows)
        hx_total = sum(r["hexz_bytes"] for r in rows)
        summary = {
            "fs_total_bytes": fs_total,
            "hexz_total_bytes": hx_total,
            "bytes_ratio": hx_total / fs_total,
            "fs_save_s_median": sorted(r["fs_save_s"] for r in rows)[len(rows) // 2],
            "hexz_save_s_median": sorted(r["hexz_save_s"] for r in rows)[len(rows) // 2],
            "loads_s_median": {k: sorted(v)[1] for k, v in loads.items()},
        }
        summary["save_ratio"] = summary["hexz_save_s_median"] / summary["fs_save_s_median"]
        if not args.no_parts:
            summary["parts"] = {p: {"fs": sum(r["fs_parts"][p] for r in rows),
                                    "hexz": sum(r["hexz_parts"][p] for r in rows)} for p in PARTS}
        print(f"total: FileSystemWriter {fs_total:,} B, hexz {hx_total:,} B "
              f"({summary['bytes_ratio']:.3f}x, goal <= 0.55)")
        print(f"save (median): FileSystemWriter {summary['fs_save_s_median']:.2f} s, hexz "
              f"{summary['hexz_save_s_median']:.2f} s ({summary['save_ratio']:.2f}x, goal <= 1.3)")
        for n in sorted({args.checkpoints, deepest}):
            fs, hx = summary["loads_s_median"][f"fs-{n}"], summary["loads_s_median"][f"hexz-{n}"]
            with hexz.open(work / "hexz" / f"step-{n}" / "rank-00000.hxz") as a:
                chain = len(a.chain)
            print(f"load of checkpoint {n} (chain of {chain}; median of 3): FileSystemWriter {fs:.2f} s, "
                  f"hexz {hx:.2f} s ({hx / fs:.2f}x, goal <= 1.2)")
        if not args.no_parts:
            for p, v in summary["parts"].items():
                print(f"  {p:<11} FileSystemWriter {v['fs']:>12,} B  hexz {v['hexz']:>12,} B "
                      f"({v['hexz'] / max(v['fs'], 1):.3f})")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
