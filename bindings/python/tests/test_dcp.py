"""hexz.dcp: torch.distributed.checkpoint saves and loads through hexz
archives, each step stored against the last. The 2-rank runs are two
processes (dcp_worker.py) on gloo, sharded with FSDP2's fully_shard on
the CPU, fine-tuning MiniLM (its real weights, 2 of its layers) with AdamW."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

torch = pytest.importorskip("torch")
import torch.distributed.checkpoint as dcp  # noqa: E402
from torch.distributed.checkpoint.api import CheckpointException  # noqa: E402

import hexz  # noqa: E402
from hexz.dcp import HexzStorageReader, HexzStorageWriter, is_complete, latest_checkpoint  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from dcp_worker import flat  # noqa: E402
from minilm_torch import load_minilm, train  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_ranks(args: List[str], world: int = 2, timeout: float = 240) -> List[subprocess.CompletedProcess]:
    """Run dcp_worker.py `args` as `world` ranks; their results, by rank."""
    port = free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen([sys.executable, str(HERE / "dcp_worker.py"), *args], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    out = []
    for rank, p in enumerate(procs):
        try:
            stdout, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    return out


def check_ok(results: List[subprocess.CompletedProcess]) -> None:
    for rank, r in enumerate(results):
        assert r.returncode == 0, f"rank {rank} failed:\n{r.stdout}\n{r.stderr[-4000:]}"


def failure(e: Any) -> BaseException:
    """The exception a rank raised, from DCP's CheckpointException."""
    (exc, _trace), = e.failures.values()
    return exc


def bit_equal(a: Any, b: Any) -> bool:
    return bool(a.dtype == b.dtype and a.shape == b.shape
                and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8)))


