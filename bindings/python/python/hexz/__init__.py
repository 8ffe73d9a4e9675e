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

import os
from typing import Any, Mapping, Optional, Sequence, Union

from . import errors
from ._archive import Archive, FileInfo, ParentInfo, TensorInfo, TensorSlice
from ._common import Problem, StoreReport, VerifyReport, dirs, identity_paths, metadata_items
from ._common import passphrase_bytes as _passphrase_bytes
from ._hexz import FORMAT_VERSION, __version__
from ._hexz import extract as _extract
from ._hexz import store as _store
from ._hexz import verify as _verify
from ._safe import SafeSlice, safe_open
from .errors import (
    ArchiveNotFoundError,
    CancelledError,
    CorruptArchiveError,
    EncryptionKeyError,
    HexzError,
    HexzInternalError,
    SignatureError,
    HexzIOError,
    HexzMemoryError,
    InvalidIndexError,
    InvalidInputError,
    NotFoundError,
    ParentMissingError,
    SafetensorError,
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
    "SafeSlice",
    "FileInfo",
    "ParentInfo",
    "StoreReport",
    "VerifyReport",
    "Problem",
    "SafetensorError",
    "HexzError",
    "CorruptArchiveError",
    "ParentMissingError",
    "InvalidInputError",
    "InvalidIndexError",
    "NotFoundError",
    "ArchiveNotFoundError",
    "UnsupportedError",
    "HexzIOError",
    "HexzMemoryError",
    "CancelledError",
    "HexzInternalError",
    "SignatureError",
    "EncryptionKeyError",
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
    cache_dir: Union[PathLike, bool, None] = None,
    cache_max: Optional[int] = None,
    trusted_keys: Optional[Sequence[Union[PathLike, str]]] = None,
    identity: Union[PathLike, Sequence[PathLike], None] = None,
    passphrase: Union[str, bytes, None] = None,
) -> Archive:
    """Open the archive at `path` with its parent chain. Parents are found
    beside it by their recorded path, then in `parent_dirs`; each is checked
    by identity. `read_slots` bounds the reads running at once (0: 4).

    `path` may be a URL: ``s3://bucket/key`` (credentials from the standard
    AWS variables; `endpoint_url` for a local S3 server, `region`) or
    ``http(s)://``. Only the index pages and blocks a read needs are
    fetched; `cache_bytes` of them are kept (64 MiB); `timeout` is the stall
    timeout in seconds (15): the longest wait for a response to start or
    for its next bytes (a slow transfer that keeps moving is not cut off).

    Blocks of remote archives are kept on disk, keyed by their BLAKE3, and
    shared by every archive and process reading the same blocks:
    `cache_dir` is the folder (default ``HEXZ_CACHE_DIR``, else
    ``~/.cache/hexz/blocks``; ``False`` or ``"off"``: no disk cache),
    `cache_max` its cap in bytes (``HEXZ_CACHE_MAX_BYTES``, else 10 GiB).

    `trusted_keys` (minisign public keys: ``.pub`` file paths, or the key
    text): the archive must be signed by one of them (``hexz sign``), else
    :class:`SignatureError` is raised before any byte is read; every block,
    index page, the metadata and the parents are then authenticated by the
    signature as they are read.

    Encrypted archives (format 1.5): `identity` (an age X25519 identity
    file, ``AGE-SECRET-KEY-1…``, or a list of them) and/or `passphrase`
    (``str``, UTF-8, or ``bytes``) open them and their parents. Without a
    key, :class:`EncryptionKeyError` (code ``KeyRequired``); with keys
    none of which opens it, the same class (code ``WrongKey``). Damaged
    ciphertext is a :class:`CorruptArchiveError` (code ``Decrypt``)."""
    return Archive(path, parent_dirs, verify_hashes=verify_hashes, read_slots=read_slots, endpoint_url=endpoint_url,
                   region=region, cache_bytes=cache_bytes, timeout=timeout, cache_dir=cache_dir,
                   cache_max=cache_max, trusted_keys=trusted_keys, identity=identity, passphrase=passphrase)


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
    passphrase: Union[str, bytes, None] = None,
    recipients: Optional[Sequence[str]] = None,
    base_identity: Union[PathLike, Sequence[PathLike], None] = None,
    base_passphrase: Union[str, bytes, None] = None,
) -> StoreReport:
    """Store the file or folder `src` as the archive `dst` (as ``hexz
    store``), a path or an ``s3://`` URL (a file only; uploaded in parts,
    the object appearing only when the archive is whole): safetensors and GGUF are cut at tensor boundaries, other files
    by content. With `base`, blocks the base already holds are referenced
    and changed tensors stored as deltas. `dst` appears only when whole;
    an existing `dst` is replaced only with ``force=True``.

    `passphrase` (``str`` or ``bytes``) and/or `recipients` (age X25519
    recipients, ``age1…``) encrypt the archive (format 1.5): blocks,
    tensor table and metadata; any one of them opens it.

    An encrypted `base` is opened with `base_identity` (identity files)
    or `base_passphrase`; the child is then stored under the base's key,
    so whatever opens the base opens the child. Asking for other keys
    (`passphrase`, `recipients`) with an encrypted base is refused
    (:class:`EncryptionKeyError`): a chain is under one key."""
    if base is None and (base_identity is not None or base_passphrase is not None):
        # Likely meant passphrase=: refused rather than stored unencrypted.
        raise InvalidInputError("base_identity and base_passphrase open an encrypted base: give base= too")
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
        _passphrase_bytes(passphrase),
        None if recipients is None else list(recipients),
        identity_paths(base_identity),
        _passphrase_bytes(base_passphrase),
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


def __getattr__(name: str) -> Any:
    # hexz.dcp needs torch: imported on first use, so `import hexz` does not.
    if name == "dcp":
        import importlib

        return importlib.import_module(".dcp", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
