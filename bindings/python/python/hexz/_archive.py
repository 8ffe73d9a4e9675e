"""`hexz.Archive`: an open `.hxz` archive, read tensor by tensor or byte range
by byte range, decoded straight into numpy arrays or torch tensors."""

from __future__ import annotations

import ctypes
import json
import operator
import os
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np

from . import _dtypes
from ._hexz import Archive as _NativeArchive
from ._common import identity_paths, passphrase_bytes
from .errors import CorruptArchiveError, InvalidIndexError, InvalidInputError, NotFoundError

PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["Archive", "TensorInfo", "FileInfo", "ParentInfo", "TensorSlice"]


class TensorInfo(NamedTuple):
    """Where a tensor is and what it holds."""

    name: str
    #: safetensors dtype ("F32", "BF16", ...) or GGML type name ("Q4_K", ...)
    dtype: str
    #: as the source file records it: safetensors order; for GGUF, GGML
    #: order (ne0 first), as gguf-py's ``ReaderTensor.shape``
    shape: Tuple[int, ...]
    #: start of the tensor's bytes in the source file
    offset: int
    #: length of the tensor's bytes
    length: int
    #: GGML type id (GGUF tensors), else None
    ggml_type: Optional[int]
    #: how its blocks are kept: "stored", "deduplicated", "parent", "delta" or "empty"
    storage: str
    #: folder archives: index of the file holding it (see Archive.files())
    file: Optional[int]


class FileInfo(NamedTuple):
    """One entry of a folder archive."""

    path: str
    kind: str  # "file", "directory" or "symlink"
    offset: int
    length: int
    mode: int
    mtime_ns: int
    source_format: str


class ParentInfo(NamedTuple):
    """The archive a delta archive was stored against."""

    identity: str  # hex BLAKE3 identity the child names
    hint: str  # its path as recorded, relative to the child
    location: str  # where it was found


# The names safetensors accepts for numpy and torch.
_FRAMEWORKS = {"np": "np", "numpy": "np", "pt": "pt", "torch": "pt", "pytorch": "pt"}

# GGUF array element type -> numpy dtype (GGUF spec value types).
_GGUF_ARRAY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32,
               7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}


def _framework(name: str) -> str:
    try:
        return _FRAMEWORKS[name]
    except KeyError:
        raise InvalidInputError(f"framework must be 'np' (numpy) or 'pt' (torch), not {name!r}") from None
    except TypeError:  # unhashable
        raise InvalidInputError(f"framework must be a string, not {type(name).__name__}") from None


def _allocate(framework: str, kind: str, shape: Sequence[int]) -> Tuple[Any, int, int]:
    """An uninitialised array to decode into: (array, address, bytes)."""
    if framework == "pt":
        torch = _dtypes.import_torch()
        t = torch.empty(_dtypes.torch_shape(kind, shape), dtype=_dtypes.torch_dtype(kind))
        return t, t.data_ptr(), t.numel() * t.element_size()
    a = np.empty(tuple(shape), dtype=_dtypes.numpy_dtype(kind))
    return a, a.ctypes.data, a.nbytes


