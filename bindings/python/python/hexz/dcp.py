"""A storage backend for ``torch.distributed.checkpoint`` (DCP): each step
stored against the last, read back range by range::

    import torch.distributed.checkpoint as dcp
    from hexz.dcp import HexzStorageReader, HexzStorageWriter

    dcp.save(state_dict, storage_writer=HexzStorageWriter("ckpt/step-300", base="auto"))
    dcp.load(state_dict, storage_reader=HexzStorageReader("ckpt/step-300"))

A checkpoint is a folder: one archive per rank, ``rank-00000.hxz``,
``rank-00001.hxz``, ... (a safetensors file inside, one tensor per write item
named ``fqn@offsets``, non-tensor objects as ``fqn#bytes`` u8 tensors), and
``.metadata``: DCP's pickled :class:`Metadata`, written last by the
coordinator, itself kept as a small raw archive (so that it is checked by
its BLAKE3 hashes and read from ``s3://`` like the shards). A folder without
``.metadata`` is an unfinished save: it is never loaded and never chosen as
a base.

One archive per rank, because every rank then writes alone and in parallel
(no shared file, no gather of tensor data), and because with the same
sharding a rank holds the same tensors from step to step: its archive is
stored against the same rank's archive of the previous step, so tensors
that did not change cost nothing and changed ones are stored as deltas.

Reading needs this module (the pickled metadata names
:class:`HexzItem`) and torch; ``import hexz`` alone does not import torch.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import os
import pickle
import tempfile
import uuid

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch.distributed.checkpoint.metadata import Metadata, MetadataIndex, StorageMeta
from torch.distributed.checkpoint.planner import (
    LoadItemType,
    LoadPlan,
    LoadPlanner,
    ReadItem,
    SavePlan,
    SavePlanner,
    WriteItem,
    WriteItemType,
)
from torch.distributed.checkpoint.storage import StorageReader, StorageWriter, WriteResult
from torch.futures import Future

from . import _dtypes
from ._archive import Archive
from ._common import StoreReport
from .checkpoint import save as _save
from .errors import (
    ArchiveNotFoundError,
    CorruptArchiveError,
    HexzError,
    InvalidInputError,
    UnsupportedError,
)

__all__ = ["HexzStorageWriter", "HexzStorageReader", "HexzItem", "latest_checkpoint", "is_complete", "rank_file",
           "DEFAULT_FULL_EVERY", "METADATA"]

PathLike = Union[str, "os.PathLike[str]"]

#: The file whose presence marks a checkpoint folder complete (written last).
METADATA = ".metadata"

#: A full (parentless) checkpoint every this many saves by default: chains of
#: at most 4 archives (the format allows 32, ``MAX_CHAIN_DEPTH``). Each link
#: adds to the time of a load and of the next save (a delta decodes its
#: base's blocks through the chain) and must be kept on disk; on MiniLM with
#: AdamW a full checkpoint is 1.55x a delta, so chains of 4 cost 6% more
#: bytes than chains of 8 (bench/dcp_bench.py).
DEFAULT_FULL_EVERY = 4

_MAX_CHAIN_DEPTH = 32  # hexz-format layout::limits::MAX_CHAIN_DEPTH


@dataclasses.dataclass(frozen=True)
class HexzItem:
    """Where a write item is: the rank's archive (relative to the checkpoint
    folder) and the tensor's name in it. DCP keeps one per
    :class:`MetadataIndex` in ``Metadata.storage_data``."""

    file: str
    name: str


@dataclasses.dataclass(frozen=True)
class _RankPlan:
    """What the coordinator tells each rank: its archive, and the archive of
    the previous checkpoint to store it against (or None)."""

    file: str
    parent: Optional[str]


def _is_url(path: str) -> bool:
    return "://" in path


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}" if _is_url(folder) else os.path.join(folder, name)


def rank_file(rank: int) -> str:
    """The archive name of `rank`'s shard."""
    return f"rank-{rank:05d}.hxz"


def is_complete(path: PathLike) -> bool:
    """Whether the local folder `path` is a finished checkpoint (its
    ``.metadata`` exists)."""
    return os.path.isfile(os.path.join(os.fspath(path), METADATA))


