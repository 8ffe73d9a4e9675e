"""Remote archives from the Python package and through the C ABI
(hexz_open_url of libhexz-remote, called with ctypes; libhexz itself has no
remote stack and must refuse URLs), against the same loopback servers."""

import ctypes
import os
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

import hexz
from conftest import ROOT, hexz as run_hexz


def test_python_reads_http_and_s3(models, served, s3, tmp_path):
    ref = load_file(models / "minilm-ft.safetensors")
    with hexz.open(f"{served.url}/ft.hxz") as a:  # its parent minilm.hxz is fetched beside it
        assert a.chain[1] == f"{served.url}/minilm.hxz"
        before = a.io_stats()
        assert before["reads"] == 2  # open: header and suffix, together
        name = "encoder.layer.5.output.dense.weight"
        assert np.array_equal(a.get_tensor(name), ref[name])
        assert np.array_equal(a.get_slice(name)[3:5], ref[name][3:5])
        assert hexz.checkpoint.load(f"{served.url}/ft.hxz", keys=[name])[name].tobytes() == ref[name].tobytes()
    run_hexz("-q", "store", models / "minilm-ft.safetensors", "s3://models/py/ft.hxz", env=s3["env"])
    # Credentials from the environment; endpoint and region as arguments.
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    try:
        with hexz.open("s3://models/py/ft.hxz", endpoint_url=s3["endpoint"], region="us-east-1") as a:
            for k in list(ref)[:20]:
                assert np.array_equal(a.get_tensor(k), ref[k]), k
        with pytest.raises(hexz.ArchiveNotFoundError):
            hexz.open("s3://models/py/nope.hxz", endpoint_url=s3["endpoint"], region="us-east-1")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    with pytest.raises(hexz.UnsupportedError):
        hexz.open("ftp://example.invalid/m.hxz")


class UrlOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t),
        ("endpoint", ctypes.c_char_p),
        ("region", ctypes.c_char_p),
        ("cache_bytes", ctypes.c_uint64),
        ("timeout_ms", ctypes.c_uint32),
        ("connect_timeout_ms", ctypes.c_uint32),
        ("parent_location", ctypes.c_char_p),
        ("open", ctypes.c_void_p),
    ]


@pytest.fixture(scope="session")
def c_libraries(tmp_path_factory):
    """libhexz-remote.so and libhexz.so: from $HEXZ_FFI_PREFIX when set
    (scripts/test.sh installs them there), else installed for this run."""
    prefix = os.environ.get("HEXZ_FFI_PREFIX")
    if not prefix:
        out = subprocess.run([str(ROOT / "scripts" / "install-ffi.sh"), str(tmp_path_factory.mktemp("ffi"))],
                             check=True, stdout=subprocess.PIPE, text=True)
        prefix = out.stdout.strip().splitlines()[-1]
    libs = {}
    for name in ["hexz", "hexz-remote"]:
        lib = ctypes.CDLL(f"{prefix}/lib/lib{name}.so")
        lib.hexz_last_error.restype = ctypes.c_char_p
        libs[name] = lib
    return libs


class TensorInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_size_t), ("name", ctypes.c_char_p), ("name_len", ctypes.c_size_t), ("dtype", ctypes.c_char_p),
        ("dtype_len", ctypes.c_size_t), ("ggml_type", ctypes.c_uint32), ("n_dims", ctypes.c_uint32),
        ("dims", ctypes.POINTER(ctypes.c_uint64)), ("offset", ctypes.c_uint64), ("length", ctypes.c_uint64),
        ("storage_kind", ctypes.c_uint32),
    ]


def assert_tensor_is_ggufs(lib, archive, name, models):
    """Tensor `name` of an open C archive of gemma reads as the .gguf's bytes."""
    index = ctypes.c_size_t()
    assert lib.hexz_find_tensor(archive, name, ctypes.byref(index)) == 0
    info = TensorInfo(struct_size=ctypes.sizeof(TensorInfo))
    assert lib.hexz_tensor_get_info(archive, index, ctypes.byref(info)) == 0
    buf = ctypes.create_string_buffer(info.length)
    got = ctypes.c_size_t()
    assert lib.hexz_read_tensor(archive, index, buf, info.length, ctypes.byref(got)) == 0
    with open(models / "gemma.gguf", "rb") as f:
        f.seek(info.offset)
        assert buf.raw == f.read(info.length)


