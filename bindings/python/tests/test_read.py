"""Reading real models through hexz, against the reference readers."""

import hashlib
import random
import threading

import numpy as np
import pytest
import safetensors
from gguf import GGUFReader
from safetensors.numpy import load_file

import hexz


def test_minilm_every_tensor_equals_safetensors(models, minilm_hxz):
    ref = load_file(models / "minilm.safetensors")
    with hexz.open(minilm_hxz) as a:
        assert a.source_format == "safetensors"
        assert a.size == (models / "minilm.safetensors").stat().st_size
        assert sorted(a.keys()) == sorted(ref)
        for name in a.keys():
            got = a.get_tensor(name)
            want = ref[name]
            assert got.dtype == want.dtype and got.shape == want.shape, name
            assert got.tobytes() == want.tobytes(), name
            info = a.tensor_info(name)
            assert info.length == want.nbytes and list(info.shape) == list(want.shape)


def test_gemma_every_tensor_equals_gguf_py(models, gemma_hxz):
    reader = GGUFReader(models / "gemma.gguf")
    with hexz.open(gemma_hxz) as a:
        assert a.source_format == "gguf"
        assert a.keys() == [t.name for t in reader.tensors]
        for t in reader.tensors:
            got = a.get_tensor(t.name)
            # gguf-py: typed arrays for F32/F16, bytes shaped (..., row bytes) for quantized types.
            assert got.shape == t.data.shape, t.name
            assert got.tobytes() == t.data.tobytes(), t.name
            info = a.tensor_info(t.name)
            assert info.ggml_type == int(t.tensor_type)
            assert list(info.shape) == [int(d) for d in t.shape]
            assert info.offset == int(t.data_offset)  # gguf-py's is absolute in the file
            assert a.read_tensor(t.name) == t.data.tobytes()


def test_gemma_metadata_matches_gguf_py(models, gemma_hxz):
    reader = GGUFReader(models / "gemma.gguf")
    with hexz.open(gemma_hxz) as a:
        md = a.metadata()
        fields = {f.name: f for f in reader.fields.values() if not f.name.startswith("GGUF.")}
        assert set(md) == set(fields)
        assert md["general.architecture"] == "gemma3"
        tokens = md["tokenizer.ggml.tokens"]
        assert len(tokens) == len(fields["tokenizer.ggml.tokens"].data)
        assert tokens[:50] == [fields["tokenizer.ggml.tokens"].contents(i) for i in range(50)]
        scores = md["tokenizer.ggml.scores"]
        assert isinstance(scores, np.ndarray) and scores.dtype == np.float32
        assert np.array_equal(scores, np.asarray(fields["tokenizer.ggml.scores"].contents(), dtype=np.float32))
        types = {k: (vt, et) for k, vt, et, _ in a.gguf_fields()}
        assert types["general.architecture"] == (8, None)
        assert types["tokenizer.ggml.tokens"] == (9, 8)


def test_get_slice_reads_only_the_rows(models, minilm_hxz):
    ref = load_file(models / "minilm.safetensors")
    name = "embeddings.word_embeddings.weight"  # 30522 x 384 F32, 47 MB
    with hexz.open(minilm_hxz) as a:
        before = a.io_stats()["bytes"]
        rows = a.get_slice(name)[0:10]
        slice_bytes = a.io_stats()["bytes"] - before
        whole = a.get_tensor(name)
        tensor_bytes = a.io_stats()["bytes"] - before - slice_bytes
        assert np.array_equal(rows, ref[name][0:10])
        assert np.array_equal(whole, ref[name])
        assert 0 < slice_bytes < tensor_bytes / 20, (slice_bytes, tensor_bytes)
        s = a.get_slice(name)
        assert s.get_shape() == [30522, 384] and s.get_dtype() == "F32" and len(s) == 30522
        for key in [np.s_[5], np.s_[-1], np.s_[100:90:-3], np.s_[3:9, 10:20], np.s_[::5000], np.s_[30000:],
                    np.s_[7, 2:5], np.s_[10:10], np.s_[..., 3]]:
            assert np.array_equal(s[key], ref[name][key]), key
        with pytest.raises(IndexError):
            s[30522]


