"""Remote archives against real servers on loopback: moto's S3 server,
nginx, and a fault-injecting proxy. Everything read must be byte-exact;
what fails must fail with a clear error and leave nothing behind."""

import json
import os

import pytest

from conftest import hexz, sha256

OPEN_SUFFIX = 256 << 10
HEADER = 64



def inspect_json(url, env=None):
    return json.loads(hexz("inspect", "--json", url, env=env).stdout)


def test_s3_store_read_back_with_parent(models, s3, tmp_path):
    env = s3["env"]
    hexz("-q", "store", models / "minilm.safetensors", "s3://models/ckpt/base.hxz", env=env)
    hexz("-q", "store", models / "minilm-ft.safetensors", "s3://models/ckpt/ft.hxz",
         "--base", "s3://models/ckpt/base.hxz", env=env)
    info = inspect_json("s3://models/ckpt/ft.hxz", env)
    assert info["parent"]["hint"] == "base.hxz"  # found remotely beside the child
    assert info["chain"][1]["path"] == "s3://models/ckpt/base.hxz"
    assert info["archive_size"] < 0.2 * info["original_size"]
    for key, src in [("base", "minilm.safetensors"), ("ft", "minilm-ft.safetensors")]:
        out = tmp_path / f"{key}.out"
        hexz("-q", "extract", f"s3://models/ckpt/{key}.hxz", out, env=env)
        assert sha256(out) == sha256(models / src)
    # One tensor, byte-exact against the local file.
    t = next(t for t in info["tensors"] if t["name"] == "encoder.layer.5.output.dense.weight")
    hexz("-q", "extract", "s3://models/ckpt/ft.hxz", "--tensor", t["name"], "-o", tmp_path / "t.bin", env=env)
    with open(models / "minilm-ft.safetensors", "rb") as f:
        f.seek(t["offset"])
        assert (tmp_path / "t.bin").read_bytes() == f.read(t["length"])
    listing = json.loads(hexz("ls", "--json", "s3://models/ckpt/", env=env).stdout)
    assert [n["path"] for n in listing] == ["s3://models/ckpt/base.hxz"]
    assert [c["path"] for c in listing[0]["children"]] == ["s3://models/ckpt/ft.hxz"]
    assert b"ok" in hexz("verify", "s3://models/ckpt/ft.hxz", env=env).stderr
    assert json.loads(hexz("diff", "--json", "s3://models/ckpt/base.hxz", "s3://models/ckpt/ft.hxz",
                           env=env).stdout)


