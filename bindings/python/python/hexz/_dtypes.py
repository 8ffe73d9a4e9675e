"""Element types: safetensors dtype names and GGML type ids to numpy and
torch dtypes, and back for saving."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from ._hexz import GGML_TYPES
from .errors import InvalidInputError, UnsupportedError

_ml: Any
try:  # bfloat16 and float8 for numpy, when installed
    import ml_dtypes as _ml
except ImportError:  # pragma: no cover - exercised where ml_dtypes is absent
    _ml = None

# safetensors dtype -> numpy dtype (a name in ml_dtypes for the extended types)
_NUMPY: Dict[str, Any] = {
    "BOOL": np.bool_,
    "U8": np.uint8,
    "I8": np.int8,
    "U16": np.uint16,
    "I16": np.int16,
    "U32": np.uint32,
    "I32": np.int32,
    "U64": np.uint64,
    "I64": np.int64,
    "F16": np.float16,
    "F32": np.float32,
    "F64": np.float64,
    "C64": np.complex64,
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "F8_E8M0": "float8_e8m0fnu",
    "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz",
}

# safetensors dtype -> torch dtype attribute (those this torch lacks are
# refused when asked for). F4 is torch's packed pair: two 4-bit elements per
# byte, so its torch shape halves the last dimension of the recorded one.
_TORCH: Dict[str, str] = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "U16": "uint16", "I16": "int16", "U32": "uint32",
    "I32": "int32", "U64": "uint64", "I64": "int64", "F16": "float16", "BF16": "bfloat16",
    "F32": "float32", "F64": "float64", "C64": "complex64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2", "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
    "F8_E5M2FNUZ": "float8_e5m2fnuz", "F4": "float4_e2m1fn_x2",
}

#: dtypes torch stores two elements to a byte (its shape halves the last dim)
PACKED_PAIRS = frozenset({"F4"})

# GGML type id -> safetensors-style name, for the types that are plain arrays
# of elements (as gguf-py gives them typed; every other type is quantized
# blocks, given as bytes).
_GGML_PLAIN: Dict[int, str] = {0: "F32", 1: "F16", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 30: "BF16"}

# GGML id -> (elements per block, bytes per block) for quantized types, from
# the format core's table.
_GGML_BLOCKS: Dict[int, Tuple[int, int]] = {
    tid: (per_block, block_bytes)
    for tid, _name, per_block, block_bytes in GGML_TYPES
    if tid not in _GGML_PLAIN
}


def numpy_dtype(name: str) -> "np.dtype[Any]":
    """The numpy dtype of safetensors dtype `name`."""
    kind = _NUMPY.get(name)
    if kind is None:
        raise UnsupportedError(f"dtype {name} has no numpy equivalent; read its bytes with Archive.read_tensor")
    if isinstance(kind, str):
        if _ml is None or not hasattr(_ml, kind):
            raise UnsupportedError(
                f"dtype {name} needs ml_dtypes for numpy (pip install ml_dtypes), or framework='pt'"
            )
        extended: np.dtype[Any] = np.dtype(getattr(_ml, kind))
        return extended
    plain: np.dtype[Any] = np.dtype(kind)
    return plain


def torch_dtype(name: str) -> Any:
    """The torch dtype of safetensors dtype `name`."""
    torch = import_torch()
    attr = _TORCH.get(name)
    if attr is None or not hasattr(torch, attr):
        raise UnsupportedError(f"dtype {name} has no torch equivalent in torch {torch.__version__}")
    return getattr(torch, attr)


def torch_shape(name: str, shape: Sequence[int]) -> Tuple[int, ...]:
    """The torch shape of a tensor of safetensors dtype `name` and recorded
    `shape`: as recorded, but the last dimension halved for packed pairs
    (F4), which must then be even (as safetensors requires)."""
    dims = tuple(shape)
    if name in PACKED_PAIRS:
        if not dims or dims[-1] % 2:
            raise InvalidInputError(
                f"f4_x2 dtype requires that the last dim be divisible by 2 in torch: got {list(dims)}"
            )
        dims = (*dims[:-1], dims[-1] // 2)
    return dims


def import_torch() -> Any:
    try:
        import torch
    except ImportError as e:
        raise ImportError("framework='pt' needs torch, which is not installed (pip install torch)") from e
    return torch


def layout(dtype: str, ggml_type: Optional[int], shape: Tuple[int, ...], length: int) -> Tuple[str, Tuple[int, ...]]:
    """(element type, array shape) of a tensor as an array: safetensors
    tensors as declared; GGUF tensors with numpy-order dims (reversed, as
    gguf-py), quantized ones as bytes of shape (..., bytes per row)."""
    if ggml_type is None:
        kind, dims = dtype, tuple(shape)
    elif ggml_type in _GGML_PLAIN:
        kind, dims = _GGML_PLAIN[ggml_type], tuple(reversed(shape))
    elif ggml_type in _GGML_BLOCKS:
        per_block, block_bytes = _GGML_BLOCKS[ggml_type]
        dims = tuple(reversed(shape))
        if not dims or dims[-1] % per_block:
            raise InvalidInputError(f"tensor of GGML type {dtype}: row of {dims[-1:]} elements is not whole blocks")
        kind, dims = "U8", (*dims[:-1], dims[-1] // per_block * block_bytes)
    else:
        raise UnsupportedError(f"GGML type {dtype} ({ggml_type}) is not known to this hexz")
    return kind, dims


def element_size(kind: str) -> int:
    sizes = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "F8_E4M3FNUZ": 1,
             "F8_E5M2FNUZ": 1, "U16": 2, "I16": 2, "F16": 2, "BF16": 2, "U32": 4, "I32": 4, "F32": 4, "U64": 8,
             "I64": 8, "F64": 8, "C64": 8}
    if kind not in sizes:
        raise UnsupportedError(f"dtype {kind} is not byte-addressable (sub-byte); read its bytes with read_tensor")
    return sizes[kind]


def safetensors_name(array: Any) -> str:
    """The safetensors dtype name of a numpy array or torch tensor."""
    if type(array).__module__.startswith("torch"):
        name = str(array.dtype).replace("torch.", "")
    else:
        name = np.dtype(array.dtype).name
    names = {
        "bool": "BOOL", "uint8": "U8", "int8": "I8", "uint16": "U16", "int16": "I16", "uint32": "U32",
        "int32": "I32", "uint64": "U64", "int64": "I64", "float16": "F16", "bfloat16": "BF16",
        "float32": "F32", "float64": "F64", "complex64": "C64", "float8_e4m3fn": "F8_E4M3",
        "float8_e5m2": "F8_E5M2", "float8_e8m0fnu": "F8_E8M0", "float8_e4m3fnuz": "F8_E4M3FNUZ",
        "float8_e5m2fnuz": "F8_E5M2FNUZ",
    }
    if name == "float4_e2m1fn_x2" and type(array).__module__.startswith("torch"):
        return "F4"  # torch's packed pairs; ml_dtypes' float4_e2m1fn is one element a byte, not F4
    if name not in names:
        raise InvalidInputError(f"dtype {name} cannot be stored in safetensors")
    return names[name]


# The safetensors library's dtype order (its enum), used to lay tensors out
# as it does: larger alignment first, then by name.
ORDER = ["BOOL", "F4", "F6_E2M3", "F6_E3M2", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F8_E4M3FNUZ",
         "F8_E5M2FNUZ", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "C64", "F64", "I64", "U64"]
