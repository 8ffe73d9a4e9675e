"""framework="pt": torch tensors, bf16 without a float32 round trip. torch
is installed in CI (scripts/test.sh), so nothing here is skipped there."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import hexz


def test_load_as_torch_equals_safetensors_torch(models, minilm_hxz):
    ref = torch_load_file(models / "minilm.safetensors")
    got = hexz.checkpoint.load(minilm_hxz, framework="pt")
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == ref[k].dtype and torch.equal(got[k], ref[k]), k
    with hexz.safe_open(minilm_hxz, framework="pt") as f:
        name = "encoder.layer.1.output.dense.weight"
        assert torch.equal(f.get_tensor(name), ref[name])
        assert torch.equal(f.get_slice(name)[3:9], ref[name][3:9])
        # As torch indexes a tensor (and safetensors' slices do): no negative steps.
        with pytest.raises(ValueError, match="step must be greater than zero"):
            f.get_slice(name)[9:3:-2, 5]
    with hexz.open(minilm_hxz) as a:  # hexz's own slices index as numpy does
        assert torch.equal(a.get_slice(name, framework="pt")[9:3:-2, 5], ref[name][torch.tensor([9, 7, 5])][:, 5])


def test_torch_bf16_state_dict_round_trip(models, tmp_path):
    ref = torch_load_file(models / "minilm.safetensors")
    state = {k: v.to(torch.bfloat16) for k, v in ref.items()}
    state["edge"] = torch.tensor([0x7FC1, -0x3F, -0x8000, 1], dtype=torch.int16).view(torch.bfloat16)
    dst = tmp_path / "bf16.hxz"
    hexz.checkpoint.save(state, dst, metadata={"format": "pt"})
    back = hexz.checkpoint.load(dst, framework="pt")
    for k, v in state.items():
        assert back[k].dtype == torch.bfloat16
        assert torch.equal(back[k].view(torch.int16), v.view(torch.int16)), k
    # Same bytes as safetensors.torch writes.
    torch_save_file(state, tmp_path / "ref.safetensors", metadata={"format": "pt"})
    hexz.extract(dst, tmp_path / "out.safetensors")
    assert (tmp_path / "out.safetensors").read_bytes() == (tmp_path / "ref.safetensors").read_bytes()


def test_gguf_as_torch(models, gemma_hxz):
    with hexz.open(gemma_hxz) as a:
        for name in ["token_embd.weight", "output_norm.weight"]:
            t = a.get_tensor(name, framework="pt")
            n = a.get_tensor(name)
            assert tuple(t.shape) == n.shape and t.numpy().tobytes() == n.tobytes()


def test_pt_without_torch_names_torch(minilm_hxz):
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import hexz\n"
        f"a = hexz.open({str(minilm_hxz)!r})\n"
        "try:\n"
        "    a.get_tensor('pooler.dense.bias', framework='pt')\n"
        "except ImportError as e:\n"
        "    assert 'torch' in str(e), e\n"
        "    print('ImportError ok')\n"
        "assert a.get_tensor('pooler.dense.bias').shape == (384,)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert "ImportError ok" in out
    assert np is not None