def latest_checkpoint(root: PathLike, exclude: Optional[PathLike] = None) -> Optional[str]:
    """The newest complete checkpoint folder under `root` (by the time its
    ``.metadata`` was written), or None; `exclude` is skipped (the folder
    being written). Unfinished folders (no ``.metadata``) are ignored."""
    root = os.fspath(root)
    skip = None if exclude is None else os.path.realpath(os.fspath(exclude))
    best: Optional[Tuple[int, str]] = None
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return None
    for e in entries:
        if not e.is_dir() or os.path.realpath(e.path) == skip:
            continue
        try:
            mtime = os.stat(os.path.join(e.path, METADATA)).st_mtime_ns
        except OSError:
            continue
        if best is None or (mtime, e.name) > (best[0], os.path.basename(best[1])):
            best = (mtime, e.path)
    return None if best is None else best[1]


def _naming(e: HexzError, where: str) -> HexzError:
    """`e` again, its message led by `where` (the checkpoint and rank file)."""
    out = type(e)(f"{where}: {e}")
    out.code = e.code
    return out


def _item_name(index: MetadataIndex, kind: WriteItemType) -> str:
    if kind == WriteItemType.BYTE_IO:
        return f"{index.fqn}#bytes"
    offset = "" if index.offset is None else ",".join(str(int(o)) for o in index.offset)
    return f"{index.fqn}@{offset}"


