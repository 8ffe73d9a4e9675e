"""Reports and argument helpers shared by the package's modules."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import CorruptArchiveError, InvalidInputError

PathLike = Union[str, "os.PathLike[str]"]


@dataclass
class StoreReport:
    """What a store wrote."""

    source_format: str
    source_size: int
    archive_size: int
    blocks: int
    stored_blocks: int
    deduplicated_blocks: int
    deduplicated_bytes: int
    parent_blocks: int
    parent_bytes: int
    delta_blocks: int
    tensors: int
    source_hash: str
    warnings: List[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        """Archive size as a fraction of the source's."""
        return self.archive_size / max(self.source_size, 1)


@dataclass
class Problem:
    """One problem verify found: where (a field, block or tensor) and what."""

    location: str
    message: str


@dataclass
class VerifyReport:
    """What verify checked and found. True when no problem was found."""

    problems: List[Problem]
    blocks_checked: int
    blocks_decoded: int
    tensors_checked: int
    deep: bool

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def check(self) -> "VerifyReport":
        """Raise CorruptArchiveError naming every problem, unless ok."""
        if self.problems:
            raise CorruptArchiveError("; ".join(f"{p.location}: {p.message}" for p in self.problems))
        return self


def metadata_items(metadata: Optional[Mapping[str, Any]]) -> List[Tuple[str, bool, str]]:
    """User metadata as (key, is_json, text): strings as they are, anything
    else as JSON."""
    items = []
    for key, value in (metadata or {}).items():
        if not isinstance(key, str) or not key:
            raise InvalidInputError(f"metadata keys must be non-empty strings, not {key!r}")
        if isinstance(value, str):
            items.append((key, False, value))
        else:
            try:
                items.append((key, True, json.dumps(value)))
            except TypeError as e:
                raise InvalidInputError(f"metadata {key}: {e}") from None
    return items


def dirs(parent_dirs: Optional[Sequence[PathLike]]) -> Optional[List[str]]:
    return None if parent_dirs is None else [os.fspath(d) for d in parent_dirs]


def passphrase_bytes(passphrase: Union[str, bytes, None]) -> Optional[bytes]:
    """A passphrase as the native module takes it: ``str`` as UTF-8 bytes."""
    if passphrase is None:
        return None
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not isinstance(passphrase, (bytes, bytearray)):
        raise InvalidInputError("passphrase must be str or bytes")
    if not passphrase:
        raise InvalidInputError("passphrase must not be empty")
    return bytes(passphrase)


def identity_paths(identity: Union[PathLike, Sequence[PathLike], None]) -> Optional[List[str]]:
    """Identity files as a list of paths (one path or a list of them)."""
    if identity is None:
        return None
    if isinstance(identity, (str, os.PathLike)):
        return [os.fspath(identity)]
    paths = [os.fspath(p) for p in identity]
    if not paths:
        raise InvalidInputError("identity must be a path or a non-empty list of paths")
    return paths
