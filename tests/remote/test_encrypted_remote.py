"""Encrypted archives (format 1.5) remotely and mounted: over HTTP (nginx on
loopback) an encrypted open and one tensor cost the requests a plain one
does; a fine-tune and its encrypted base stored to S3 (moto) read back with
the identity; the block cache keeps ciphertext only; `hexz mount` with an
identity serves the original file."""

import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import HEXZ, hexz, sha256

TENSOR = "encoder.layer.5.output.dense.weight"


@pytest.fixture
def identity(tmp_path):
    key = tmp_path / "me.key"
    recipient = hexz("-q", "keygen", "--x25519", key).stdout.decode().strip()
    assert recipient.startswith("age1")
    return key, recipient


def tensor_bytes(models, t):
    with open(models / "minilm.safetensors", "rb") as f:
        f.seek(t["offset"])
        return f.read(t["length"])


def test_encrypted_http_costs_the_requests_of_a_plain_archive(models, served, identity, tmp_path):
    key, recipient = identity
    root = served.root
    hexz("-q", "store", models / "minilm.safetensors", root / "enc.hxz", "--encrypt", "--recipient", recipient)
    ids = ["--identity", key]
    counts = {}
    for name, args, target in [("plain", [], "minilm.hxz"), ("encrypted", ids, "enc.hxz")]:
        served.clear()
        info = json.loads(hexz("--no-cache", *args, "inspect", "--json", f"{served.url}/{target}").stdout)
        opened = len(served.requests())
        t = next(t for t in info["tensors"] if t["name"] == TENSOR)
        served.clear()
        out = tmp_path / f"{name}.bin"
        hexz("--no-cache", *args, "extract", f"{served.url}/{target}", "--tensor", TENSOR, "-o", out)
        assert out.read_bytes() == tensor_bytes(models, t)
        counts[name] = (opened, len([r for r in served.requests() if r[0] == "GET"]))
    assert counts["encrypted"] == counts["plain"], counts
    # Without the key: refused, nothing written.
    r = hexz("--no-cache", "extract", f"{served.url}/enc.hxz", tmp_path / "x.bin", check=False)
    assert r.returncode == 1 and b"encrypted" in r.stderr, r.stderr
    assert not (tmp_path / "x.bin").exists()
    # Through the block cache, twice: the cached blocks are ciphertext.
    cache = tmp_path / "cache"
    for i in range(2):
        hexz("--cache-dir", cache, *ids, "extract", f"{served.url}/enc.hxz", tmp_path / f"all{i}.bin")
        assert sha256(tmp_path / f"all{i}.bin") == sha256(models / "minilm.safetensors")
    src = (models / "minilm.safetensors").read_bytes()
    needle = src[len(src) // 2:len(src) // 2 + 64]
    for dirpath, _, files in os.walk(cache):
        for f in files:
            assert needle not in (open(os.path.join(dirpath, f), "rb").read()), f"plaintext in the cache: {f}"


def test_encrypted_chain_on_s3(models, s3, identity, tmp_path):
    key, recipient = identity
    env = s3["env"]
    hexz("-q", "store", models / "minilm.safetensors", "s3://models/enc/base.hxz", "--encrypt", "-r", recipient, env=env)
    hexz("-q", "--identity", key, "store", models / "minilm-ft.safetensors", "s3://models/enc/ft.hxz",
         "--base", "s3://models/enc/base.hxz", env=env)
    info = json.loads(hexz("--identity", key, "inspect", "--json", "s3://models/enc/ft.hxz", env=env).stdout)
    assert info["format_version"] == "1.5" and info["parent_blocks"] + info["delta_blocks"] > 0, info
    assert info["encryption"]["stanzas"] == ["x25519"]
    for name, src in [("base", "minilm.safetensors"), ("ft", "minilm-ft.safetensors")]:
        out = tmp_path / f"{name}.out"
        hexz("-q", "--identity", key, "extract", f"s3://models/enc/{name}.hxz", out, env=env)
        assert sha256(out) == sha256(models / src)
    r = hexz("extract", "s3://models/enc/ft.hxz", tmp_path / "no.out", env=env, check=False)
    assert r.returncode == 1 and b"encrypted" in r.stderr, r.stderr
    body = s3["client"].get_object(Bucket="models", Key="enc/base.hxz")["Body"].read()
    assert b"encoder.layer" not in body


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this machine")
def test_encrypted_mount_serves_the_original(models, identity, tmp_path):
    key, recipient = identity
    archive = tmp_path / "gemma.hxz"
    pw = tmp_path / "pw"
    pw.write_text("mount passphrase\n")
    hexz("-q", "--passphrase-file", pw, "store", models / "gemma.gguf", archive, "--encrypt", "-r", recipient,
         "--argon2-mib", "8")
    for args in (["--identity", key], ["--passphrase-file", pw]):
        mp = tmp_path / f"mnt{args[0]}"
        mp.mkdir()
        hexz("-q", *args, "mount", archive, mp)
        try:
            assert os.listdir(mp) == ["gemma.gguf"]
            assert sha256(mp / "gemma.gguf") == sha256(models / "gemma.gguf")
        finally:
            subprocess.run([str(HEXZ), "unmount", str(mp)], capture_output=True)
        deadline = time.time() + 10
        while time.time() < deadline and any(line.split()[4] == str(mp) for line in open("/proc/self/mountinfo")):
            time.sleep(0.05)
    # Without a key the mount is refused up front.
    mp = tmp_path / "nokey"
    mp.mkdir()
    r = hexz("mount", archive, mp, check=False)
    assert r.returncode != 0 and b"encrypted" in r.stderr, r.stderr
    shutil.rmtree(mp, ignore_errors=True)
