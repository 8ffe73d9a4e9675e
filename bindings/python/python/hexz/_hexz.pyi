"""Type stubs of the native module. Use the `hexz` package's API; these
are its building blocks (the underscored ones take raw buffer addresses)."""

from os import PathLike
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

_Path = Union[str, PathLike[str]]

__version__: str
FORMAT_VERSION: str
#: (GGML type id, name, elements per block, bytes per block)
GGML_TYPES: List[Tuple[int, str, int, int]]
#: (status name, number) of every C ABI status
STATUSES: List[Tuple[str, int]]

def status_category(name: str) -> str: ...

class Archive:
    """An open archive (native half of hexz.Archive)."""

    def __init__(
        self,
        path: _Path,
        parent_dirs: Optional[Sequence[_Path]] = None,
        verify_hashes: bool = True,
        read_slots: int = 0,
        endpoint_url: Optional[str] = None,
        region: Optional[str] = None,
        cache_bytes: Optional[int] = None,
        timeout: Optional[float] = None,
        cache_dir: Optional[_Path] = None,
        cache_max: Optional[int] = None,
        trusted_keys: Optional[Sequence[str]] = None,
        identity: Optional[Sequence[str]] = None,
        passphrase: Optional[bytes] = None,
    ) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def path(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def source_format(self) -> str: ...
    @property
    def identity(self) -> str: ...
    @property
    def source_hash(self) -> str: ...
    @property
    def parent(self) -> Optional[Tuple[str, str, str]]: ...
    @property
    def chain(self) -> List[str]: ...
    def tensors(self) -> List[Tuple[str, str, Optional[int], List[int], int, int, str, Optional[int]]]: ...
    def files(self) -> List[Tuple[str, str, int, int, int, int, str]]: ...
    def user_metadata(self) -> List[Tuple[str, bool, str]]: ...
    def source_header(self) -> bytes: ...
    def gguf_kv(self) -> List[Tuple[str, int, Optional[int], Any]]: ...
    def read(self, offset: int, size: int) -> bytes: ...
    def _read_into_address(self, address: int, length: int, offset: int, threads: int = 0) -> None: ...
    def _read_many_into_addresses(self, jobs: List[Tuple[int, int, int]], threads: int = 0) -> None: ...
    def io_stats(self) -> Tuple[int, int]: ...
    def memory_bytes(self) -> int: ...

def store(
    src: _Path,
    dst: _Path,
    base: Optional[_Path] = None,
    compression: str = "zstd",
    level: Optional[int] = None,
    metadata: List[Tuple[str, bool, str]] = ...,
    parent_dirs: Optional[Sequence[_Path]] = None,
    force: bool = False,
    threads: int = 0,
    block_size: Optional[int] = None,
    raw: bool = False,
    chunking: str = "cdc",
    passphrase: Optional[bytes] = None,
    recipients: Optional[Sequence[str]] = None,
    base_identity: Optional[Sequence[str]] = None,
    base_passphrase: Optional[bytes] = None,
) -> Dict[str, Any]: ...
def _store_arrays(
    header: bytes,
    arrays: List[Tuple[int, int]],
    dst: _Path,
    base: Optional[_Path] = None,
    compression: str = "zstd",
    level: Optional[int] = None,
    metadata: List[Tuple[str, bool, str]] = ...,
    parent_dirs: Optional[Sequence[_Path]] = None,
    force: bool = False,
    threads: int = 0,
) -> Dict[str, Any]: ...
def extract(
    archive: _Path, dst: _Path, force: bool = False, threads: int = 0, parent_dirs: Optional[Sequence[_Path]] = None
) -> None: ...
def verify(
    archive: _Path, deep: bool = False, threads: int = 0, parent_dirs: Optional[Sequence[_Path]] = None
) -> Tuple[List[Tuple[str, str]], int, int, int]: ...
