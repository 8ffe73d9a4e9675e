"""hexz.checkpoint: dicts of arrays to archives of standard safetensors files."""

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import load_file, save
from safetensors.torch import load_file as torch_load_file

import hexz


@pytest.fixture(scope="module")
def minilm(models):
    return load_file(models / "minilm.safetensors")


def test_save_writes_the_file_safetensors_writes(minilm, tmp_path):
    tensors = dict(minilm)
    tensors["scalar"] = np.array(2.5, dtype=np.float64)
    tensors["flags"] = np.array([True, False, True])
    tensors["empty"] = np.zeros((0, 4), dtype=np.int16)
    tensors["transposed"] = minilm["pooler.dense.weight"].T  # not C-contiguous
    # (One metadata key: safetensors orders several by a HashMap, differently each run.)
    for metadata in (None, {"note": "ünïcode ✓"}):
        dst = tmp_path / "c.hxz"
        hexz.checkpoint.save(tensors, dst, metadata=metadata)
        hexz.extract(dst, tmp_path / "c.safetensors", force=True)
        written = (tmp_path / "c.safetensors").read_bytes()
        # (safetensors.numpy.save writes a non-contiguous array's memory as
        # it lies, not in C order; give it a contiguous copy to compare.)
        contiguous = {k: np.require(v, requirements="C") for k, v in tensors.items()}
        assert written == save(contiguous, metadata=metadata)
        back = load_file(tmp_path / "c.safetensors")
        assert all(np.array_equal(back[k], tensors[k]) for k in tensors)
        loaded = hexz.checkpoint.load(dst)
        assert set(loaded) == set(tensors)
        for k, v in tensors.items():
            assert loaded[k].dtype == v.dtype and np.array_equal(loaded[k], v), k
        with hexz.open(dst) as a:
            assert a.metadata() == (metadata or {})


def test_bf16_round_trip_bit_exact(minilm, tmp_path):
    tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in minilm.items()}
    # Values that a float32 round trip would not keep: NaN payloads, -0, subnormals.
    tensors["edge"] = np.array([0x7FC1, 0xFFC1, 0x8000, 0x0001, 0x7F80], dtype=np.uint16).view(ml_dtypes.bfloat16)
    dst = tmp_path / "bf16.hxz"
    hexz.checkpoint.save(tensors, dst)
    back = hexz.checkpoint.load(dst)
    for k, v in tensors.items():
        assert back[k].dtype == ml_dtypes.bfloat16
        assert np.array_equal(back[k].view(np.uint16), v.view(np.uint16)), k
    assert hexz.checkpoint.manifest(dst)["edge"]["dtype"] == "BF16"
    # The archived file is a standard safetensors file: torch's loader reads it.
    hexz.extract(dst, tmp_path / "bf16.safetensors")
    via_torch = torch_load_file(tmp_path / "bf16.safetensors")
    for k, v in tensors.items():
        assert np.array_equal(via_torch[k].view(__import__("torch").int16).numpy().view(np.uint16), v.view(np.uint16))


def test_finetune_with_base_is_smaller_and_exact(models, minilm, tmp_path):
    base = tmp_path / "base.hxz"
    hexz.checkpoint.save(minilm, base)
    ft = load_file(models / "minilm-ft.safetensors")  # layers 4 and 5 changed
    alone = hexz.checkpoint.save(ft, tmp_path / "ft-alone.hxz")
    delta = hexz.checkpoint.save(ft, tmp_path / "ft.hxz", base=base, metadata={"step": "500"})
    assert delta.archive_size < alone.archive_size / 2, (delta.archive_size, alone.archive_size)
    assert delta.parent_blocks > 0
    back = hexz.checkpoint.load(tmp_path / "ft.hxz")
    for k, v in ft.items():
        assert back[k].tobytes() == v.tobytes(), k
    m = hexz.checkpoint.manifest(tmp_path / "ft.hxz")
    assert m["embeddings.word_embeddings.weight"]["storage"] == "parent"
    assert {e["storage"] for k, e in m.items() if "layer.5." in k and k.endswith("weight")} <= {"delta", "stored"}
    with hexz.open(tmp_path / "ft.hxz") as a:
        assert a.parent is not None and a.parent.identity == hexz.open(base).identity
        assert a.metadata() == {"step": "500"}
    # Only some keys.
    some = hexz.checkpoint.load(tmp_path / "ft.hxz", keys=["pooler.dense.bias"])
    assert list(some) == ["pooler.dense.bias"]


def test_save_refuses_bad_input(tmp_path):
    with pytest.raises(hexz.InvalidInputError):
        hexz.checkpoint.save({"a": np.zeros(3)}, tmp_path / "x.hxz", metadata={"step": 500})
    with pytest.raises(hexz.InvalidInputError):
        hexz.checkpoint.save({"__metadata__": np.zeros(3)}, tmp_path / "x.hxz")
    with pytest.raises(hexz.InvalidInputError):
        hexz.checkpoint.save({"a": np.array(["text"], dtype=object)}, tmp_path / "x.hxz")
    with pytest.raises(hexz.ArchiveNotFoundError):
        hexz.checkpoint.save({"a": np.zeros(3)}, tmp_path / "x.hxz", base=tmp_path / "no-base.hxz")
    assert not (tmp_path / "x.hxz").exists()
