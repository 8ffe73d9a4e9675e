"""Encrypted archives (format 1.5) from Python on the real MiniLM: stored
with a passphrase and an X25519 recipient, read with either (every tensor
equal to safetensors' own), through hexz.open, safe_open and
checkpoint.load; a fine-tune stored against the encrypted base; no key, a
wrong key and a damaged ciphertext byte raise the errors of their
category."""

import sys

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

import hexz
from conftest import ROOT

sys.path.insert(0, str(ROOT / "bindings" / "testdata"))
from age_keygen import keygen  # noqa: E402

PASS = "correct horse battery staple"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    recipient = keygen(str(d / "id.txt"))
    keygen(str(d / "other.txt"))
    return d / "id.txt", recipient, d / "other.txt"


@pytest.fixture(scope="module")
def encrypted(models, keys, tmp_path_factory):
    dst = tmp_path_factory.mktemp("enc") / "minilm-enc.hxz"
    report = hexz.store(models / "minilm.safetensors", dst, passphrase=PASS, recipients=[keys[1]])
    assert report.tensors > 0
    return dst


@pytest.fixture(scope="module")
def expected(models):
    return load_file(str(models / "minilm.safetensors"))


def check_all(a, expected):
    assert sorted(a.keys()) == sorted(expected)
    for name, want in expected.items():
        got = a.get_tensor(name)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tobytes() == want.tobytes(), name


def test_passphrase_round_trip(encrypted, expected, models):
    for p in (PASS, PASS.encode()):
        with hexz.open(encrypted, passphrase=p) as a:
            check_all(a, expected)
            # The whole virtual space is the source file, byte for byte.
            assert a.read(0, a.size) == (models / "minilm.safetensors").read_bytes()


def test_identity_round_trip(encrypted, expected, keys):
    ident, _, other = keys
    for given in (ident, str(ident), [other, ident]):
        with hexz.open(encrypted, identity=given) as a:
            check_all(a, expected)


def test_safe_open_and_checkpoint_load(encrypted, expected, keys):
    with hexz.safe_open(encrypted, framework="np", identity=keys[0]) as f:
        name = sorted(f.keys())[0]
        assert f.get_tensor(name).tobytes() == expected[name].tobytes()
    loaded = hexz.checkpoint.load(encrypted, passphrase=PASS)
    assert sorted(loaded) == sorted(expected)
    for name, want in expected.items():
        assert loaded[name].tobytes() == want.tobytes()


def test_missing_and_wrong_keys(encrypted, keys, minilm_hxz):
    with pytest.raises(hexz.EncryptionKeyError) as e:
        hexz.open(encrypted)
    assert e.value.code == "KeyRequired"
    with pytest.raises(hexz.EncryptionKeyError) as e:
        hexz.open(encrypted, passphrase="not the passphrase")
    assert e.value.code == "WrongKey"
    with pytest.raises(hexz.EncryptionKeyError) as e:
        hexz.open(encrypted, identity=keys[2])
    assert e.value.code == "WrongKey"
    with pytest.raises(hexz.EncryptionKeyError):
        hexz.safe_open(encrypted, framework="np")
    with pytest.raises(hexz.EncryptionKeyError):
        hexz.checkpoint.load(encrypted, passphrase=b"nope")
    assert issubclass(hexz.EncryptionKeyError, hexz.HexzError)
    assert hexz.errors.CATEGORY_CLASSES["KEY"] is hexz.EncryptionKeyError
    # A plain archive opens whatever keys are given.
    with hexz.open(minilm_hxz, passphrase=PASS) as a:
        assert a.keys()
    # Bad key arguments are invalid input, not a key error.
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(encrypted, passphrase="")
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(encrypted, identity=[])
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(encrypted, identity=_recipient_file(keys))
    with pytest.raises(hexz.InvalidInputError):
        hexz.store(ROOT / "README.md", keys[0].parent / "x.hxz", recipients=["age1notarecipient"])


def _recipient_file(keys):
    """A file holding a recipient where an identity is expected."""
    path = keys[0].parent / "recipient.txt"
    path.write_text(keys[1] + "\n")
    return path


def test_flipped_ciphertext_byte_is_corrupt(encrypted, expected, tmp_path):
    data = bytearray(encrypted.read_bytes())
    # The middle of the file is inside a stored block of a large tensor
    # (the index and the manifest sit at the end, the header's block first).
    data[len(data) // 2] ^= 0x10
    bad = tmp_path / "bad.hxz"
    bad.write_bytes(data)
    with hexz.open(bad, passphrase=PASS) as a:
        with pytest.raises(hexz.CorruptArchiveError) as e:
            for name in expected:
                a.get_tensor(name)
    assert e.value.code == "Decrypt"
    # With hash checks off the tag is still checked: never wrong bytes.
    with hexz.open(bad, passphrase=PASS, verify_hashes=False) as a:
        with pytest.raises(hexz.CorruptArchiveError):
            for name in expected:
                a.get_tensor(name)


def test_fine_tune_of_an_encrypted_base(encrypted, keys, models, tmp_path):
    """hexz.store against an encrypted base: opened with base_passphrase or
    base_identity, the child is stored under the base's key (dedup and
    deltas against it), and opens with whatever opens the base."""
    tensors = load_file(str(models / "minilm.safetensors"))
    # One layer's weight changed (as by a partial fine-tune); the rest dedups.
    name = max((n for n in tensors if tensors[n].nbytes < (4 << 20)), key=lambda n: tensors[n].nbytes)
    tensors[name] = tensors[name] * np.float32(1.001)
    fine = tmp_path / "fine.safetensors"
    save_file(tensors, str(fine))

    child = tmp_path / "fine.hxz"
    # Without a key for the base: refused, nothing written.
    with pytest.raises(hexz.EncryptionKeyError) as e:
        hexz.store(fine, child, base=encrypted)
    assert e.value.code == "KeyRequired"
    assert not child.exists()

    report = hexz.store(fine, child, base=encrypted, base_passphrase=PASS)
    assert report.parent_blocks > 0
    assert report.archive_size < fine.stat().st_size / 3
    assert name.encode() not in child.read_bytes()  # the tensor table is encrypted too
    for unlock in ({"passphrase": PASS}, {"identity": keys[0]}):
        with hexz.open(child, **unlock) as a:
            check_all(a, tensors)
    with pytest.raises(hexz.EncryptionKeyError):
        hexz.open(child)

    # The base opened with an identity works the same way.
    by_identity = tmp_path / "fine-id.hxz"
    hexz.store(fine, by_identity, base=encrypted, base_identity=keys[0])
    with hexz.open(by_identity, passphrase=PASS) as a:
        check_all(a, tensors)

    # Other keys for the child: refused (a chain is under one key).
    other = tmp_path / "other.hxz"
    with pytest.raises(hexz.EncryptionKeyError) as e:
        hexz.store(fine, other, base=encrypted, base_passphrase=PASS, passphrase="another")
    assert e.value.code == "WrongKey"
    assert not other.exists()
    # A wrong key for the base.
    with pytest.raises(hexz.EncryptionKeyError) as e:
        hexz.store(fine, other, base=encrypted, base_identity=keys[2])
    assert e.value.code == "WrongKey"
    # A base key without a base (passphrase= was meant?): refused, not stored plain.
    with pytest.raises(hexz.InvalidInputError):
        hexz.store(fine, other, base_passphrase=PASS)
    assert not other.exists()