def zeroed(value: Any) -> Any:
    """`value`'s structure with tensors zeroed and floats spoiled."""
    if isinstance(value, dict):
        return {k: zeroed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [zeroed(v) for v in value]
    if isinstance(value, torch.Tensor):
        return torch.zeros_like(value)
    return -1.0 if isinstance(value, float) else value


def assert_same(got: Any, want: Any) -> int:
    """Every leaf equal (tensors bit for bit); the number of tensors."""
    g, w = flat(got), flat(want)
    assert g.keys() == w.keys()
    n = 0
    for k, v in w.items():
        if isinstance(v, torch.Tensor):
            assert bit_equal(g[k], v), k
            n += 1
        else:
            assert g[k] == v, (k, g[k], v)
    return n


def load_one(ckpt: Path, like: Any) -> Any:
    """Load `ckpt` in this process (no process group) into a state shaped like `like`."""
    state = zeroed(like)
    dcp.load(state, storage_reader=HexzStorageReader(ckpt))
    return state


@pytest.fixture(scope="module")
def fsdp_run(models: Path, tmp_path_factory: Any) -> Path:
    """Two ranks fine-tune and save step-1 and step-2 (the second against the first)."""
    root = tmp_path_factory.mktemp("dcp2")
    results = run_ranks(["save", str(models), str(root), "2"])
    check_ok(results)
    print(*(r.stdout for r in results))
    return root


def test_two_ranks_save_deltas(fsdp_run: Path) -> None:
    for n in (1, 2):
        assert is_complete(fsdp_run / f"step-{n}")
        assert sorted(p.name for p in (fsdp_run / f"step-{n}").iterdir()) == [".metadata", "rank-00000.hxz",
                                                                                "rank-00001.hxz"]
    for rank in (0, 1):
        name = f"rank-{rank:05d}.hxz"
        with hexz.open(fsdp_run / "step-1" / name) as a:
            assert a.parent is None
            first = os.path.getsize(fsdp_run / "step-1" / name)
        with hexz.open(fsdp_run / "step-2" / name) as a:
            # Stored against the same rank's archive of the previous step.
            assert a.parent is not None and a.chain[1].endswith(f"step-1/{name}")
            assert any(t.storage in ("delta", "parent") for t in a.tensors())
        assert os.path.getsize(fsdp_run / "step-2" / name) < first
    assert latest_checkpoint(fsdp_run) == str(fsdp_run / "step-2")


def test_two_ranks_load_on_one(fsdp_run: Path) -> None:
    for n in (1, 2):
        ref = torch.load(fsdp_run / f"ref-{n}.pt", weights_only=False)
        got = load_one(fsdp_run / f"step-{n}", ref)
        assert assert_same(got, ref) > 20


def test_two_ranks_load_on_two_resharded(fsdp_run: Path) -> None:
    results = run_ranks(["load2", str(fsdp_run / "step-2"), str(fsdp_run / "ref-2.pt")])
    check_ok(results)
    for r in results:
        assert "tensors bit-exact" in r.stdout, r.stdout


def test_killed_rank_leaves_previous_checkpoint(fsdp_run: Path, models: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    shutil.copytree(fsdp_run, root)
    # Rank 1 kills itself while storing step-3; rank 0 then fails on the collective.
    results = run_ranks(["save", str(models), str(root), "3", "3"], timeout=180)
    assert results[1].returncode != 0 and results[0].returncode != 0
    assert not is_complete(root / "step-3")
    assert latest_checkpoint(root) == str(root / "step-2")
    with pytest.raises(CheckpointException) as e:
        dcp.load({"x": torch.zeros(1)}, storage_reader=HexzStorageReader(root / "step-3"))
    # DCP tries the rank's own metadata next and reports both failed; the message is ours.
    assert f"{root / 'step-3'}: not a complete checkpoint: no .metadata" in str(failure(e.value))
    ref = torch.load(root / "ref-2.pt", weights_only=False)
    assert_same(load_one(root / "step-2", ref), ref)
    # The next save picks step-2 as its base, not the unfinished step-3.
    w = HexzStorageWriter(root / "step-4", base="auto")
    dcp.save({"model": ref["model"]}, storage_writer=w)
    with hexz.open(root / "step-4" / "rank-00000.hxz") as a:
        assert a.chain[1].endswith("step-2/rank-00000.hxz")


def test_corrupt_shard_names_the_file(fsdp_run: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "step-1"
    shutil.copytree(fsdp_run / "step-1", ckpt)
    shard = ckpt / "rank-00001.hxz"
    data = bytearray(shard.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    shard.write_bytes(bytes(data))
    ref = torch.load(fsdp_run / "ref-1.pt", weights_only=False)
    with pytest.raises(CheckpointException) as e:
        load_one(ckpt, ref)
    err = failure(e.value)
    assert isinstance(err, hexz.CorruptArchiveError) and f"{ckpt}: rank-00001.hxz" in str(err), err


def snapshot(model: Any, optim: Any) -> Dict[str, Any]:
    return copy.deepcopy({"model": model.state_dict(), "optim": optim.state_dict()})


def test_plain_state_dict_one_process(models: Path, tmp_path: Path) -> None:
    model = load_minilm(models, layers=1)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    saved = []
    for n in (1, 2, 3):
        train(model, optim, n, 1)
        state = {"model": model.state_dict(), "optim": optim.state_dict()}
        saved.append(copy.deepcopy(state))
        writer = HexzStorageWriter(tmp_path / f"step-{n}", base="auto")
        if n == 3:
            dcp.async_save(state, storage_writer=writer).result()
        else:
            dcp.save(state, storage_writer=writer)
    for n in (1, 2, 3):
        assert assert_same(load_one(tmp_path / f"step-{n}", saved[n - 1]), saved[n - 1]) > 10
    with hexz.open(tmp_path / "step-3" / "rank-00000.hxz") as a:
        assert len(a.chain) == 3
    # One tensor asked for: only its range of the archive is read.
    name = "model.encoder.layer.0.attention.self.query.weight"
    want = saved[2]["model"]["encoder.layer.0.attention.self.query.weight"]
    reader = HexzStorageReader(tmp_path / "step-3")
    one = {"model": {"encoder.layer.0.attention.self.query.weight": torch.zeros_like(want)}}
    dcp.load(one, storage_reader=reader)
    assert bit_equal(one["model"]["encoder.layer.0.attention.self.query.weight"], want), name
    assert 0 < reader.bytes_read < os.path.getsize(tmp_path / "step-3" / "rank-00000.hxz") // 10


def test_full_every_bounds_the_chain(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(64, 64, generator=g), "step": torch.tensor(0), "note": "hello"}
    for n in range(1, 6):
        state["w"] = state["w"] + 0.001 * n
        state["step"] = torch.tensor(n)
        dcp.save(state, storage_writer=HexzStorageWriter(tmp_path / f"s{n}", base="auto", full_every=2))
    chains = []
    for n in range(1, 6):
        with hexz.open(tmp_path / f"s{n}" / "rank-00000.hxz") as a:
            chains.append(len(a.chain))
    assert chains == [1, 2, 1, 2, 1]
    got = {"w": torch.zeros(64, 64), "step": torch.tensor(-1), "note": ""}
    dcp.load(got, storage_reader=HexzStorageReader(tmp_path / "s5"))
    assert bit_equal(got["w"], state["w"]) and int(got["step"]) == 5 and got["note"] == "hello"
    with pytest.raises(hexz.InvalidInputError):
        HexzStorageWriter(tmp_path / "x", full_every=33)
    with pytest.raises(hexz.InvalidInputError, match="not a complete checkpoint"):
        HexzStorageWriter(tmp_path / "s6", base=tmp_path / "missing")
    with pytest.raises(hexz.UnsupportedError):
        HexzStorageWriter("s3://bucket/ckpt")


def test_import_hexz_does_not_import_torch() -> None:
    code = "import sys, hexz; assert 'torch' not in sys.modules; print(hexz.dcp.HexzStorageWriter.__name__)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "HexzStorageWriter"


def test_slice_runs_match_numpy() -> None:
    """The byte runs read for a slice of a saved chunk are exactly its elements."""
    import itertools

    import numpy as np

    from hexz.dcp import _run_count, _runs

    shape = (4, 6, 8)
    a = np.arange(np.prod(shape), dtype=np.int32).reshape(shape)
    raw = a.tobytes()
    for offsets, lengths in [((0, 0, 0), (4, 6, 8)), ((1, 0, 0), (2, 6, 8)), ((1, 2, 0), (2, 3, 8)),
                             ((0, 1, 3), (4, 4, 5)), ((3, 5, 7), (1, 1, 1)), ((2, 0, 0), (0, 6, 8))]:
        runs = list(_runs(shape, 4, offsets, lengths))
        assert len(runs) == (_run_count(shape, offsets, lengths) if all(lengths) else 0)
        got = b"".join(raw[s:s + n] for s, n in runs)
        box = a[tuple(slice(o, o + n) for o, n in zip(offsets, lengths))]
        assert got == box.tobytes(), (offsets, lengths)
    assert list(_runs((), 8, (), ())) == [(0, 8)]
    assert all(n > 0 for _, n in itertools.chain(_runs(shape, 4, (0, 0, 1), (4, 6, 2))))
