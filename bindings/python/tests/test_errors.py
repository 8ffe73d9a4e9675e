"""Bad input raises the right exception, naming the file."""

import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

import hexz


def test_missing_file(tmp_path):
    with pytest.raises(hexz.ArchiveNotFoundError) as e:
        hexz.open(tmp_path / "nope.hxz")
    assert isinstance(e.value, FileNotFoundError) and "nope.hxz" in str(e.value)
    with pytest.raises(FileNotFoundError):
        hexz.verify(tmp_path / "nope.hxz")


def test_truncated_archive(minilm_hxz, tmp_path):
    data = minilm_hxz.read_bytes()
    for cut in [len(data) // 2, len(data) - 1, 100]:
        bad = tmp_path / "truncated.hxz"
        bad.write_bytes(data[:cut])
        with pytest.raises(hexz.CorruptArchiveError) as e:
            hexz.open(bad)
        assert "truncated.hxz" in str(e.value) and e.value.code
        report = hexz.verify(bad)
        assert not report.ok and report.problems
        with pytest.raises(hexz.CorruptArchiveError):
            report.check()


def test_plain_gguf_is_not_an_archive(models):
    with pytest.raises(hexz.InvalidInputError) as e:
        hexz.open(models / "gemma.gguf")
    assert isinstance(e.value, ValueError)
    assert "gemma.gguf" in str(e.value) and e.value.code == "BadMagic"


def test_missing_parent(models, tmp_path):
    base_dir = tmp_path / "bases"
    base_dir.mkdir()
    base = base_dir / "base.hxz"
    hexz.checkpoint.save(load_file(models / "minilm.safetensors"), base)
    ft = tmp_path / "ft.hxz"
    hexz.checkpoint.save(load_file(models / "minilm-ft.safetensors"), ft, base=base)
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    shutil.move(str(base), moved / "base.hxz")
    with pytest.raises(hexz.ParentMissingError) as e:
        hexz.open(ft)
    assert "ft.hxz" in str(e.value)
    with pytest.raises(hexz.ParentMissingError):
        hexz.checkpoint.load(ft)
    # Told where to look, it opens, and the parent is checked by identity.
    with hexz.open(ft, parent_dirs=[moved]) as a:
        assert a.chain[1].endswith("base.hxz")
        assert a.get_tensor("pooler.dense.bias").shape == (384,)


def test_unknown_key(minilm_hxz):
    with hexz.open(minilm_hxz) as a:
        for call in (a.get_tensor, a.tensor_info, a.get_slice, a.read_tensor):
            with pytest.raises(hexz.NotFoundError) as e:
                call("no.such.tensor")
            assert isinstance(e.value, KeyError) and "no.such.tensor" in str(e.value)
    with pytest.raises(KeyError):
        hexz.checkpoint.load(minilm_hxz, keys=["no.such.tensor"])
    with pytest.raises(hexz.InvalidInputError):
        hexz.open(minilm_hxz).get_tensor("pooler.dense.bias", framework="tf")


def test_corrupt_block_raises_and_the_rest_reads(models, minilm_hxz, tmp_path):
    data = bytearray(minilm_hxz.read_bytes())
    data[len(data) // 3] ^= 0x40  # inside block data, far from the index at the end
    bad = tmp_path / "corrupt.hxz"
    bad.write_bytes(bytes(data))
    ref = load_file(models / "minilm.safetensors")
    bad_tensors = []
    with hexz.open(bad) as a:
        for name in a.keys():
            try:
                got = a.get_tensor(name)
            except hexz.CorruptArchiveError as e:
                assert "corrupt.hxz" in str(e)
                bad_tensors.append(name)
                continue
            assert np.array_equal(got, ref[name]), name  # never wrong bytes
    assert len(bad_tensors) == 1
    report = hexz.verify(bad, deep=True)
    assert not report.ok and report.deep
    assert hexz.verify(bad, deep=False).ok  # structure is intact; only a block's bytes changed


def test_store_refuses_malformed_source(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((20).to_bytes(8, "little") + b'{"a": {"dtype": "F32"')
    with pytest.raises(hexz.InvalidInputError) as e:
        hexz.store(bad, tmp_path / "bad.hxz")
    assert "bad.safetensors" in str(e.value)
    assert not (tmp_path / "bad.hxz").exists()
    hexz.store(bad, tmp_path / "bad.hxz", raw=True)
    with pytest.raises(hexz.InvalidInputError):
        hexz.store(bad, tmp_path / "x.hxz", compression="brotli")


def test_status_categories_are_the_shared_table():
    """Every status's class comes from its category, by the table Go's
    sentinel errors and C's hexz_status_category are checked against."""
    import json
    from pathlib import Path

    from hexz import _hexz

    table = json.loads((Path(__file__).resolve().parents[2] / "testdata" / "error-categories.json").read_text())
    classes = {c["name"]: c["python"] for c in table["categories"]}
    assert sorted(classes) == sorted(hexz.errors.CATEGORY_CLASSES)
    assert sorted(_hexz.STATUSES) == sorted((s["name"], s["code"]) for s in table["statuses"])
    for s in table["statuses"]:
        assert _hexz.status_category(s["name"]) == s["category"], s
        cls = hexz.errors._class_for(s["category"], False)
        assert cls.__name__ == classes[s["category"]], s
        assert issubclass(cls, hexz.HexzError) and issubclass(cls, hexz.SafetensorError)
    # A file the OS says is missing is an ArchiveNotFoundError whatever the category.
    assert hexz.errors._class_for("IO", True) is hexz.ArchiveNotFoundError
    # VERIFY_FAILED is corruption, as in Go.
    assert hexz.errors._class_for(_hexz.status_category("VERIFY_FAILED"), False) is hexz.CorruptArchiveError
