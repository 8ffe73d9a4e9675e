"""`hexz.safe_open`: ``safetensors.safe_open`` (0.8) over a ``.hxz`` archive.

Same arguments, methods, results and errors as safetensors 0.8, checked by
tests/test_safetensors_compat.py against the real library. Where hexz
deliberately differs (each a safetensors bug, or a layout safetensors cannot
read):

- ``get_slice(...)[...]`` with ``framework="np"`` follows safetensors'
  indexer (bounds past a dimension raise, steps must be positive, lists and
  ``None`` are refused), except that negative slice bounds count from the
  end (safetensors: ``OverflowError``), a start past the stop selects
  nothing (safetensors: ``SystemError``), and ``:`` over a dimension of size
  0 selects it (safetensors: "index 0 out of bounds").
- With ``framework="pt"`` a slice is indexed as torch indexes the whole
  tensor, as safetensors' default (``"mmap"``) backend does, whatever
  ``backend`` says: safetensors' ``"pread"`` backend slices torch tensors
  with its numpy indexer instead. F4 tensors slice too (safetensors: a
  reshape error).
- ``backend`` is checked as safetensors checks it and changes nothing: an
  archive is compressed, so every read decodes into a fresh buffer.
- Under numpy, BF16 and the float8 types come as ``ml_dtypes`` arrays
  (safetensors: ``AttributeError``, ``numpy`` has no such types).
- A device string whose index is not a number raises hexz's
  ``InvalidInputError`` (a ``ValueError``), "device cuda:x is invalid"
  (safetensors: ``ValueError`` "invalid digit found in string").
"""

from __future__ import annotations

import importlib
import json
import operator
import os
import re
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _dtypes
from ._archive import Archive, PathLike, TensorInfo, TensorSlice
from .errors import ArchiveNotFoundError, InvalidIndexError, InvalidInputError, NotFoundError

__all__ = ["safe_open", "SafeSlice"]

Device = Union[str, int]


class _Framework(NamedTuple):
    #: safetensors' name for it, as its messages give it
    name: str
    #: what hexz decodes into: "pt" (torch) or "np" (numpy)
    decode: str
    #: the module a numpy array is handed to, or None
    module: Optional[str]


_TORCH = _Framework("pytorch", "pt", None)
_NUMPY = _Framework("numpy", "np", None)
_TENSORFLOW = _Framework("tensorflow", "np", "tensorflow")
_FLAX = _Framework("flax", "np", "jax")
_MLX = _Framework("mlx", "np", "mlx")
_PADDLE = _Framework("paddle", "np", "paddle")

# Every name safetensors 0.8 accepts.
_FRAMEWORKS = {
    "pt": _TORCH, "torch": _TORCH, "pytorch": _TORCH,
    "np": _NUMPY, "numpy": _NUMPY,
    "tf": _TENSORFLOW, "tensorflow": _TENSORFLOW,
    "jax": _FLAX, "flax": _FLAX,
    "mlx": _MLX,
    "paddle": _PADDLE,
}

# Accelerators safetensors names; "cuda" alone means "cuda:0".
_INDEXED_DEVICES = ("cuda", "musa", "npu", "xpu", "xla", "mlu", "hpu")


def _not_a_str(argument: str, value: Any) -> TypeError:
    """The TypeError safetensors (PyO3) gives a non-str argument."""
    what = "'None'" if value is None else f"'{type(value).__name__}' object"
    return TypeError(f"argument '{argument}': {what} is not an instance of 'str'")


def _parse_framework(value: Any) -> _Framework:
    if not isinstance(value, str):
        raise _not_a_str("framework", value)
    try:
        return _FRAMEWORKS[value]
    except KeyError:
        raise InvalidInputError(f"framework {value} is invalid") from None


def _parse_device(value: Any) -> Device:
    """"cpu", "cuda:N", "mps", ... or a bare accelerator index, as
    safetensors parses it."""
    if value is None:
        return "cpu"
    if isinstance(value, str):
        if value in ("cpu", "mps"):
            return value
        if value in _INDEXED_DEVICES:
            return f"{value}:0"
        kind, _, index = value.partition(":")
        if (kind in _INDEXED_DEVICES or kind == "mps") and re.fullmatch(r"\+?[0-9]+", index):
            n = int(index)
            if kind != "mps":
                return f"{kind}:{n}"
            if n == 0:
                return "mps"
            raise InvalidInputError(f"device {value} is invalid: only mps or mps:0 is supported")
        raise InvalidInputError(f"device {value} is invalid")
    try:
        n = operator.index(value)
    except TypeError:
        n = -1
    if n < 0:
        raise InvalidInputError(f"device {value!r} is invalid")
    return n


