#!/usr/bin/env python3
"""Canonical text dump of a GGUF file's key/values and tensors, from gguf-py
(the llama.cpp project's reader), in the form bindings/c/tests/test_hexz.c
writes through the C API. usage: gguf_dump.py FILE.gguf > expected.txt"""
import sys

import gguf
from gguf import GGUFValueType as T

INTS = {T.UINT8, T.INT8, T.UINT16, T.INT16, T.UINT32, T.INT32, T.UINT64, T.INT64}


def scalar(t, v):
    v = v.item() if hasattr(v, "item") else v
    if t in INTS:
        return str(int(v))
    if t == T.BOOL:
        return "1" if v else "0"
    if t == T.FLOAT32:
        return "%.9g" % float(v)
    if t == T.FLOAT64:
        return "%.17g" % float(v)
    raise ValueError(t)


def main(path):
    r = gguf.GGUFReader(path)
    out = sys.stdout
    version = r.fields["GGUF.version"]
    out.write("version %d\n" % int(version.parts[version.data[0]][0]))
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        t = f.types[0]
        line = ["kv", name, t.name]
        if t == T.STRING:
            line.append(bytes(f.parts[f.data[0]]).hex())
        elif t == T.ARRAY:
            elem = f.types[1] if len(f.types) > 1 else T.UINT8
            line += [elem.name, str(len(f.data))]
            for idx in f.data:
                part = f.parts[idx]
                line.append(bytes(part).hex() if elem == T.STRING else scalar(elem, part[0]))
        else:
            line.append(scalar(t, f.parts[f.data[0]][0]))
        out.write(" ".join(line) + "\n")
    for t in r.tensors:
        dims = [int(d) for d in t.shape]
        out.write(
            "tensor %s %d %s %d %s %d %d\n"
            % (t.name, int(t.tensor_type), t.tensor_type.name, len(dims), " ".join(map(str, dims)), int(t.data_offset), int(t.n_bytes))
        )


if __name__ == "__main__":
    main(sys.argv[1])