def test_c_abi_open_url(models, served, s3, c_libraries):
    # libhexz, without the remote stack: URLs are UNSUPPORTED, and say so.
    archive = ctypes.c_void_p()
    minimal = c_libraries["hexz"]
    assert minimal.hexz_open_url(f"{served.url}/gemma.hxz".encode(), None, ctypes.byref(archive)) == 5  # UNSUPPORTED
    assert not archive.value and b"libhexz-remote" in minimal.hexz_last_error()
    lib = c_libraries["hexz-remote"]
    opts = UrlOptions(struct_size=ctypes.sizeof(UrlOptions), timeout_ms=20000)
    status = lib.hexz_open_url(f"{served.url}/gemma.hxz".encode(), ctypes.byref(opts), ctypes.byref(archive))
    assert status == 0, lib.hexz_last_error()
    try:
        count = ctypes.c_size_t()
        assert lib.hexz_tensor_count(archive, ctypes.byref(count)) == 0 and count.value == 236
        assert_tensor_is_ggufs(lib, archive, b"blk.0.attn_q.weight", models)
    finally:
        lib.hexz_close(archive)
    # S3 with the endpoint and region in the options.
    run_hexz("-q", "store", models / "minilm.safetensors", "s3://models/c/m.hxz", env=s3["env"])
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    opts = UrlOptions(struct_size=ctypes.sizeof(UrlOptions), endpoint=s3["endpoint"].encode(), region=b"us-east-1")
    archive = ctypes.c_void_p()
    assert lib.hexz_open_url(b"s3://models/c/m.hxz", ctypes.byref(opts), ctypes.byref(archive)) == 0, \
        lib.hexz_last_error()
    lib.hexz_close(archive)
    status = lib.hexz_open_url(b"s3://models/c/none.hxz", ctypes.byref(opts), ctypes.byref(archive))
    assert status == 6 and b"none.hxz" in lib.hexz_last_error()  # NOT_FOUND, naming the object


