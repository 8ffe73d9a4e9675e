"""Trusted keys (format 1.4): the spec's signed vector opens with its key
through hexz.open, safe_open and checkpoint.load; an unsigned archive,
another key and a tampered copy raise SignatureError before any read."""

import shutil
import struct

import pytest

import hexz
from conftest import ROOT

VECTORS = ROOT / "spec" / "vectors"
SIGNED = VECTORS / "signed-gguf-lz4.hxz"
UNSIGNED = VECTORS / "gguf-lz4.hxz"
PUB = VECTORS / "signed-test.pub"
# Another valid Ed25519 key under another key id.
OTHER = "RWQBAgMEBQYHCCFS+NGbeR0kRTJC4V8uq2y3z/p7al7TAJeWDgaYgdsS"


def test_open_with_a_trusted_key():
    expected = (VECTORS / "signed-gguf-lz4.expected").read_bytes()
    for key in (PUB, str(PUB), PUB.read_text(), PUB.read_text().splitlines()[1]):
        with hexz.open(SIGNED, trusted_keys=[key]) as a:
            assert a.read(0, a.size) == expected
    # A trusted key among others is enough.
    with hexz.open(SIGNED, trusted_keys=[OTHER, PUB]) as a:
        assert a.keys()


def test_refusals_are_signature_errors(tmp_path):
    with pytest.raises(hexz.SignatureError, match="not signed"):
        hexz.open(UNSIGNED, trusted_keys=[PUB])
    with pytest.raises(hexz.SignatureError, match="no signature by a trusted key"):
        hexz.open(SIGNED, trusted_keys=[OTHER])
    assert issubclass(hexz.SignatureError, hexz.HexzError)
    # A changed byte of the manifest (the last bytes before the footer): the identity changes.
    b = bytearray(SIGNED.read_bytes())
    section = struct.unpack_from("<Q", b, len(b) - 24)[0]
    at = len(b) - 32 - section - 192 - 8
    b[at] ^= 1
    (tmp_path / "t.hxz").write_bytes(b)
    with pytest.raises(hexz.HexzError):
        hexz.open(tmp_path / "t.hxz", trusted_keys=[PUB])
    # Without a trusted key the signed vector opens as any archive.
    with hexz.open(SIGNED) as a:
        assert a.size > 0
    # Keys that do not parse, and hash checks off, are refused as invalid input.
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(SIGNED, trusted_keys=["not a key"])
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(SIGNED, trusted_keys=[])
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(SIGNED, trusted_keys=[PUB], verify_hashes=False)


def test_safe_open_and_checkpoint_load(tmp_path):
    with hexz.safe_open(SIGNED, framework="np", trusted_keys=[PUB]) as f:
        names = list(f.keys())
        assert names
    loaded = hexz.checkpoint.load(SIGNED, trusted_keys=[PUB])
    assert sorted(loaded) == sorted(names)
    shutil.copy(UNSIGNED, tmp_path / "u.hxz")
    with pytest.raises(hexz.SignatureError):
        hexz.safe_open(tmp_path / "u.hxz", framework="np", trusted_keys=[PUB])
    with pytest.raises(hexz.SignatureError):
        hexz.checkpoint.load(tmp_path / "u.hxz", trusted_keys=[PUB])