class HexzStorageWriter(StorageWriter):
    """Write a DCP checkpoint to the folder `path`, one ``.hxz`` per rank.

    `base`: None (a full checkpoint), a previous checkpoint folder, or
    ``"auto"``: the newest complete sibling of `path` (a folder of the same
    root with a ``.metadata``). Each rank stores its archive against the
    base's archive of the same rank: unchanged tensors are referenced,
    changed ones stored as deltas. After `full_every` - 1 deltas in a row the
    next save is full again (no parent), so a chain holds at most
    `full_every` archives (1 to 32, the format's limit; default 4). Keep the
    checkpoints a chain refers to: deleting a base breaks its children.

    `compression` and `level` as for :func:`hexz.checkpoint.save`; `threads`
    for compression (0: all cores). Writing to a URL is not supported yet
    (store locally, then upload); :class:`HexzStorageReader` reads
    ``s3://``."""

    def __init__(
        self,
        path: Optional[PathLike] = None,
        base: Optional[PathLike] = None,
        full_every: int = DEFAULT_FULL_EVERY,
        *,
        compression: str = "zstd",
        level: Optional[int] = None,
        threads: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(full_every, int) or not 1 <= full_every <= _MAX_CHAIN_DEPTH:
            raise InvalidInputError(f"full_every must be an int from 1 to {_MAX_CHAIN_DEPTH}, not {full_every!r}")
        self.path: Optional[str] = None if path is None else self._check_path(path)
        self.base = None if base is None else os.fspath(base)
        if self.base not in (None, "auto") and not is_complete(self.base):
            raise InvalidInputError(f"base {self.base} is not a complete checkpoint (no {METADATA}: "
                                    "missing, or its save did not finish)")
        self.full_every = full_every
        self.compression = compression
        self.level = level
        self.threads = threads
        self.save_id = uuid.uuid4().hex
        self.is_coordinator = False
        self.rank = 0
        #: what the last write_data stored: the rank's StoreReport
        self.last_report: Optional[StoreReport] = None

    @staticmethod
    def _check_path(path: PathLike) -> str:
        p = os.fspath(path)
        if _is_url(p):
            raise UnsupportedError(f"{p}: writing a checkpoint to a URL is not supported yet "
                                   "(save to a local folder, then upload it; HexzStorageReader reads s3://)")
        return p

    def _folder(self) -> str:
        if self.path is None:
            raise InvalidInputError("HexzStorageWriter has no path: give one, or a checkpoint_id to dcp.save")
        return self.path

    # -- StorageWriter ------------------------------------------------------

    def reset(self, checkpoint_id: Union[str, "os.PathLike[str]", None] = None) -> None:
        if checkpoint_id is not None:
            self.path = self._check_path(checkpoint_id)
        self.save_id = uuid.uuid4().hex

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Union[str, "os.PathLike[str]"]) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike)) and not _is_url(os.fspath(checkpoint_id))

    def storage_meta(self) -> Optional[StorageMeta]:
        return StorageMeta(checkpoint_id=self.path, save_id=self.save_id)

    def set_up_storage_writer(self, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("use_collectives", True):
            raise UnsupportedError("HexzStorageWriter needs use_collectives=True: the coordinator writes one .metadata")
        self.is_coordinator = is_coordinator
        rank = kwargs.get("rank")
        self.rank = int(rank) if rank is not None else 0
        folder = self._folder()
        os.makedirs(folder, exist_ok=True)
        if is_coordinator:
            # Saving again into a finished folder: it must stop looking
            # complete before any rank replaces its archive. Every rank's
            # write_data runs after the coordinator has planned, so after this.
            try:
                os.unlink(os.path.join(folder, METADATA))
            except FileNotFoundError:
                pass

    def prepare_local_plan(self, plan: SavePlan) -> SavePlan:
        return plan

    def _base_folder(self) -> Optional[str]:
        folder = self._folder()
        if self.base is None:
            return None
        if self.base == "auto":
            return latest_checkpoint(os.path.dirname(os.path.abspath(folder)), exclude=folder)
        if os.path.realpath(self.base) == os.path.realpath(folder):
            raise InvalidInputError(f"{self.base}: a checkpoint cannot be its own base")
        if not is_complete(self.base):
            raise InvalidInputError(f"base {self.base} is not a complete checkpoint (no {METADATA}: "
                                    "missing, or its save did not finish)")
        return self.base

    def prepare_global_plan(self, plans: List[SavePlan]) -> List[SavePlan]:
        # The coordinator picks the base once, so that every rank uses the same.
        base = self._base_folder()
        out = []
        for i, plan in enumerate(plans):
            name = rank_file(i)
            parent = None
            if base is not None and os.path.isfile(os.path.join(base, name)):
                parent = os.path.abspath(os.path.join(base, name))
            out.append(dataclasses.replace(plan, storage_data=_RankPlan(name, parent)))
        return out

    def _parent_for(self, parent: Optional[str]) -> Optional[str]:
        """`parent`, unless its chain is already `full_every` long (or unreadable)."""
        if parent is None:
            return None
        try:
            with Archive(parent, verify_hashes=False) as a:
                depth = len(a.chain)
        except HexzError:
            return None  # a broken base: store in full rather than fail the save
        return parent if depth < self.full_every else None

    def write_data(self, plan: SavePlan, planner: SavePlanner) -> "Future[List[WriteResult]]":
        rp = plan.storage_data
        if not isinstance(rp, _RankPlan):
            raise InvalidInputError("HexzStorageWriter.write_data: the plan was not prepared by HexzStorageWriter")
        tensors: Dict[str, Any] = {}
        results: List[WriteResult] = []
        for item in plan.items:
            name = _item_name(item.index, item.type)
            if name in tensors:
                raise InvalidInputError(f"two write items are both named {name!r}")
            data = planner.resolve_data(item)
            if item.type == WriteItemType.BYTE_IO:
                if isinstance(data, io.BytesIO):
                    raw = data.getvalue()
                elif isinstance(data, torch.Tensor):
                    raise InvalidInputError(f"write item {name!r}: a tensor where DCP promised bytes")
                else:
                    raw = bytes(data.read() or b"")
                value: Any = np.frombuffer(raw, dtype=np.uint8)
                nbytes = len(raw)
            else:
                if not isinstance(data, torch.Tensor):
                    raise InvalidInputError(f"write item {name!r}: {type(data).__name__} where DCP promised a tensor")
                t = data.detach()
                if t.device.type != "cpu":
                    t = t.cpu()
                value = t.contiguous()
                nbytes = value.numel() * value.element_size()
            tensors[name] = value
            results.append(WriteResult(index=item.index, size_in_bytes=nbytes, storage_data=HexzItem(rp.file, name)))
        if tensors:
            dst = os.path.join(self._folder(), rp.file)
            self.last_report = _save(tensors, dst, base=self._parent_for(rp.parent),
                                     metadata={"hexz.dcp.rank": str(self.rank)},
                                     compression=self.compression, level=self.level, threads=self.threads)
        fut: "Future[List[WriteResult]]" = Future()
        fut.set_result(results)
        return fut

    def finish(self, metadata: Metadata, results: List[List[WriteResult]]) -> None:
        folder = self._folder()
        metadata.storage_data = {wr.index: wr.storage_data for rank in results for wr in rank}
        metadata.storage_meta = self.storage_meta()
        blob = pickle.dumps(metadata)
        # The pickle goes into a raw archive (hashed, readable remotely),
        # stored under a temporary name, then renamed: .metadata appears whole
        # and last, after every rank's archive.
        fd, pickled = tempfile.mkstemp(prefix=".metadata-", suffix=".pickle", dir=folder)
        tmp = os.path.join(folder, f".metadata-{self.save_id}.tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            from . import store

            store(pickled, tmp, raw=True, force=True)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, os.path.join(folder, METADATA))
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        finally:
            for p in (pickled, tmp):
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass


def _runs(shape: Sequence[int], itemsize: int, offsets: Sequence[int],
          lengths: Sequence[int]) -> Iterator[Tuple[int, int]]:
    """The contiguous byte runs (start in the tensor, length) of the box
    `offsets` + `lengths` of a C-ordered tensor of `shape`, in C order."""
    nd = len(shape)
    if nd == 0:
        yield 0, itemsize
        return
    if any(n == 0 for n in lengths):
        return
    strides = [itemsize] * nd
    for d in range(nd - 2, -1, -1):
        strides[d] = strides[d + 1] * shape[d + 1]
    k = nd - 1  # the outermost axis that is cut: every axis after it is whole
    while k > 0 and offsets[k] == 0 and lengths[k] == shape[k]:
        k -= 1
    run = lengths[k] * strides[k]
    for idx in itertools.product(*(range(offsets[d], offsets[d] + lengths[d]) for d in range(k))):
        yield sum(i * s for i, s in zip(idx, strides)) + offsets[k] * strides[k], run


# More contiguous runs than this in one slice: read the rows it spans instead.
_MAX_RUNS = 64


def _run_count(shape: Sequence[int], offsets: Sequence[int], lengths: Sequence[int]) -> int:
    """How many contiguous runs :func:`_runs` gives."""
    nd = len(shape)
    k = nd - 1
    while k > 0 and offsets[k] == 0 and lengths[k] == shape[k]:
        k -= 1
    count = 1
    for d in range(max(k, 0)):
        count *= lengths[d]
    return count


class HexzStorageReader(StorageReader):
    """Read a DCP checkpoint written by :class:`HexzStorageWriter` from the
    folder or URL `path` (``s3://bucket/prefix/step-300``; `endpoint_url`,
    `region`, `cache_bytes` as for :func:`hexz.open`).

    Each read item is decoded from its range of the rank's archive: only
    the blocks holding the slice asked for are read, straight into the
    destination tensor when it is contiguous. Loading works with any
    sharding (DCP's planner maps the saved chunks onto the new ones)."""

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        threads: int = 0,
        endpoint_url: Optional[str] = None,
        region: Optional[str] = None,
        cache_bytes: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.path: Optional[str] = None if path is None else os.fspath(path)
        self.threads = threads
        self.endpoint_url = endpoint_url
        self.region = region
        self.cache_bytes = cache_bytes
        self.load_id = uuid.uuid4().hex
        self.storage_data: Dict[MetadataIndex, HexzItem] = {}
        #: bytes read from the rank archives (local file or remote) by read_data
        self.bytes_read = 0

    def _folder(self) -> str:
        if self.path is None:
            raise InvalidInputError("HexzStorageReader has no path: give one, or a checkpoint_id to dcp.load")
        return self.path

    def _open(self, name: str) -> Archive:
        where = _join(self._folder(), name)
        try:
            return Archive(where, endpoint_url=self.endpoint_url, region=self.region, cache_bytes=self.cache_bytes)
        except HexzError as e:
            raise _naming(e, f"checkpoint {self._folder()}: {name}") from e

    # -- StorageReader ------------------------------------------------------

    def reset(self, checkpoint_id: Union[str, "os.PathLike[str]", None] = None) -> None:
        if checkpoint_id is not None:
            self.path = os.fspath(checkpoint_id)
        self.load_id = uuid.uuid4().hex
        self.storage_data = {}
        self.bytes_read = 0

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id: Union[str, "os.PathLike[str]"]) -> bool:
        return isinstance(checkpoint_id, (str, os.PathLike))

    def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
        folder = self._folder()
        if not _is_url(folder) and not os.path.isfile(os.path.join(folder, METADATA)):
            if os.path.isdir(folder):
                raise ArchiveNotFoundError(f"{folder}: not a complete checkpoint: no {METADATA} (its save did not "
                                           "finish, or it is not a hexz DCP checkpoint)")
            raise ArchiveNotFoundError(f"{folder}: no such checkpoint folder")
        with self._open(METADATA) as a:
            blob = a.read(0, a.size)
        try:
            metadata = pickle.loads(blob)
        except Exception as e:
            raise CorruptArchiveError(f"checkpoint {folder}: {METADATA} does not hold DCP metadata: {e}") from e
        if not isinstance(metadata, Metadata):
            raise CorruptArchiveError(f"checkpoint {folder}: {METADATA} holds a {type(metadata).__name__}, "
                                      "not DCP Metadata")
        if getattr(metadata, "storage_meta", None) is None:
            metadata.storage_meta = StorageMeta()
        assert metadata.storage_meta is not None
        metadata.storage_meta.load_id = self.load_id
        return metadata

    def set_up_storage_reader(self, metadata: Metadata, is_coordinator: bool, *args: Any, **kwargs: Any) -> None:
        data = metadata.storage_data
        if not isinstance(data, dict) or not all(isinstance(v, HexzItem) for v in data.values()):
            raise CorruptArchiveError(f"checkpoint {self._folder()}: its metadata was not written by "
                                      "HexzStorageWriter")
        self.storage_data = data

    def prepare_local_plan(self, plan: LoadPlan) -> LoadPlan:
        return plan

    def prepare_global_plan(self, plans: List[LoadPlan]) -> List[LoadPlan]:
        return plans

    def read_data(self, plan: LoadPlan, planner: LoadPlanner) -> "Future[None]":
        per_file: Dict[str, List[ReadItem]] = {}
        for req in plan.items:
            try:
                item = self.storage_data[req.storage_index]
            except KeyError:
                raise CorruptArchiveError(f"checkpoint {self._folder()}: no storage entry for "
                                          f"{req.storage_index}") from None
            per_file.setdefault(item.file, []).append(req)
        for name, reqs in per_file.items():
            with self._open(name) as a:
                try:
                    self._read_file(a, reqs, planner)
                except HexzError as e:
                    raise _naming(e, f"checkpoint {self._folder()}: {name}") from e
                self.bytes_read += a.io_stats()["bytes"]
        fut: "Future[None]" = Future()
        fut.set_result(None)
        return fut

    # At most this many bytes of decoded tensors are held before being
    # copied into their destinations (when they cannot be decoded in place).
    _BATCH_BYTES = 256 << 20

    def _read_file(self, a: Archive, reqs: List[ReadItem], planner: LoadPlanner) -> None:
        pending: List[Tuple[ReadItem, Any, Any]] = []  # (request, decoded, destination)
        jobs: List[Tuple[int, int, int]] = []
        held = 0

        def flush() -> None:
            nonlocal held
            if jobs:
                a._native._read_many_into_addresses(jobs, self.threads)
            for req, box, target in pending:
                if box is not target:
                    target.copy_(box)
                planner.commit_tensor(req, target)
            pending.clear()
            jobs.clear()
            held = 0

        for req in reqs:
            info = a.tensor_info(self.storage_data[req.storage_index].name)
            if req.type == LoadItemType.BYTE_IO:
                planner.load_bytes(req, io.BytesIO(a.read(info.offset, info.length)))
                continue
            dtype = _dtypes.torch_dtype(info.dtype)
            shape = list(info.shape)
            lengths = [int(n) for n in req.lengths]
            offsets = [int(o) for o in req.storage_offsets]
            if len(shape) != len(lengths) or any(o + n > s for o, n, s in zip(offsets, lengths, shape)):
                raise CorruptArchiveError(f"{a.path}: tensor {info.name!r} {shape} does not hold the slice "
                                          f"at {offsets} of {lengths}")
            itemsize = torch.empty((), dtype=dtype).element_size()
            numel = 1
            for s in shape:
                numel *= s
            if numel * itemsize != info.length:  # F4: two elements a byte
                raise UnsupportedError(f"{a.path}: tensor {info.name!r}: {info.dtype} {shape} cannot be read by slices")
            target = planner.resolve_tensor(req).detach()
            if list(target.shape) != lengths:
                raise CorruptArchiveError(f"{a.path}: tensor {info.name!r}: the slice is {lengths}, "
                                          f"its destination {list(target.shape)}")
            runs = _run_count(shape, offsets, lengths)
            if runs > _MAX_RUNS:
                # Many short runs (a column slice): read the rows the slice
                # spans in one range (their blocks are decoded either way),
                # then take the slice.
                rows = [lengths[0], *shape[1:]]
                span = torch.empty(rows, dtype=dtype)
                if span.numel():
                    start = offsets[0] * (info.length // shape[0])
                    jobs.append((span.data_ptr(), span.numel() * itemsize, info.offset + start))
                box = span
                for d in range(1, len(shape)):
                    box = box.narrow(d, offsets[d], lengths[d])
                direct = False
            else:
                direct = target.device.type == "cpu" and target.dtype == dtype and target.is_contiguous()
                box = target if direct else torch.empty(lengths, dtype=dtype)
                address = box.data_ptr()
                for start, n in _runs(shape, itemsize, offsets, lengths):
                    jobs.append((address, n, info.offset + start))
                    address += n
            pending.append((req, box, target))
            if not direct:
                held += box.untyped_storage().nbytes()
            if held >= self._BATCH_BYTES:
                flush()
        flush()
