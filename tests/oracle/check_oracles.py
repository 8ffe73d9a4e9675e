#!/usr/bin/env python3
"""Compare what hexz reports against the reference implementations.

- gemma GGUF: every tensor (name, ggml type, shape, offset, byte length) and
  every key/value (type, element type, value) against gguf-py, the llama.cpp
  project's own reader.
- MiniLM safetensors: tensor names, dtypes, shapes and the bytes of every
  tensor against the `safetensors` library.

Usage: check_oracles.py HEXZ_BINARY MODELS_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

import gguf
import numpy as np
from safetensors import safe_open


def run(*args):
    return subprocess.run(args, check=True, capture_output=True).stdout


def gguf_value(field):
    """gguf-py's decoded value, in the JSON shapes hexz prints."""
    value = field.contents()
    if isinstance(value, np.generic):
        value = value.item()
    return value


def check_gguf(hexz, models, tmp):
    src = os.path.join(models, "gemma.gguf")
    hxz = os.path.join(tmp, "gemma.hxz")
    run(hexz, "--quiet", "store", src, hxz)
    ours = json.loads(run(hexz, "inspect", "--json", "--kv", hxz))
    reader = gguf.GGUFReader(src)

    assert ours["source_format"] == "gguf"
    assert ours["original_size"] == os.path.getsize(src)
    theirs_tensors = [
        (t.name, int(t.tensor_type), [int(d) for d in t.shape], int(t.data_offset), int(t.n_bytes))
        for t in reader.tensors
    ]
    our_tensors = [(t["name"], t["ggml_type"], t["shape"], t["offset"], t["length"]) for t in ours["tensors"]]
    assert our_tensors == theirs_tensors, "tensor tables differ"
    for t, rt in zip(ours["tensors"], reader.tensors):
        assert t["dtype"] == rt.tensor_type.name, (t["name"], t["dtype"], rt.tensor_type.name)

    kv = {k["key"]: k for k in ours["gguf"]["kv"]}
    fields = {name: f for name, f in reader.fields.items() if not name.startswith("GGUF.")}
    assert list(kv) == list(fields), "key sets or order differ"
    assert ours["gguf"]["version"] == gguf_value(reader.fields["GGUF.version"])
    for name, field in fields.items():
        mine = kv[name]
        assert mine["type"] == field.types[0].name, (name, mine["type"], field.types[0].name)
        if field.types[0] == gguf.GGUFValueType.ARRAY:
            assert mine["element_type"] == field.types[-1].name, name
        assert mine["value"] == gguf_value(field), f"value of {name} differs"
    print(f"gguf: {len(our_tensors)} tensors and {len(kv)} key/values equal gguf-py's")


def check_safetensors(hexz, models, tmp):
    src = os.path.join(models, "minilm.safetensors")
    hxz = os.path.join(tmp, "minilm.hxz")
    run(hexz, "--quiet", "store", src, hxz, "--compression", "lz4")
    ours = json.loads(run(hexz, "inspect", "--json", hxz))
    assert ours["source_format"] == "safetensors"
    tensors = {t["name"]: t for t in ours["tensors"]}
    names = sorted(tensors)
    out = os.path.join(tmp, "tensors.bin")
    args = [hexz, "extract", hxz, "-o", out]
    for n in names:
        args += ["--tensor", n]
    run(*args)
    blob = open(out, "rb").read()
    pos = 0
    with safe_open(src, framework="numpy") as f:
        assert sorted(f.keys()) == names, "tensor names differ"
        for n in names:
            sl = f.get_slice(n)
            assert tensors[n]["dtype"] == sl.get_dtype(), n
            assert tensors[n]["shape"] == list(sl.get_shape()), n
            data = np.ascontiguousarray(f.get_tensor(n)).tobytes()
            assert tensors[n]["length"] == len(data), n
            assert blob[pos : pos + len(data)] == data, f"bytes of {n} differ"
            pos += len(data)
    assert pos == len(blob)
    print(f"safetensors: {len(names)} tensors (names, dtypes, shapes, bytes) equal the safetensors library's")


def check_ggml_table():
    """The GGML type table (hexz-format/src/dtype.rs) and the spec's section
    11.2 against gguf-py's GGML_QUANT_SIZES: id, name, block elements and bytes."""
    import re

    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    want = {t.value: (t.name, *GGML_QUANT_SIZES[t]) for t in GGMLQuantizationType}
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    source = open(os.path.join(root, "hexz-format/src/dtype.rs")).read()
    code = {int(i): (n, int(e), int(b)) for i, n, e, b in re.findall(r't\((\d+), "(\w+)", (\d+), (\d+)\)', source)}
    assert code == want, f"dtype.rs differs from gguf-py: {set(code.items()) ^ set(want.items())}"
    spec = open(os.path.join(root, "spec/FORMAT.md")).read()
    section = spec[spec.index("### 11.2"):spec.index("## 12.")]
    table = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        for k in range(0, len(cells) - 3, 4):
            if cells[k].isdigit():
                table[int(cells[k])] = (cells[k + 1], int(cells[k + 2]), int(cells[k + 3]))
    assert table == want, f"spec section 11.2 differs from gguf-py: {set(table.items()) ^ set(want.items())}"
    print(f"GGML types: {len(want)} (id, name, block size) in dtype.rs and the spec equal gguf-py's")


def main():
    hexz, models = sys.argv[1], sys.argv[2]
    check_ggml_table()
    with tempfile.TemporaryDirectory() as tmp:
        check_gguf(hexz, models, tmp)
        check_safetensors(hexz, models, tmp)


if __name__ == "__main__":
    main()