class Archive:
    """An open ``.hxz`` archive and its parent chain.

    Safe to read from many threads at once: every read releases the GIL and
    decodes in Rust. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: PathLike,
        parent_dirs: Optional[Sequence[PathLike]] = None,
        *,
        verify_hashes: bool = True,
        read_slots: int = 0,
        endpoint_url: Optional[str] = None,
        region: Optional[str] = None,
        cache_bytes: Optional[int] = None,
        timeout: Optional[float] = None,
        cache_dir: Union[PathLike, bool, None] = None,
        cache_max: Optional[int] = None,
        trusted_keys: Optional[Sequence[Union[PathLike, str]]] = None,
        identity: Union[PathLike, Sequence[PathLike], None] = None,
        passphrase: Union[str, bytes, None] = None,
    ) -> None:
        dirs = None if parent_dirs is None else [os.fspath(d) for d in parent_dirs]
        if cache_dir is False:
            cache_dir = "off"
        elif cache_dir is True:
            cache_dir = None
        native_dir = None if cache_dir is None else os.fspath(cache_dir)
        if isinstance(trusted_keys, (str, os.PathLike)):
            trusted_keys = [trusted_keys]
        keys = None if trusted_keys is None else [os.fspath(k) for k in trusted_keys]
        if keys is not None and not keys:
            raise InvalidInputError("trusted_keys must be a non-empty list of public keys (paths or key text)")
        self._native = _NativeArchive(os.fspath(path), dirs, verify_hashes, read_slots, endpoint_url, region,
                                      cache_bytes, timeout, native_dir, cache_max, keys, identity_paths(identity),
                                      passphrase_bytes(passphrase))
        self._tensors = [
            TensorInfo(n, d, tuple(s), o, ln, g, st, f) for (n, d, g, s, o, ln, st, f) in self._native.tensors()
        ]
        # Every tensor of each name: one, or in a folder archive one per file
        # holding the name (checkpoint-500/ and checkpoint-1000/ alike).
        self._by_name: Dict[str, List[TensorInfo]] = {}
        for t in self._tensors:
            self._by_name.setdefault(t.name, []).append(t)
        self._files: Optional[List[FileInfo]] = None
        self._metadata: Optional[Dict[str, Any]] = None

    # -- context manager and lifetime --------------------------------------

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the archive. Reads running on other threads finish first."""
        self._native.close()

    @property
    def closed(self) -> bool:
        return self._native.closed

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.source_format}, {len(self._tensors)} tensors, {self.size} bytes"
        return f"<hexz.Archive {os.fspath(self._native.path)!r} ({state})>"

    # -- what the archive holds --------------------------------------------

    @property
    def path(self) -> str:
        return os.fspath(self._native.path)

    @property
    def size(self) -> int:
        """Length of the archived source file in bytes."""
        return self._native.size

    @property
    def source_format(self) -> str:
        """ "safetensors", "gguf", "raw" or "folder"."""
        return self._native.source_format

    @property
    def identity(self) -> str:
        """The archive's identity (hex), which archives stored against it name."""
        return self._native.identity

    @property
    def source_hash(self) -> str:
        """BLAKE3 of the whole source file (hex)."""
        return self._native.source_hash

    @property
    def parent(self) -> Optional[ParentInfo]:
        """The parent this archive was stored against, or None."""
        p = self._native.parent
        return None if p is None else ParentInfo(*p)

    @property
    def chain(self) -> List[str]:
        """Where each chain member is: this archive, its parent, ..."""
        return self._native.chain

    def keys(self) -> List[str]:
        """Tensor names, in file order."""
        return [t.name for t in self._tensors]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._tensors)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def tensors(self) -> List[TensorInfo]:
        """Every tensor, in file order."""
        return list(self._tensors)

    def tensor_info(self, name: str, file: Optional[str] = None) -> TensorInfo:
        """Dtype, shape, GGML type, offset and length of tensor `name`; in a
        folder archive, `file` (a path as :meth:`files` lists it) names the
        file holding it, which a name several files hold needs."""
        found = self._by_name.get(name, [])
        if file is not None:
            paths = [f.path for f in self._file_table()]
            if file not in paths:
                raise NotFoundError(f"{self.path}: no file {file!r} in the archive")
            index = paths.index(file)
            for t in found:
                if t.file == index:
                    return t
            raise NotFoundError(f"{self.path}: no tensor named {name!r} in file {file!r}")
        if not found:
            raise NotFoundError(f"{self.path}: no tensor named {name!r}")
        if len(found) > 1:
            holders = ", ".join(self._file_table()[t.file].path for t in found if t.file is not None)
            raise InvalidInputError(
                f"{self.path}: tensor {name!r} is in {len(found)} files ({holders}): name one with file="
            )
        return found[0]

    def _file_table(self) -> List[FileInfo]:
        if self._files is None:
            self._files = [FileInfo(*f) for f in self._native.files()]
        return self._files

    def files(self) -> List[FileInfo]:
        """Folder archives: every file, directory and symlink, sorted by path."""
        return list(self._file_table())

    def metadata(self) -> Dict[str, Any]:
        """User metadata stored with the archive, plus the source's own:
        safetensors ``__metadata__`` or GGUF key/values (arrays of numbers as
        numpy arrays). User metadata wins where a key is in both."""
        if self._metadata is None:
            md: Dict[str, Any] = {}
            fmt = self.source_format
            if fmt == "safetensors":
                header = self._native.source_header()
                md.update(json.loads(header[8:].decode("utf-8")).get("__metadata__") or {})
            elif fmt == "gguf":
                for key, _type, elem, value in self._native.gguf_kv():
                    if isinstance(value, bytes) and elem in _GGUF_ARRAY:
                        value = np.frombuffer(value, dtype=np.dtype(_GGUF_ARRAY[elem]).newbyteorder("<"))
                    md[key] = value
            for key, is_json, text in self._native.user_metadata():
                md[key] = json.loads(text) if is_json else text
            self._metadata = md
        return dict(self._metadata)

    def user_metadata(self) -> Dict[str, Any]:
        """Only the metadata given when the archive was stored."""
        return {k: (json.loads(t) if j else t) for k, j, t in self._native.user_metadata()}

    def gguf_fields(self) -> List[Tuple[str, int, Optional[int], Any]]:
        """GGUF key/values as (key, GGUF value type, array element type or
        None, value), in file order; empty for other formats."""
        out = []
        for key, vtype, elem, value in self._native.gguf_kv():
            if isinstance(value, bytes) and elem in _GGUF_ARRAY:
                value = np.frombuffer(value, dtype=np.dtype(_GGUF_ARRAY[elem]).newbyteorder("<"))
            out.append((key, vtype, elem, value))
        return out

    def source_header(self) -> bytes:
        """The source file's own header: safetensors length + JSON, or the
        GGUF header up to the tensor data."""
        return self._native.source_header()

    # -- reading -------------------------------------------------------------

    def layout(self, name: str, *, file: Optional[str] = None) -> Tuple[str, Tuple[int, ...]]:
        """(element dtype, array shape) :meth:`get_tensor` gives `name`:
        GGUF dims reversed into numpy order, quantized types as uint8 rows."""
        t = self.tensor_info(name, file)
        return _dtypes.layout(t.dtype, t.ggml_type, t.shape, t.length)

    def get_tensor(self, name: str, framework: str = "np", *, file: Optional[str] = None) -> Any:
        """Tensor `name` (of folder file `file`, see :meth:`tensor_info`)
        as a numpy array (``framework="pt"``: a torch tensor), decoded
        straight into the array's memory."""
        return self._get(self.tensor_info(name, file), framework)

    def _get(self, t: TensorInfo, framework: str) -> Any:
        """Tensor `t` as :meth:`get_tensor` gives it."""
        out, address = self._allocate_for(t, _framework(framework))
        self._native._read_into_address(address, t.length, t.offset)
        return out

    def _allocate_for(self, t: TensorInfo, framework: str) -> Tuple[Any, int]:
        """An uninitialised array for tensor `t`, and its address."""
        kind, shape = _dtypes.layout(t.dtype, t.ggml_type, t.shape, t.length)
        out, address, nbytes = _allocate(framework, kind, shape)
        if nbytes != t.length:
            raise CorruptArchiveError(f"{self.path}: tensor {t.name!r}: {kind} {list(shape)} is {nbytes} bytes, "
                                      f"the archive records {t.length}")
        return out, address

    def read_tensor(self, name: str, *, file: Optional[str] = None) -> bytes:
        """The raw bytes of tensor `name` (of folder file `file`), as in the source file."""
        t = self.tensor_info(name, file)
        return self._native.read(t.offset, t.length)

    def get_slice(self, name: str, framework: str = "np", *, file: Optional[str] = None) -> "TensorSlice":
        """A lazy view of tensor `name` (of folder file `file`): indexing it
        (``[0:10]``, ``[3]``, ``[2:4, :16]``) reads only the rows asked for
        along the first axis."""
        return TensorSlice(self, self.tensor_info(name, file), _framework(framework))

    def read(self, offset: int, size: int) -> bytes:
        """The bytes ``[offset, offset + size)`` of the source file."""
        return self._native.read(offset, size)

    def readinto(self, buffer: Any, offset: int = 0) -> int:
        """Fill `buffer` (any writable C-contiguous buffer: bytearray,
        memoryview, numpy array, mmap) with the source file's bytes from
        `offset`; returns the bytes written. The GIL is released meanwhile."""
        view = memoryview(buffer)
        if view.readonly:
            raise InvalidInputError("readinto needs a writable buffer")
        if not view.c_contiguous:
            raise InvalidInputError("readinto needs a C-contiguous buffer")
        view = view.cast("B")
        n = view.nbytes
        if n == 0:
            self._native._read_into_address(0, 0, offset)
            return 0
        # ctypes pins the buffer (an export) and gives its address.
        pinned = (ctypes.c_char * n).from_buffer(view)
        try:
            self._native._read_into_address(ctypes.addressof(pinned), n, offset)
        finally:
            del pinned
        return n

    def _read_many(self, names: Sequence[str], framework: str, threads: int = 0) -> Dict[str, Any]:
        """Decode several tensors at once, their blocks shared among threads."""
        fw = _framework(framework)
        out: Dict[str, Any] = {}
        jobs = []
        for name in names:
            t = self.tensor_info(name)
            out[name], address = self._allocate_for(t, fw)
            if t.length:
                jobs.append((address, t.length, t.offset))
        self._native._read_many_into_addresses(jobs, threads)
        return out

    def io_stats(self) -> Dict[str, int]:
        """Reads made of the archive file since it was opened, and their bytes."""
        reads, nbytes = self._native.io_stats()
        return {"reads": reads, "bytes": nbytes}