def test_dcp_checkpoint_read_from_s3(s3, tmp_path, monkeypatch):
    """A hexz.dcp checkpoint chain uploaded as is loads from s3://: the
    .metadata, then the ranges of each rank's archive, its parent fetched
    beside it (../step-1/...)."""
    torch = pytest.importorskip("torch")
    import torch.distributed.checkpoint as dcp
    from hexz.dcp import HexzStorageReader, HexzStorageWriter

    g = torch.Generator().manual_seed(0)
    state = {"w": torch.randn(512, 256, generator=g), "b": torch.randn(256, generator=g), "note": {"lr": 0.5}}
    for n in (1, 2):
        state["w"] = state["w"] + 1e-3 * n
        dcp.save(state, storage_writer=HexzStorageWriter(tmp_path / f"step-{n}", base="auto"))
    for f in tmp_path.rglob("*"):
        if f.is_file():
            s3["client"].upload_file(str(f), "models", f"dcp/{f.relative_to(tmp_path)}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    got = {"w": torch.zeros(512, 256), "b": torch.zeros(256), "note": {"lr": 0.0}}
    reader = HexzStorageReader("s3://models/dcp/step-2", endpoint_url=s3["endpoint"], region="us-east-1")
    dcp.load(got, storage_reader=reader)
    assert torch.equal(got["w"], state["w"]) and torch.equal(got["b"], state["b"]) and got["note"] == {"lr": 0.5}
    assert reader.bytes_read > 0
    # Writing to a URL is refused with a clear error (store locally, upload).
    with pytest.raises(hexz.UnsupportedError, match="not supported yet"):
        HexzStorageWriter("s3://models/dcp/step-3")


class UrlOptionsWithCache(ctypes.Structure):
    """hexz_url_options with the block cache fields added at its end."""
    _fields_ = UrlOptions._fields_ + [("cache_dir", ctypes.c_char_p), ("cache_max_bytes", ctypes.c_uint64)]


def test_c_abi_block_cache(models, served, c_libraries, tmp_path):
    lib = c_libraries["hexz-remote"]
    name = b"blk.1.ffn_up.weight"

    def read_once(cache_dir):
        opts = UrlOptionsWithCache(struct_size=ctypes.sizeof(UrlOptionsWithCache), cache_dir=cache_dir,
                                   cache_max_bytes=1 << 30)
        archive = ctypes.c_void_p()
        status = lib.hexz_open_url(f"{served.url}/gemma.hxz".encode(), ctypes.byref(opts), ctypes.byref(archive))
        assert status == 0, lib.hexz_last_error()
        try:
            assert_tensor_is_ggufs(lib, archive, name, models)
        finally:
            lib.hexz_close(archive)

    cache = str(tmp_path / "cache").encode()
    served.clear()
    read_once(cache)
    assert sum(r[3] for r in served.requests() if r[0] == "GET") > 0
    served.clear()
    read_once(cache)  # as a second process would: every block from the folder
    assert sum(r[3] for r in served.requests() if r[0] == "GET") == 0, served.requests()
    assert [r[0] for r in served.requests()] == ["HEAD"]
    served.clear()
    read_once(b"off")
    assert sum(r[3] for r in served.requests() if r[0] == "GET") > 0


class StoreOptions(ctypes.Structure):
    """hexz_store_options as of ABI 1.1 (url last)."""

    _fields_ = [
        ("struct_size", ctypes.c_size_t), ("compression", ctypes.c_uint32), ("level", ctypes.c_int32),
        ("block_size", ctypes.c_uint32), ("threads", ctypes.c_uint32), ("base", ctypes.c_char_p),
        ("parent_dir", ctypes.c_char_p), ("no_clobber", ctypes.c_uint32), ("chunking", ctypes.c_uint32),
        ("url", ctypes.c_char_p),
    ]


@pytest.fixture
def s3_env(s3, monkeypatch):
    """The S3 server's variables in this process: stores to URLs from Python
    and through the C ABI read the standard AWS variables."""
    for k, v in s3["env"].items():
        if k.startswith("AWS_"):
            monkeypatch.setenv(k, v)
    return s3


def test_python_stores_to_s3(models, s3_env, tmp_path):
    client = s3_env["client"]
    src = models / "minilm.safetensors"
    local = tmp_path / "minilm.hxz"
    hexz.store(src, local)
    report = hexz.store(src, "s3://models/pystore/minilm.hxz")
    # The same archive, byte for byte, as the one stored locally.
    assert report.archive_size == local.stat().st_size
    assert client.get_object(Bucket="models", Key="pystore/minilm.hxz")["Body"].read() == local.read_bytes()
    # Against a base: its sibling in the bucket is found by the hint.
    ft = models / "minilm-ft.safetensors"
    report = hexz.store(ft, "s3://models/pystore/ft.hxz", base=local)
    assert report.parent_blocks > 0
    ref = load_file(ft)
    with hexz.open("s3://models/pystore/ft.hxz", endpoint_url=s3_env["endpoint"], region="us-east-1") as a:
        assert a.chain[1] == "s3://models/pystore/minilm.hxz"
        for k in list(ref)[:10]:
            assert np.array_equal(a.get_tensor(k), ref[k]), k
    # A bad source: the error, and no object at the key.
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(src.read_bytes()[:1000])
    with pytest.raises(hexz.HexzError, match="bad.safetensors"):
        hexz.store(bad, "s3://models/pystore/bad.hxz")
    listed = client.list_objects_v2(Bucket="models", Prefix="pystore/")
    assert sorted(o["Key"] for o in listed["Contents"]) == ["pystore/ft.hxz", "pystore/minilm.hxz"]
    # A folder to a URL: not supported (yet), before anything is uploaded.
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    with pytest.raises(hexz.UnsupportedError, match="folder to a URL"):
        hexz.store(folder, "s3://models/pystore/folder.hxz")


def test_c_abi_stores_to_s3(models, s3_env, tmp_path, c_libraries):
    src = models / "minilm.safetensors"
    local = tmp_path / "m.hxz"
    hexz.store(src, local)
    lib = c_libraries["hexz-remote"]
    opts = StoreOptions(struct_size=ctypes.sizeof(StoreOptions), url=b"s3://models/cstore/m.hxz")
    status = lib.hexz_store(str(src).encode(), None, ctypes.byref(opts), None)
    assert status == 0, lib.hexz_last_error()
    got = s3_env["client"].get_object(Bucket="models", Key="cstore/m.hxz")["Body"].read()
    assert got == local.read_bytes()
    # dst and url together: refused; libhexz has no remote stack.
    assert lib.hexz_store(str(src).encode(), str(tmp_path / "x.hxz").encode(), ctypes.byref(opts), None) == 25
    minimal = c_libraries["hexz"]
    assert minimal.hexz_store(str(src).encode(), None, ctypes.byref(opts), None) == 5  # UNSUPPORTED
    assert b"remote" in minimal.hexz_last_error()
    # Categories through the C ABI.
    assert lib.hexz_status_category(16) == 3  # HASH_MISMATCH: CORRUPT
    assert lib.hexz_status_category(4) == 3  # VERIFY_FAILED: CORRUPT