def _parse_backend(value: Any) -> str:
    if not isinstance(value, str):
        raise _not_a_str("backend", value)
    if value not in ("mmap", "pread"):
        raise InvalidInputError(f'backend {json.dumps(value)} is invalid (expected one of: "mmap", "pread")')
    return value


def _closed() -> InvalidInputError:
    e = InvalidInputError("File is closed")
    e.code = "InvalidArgument"
    return e


class safe_open:
    """Drop-in for ``safetensors.safe_open`` over a ``.hxz`` archive::

        with hexz.safe_open("model.hxz", framework="pt") as f:
            for k in f.keys():
                t = f.get_tensor(k)

    `framework` takes safetensors' names (``"pt"``, ``"torch"``,
    ``"pytorch"``, ``"np"``, ``"numpy"``, and ``"tf"``, ``"flax"``/``"jax"``,
    ``"mlx"``, ``"paddle"``, which get numpy arrays converted by that
    library); `device` places torch (and paddle) tensors; `backend`
    (``"mmap"`` or ``"pread"``) is accepted for compatibility;
    `trusted_keys` requires a signature by one of these public keys (as
    :func:`hexz.open`); `identity` and `passphrase` open an encrypted
    archive (as :func:`hexz.open`). Errors are
    safetensors' (``SafetensorError`` is the base of hexz's errors).
    """

    def __init__(
        self,
        filename: PathLike,
        framework: str = "np",
        device: Any = "cpu",
        *,
        backend: str = "mmap",
        parent_dirs: Optional[Sequence[PathLike]] = None,
        trusted_keys: Optional[Sequence[PathLike]] = None,
        identity: Union[PathLike, Sequence[PathLike], None] = None,
        passphrase: Union[str, bytes, None] = None,
    ) -> None:
        self._archive: Optional[Archive] = None
        path = os.fspath(filename)
        self._framework = _parse_framework(framework)
        self._device = _parse_device(device)
        self._backend = _parse_backend(backend)
        try:
            archive = Archive(path, parent_dirs, trusted_keys=trusted_keys, identity=identity, passphrase=passphrase)
        except ArchiveNotFoundError as e:
            missing = ArchiveNotFoundError(f"No such file or directory: {path}")
            missing.code = e.code
            raise missing from e
        if self._device != "cpu" and self._framework not in (_TORCH, _PADDLE):
            archive.close()
            raise InvalidInputError(
                f"Device {self._device} is not supported for framework {self._framework.name}"
            )
        try:
            if self._framework is _TORCH:
                _dtypes.import_torch()
            elif self._framework is _PADDLE:
                importlib.import_module("paddle")
            self._metadata = _source_metadata(archive)
        except BaseException:
            archive.close()
            raise
        self._archive = archive

    def __enter__(self) -> "safe_open":
        return self

    def __exit__(self, *exc: Any) -> None:
        # As safetensors: the handle is gone, but slices taken from it keep
        # the archive open (and readable) until they are dropped.
        self._archive = None

    def _open(self) -> Archive:
        if self._archive is None:
            raise _closed()
        return self._archive

    def _info(self, archive: Archive, name: Any, file: Optional[str] = None) -> TensorInfo:
        if not isinstance(name, str):
            raise _not_a_str("name", name)
        if file is not None and not isinstance(file, str):
            raise _not_a_str("file", file)
        if name not in archive:
            e = NotFoundError(f"File does not contain tensor {name}")
            e.code = "NotFound"
            raise e
        return archive.tensor_info(name, file)

    def metadata(self) -> Optional[Dict[str, str]]:
        """The safetensors ``__metadata__``, or None when there is none."""
        self._open()
        return None if self._metadata is None else dict(self._metadata)

    def keys(self) -> List[str]:
        """Tensor names, sorted (as safetensors gives them)."""
        return sorted(self._open().keys())

    def offset_keys(self) -> List[str]:
        """Tensor names in file (offset) order."""
        return self._open().keys()

    def get_tensor(self, name: str, *, file: Optional[str] = None) -> Any:
        """Tensor `name` in the framework (and on the device) asked for; in
        a folder archive, `file` names the file holding it (needed when
        several files hold the name)."""
        archive = self._open()
        info = self._info(archive, name, file)
        return _finish(archive._get(info, self._framework.decode), self._framework, self._device)

    def get_tensors(self) -> Dict[str, Any]:
        """Every tensor, in offset order, decoded in parallel."""
        archive = self._open()
        names = archive.keys()
        out = archive._read_many(names, self._framework.decode)
        return {k: _finish(out[k], self._framework, self._device) for k in names}

    def get_slice(self, name: str, *, file: Optional[str] = None) -> "SafeSlice":
        """A tensor not read yet (of folder file `file`): index it to read what is asked for."""
        archive = self._open()
        return SafeSlice(archive, self._info(archive, name, file), self._framework, self._device)


