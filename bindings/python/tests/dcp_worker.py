"""One rank of the DCP tests (test_dcp.py starts it, one process per rank,
RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT in the environment, gloo on
the CPU).

    dcp_worker.py save MODELS ROOT STEPS [KILL_AT]
        fine-tune MiniLM (2 layers) sharded with FSDP2 (fully_shard), AdamW;
        after every training step save model + optimizer to
        ROOT/step-N through HexzStorageWriter(base="auto"); rank 0 also
        writes the full (unsharded) state to ROOT/ref-N.pt. With KILL_AT,
        rank 1 kills itself (SIGKILL) in the middle of that save.
    dcp_worker.py load2 CKPT REF
        load CKPT on 2 ranks sharded differently (2-D tensors split by
        columns, the rest replicated) and check every local shard bit for
        bit against REF.
"""

from __future__ import annotations

import datetime
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Dict, List

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict
from torch.distributed.tensor import DTensor, Replicate, Shard, distribute_tensor, init_device_mesh

sys.path.insert(0, str(Path(__file__).resolve().parent))
from minilm_torch import load_minilm, train  # noqa: E402

from hexz.dcp import HexzStorageReader, HexzStorageWriter  # noqa: E402


def full(value: Any) -> Any:
    """`value` with every DTensor gathered whole (a collective)."""
    if isinstance(value, DTensor):
        return value.full_tensor()
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return {k: full(v) for k, v in value.items()}
    if isinstance(value, list):
        return [full(v) for v in value]
    return value


def flat(value: Any, prefix: str = "") -> Dict[str, Any]:
    """Leaves of nested dicts and lists, named by their path."""
    out: Dict[str, Any] = {}
    if isinstance(value, dict):
        for k, v in value.items():
            out.update(flat(v, f"{prefix}{k}."))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.update(flat(v, f"{prefix}{i}."))
    else:
        out[prefix[:-1]] = value
    return out


class KillingWriter(HexzStorageWriter):
    """Kills its own process while its archive is being stored."""

    def write_data(self, plan: Any, planner: Any) -> Any:
        threading.Timer(0.05, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
        return super().write_data(plan, planner)


def save(models: str, root: str, steps: int, kill_at: int) -> None:
    from torch.distributed.fsdp import fully_shard

    rank = dist.get_rank()
    model = load_minilm(Path(models), layers=2)
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for n in range(1, steps + 1):
        train(model, optim, n, 1)
        if n < kill_at:
            continue  # the checkpoints before it exist already
        msd, osd = get_state_dict(model, optim)
        state = {"model": msd, "optim": osd}
        ref = full(state)
        if rank == 0:
            torch.save(ref, Path(root) / f"ref-{n}.pt")
        dist.barrier()
        cls = KillingWriter if (n == kill_at and rank == 1) else HexzStorageWriter
        writer = cls(Path(root) / f"step-{n}", base="auto")
        dcp.save(state, storage_writer=writer)
        report = writer.last_report
        assert report is not None
        print(f"rank {rank} step {n}: {report.archive_size} bytes, {report.parent_blocks} parent blocks, "
              f"{report.delta_blocks} delta blocks", flush=True)


def load2(ckpt: str, ref_path: str) -> None:
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    ref = torch.load(ref_path, weights_only=False)
    flat_ref = flat(ref)
    placements: Dict[str, List[Any]] = {}
    for k, v in flat_ref.items():
        if isinstance(v, torch.Tensor) and v.dim() >= 2 and v.shape[1] % 2 == 0:
            placements[k] = [Shard(1)]
        elif isinstance(v, torch.Tensor):
            placements[k] = [Replicate()]

    def empty(value: Any, prefix: str = "") -> Any:
        """`value`'s structure, tensors as zeroed DTensors, other leaves spoiled."""
        if isinstance(value, dict):
            return {k: empty(v, f"{prefix}{k}.") for k, v in value.items()}
        if isinstance(value, list):
            return [empty(v, f"{prefix}{i}.") for i, v in enumerate(value)]
        if isinstance(value, torch.Tensor):
            return distribute_tensor(torch.zeros_like(value), mesh, placements[prefix[:-1]])
        return -1.0 if isinstance(value, float) else value

    state = empty(ref)
    reader = HexzStorageReader(ckpt)
    dcp.load(state, storage_reader=reader)
    target = flat(state)
    checked = 0
    for k, v in flat_ref.items():
        if not isinstance(v, torch.Tensor):
            assert target[k] == v, (k, target[k], v)
            continue
        got = target[k].to_local()
        want = distribute_tensor(v, mesh, placements[k]).to_local()
        assert got.dtype == want.dtype and got.shape == want.shape, k
        assert torch.equal(got.reshape(-1).view(torch.uint8), want.reshape(-1).view(torch.uint8)), k
        checked += 1
    print(f"rank {dist.get_rank()}: {checked} tensors bit-exact, {reader.bytes_read} bytes read", flush=True)


def main() -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    try:
        if sys.argv[1] == "save":
            save(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]) if len(sys.argv) > 5 else 0)
        elif sys.argv[1] == "load2":
            load2(sys.argv[2], sys.argv[3])
        else:
            raise SystemExit(f"unknown command {sys.argv[1]!r}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
