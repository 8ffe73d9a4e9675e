"""Checkpoints as dicts of arrays: save a dict of numpy arrays or torch
tensors as an archive holding a standard safetensors file (against a base
checkpoint, so that only what changed is stored), and load it back::

    hexz.checkpoint.save(model.state_dict(), "step500.hxz", base="base.hxz",
                         metadata={"step": "500"})
    state = hexz.checkpoint.load("step500.hxz", framework="pt")

Extracting the archive (``hexz extract``) gives a safetensors file that the
``safetensors`` library loads.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _dtypes
from ._archive import Archive, _framework
from ._common import PathLike, StoreReport, dirs
from ._hexz import _store_arrays
from .errors import InvalidInputError

__all__ = ["save", "load", "manifest", "serialize_header"]


def _as_array(name: str, value: Any) -> Tuple[Any, str, List[int], int, int]:
    """(object kept alive, dtype name, shape, address, bytes) of a tensor
    to store, read in place (a copy only when it is not C-contiguous
    little-endian, or lives off the CPU)."""
    if type(value).__module__.startswith("torch"):
        t = value.detach()
        if t.device.type != "cpu":
            t = t.cpu()
        t = t.contiguous()
        dtype = _dtypes.safetensors_name(t)
        shape = list(t.shape)
        if dtype in _dtypes.PACKED_PAIRS and shape:
            shape[-1] *= 2  # the header counts elements, two to a byte (as safetensors writes it)
        return t, dtype, shape, t.data_ptr(), t.numel() * t.element_size()
    a = np.asarray(value)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    if a.dtype.hasobject:
        raise InvalidInputError(f"tensor {name!r}: arrays of Python objects cannot be stored")
    shape = list(a.shape)
    a = np.require(a, requirements="C")
    return a, _dtypes.safetensors_name(a), shape, a.ctypes.data, a.nbytes


def serialize_header(entries: Sequence[Tuple[str, str, List[int], int]], metadata: Optional[Mapping[str, str]]) -> bytes:
    """The safetensors header (8-byte length + JSON, space-padded to a
    multiple of 8) for `entries` of (name, dtype, shape, bytes) already in
    file order, laid out as the safetensors library lays them out."""
    header: Dict[str, Any] = {}
    if metadata:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text


def save(
    tensors: Mapping[str, Any],
    path: PathLike,
    base: Optional[PathLike] = None,
    metadata: Optional[Mapping[str, str]] = None,
    *,
    compression: str = "zstd",
    level: Optional[int] = None,
    force: bool = True,
    threads: int = 0,
    parent_dirs: Optional[Sequence[PathLike]] = None,
) -> StoreReport:
    """Save `tensors` (name -> numpy array or torch tensor) as the archive
    `path`, holding the safetensors file ``safetensors.save_file`` would
    write. With `base` (an archive), tensors equal to the base's are
    referenced and changed ones stored as deltas. `metadata` goes into the
    safetensors ``__metadata__`` (str -> str, as safetensors requires). The
    arrays are read in place, not copied; the archive appears only when
    whole. An existing `path` is replaced (``force=False`` refuses)."""
    for k, v in (metadata or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidInputError(f"safetensors metadata must map str to str; {k!r}: {v!r} is not")
    held = []
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str) or name == "__metadata__":
            raise InvalidInputError(f"tensor names must be strings other than '__metadata__', not {name!r}")
        obj, dtype, shape, address, nbytes = _as_array(name, value)
        held.append(obj)
        entries.append((name, dtype, shape, nbytes, address))
    # The safetensors library's layout: by dtype (widest first), then name.
    entries.sort(key=lambda e: (-_dtypes.ORDER.index(e[1]), e[0]))
    header = serialize_header([e[:4] for e in entries], metadata)
    report = _store_arrays(
        header,
        [(e[4], e[3]) for e in entries],
        os.fspath(path),
        None if base is None else os.fspath(base),
        compression,
        level,
        [],
        dirs(parent_dirs),
        force,
        threads,
    )
    del held
    return StoreReport(**report)


def load(
    path: PathLike,
    keys: Optional[Iterable[str]] = None,
    framework: str = "np",
    *,
    parent_dirs: Optional[Sequence[PathLike]] = None,
    threads: int = 0,
    trusted_keys: Optional[Sequence[PathLike]] = None,
    identity: Union[PathLike, Sequence[PathLike], None] = None,
    passphrase: Union[str, bytes, None] = None,
) -> Dict[str, Any]:
    """Load tensors (all, or `keys`) of the archive at `path` as a dict of
    numpy arrays (``framework="pt"``: torch tensors). Tensors are decoded
    in parallel straight into their arrays. `trusted_keys` requires a
    signature by one of these public keys, `identity` and `passphrase`
    open an encrypted archive (as :func:`hexz.open`)."""
    fw = _framework(framework)
    with Archive(path, parent_dirs, trusted_keys=trusted_keys, identity=identity, passphrase=passphrase) as a:
        names = a.keys() if keys is None else list(keys)
        return a._read_many(names, fw, threads)


def manifest(path: PathLike, *, parent_dirs: Optional[Sequence[PathLike]] = None) -> Dict[str, Dict[str, Any]]:
    """name -> {dtype, shape, offset, length, storage (and ggml_type for
    GGUF)} of every tensor, without decoding any."""
    with Archive(path, parent_dirs) as a:
        out: Dict[str, Dict[str, Any]] = {}
        for t in a.tensors():
            entry: Dict[str, Any] = {
                "dtype": t.dtype,
                "shape": list(t.shape),
                "offset": t.offset,
                "length": t.length,
                "storage": t.storage,
            }
            if t.ggml_type is not None:
                entry["ggml_type"] = t.ggml_type
            out[t.name] = entry
        return out