def _source_metadata(archive: Archive) -> Optional[Dict[str, str]]:
    if archive.source_format != "safetensors":
        return None
    found: Optional[Dict[str, str]] = json.loads(archive.source_header()[8:].decode("utf-8")).get("__metadata__")
    return found


def _finish(array: Any, framework: _Framework, device: Device) -> Any:
    """A decoded array handed to its framework and placed on its device."""
    if framework is _TORCH:
        return array if device == "cpu" else array.to(device)
    if framework.module is None:
        return array
    if framework is _TENSORFLOW:
        return importlib.import_module("tensorflow").convert_to_tensor(array)
    if framework is _FLAX:
        return importlib.import_module("jax").numpy.array(array)
    if framework is _MLX:
        importlib.import_module("mlx")
        return importlib.import_module("mlx.core").array(array)
    place = f"gpu:{device.split(':')[1]}" if isinstance(device, str) and device.startswith("cuda:") else device
    return importlib.import_module("paddle").to_tensor(array, place=place)


# One axis of a safetensors index: an element (dropped from the shape) or a
# range with a positive step; bounds as given, None where left out.
class _Pick(NamedTuple):
    at: int


class _Range(NamedTuple):
    start: Optional[int]
    stop: Optional[int]
    step: int

    def text(self) -> str:
        bounds = f"{'' if self.start is None else self.start}:{'' if self.stop is None else self.stop}"
        return bounds if self.step == 1 else f"{bounds}:{self.step}"


_Axis = Union[_Pick, _Range]


def _axes(key: Any, shape: Sequence[int]) -> List[Tuple[int, int, int, bool]]:
    """safetensors' numpy indexer: `key` as (start, stop, step, picked) per
    axis of `shape`, bounds resolved and checked; raises what safetensors
    raises (see the module's notes for the three bugs not copied)."""
    ndim = len(shape)
    if isinstance(key, list):
        if key:
            raise InvalidInputError("Non empty lists are not implemented")
        items: List[Any] = [slice(0, 0)]
    elif isinstance(key, tuple):
        items = list(key)
    else:
        items = [key]
    axes: List[Any] = []
    ellipsis_at: Optional[int] = None
    for position, item in enumerate(items):
        if isinstance(item, slice):
            start = None if item.start is None else operator.index(item.start)
            stop = None if item.stop is None else operator.index(item.stop)
            step = 1 if item.step is None else operator.index(item.step)
            if step <= 0:
                raise InvalidInputError(f"Slice step must be a positive integer, got {step}")
            axes.append(_Range(start, stop, step))
        elif item is Ellipsis:
            if ellipsis_at is not None:
                raise InvalidInputError("Only one ellipsis (...) is allowed in slice index")
            ellipsis_at = len(axes)
            axes.append(item)
        else:
            try:
                at: Optional[int] = operator.index(item)
            except TypeError:
                at = None
            if at is None or not -(2**31) <= at < 2**31:  # safetensors takes an i32
                raise InvalidInputError(
                    f"Unsupported slice index at position {position}: expected slice, int, or ellipsis"
                )
            axes.append(_Pick(at))
    if ellipsis_at is not None:
        fill = [_Range(None, None, 1)] * max(0, ndim - (len(axes) - 1))
        axes[ellipsis_at:ellipsis_at + 1] = fill
    picks: List[_Axis] = []
    for d, axis in enumerate(axes):
        size = shape[d] if d < ndim else 0
        if isinstance(axis, _Pick) and axis.at < 0:
            if axis.at + size < 0:
                raise InvalidIndexError(f"Invalid index {axis.at} for dimension {d} of size {size}")
            axis = _Pick(axis.at + size)
        picks.append(axis)
    shown = "[" + ", ".join(str(a.at) if isinstance(a, _Pick) else a.text() for a in picks) + "]"

    def out_of_bounds(asked: int, d: int) -> InvalidIndexError:
        return InvalidIndexError(f"Error during slicing {shown} with shape {list(shape)}: index {asked} out of "
                                 f"bounds for tensor dimension #{d} of size {shape[d]}")

    if len(picks) > ndim:
        raise InvalidIndexError(f"Error during slicing {shown} with shape {list(shape)}: "
                                f"more slicing indexes than dimensions in tensor")
    resolved = []
    for d, size in enumerate(shape):
        if d >= len(picks):
            resolved.append((0, size, 1, False))
            continue
        axis = picks[d]
        if isinstance(axis, _Pick):
            if axis.at >= size:
                raise out_of_bounds(axis.at, d)
            resolved.append((axis.at, axis.at + 1, 1, True))
            continue
        bounds = []
        for given, default in ((axis.start, 0), (axis.stop, size)):
            value = default if given is None else given
            if value < 0:  # from the end, as Python counts (safetensors: OverflowError)
                value += size
                if value < 0:
                    raise out_of_bounds(value - size, d)
            bounds.append(value)
        start, stop = bounds
        if start >= size and not start == size == 0:  # ":" over an empty axis selects it
            raise out_of_bounds(start, d)
        if stop > size:
            raise out_of_bounds(stop - 1, d)
        resolved.append((start, max(start, stop), axis.step, False))
    return resolved