def test_safe_open_is_a_drop_in(models, minilm_hxz):
    with safetensors.safe_open(models / "minilm.safetensors", framework="np") as ref, \
            hexz.safe_open(minilm_hxz, framework="np") as f:
        assert f.keys() == list(ref.keys())
        assert f.metadata() == ref.metadata()
        for k in f.keys():
            assert np.array_equal(f.get_tensor(k), ref.get_tensor(k))
        name = "encoder.layer.0.attention.self.query.weight"
        assert f.get_slice(name).get_shape() == ref.get_slice(name).get_shape()
        assert np.array_equal(f.get_slice(name)[2:7, 1:3], ref.get_slice(name)[2:7, 1:3])


def test_read_and_readinto_any_buffer(models, minilm_hxz):
    raw = (models / "minilm.safetensors").read_bytes()
    with hexz.open(minilm_hxz) as a:
        assert a.read(0, 64) == raw[:64]
        assert a.read(len(raw) - 10, 10) == raw[-10:]
        assert a.read(5, 0) == b""
        ba = bytearray(100_000)
        assert a.readinto(ba, 12_345) == len(ba)
        assert bytes(ba) == raw[12_345:112_345]
        arr = np.zeros((50, 40), dtype=np.float32)
        a.readinto(arr, 1_000_000)
        assert arr.tobytes() == raw[1_000_000:1_008_000]
        mv = memoryview(bytearray(10 << 20))
        a.readinto(mv, 3)
        assert bytes(mv) == raw[3:3 + (10 << 20)]
        with pytest.raises(hexz.InvalidInputError):
            a.readinto(b"read-only", 0)
        with pytest.raises(hexz.InvalidInputError):
            a.readinto(np.zeros((10, 10), dtype=np.uint8)[:, ::2], 0)
        with pytest.raises(hexz.InvalidInputError):
            a.read(len(raw) - 5, 10)


def test_eight_threads_read_random_tensors(models, minilm_hxz, gemma_hxz):
    refs = {
        minilm_hxz: (models / "minilm.safetensors").read_bytes(),
        gemma_hxz: (models / "gemma.gguf").read_bytes(),
    }
    archives = {p: hexz.open(p) for p in refs}
    failures = []

    def worker(seed):
        rng = random.Random(seed)
        try:
            for _ in range(40):
                path = rng.choice(list(refs))
                a = archives[path]
                t = rng.choice(a.tensors())
                got = a.get_tensor(t.name)
                if got.tobytes() != refs[path][t.offset:t.offset + t.length]:
                    failures.append((path, t.name))
                off = rng.randrange(a.size)
                n = min(rng.randrange(1, 3 << 20), a.size - off)
                if a.read(off, n) != refs[path][off:off + n]:
                    failures.append((path, off, n))
        except Exception as e:  # noqa: BLE001 - reported below
            failures.append(repr(e))

    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for a in archives.values():
        a.close()
    assert not failures


def test_store_extract_verify_round_trip(models, tmp_path):
    for name in ["minilm.safetensors", "gemma.gguf"]:
        src = models / name
        for compression in ["zstd", "lz4"]:
            dst = tmp_path / f"{name}.{compression}.hxz"
            report = hexz.store(src, dst, compression=compression, metadata={"run": "7", "cfg": {"lr": 1e-4}})
            assert report.source_size == src.stat().st_size and 0 < report.ratio < 1
            out = tmp_path / f"{name}.{compression}.out"
            hexz.extract(dst, out)
            assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()
            assert hexz.verify(dst, deep=True).ok
            with hexz.open(dst) as a:
                assert a.user_metadata() == {"run": "7", "cfg": {"lr": 1e-4}}
                assert a.metadata()["run"] == "7"
        with pytest.raises(hexz.HexzError):
            hexz.store(src, dst)  # exists; force not given
        hexz.store(src, dst, force=True)