class TensorSlice:
    """A tensor not read yet; index it to read the rows asked for."""

    def __init__(self, archive: Archive, info: TensorInfo, framework: str) -> None:
        self._archive = archive
        self._info = info
        self._framework = framework
        self._kind, self._shape = _dtypes.layout(info.dtype, info.ggml_type, info.shape, info.length)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    def get_shape(self) -> List[int]:
        """The array's shape (safetensors' ``PySafeSlice.get_shape``)."""
        return list(self._shape)

    def get_dtype(self) -> str:
        return self._info.dtype

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of a 0-d tensor")
        return self._shape[0]

    def _rows(self, lo: int, hi: int) -> Any:
        """Rows ``[lo, hi)`` along the first axis, read alone."""
        rows = self._shape[0]
        row_bytes = self._info.length // rows if rows else 0
        out, address, nbytes = _allocate(self._framework, self._kind, (hi - lo, *self._shape[1:]))
        if nbytes != (hi - lo) * row_bytes:
            raise CorruptArchiveError(f"{self._archive.path}: tensor {self._info.name!r}: rows do not match its length")
        self._archive._native._read_into_address(address, nbytes, self._info.offset + lo * row_bytes)
        return out

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, tuple):
            key = (key,)
        if not self._shape or not key or not isinstance(key[0], (int, np.integer, slice)) or isinstance(key[0], bool):
            whole = self._archive._get(self._info, self._framework)
            return whole[key]
        first, rest = key[0], key[1:]
        n = self._shape[0]
        if isinstance(first, slice):
            start, stop, step = first.indices(n)
            picked = range(start, stop, step)
            if len(picked) == 0:
                return self._rows(0, 0)[(slice(None), *rest)]
            lo, hi = min(picked), max(picked) + 1
            rows = self._rows(lo, hi)
            if step == 1:
                return rows[(slice(None), *rest)] if rest else rows
            index = [i - lo for i in picked]
            if self._framework == "pt":
                torch = _dtypes.import_torch()
                rows = rows[torch.as_tensor(index)]
            else:
                rows = rows[np.asarray(index)]
            return rows[(slice(None), *rest)] if rest else rows
        i = operator.index(first)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise InvalidIndexError(f"index {operator.index(first)} is out of bounds for axis 0 with size {n}")
        return self._rows(i, i + 1)[(0, *rest)]