class SafeSlice:
    """A tensor of a :class:`safe_open` not read yet (safetensors'
    ``PySafeSlice``): index it to read only the rows the index needs. It
    stays usable after its ``safe_open`` closed, as safetensors' does."""

    def __init__(self, archive: Archive, info: TensorInfo, framework: _Framework, device: Device) -> None:
        self._rows = TensorSlice(archive, info, framework.decode)
        self._info = info
        self._framework = framework
        self._device = device

    def get_shape(self) -> List[int]:
        """The shape of the whole tensor, as the file records it."""
        return list(self._rows.shape)

    def get_dtype(self) -> str:
        """The dtype of the whole tensor ("F32", "BF16", ...)."""
        return self._info.dtype

    def __getitem__(self, key: Any) -> Any:
        if self._framework is _TORCH:
            return _finish(self._torch_item(key), self._framework, self._device)
        return _finish(self._numpy_item(key), self._framework, self._device)

    def _whole(self) -> Any:
        return self._rows._archive._get(self._info, self._framework.decode)

    def _torch_item(self, key: Any) -> Any:
        """``tensor[key]`` as torch gives it, reading only the rows of the
        first axis when the key starts with an int or a slice."""
        shape = self._rows.shape
        parts = key if isinstance(key, tuple) else (key,)
        if not shape or not parts:
            return self._whole()[key]
        first, n = parts[0], shape[0]
        if isinstance(first, slice):
            if first.step is not None and operator.index(first.step) < 0:
                raise ValueError("step must be greater than zero")  # torch's words; step 0 is slice.indices'
            start, stop, step = first.indices(n)
            rows = self._rows._rows(start, max(start, stop))
            return rows[(slice(None, None, step), *parts[1:])]
        if not isinstance(first, (int, np.integer)) or isinstance(first, bool):
            return self._whole()[key]  # lists, tensors, bools, None, ...: torch's indexing of it all
        at = operator.index(first)
        i = at + n if at < 0 else at
        if not 0 <= i < n:
            raise InvalidIndexError(f"index {at} is out of bounds for dimension 0 with size {n}")
        return self._rows._rows(i, i + 1)[(0, *parts[1:])]

    def _numpy_item(self, key: Any) -> Any:
        """safetensors' indexer: always a new array (0-d for a single
        element), reading only the rows the first axis needs."""
        shape = self._rows.shape
        axes = _axes(key, shape)
        out_shape = tuple(len(range(a, b, step)) for a, b, step, picked in axes if not picked)
        if not shape:
            return self._whole().reshape(())
        if 0 in out_shape:
            return np.empty(out_shape, dtype=_dtypes.numpy_dtype(self._rows._kind))
        lo, hi = axes[0][0], axes[0][1]
        rows = self._rows._rows(lo, hi)
        index = tuple(slice(a - lo, b - lo, step) if d == 0 else slice(a, b, step)
                      for d, (a, b, step, _) in enumerate(axes))
        return np.ascontiguousarray(rows[index]).reshape(out_shape)