def test_s3_store_of_one_part_is_one_put(s3, tmp_path):
    """An archive of at most one part (8 MiB) goes up in one PUT, no
    multipart upload begun; a larger one in parts. S3's ETag tells which:
    the MD5 of the bytes for a PUT, of the parts' MD5s with "-N" for N parts."""
    import hashlib

    import numpy as np
    from safetensors.numpy import save_file

    env, client = s3["env"], s3["client"]
    small = tmp_path / "small.safetensors"
    save_file({"a": np.arange(100_000, dtype=np.float32), "b": np.ones((300, 300), dtype=np.float16)}, small)
    hexz("-q", "store", small, "s3://models/onepart/small.hxz", env=env)
    hexz("-q", "store", small, tmp_path / "small.hxz")
    body = client.get_object(Bucket="models", Key="onepart/small.hxz")
    data = body["Body"].read()
    assert data == (tmp_path / "small.hxz").read_bytes()
    assert body["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    hexz("-q", "extract", "s3://models/onepart/small.hxz", tmp_path / "small.out", env=env)
    assert sha256(tmp_path / "small.out") == sha256(small)
    big = np.random.default_rng(0).integers(0, 255, 20 << 20, dtype=np.uint8)  # incompressible: 3 parts
    save_file({"big": big}, tmp_path / "big.safetensors")
    hexz("-q", "store", tmp_path / "big.safetensors", "s3://models/onepart/big.hxz", env=env)
    etag = client.head_object(Bucket="models", Key="onepart/big.hxz")["ETag"].strip('"')
    assert etag.endswith("-3"), etag
    hexz("-q", "extract", "s3://models/onepart/big.hxz", tmp_path / "big.out", env=env)
    assert sha256(tmp_path / "big.out") == sha256(tmp_path / "big.safetensors")
    assert not client.list_multipart_uploads(Bucket="models").get("Uploads", [])


def test_s3_failed_store_leaves_no_object(models, s3, tmp_path):
    env = s3["env"]
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes((40).to_bytes(8, "little") + b'{"a": {"dtype": "F32", "shape": [4], "data_of')
    out = hexz("store", bad, "s3://models/failed/bad.hxz", env=env, check=False)
    assert out.returncode != 0 and b"bad.safetensors" in out.stderr
    # The base is missing: refused before anything is uploaded.
    out = hexz("store", models / "minilm.safetensors", "s3://models/failed/x.hxz",
               "--base", "s3://models/failed/missing.hxz", env=env, check=False)
    assert out.returncode != 0 and b"missing.hxz" in out.stderr
    listed = s3["client"].list_objects_v2(Bucket="models", Prefix="failed/")
    assert listed.get("KeyCount", 0) == 0
    uploads = s3["client"].list_multipart_uploads(Bucket="models").get("Uploads", [])
    assert not [u for u in uploads if u["Key"].startswith("failed/")], "an unfinished upload was left"


def test_http_reads_are_bounded(models, served, tmp_path):
    url = f"{served.url}/gemma.hxz"
    info = inspect_json(url)
    gguf = models / "gemma.gguf"
    for name in ["blk.0.attn_q.weight", "output_norm.weight", "token_embd.weight"]:
        t = next(t for t in info["tensors"] if t["name"] == name)
        served.clear()
        out = tmp_path / "t.bin"
        hexz("-q", "extract", url, "--tensor", name, "-o", out, "--force")
        with open(gguf, "rb") as f:
            f.seek(t["offset"])
            assert out.read_bytes() == f.read(t["length"]), name
        reqs = served.requests()
        opening = [r for r in reqs if r[4] in (f"bytes=-{OPEN_SUFFIX}", f"bytes=0-{HEADER - 1}")]
        after = [r for r in reqs if r not in opening]
        assert len(opening) == 2, reqs
        assert all(r[2] == 206 for r in reqs), reqs
        total = sum(r[3] for r in reqs)
        # A tensor up to one parallel chunk (4 MiB) arrives in at most 4
        # requests; a larger one in chunks fetched concurrently, about one
        # request per 4 MiB of it.
        assert len(after) <= 4 + t["length"] // (4 << 20), (name, len(after))
        assert total <= t["stored_bytes"] + OPEN_SUFFIX + HEADER, (name, total, t["stored_bytes"])


def test_http_parent_resolves_remotely(models, served, tmp_path):
    out = tmp_path / "ft.out"
    hexz("-q", "extract", f"{served.url}/ft.hxz", out)
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    info = inspect_json(f"{served.url}/ft.hxz")
    assert info["chain"][1]["path"] == f"{served.url}/minilm.hxz"
    # A missing object is a clear error naming it.
    out = hexz("inspect", f"{served.url}/nope.hxz", check=False)
    assert out.returncode != 0 and b"nope.hxz" in out.stderr


@pytest.mark.parametrize("faults", [["503", "503"], ["reset"], ["short"], ["slow"], ["503", "reset", "short"]])
def test_faults_are_retried_never_used(models, served, proxy, tmp_path, faults):
    url = f"{proxy.url}/gemma.hxz"
    name = "blk.3.ffn_down.weight"
    info = inspect_json(f"{served.url}/gemma.hxz")
    t = next(t for t in info["tensors"] if t["name"] == name)
    proxy.plan(faults)
    env = dict(os.environ, HEXZ_TIMEOUT_SECS="2")
    out = tmp_path / "t.bin"
    hexz("-q", "extract", url, "--tensor", name, "-o", out, env=env)
    assert proxy.injected == faults, proxy.injected
    with open(models / "gemma.gguf", "rb") as f:
        f.seek(t["offset"])
        assert out.read_bytes() == f.read(t["length"])


def test_persistent_faults_fail_clearly(served, proxy, tmp_path):
    proxy.plan(["503"] * 100)
    out = tmp_path / "t.bin"
    env = dict(os.environ, HEXZ_RETRIES="2", HEXZ_TIMEOUT_SECS="5")
    res = hexz("extract", f"{proxy.url}/gemma.hxz", "--tensor", "token_embd.weight", "-o", out,
               env=env, check=False)
    proxy.plan([])
    assert res.returncode != 0
    assert b"gemma.hxz" in res.stderr, res.stderr
    assert not out.exists(), "a failed extract left its output"


def test_object_changed_under_the_reader_is_an_error(served):
    import shutil

    import hexz as hx

    target = served.root / "changing.hxz"
    shutil.copy(served.root / "minilm.hxz", target)
    a = hx.open(f"{served.url}/changing.hxz")
    name = "encoder.layer.2.output.dense.weight"
    a.get_tensor(name)
    shutil.copy(served.root / "gemma.hxz", target.with_suffix(".tmp"))
    os.replace(target.with_suffix(".tmp"), target)  # another object at the same URL
    with pytest.raises(hx.HexzError) as e:
        a.get_tensor("encoder.layer.3.output.dense.weight")
    assert "changing.hxz" in str(e.value) and "changed" in str(e.value), str(e.value)
    a.close()


def test_s3_parent_found_through_a_url_prefix(models, s3, tmp_path):
    env, client = s3["env"], s3["client"]
    hexz("-q", "store", models / "minilm.safetensors", "s3://models/moved/base.hxz", env=env)
    hexz("-q", "store", models / "minilm-ft.safetensors", "s3://models/moved/ft.hxz",
         "--base", "s3://models/moved/base.hxz", env=env)
    client.copy_object(Bucket="models", Key="elsewhere/base.hxz",
                       CopySource={"Bucket": "models", "Key": "moved/base.hxz"})
    client.delete_object(Bucket="models", Key="moved/base.hxz")
    out = hexz("inspect", "s3://models/moved/ft.hxz", env=env, check=False)
    assert out.returncode != 0 and b"base.hxz" in out.stderr, out.stderr
    dst = tmp_path / "ft.out"
    hexz("-q", "--parent-dir", "s3://models/elsewhere/", "extract", "s3://models/moved/ft.hxz", dst, env=env)
    assert sha256(dst) == sha256(models / "minilm-ft.safetensors")


def test_a_missing_bucket_is_reported_as_such(models, s3, tmp_path):
    env = s3["env"]
    for args in [("inspect", "s3://nobucket/x.hxz"),
                 ("store", models / "minilm.safetensors", "s3://nobucket/x.hxz"),
                 ("ls", "s3://nobucket/")]:
        res = hexz(*args, env=env, check=False)
        err = res.stderr.decode()
        assert res.returncode != 0 and "no such bucket" in err, (args, err)
        assert "<" not in err and "xml" not in err.lower(), (args, err)


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_an_interrupted_store_aborts_its_upload(models, s3, tmp_path, sig):
    import signal
    import subprocess
    import time

    from conftest import HEXZ

    client, key = s3["client"], f"interrupted/{sig}.hxz"
    proc = subprocess.Popen([str(HEXZ), "-q", "store", str(models / "gemma.gguf"), f"s3://models/{key}"],
                            env=s3["env"], stderr=subprocess.PIPE)
    deadline = time.time() + 60
    while time.time() < deadline:
        uploads = client.list_multipart_uploads(Bucket="models").get("Uploads", [])
        if [u for u in uploads if u["Key"] == key]:
            break
        assert proc.poll() is None, "the store finished before it could be interrupted"
        time.sleep(0.05)
    else:
        raise AssertionError("no multipart upload started")
    proc.send_signal(getattr(signal, sig))
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, sig), proc.returncode
    uploads = client.list_multipart_uploads(Bucket="models").get("Uploads", [])
    assert not [u for u in uploads if u["Key"] == key], "the upload was left unfinished"
    assert client.list_objects_v2(Bucket="models", Prefix=key).get("KeyCount", 0) == 0
