"""Signed archives over HTTP (nginx on loopback, format 1.4): a trusted key
costs no extra request at open; a block replaced on the server (its hashes
rewritten to match, the publisher's signature kept) is refused at open,
and a block damaged in place is refused when it is read."""

import json
import shutil
import struct

import blake3

from conftest import hexz, sha256

OPEN_SUFFIX = 256 << 10
HEADER = 64


def check64(b):
    return struct.unpack("<Q", blake3.blake3(b).digest()[:8])[0]


def footer_end(b):
    """Where the footer ends: before the signature section and trailer (spec section 15)."""
    if struct.unpack_from("<Q", b, 16)[0] & 8:
        return len(b) - 32 - struct.unpack_from("<Q", b, len(b) - 24)[0]
    return len(b)


def blocks(b):
    """(stored_offset, stored_length) of every block stored in the archive itself."""
    end = footer_end(b)
    footer = b[end - 192:end]
    directory, pages = struct.unpack_from("<Q", footer, 24)[0], struct.unpack_from("<I", footer, 32)[0]
    out = set()
    for p in range(pages):
        off, n = struct.unpack_from("<Q", b, directory + 56 * p + 8)[0], struct.unpack_from("<I", b, directory + 56 * p + 16)[0]
        for i in range(n):
            e = off + 72 * i
            if b[e + 35] == 0:
                out.add((struct.unpack_from("<Q", b, e + 8)[0], struct.unpack_from("<I", b, e + 28)[0]))
    return sorted(out)


def test_signed_remote_archive(models, served, tmp_path):
    root = served.root
    hexz("-q", "keygen", tmp_path / "k.key", tmp_path / "k.pub")
    shutil.copy(root / "minilm.hxz", root / "signed.hxz")
    hexz("-q", "sign", root / "signed.hxz", "--key", tmp_path / "k.key", "--comment", "publisher")
    url = f"{served.url}/signed.hxz"
    key = ["--trusted-key", tmp_path / "k.pub"]

    # Opening with a trusted key: the same two requests as an unsigned archive.
    counts = {}
    for name, args in [("unsigned", []), ("signed", key)]:
        served.clear()
        target = url if name == "signed" else f"{served.url}/minilm.hxz"
        info = json.loads(hexz("--no-cache", *args, "inspect", "--json", target).stdout)
        counts[name] = len(served.requests())
    assert counts["signed"] == counts["unsigned"] == 2, counts
    assert [s["trusted_comment"] for s in info["signatures"]] == ["publisher"]

    # One tensor through the trusted key: byte-exact.
    t = next(t for t in info["tensors"] if t["name"] == "encoder.layer.5.output.dense.weight")
    out = tmp_path / "t.bin"
    hexz("--no-cache", *key, "extract", url, "--tensor", t["name"], "-o", out)
    with open(models / "minilm.safetensors", "rb") as f:
        f.seek(t["offset"])
        assert out.read_bytes() == f.read(t["length"])

    # With the block cache on (index pages kept by ETag), twice: the second
    # open reuses the cached structure of the signed object.
    cache = tmp_path / "cache"
    for i in range(2):
        out = tmp_path / f"c{i}.bin"
        hexz("--cache-dir", cache, *key, "extract", url, "--tensor", t["name"], "-o", out)
        with open(models / "minilm.safetensors", "rb") as f:
            f.seek(t["offset"])
            assert out.read_bytes() == f.read(t["length"])

    # A block replaced on the server, every hash rewritten to match: a valid
    # archive of other bytes, carrying the publisher's signature.
    src = bytearray((models / "minilm.safetensors").read_bytes())
    src[t["offset"] + 100] ^= 0x40
    (tmp_path / "forged.safetensors").write_bytes(src)
    hexz("-q", "store", tmp_path / "forged.safetensors", tmp_path / "forged.hxz")
    forged = bytearray((tmp_path / "forged.hxz").read_bytes())
    signed = (root / "signed.hxz").read_bytes()
    struct.pack_into("<H", forged, 10, 4)
    struct.pack_into("<Q", forged, 16, struct.unpack_from("<Q", forged, 16)[0] | 8)
    struct.pack_into("<Q", forged, 56, check64(bytes(forged[:56])))
    forged += signed[footer_end(signed):]
    (root / "forged.hxz").write_bytes(forged)
    assert b"ok" in hexz("--no-cache", "verify", "--quick", f"{served.url}/forged.hxz").stderr  # valid but for the key
    served.clear()
    r = hexz("--no-cache", *key, "extract", f"{served.url}/forged.hxz", "--tensor", t["name"], "-o",
             tmp_path / "f.bin", check=False)
    assert r.returncode == 1 and b"signature does not match" in r.stderr, r.stderr
    assert len(served.requests()) == 2, served.requests()  # refused at open: no block fetched
    assert not (tmp_path / "f.bin").exists()

    # A block damaged in place: the signature holds, the read of that block fails.
    damaged = bytearray(signed)
    spans = blocks(damaged)
    off, n = spans[len(spans) // 2]
    damaged[off + n // 2] ^= 1
    (root / "damaged.hxz").write_bytes(damaged)
    r = hexz("--no-cache", *key, "extract", f"{served.url}/damaged.hxz", tmp_path / "d.out", check=False)
    assert r.returncode == 1 and (b"BLAKE3" in r.stderr or b"decode failed" in r.stderr), r.stderr
    assert not (tmp_path / "d.out").exists()
    # The whole signed archive, through the trusted key, is the original.
    hexz("--no-cache", *key, "extract", url, tmp_path / "all.out")
    assert sha256(tmp_path / "all.out") == sha256(models / "minilm.safetensors")
