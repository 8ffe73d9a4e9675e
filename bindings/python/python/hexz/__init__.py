"""Hexz: seekable, deduplicated archives of ML model checkpoints (``.hxz``).

Read any tensor of an archived safetensors or GGUF model without unpacking
the rest, store a fine-tune as a delta against its base, check an archive::

    import hexz

    with hexz.open("model.hxz") as a:
        w = a.get_tensor("embeddings.word_embeddings.weight")   # numpy array
        head = a.get_slice("lm_head.weight")[0:10]                # reads 10 rows

    hexz.store("model.safetensors", "model.hxz")
    hexz.checkpoint.save({"w": w}, "ft.hxz", base="model.hxz")
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

from . import errors
from ._archive import Archive, FileInfo, ParentInfo, TensorInfo, TensorSlice
from ._archive import _framework
from ._common import Problem, StoreReport, VerifyReport, dirs, metadata_items
from ._hexz import FORMAT_VERSION, __version__
from ._hexz import extract as _extract
from ._hexz import store as _store
from ._hexz import verify as _verify
from .errors import (
    ArchiveNotFoundError,
    CorruptArchiveError,
    HexzError,
    HexzIOError,
    HexzMemoryError,
    InvalidInputError,
    NotFoundError,
    ParentMissingError,
    UnsupportedError,
)

PathLike = Union[str, "os.PathLike[str]"]

__all__ = [
    "open",
    "safe_open",
    "store",
    "extract",
    "verify",
    "checkpoint",
    "errors",
    "Archive",
    "TensorInfo",
    "TensorSlice",
    "FileInfo",
    "ParentInfo",
    "StoreReport",
    "VerifyReport",
    "Problem",
    "HexzError",
    "CorruptArchiveError",
    "ParentMissingError",
    "InvalidInputError",
    "NotFoundError",
    "ArchiveNotFoundError",
    "UnsupportedError",
    "HexzIOError",
    "HexzMemoryError",
    "FORMAT_VERSION",
    "__version__",
]


def open(  # noqa: A001 - the package's entry point, as hexz.open in the docs
    path: PathLike,
    parent_dirs: Optional[Sequence[PathLike]] = None,
    *,
    verify_hashes: bool = True,
    read_slots: int = 0,
    endpoint_url: Optional[str] = None,
    region: Optional[str] = None,
    cache_bytes: Optional[int] = None,
    timeout: Optional[float] = None,
) -> Archive:
    """Open the archive at `path` with its parent chain. Parents are found
    beside it by their recorded path, then in `parent_dirs`; each is checked
    by identity. `read_slots` bounds the reads running at once (0: 4).

    `path` may be a URL: ``s3://bucket/key`` (credentials from the standard
    AWS variables; `endpoint_url` for a local S3 server, `region`) or
    ``http(s)://``. Only the index pages and blocks a read needs are
    fetched; `cache_bytes` of them are kept (64 MiB); `timeout` is the stall
    timeout in seconds (15): the longest wait for a response to start or
    for its next bytes (a slow transfer that keeps moving is not cut off)."""
    return Archive(path, parent_dirs, verify_hashes=verify_hashes, read_slots=read_slots, endpoint_url=endpoint_url,
                   region=region, cache_bytes=cache_bytes, timeout=timeout)


class safe_open:
    """Drop-in for ``safetensors.safe_open`` over a ``.hxz`` archive::

        with hexz.safe_open("model.hxz", framework="pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)
    """

    def __init__(
        self,
        filename: PathLike,
        framework: str = "np",
        device: str = "cpu",
        *,
        parent_dirs: Optional[Sequence[PathLike]] = None,
    ) -> None:
        self._framework = _framework(framework)
        if self._framework == "np" and device != "cpu":
            raise InvalidInputError(f"numpy arrays live on the CPU; device {device!r} needs framework='pt'")
        self._device = device
        self._archive = Archive(filename, parent_dirs)

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc: Any) -> None:
        self._archive.close()

    def keys(self) -> List[str]:
        """Tensor names, sorted (as safetensors gives them)."""
        return sorted(self._archive.keys())

    def offset_keys(self) -> List[str]:
        """Tensor names in file order."""
        return self._archive.keys()

    def metadata(self) -> Optional[Dict[str, str]]:
        """The safetensors ``__metadata__`` (None when there is none)."""
        if self._archive.source_format != "safetensors":
            return None
        header = self._archive.source_header()
        found: Optional[Dict[str, str]] = json.loads(header[8:].decode("utf-8")).get("__metadata__")
        return found

    def _place(self, t: Any) -> Any:
        return t if self._framework == "np" or self._device == "cpu" else t.to(self._device)

    def get_tensor(self, name: str) -> Any:
        return self._place(self._archive.get_tensor(name, self._framework))

    def get_slice(self, name: str) -> TensorSlice:
        return self._archive.get_slice(name, self._framework)


def store(
    src: PathLike,
    dst: PathLike,
    base: Optional[PathLike] = None,
    compression: str = "zstd",
    level: Optional[int] = None,
    metadata: Optional[Mapping[str, Any]] = None,
    *,
    force: bool = False,
    threads: int = 0,
    block_size: Optional[int] = None,
    raw: bool = False,
    chunking: str = "cdc",
    parent_dirs: Optional[Sequence[PathLike]] = None,
) -> StoreReport:
    """Store the file or folder `src` as the archive `dst` (as ``hexz
    store``): safetensors and GGUF are cut at tensor boundaries, other files
    by content. With `base`, blocks the base already holds are referenced
    and changed tensors stored as deltas. `dst` appears only when whole;
    an existing `dst` is replaced only with ``force=True``."""
    report = _store(
        os.fspath(src),
        os.fspath(dst),
        None if base is None else os.fspath(base),
        compression,
        level,
        metadata_items(metadata),
        dirs(parent_dirs),
        force,
        threads,
        block_size,
        raw,
        chunking,
    )
    return StoreReport(**report)


def extract(
    archive: PathLike,
    dst: PathLike,
    *,
    force: bool = False,
    threads: int = 0,
    parent_dirs: Optional[Sequence[PathLike]] = None,
) -> None:
    """Write the archived file (or folder) to `dst`, byte for byte as it was
    stored. `dst` appears only when whole."""
    _extract(os.fspath(archive), os.fspath(dst), force, threads, dirs(parent_dirs))


def verify(
    archive: PathLike,
    deep: bool = False,
    *,
    threads: int = 0,
    parent_dirs: Optional[Sequence[PathLike]] = None,
) -> VerifyReport:
    """Check the archive and its parent chain. Quick: the structure (header,
    footer, index, manifest; no block decoded). Deep: also every block's
    BLAKE3 and the whole file's. Returns a report; raises only when the file
    cannot be read at all (missing, unreadable)."""
    problems, checked, decoded, tensors = _verify(os.fspath(archive), deep, threads, dirs(parent_dirs))
    return VerifyReport([Problem(*p) for p in problems], checked, decoded, tensors, deep)


from . import checkpoint  # noqa: E402 - uses the names above