def test_folder_archive(models, tmp_path):
    sharded = models / "minilm-sharded"
    dst = tmp_path / "sharded.hxz"
    hexz.store(sharded, dst)
    ref = load_file(models / "minilm.safetensors")
    with hexz.open(dst) as a:
        assert a.source_format == "folder"
        paths = [f.path for f in a.files()]
        assert "model.safetensors.index.json" in paths
        assert sorted(a.keys()) == sorted(ref)
        for k in a.keys():
            assert np.array_equal(a.get_tensor(k), ref[k])
            assert a.files()[a.tensor_info(k).file].path.endswith(".safetensors")
    out = tmp_path / "out"
    hexz.extract(dst, out)
    for f in sharded.rglob("*"):
        if f.is_file():
            assert (out / f.relative_to(sharded)).read_bytes() == f.read_bytes()


def test_folder_checkpoints_sharing_names(models, tmp_path):
    """Issue #32: checkpoint-500/ and checkpoint-1000/ hold the same tensor
    names; file= picks one, a bare shared name is an error naming both."""
    runs = models / "minilm-runs"
    dst = tmp_path / "runs.hxz"
    hexz.store(runs, dst)
    assert hexz.verify(dst, deep=True).ok
    name = "encoder.layer.4.attention.self.query.weight"
    first = load_file(runs / "checkpoint-500" / "model.safetensors")
    last = load_file(runs / "checkpoint-1000" / "model.safetensors")
    assert not np.array_equal(first[name], last[name])
    with hexz.open(dst) as a:
        with pytest.raises(hexz.InvalidInputError, match="is in 2 files .*checkpoint-1000/model.safetensors, "
                                                         "checkpoint-500/model.safetensors"):
            a.get_tensor(name)
        for file, ref in (("checkpoint-500/model.safetensors", first), ("checkpoint-1000/model.safetensors", last)):
            assert np.array_equal(a.get_tensor(name, file=file), ref[name])
            assert a.read_tensor(name, file=file) == ref[name].tobytes()
            assert np.array_equal(a.get_slice(name, file=file)[2:5], ref[name][2:5])
            info = a.tensor_info(name, file=file)
            assert a.files()[info.file].path == file
        with pytest.raises(hexz.NotFoundError, match="no tensor named 'nope' in file"):
            a.tensor_info("nope", file="checkpoint-500/model.safetensors")
        with pytest.raises(hexz.NotFoundError, match="no file 'checkpoint-9/model.safetensors'"):
            a.tensor_info(name, file="checkpoint-9/model.safetensors")
    with hexz.safe_open(dst, framework="np") as f:
        got = f.get_tensor(name, file="checkpoint-1000/model.safetensors")
        assert np.array_equal(got, last[name])
        assert np.array_equal(f.get_slice(name, file="checkpoint-500/model.safetensors")[0:3], first[name][0:3])
        with pytest.raises(hexz.InvalidInputError, match="is in 2 files"):
            f.get_tensor(name)


def test_empty_folder_round_trips(tmp_path):
    """Issue #32: an empty folder stores, opens, extracts to an empty folder and verifies."""
    src = tmp_path / "empty"
    src.mkdir()
    dst = tmp_path / "empty.hxz"
    hexz.store(src, dst)
    assert hexz.verify(dst, deep=True).ok
    with hexz.open(dst) as a:
        assert a.source_format == "folder"
        assert a.size == 0 and a.files() == [] and a.keys() == []
    out = tmp_path / "out"
    hexz.extract(dst, out)
    assert out.is_dir() and list(out.iterdir()) == []


def test_closed_archive_refuses_reads(minilm_hxz):
    a = hexz.open(minilm_hxz)
    a.close()
    a.close()  # idempotent
    assert a.closed
    with pytest.raises(ValueError, match="closed"):
        a.read(0, 10)
