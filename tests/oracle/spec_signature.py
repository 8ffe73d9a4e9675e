#!/usr/bin/env python3
"""An independent checker of format 1.4's signatures, written from
spec/FORMAT.md section 15 (and sections 4 and 5 for the header, footer and
identity) and nothing else: it reads the signed test vector's trailer and
records, verifies each record's signature over the root message and its
global signature over the trusted comment with the `cryptography`
package's Ed25519 (OpenSSL), checks the key file, and checks that the
archive up to the footer's end is the unsigned vector but for the header.
With minisign installed it also writes each record as a .minisig file and
has the stock tool verify it (`--minisign` makes minisign required).

usage: spec_signature.py [VECTORS_DIR] [--minisign]
"""
import base64
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DOMAIN = b"hexz-signed-root-v1\x00"
SIGNED = 1 << 3


def check64(b):
    return struct.unpack("<Q", blake3.blake3(b).digest()[:8])[0]


def public_key(path):
    lines = [l for l in open(path).read().splitlines() if l.strip()]
    assert lines[0].startswith("untrusted comment:"), "public key: no comment line"
    raw = base64.b64decode(lines[1])
    assert len(raw) == 42 and raw[:2] == b"Ed", "public key: not minisign Ed25519"
    return raw[2:10], raw[10:42]


def parse(hxz):
    header = hxz[:64]
    assert header[:8] == b"HEXZ\0\r\n\x1a"
    assert check64(header[:56]) == struct.unpack_from("<Q", header, 56)[0], "header checksum"
    minor, incompat = struct.unpack_from("<H", header, 10)[0], struct.unpack_from("<Q", header, 16)[0]
    assert incompat & SIGNED and minor >= 4, "not a signed 1.4 archive"
    trailer = hxz[-32:]
    magic, section_length, count, unsigned_minor, reserved, checksum = struct.unpack("<8sQIHHQ", trailer)
    assert magic == b"HXZSIGS\0" and reserved == 0 and 1 <= count <= 64 and unsigned_minor < 4
    assert count * 144 <= section_length <= count * 1168
    start = len(hxz) - 32 - section_length
    section = hxz[start:-32]
    assert check64(section + trailer[:24]) == checksum, "trailer checksum"
    records, at = [], 0
    for _ in range(count):
        alg, res, clen = struct.unpack_from("<2sHI", section, at)
        assert alg == b"Ed" and res == 0 and clen <= 1024
        key_id, sig, gsig = section[at + 8:at + 16], section[at + 16:at + 80], section[at + 80:at + 144]
        comment = section[at + 144:at + 144 + clen]
        assert len(comment) == clen and b"\n" not in comment
        comment.decode("utf-8")
        records.append((key_id, sig, gsig, comment))
        at += 144 + clen
    assert at == len(section), "records do not fill the section"
    footer = hxz[start - 192:start]
    assert footer[:8] == b"HXZFOOT\0"
    assert check64(footer[:184]) == struct.unpack_from("<Q", footer, 184)[0], "footer checksum"
    manifest_offset, manifest_length = struct.unpack_from("<QQ", footer, 40)
    assert manifest_offset + manifest_length == start - 192, "manifest must end where the footer starts"
    identity = blake3.blake3(footer[:184]).digest()
    return identity, records, start, unsigned_minor


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    need_minisign = "--minisign" in sys.argv
    vectors = args[0] if args else os.path.join(os.path.dirname(__file__), "../../spec/vectors")
    hxz = open(os.path.join(vectors, "signed-gguf-lz4.hxz"), "rb").read()
    unsigned = open(os.path.join(vectors, "gguf-lz4.hxz"), "rb").read()
    key_id, key = public_key(os.path.join(vectors, "signed-test.pub"))
    assert key_id == bytes.fromhex("0123456789abcdef")
    identity, records, end, unsigned_minor = parse(hxz)
    # Signing changed the header and appended the section, nothing else.
    assert end == len(unsigned) and hxz[64:end] == unsigned[64:], "signing rewrote archive bytes"
    assert struct.unpack_from("<H", unsigned, 10)[0] == unsigned_minor
    assert blake3.blake3(unsigned[-192:-8]).digest() == identity, "identity changed"
    root = DOMAIN + identity
    pk = Ed25519PublicKey.from_public_bytes(key)
    verified = 0
    for rid, sig, gsig, comment in records:
        if rid != key_id:
            continue
        pk.verify(sig, root)  # raises InvalidSignature
        pk.verify(gsig, sig + comment)
        verified += 1
    assert verified == 1, "no record by the test key"
    # A changed identity or comment must fail.
    for bad_root, bad_comment in ((DOMAIN + bytes(32), records[0][3]), (root, records[0][3] + b"x")):
        try:
            pk.verify(records[0][1], bad_root)
            pk.verify(records[0][2], records[0][1] + bad_comment)
            raise SystemExit("a changed root or comment verified")
        except Exception as e:  # InvalidSignature
            if isinstance(e, SystemExit):
                raise
    checked = "signature and trusted comment (cryptography's Ed25519)"
    minisign = shutil.which("minisign")
    if minisign is None and need_minisign:
        raise SystemExit("--minisign given and minisign is not installed")
    if minisign:
        with tempfile.TemporaryDirectory() as tmp:
            rid, sig, gsig, comment = records[0]
            open(os.path.join(tmp, "root"), "wb").write(root)
            with open(os.path.join(tmp, "root.minisig"), "w") as f:
                f.write("untrusted comment: hexz archive signature\n")
                f.write(base64.b64encode(b"Ed" + rid + sig).decode() + "\n")
                f.write("trusted comment: " + comment.decode() + "\n")
                f.write(base64.b64encode(gsig).decode() + "\n")
            out = subprocess.run(
                [minisign, "-V", "-p", os.path.join(vectors, "signed-test.pub"), "-m", os.path.join(tmp, "root"),
                 "-x", os.path.join(tmp, "root.minisig")], capture_output=True, text=True)
            assert out.returncode == 0, out.stdout + out.stderr
            assert "Signature and comment signature verified" in out.stdout + out.stderr, out.stdout + out.stderr
        checked += ", and by the stock minisign -V"
    print(f"spec_signature: signed-gguf-lz4: 1 of {len(records)} record(s) by the test key verified: {checked}")


if __name__ == "__main__":
    main()
