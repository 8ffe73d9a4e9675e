"""`hexz mount`: real archives mounted with FUSE, read by tools that know
nothing of hexz (sha256, os.stat, the safetensors library)."""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
import safetensors
from safetensors.numpy import load_file

from conftest import HEXZ, hexz, sha256

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse on this machine")



def daemon_pid(mountpoint):
    out = subprocess.run(["pgrep", "-f", f"mount --foreground .* {mountpoint}$"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, out.stdout
    return pids[0]


def mounted(mountpoint):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(mountpoint) for line in f)


@pytest.fixture
def mountpoint(tmp_path):
    mp = tmp_path / "mnt"
    mp.mkdir()
    yield mp
    if mounted(mp):
        subprocess.run([str(HEXZ), "unmount", str(mp)], capture_output=True)


def test_gguf_mount_reads_the_original(models, tmp_path, mountpoint):
    archive = tmp_path / "gemma.hxz"
    hexz("-q", "store", models / "gemma.gguf", archive)
    hexz("-q", "mount", archive, mountpoint)  # returns once the mount is ready
    assert mounted(mountpoint)
    assert os.listdir(mountpoint) == ["gemma.gguf"]
    st = os.stat(mountpoint / "gemma.gguf")
    assert st.st_size == (models / "gemma.gguf").stat().st_size
    assert st.st_mtime == pytest.approx(archive.stat().st_mtime, abs=1)
    assert sha256(mountpoint / "gemma.gguf") == sha256(models / "gemma.gguf")
    # Random reads, and a second open (page cache kept).
    orig = (models / "gemma.gguf").read_bytes()
    with open(mountpoint / "gemma.gguf", "rb") as f:
        for off in [0, 1, 4095, 6525120, len(orig) - 10, 123456789]:
            f.seek(off)
            assert f.read(70000) == orig[off:off + 70000]
    with pytest.raises(OSError):
        open(mountpoint / "gemma.gguf", "r+b")
    hexz("unmount", mountpoint)
    deadline = time.time() + 10
    while mounted(mountpoint) and time.time() < deadline:
        time.sleep(0.05)
    assert not mounted(mountpoint)


def test_folder_mount_and_safe_open(models, tmp_path, mountpoint):
    src = models / "minilm-hf"
    archive = tmp_path / "minilm-hf.hxz"
    hexz("-q", "store", src, archive)
    hexz("-q", "mount", archive, mountpoint)
    for f in src.rglob("*"):
        rel = f.relative_to(src)
        m = mountpoint / rel
        assert m.exists(), rel
        if f.is_file():
            assert m.stat().st_size == f.stat().st_size, rel
            assert m.stat().st_mode & 0o444 == f.stat().st_mode & 0o444, rel
            assert m.stat().st_mtime == pytest.approx(f.stat().st_mtime, abs=1e-3), rel
            assert m.read_bytes() == f.read_bytes(), rel
    ref = load_file(models / "minilm.safetensors")
    with safetensors.safe_open(mountpoint / "model.safetensors", framework="np") as f:
        for k in f.keys():
            assert np.array_equal(f.get_tensor(k), ref[k]), k


def test_corrupt_block_is_eio_and_the_rest_reads(models, tmp_path, mountpoint):
    archive = tmp_path / "minilm.hxz"
    hexz("-q", "store", models / "minilm.safetensors", archive)
    data = bytearray(archive.read_bytes())
    data[len(data) // 3] ^= 0x40
    archive.write_bytes(bytes(data))
    hexz("-q", "mount", archive, mountpoint)
    orig = (models / "minilm.safetensors").read_bytes()
    bad = good = 0
    with open(mountpoint / "minilm.safetensors", "rb", buffering=0) as f:
        for off in range(0, len(orig), 1 << 20):
            f.seek(off)
            try:
                got = f.read(1 << 20)
            except OSError as e:
                assert e.errno == 5  # EIO
                bad += 1
                continue
            assert got == orig[off:off + len(got)], off  # never wrong bytes
            good += 1
    assert bad >= 1 and good > 50
    assert mounted(mountpoint)  # the mount stays usable
    with open(mountpoint / "minilm.safetensors", "rb") as f:
        assert f.read(4096) == orig[:4096]


def test_sigterm_unmounts_and_a_dead_daemon_is_enotconn(models, tmp_path, mountpoint):
    archive = tmp_path / "gemma.hxz"
    hexz("-q", "store", models / "gemma.gguf", archive, "--compression", "lz4")
    hexz("-q", "mount", archive, mountpoint)
    pid = daemon_pid(mountpoint)
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 10
    while mounted(mountpoint) and time.time() < deadline:
        time.sleep(0.05)
    assert not mounted(mountpoint), "SIGTERM did not unmount"
    # Killed outright: readers get ENOTCONN at once, never a hang.
    hexz("-q", "mount", archive, mountpoint)
    pid = daemon_pid(mountpoint)
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.3)
    t0 = time.time()
    with pytest.raises(OSError) as e:
        with open(mountpoint / "gemma.gguf", "rb") as f:
            f.read(100)
    assert e.value.errno == 107  # ENOTCONN
    assert time.time() - t0 < 5
    hexz("unmount", mountpoint)
    assert not mounted(mountpoint)


def test_remote_mount(models, served, mountpoint):
    hexz("-q", "mount", f"{served.url}/ft.hxz", mountpoint)  # its parent fetched beside it
    assert os.listdir(mountpoint) == ["ft.safetensors"]
    assert sha256(mountpoint / "ft.safetensors") == sha256(models / "minilm-ft.safetensors")


def test_a_non_empty_folder_is_refused(models, tmp_path, mountpoint):
    archive = tmp_path / "m.hxz"
    hexz("-q", "store", models / "minilm.safetensors", archive)
    (mountpoint / "keep.txt").write_text("mine")
    res = hexz("mount", archive, mountpoint, check=False)
    assert res.returncode != 0 and b"not empty" in res.stderr, res.stderr
    assert not mounted(mountpoint)
    assert (mountpoint / "keep.txt").read_text() == "mine"


def test_sigterm_with_a_file_open_leaves_no_stale_mount(models, tmp_path, mountpoint):
    archive = tmp_path / "m.hxz"
    hexz("-q", "store", models / "minilm.safetensors", archive)
    hexz("-q", "mount", archive, mountpoint)
    pid = daemon_pid(mountpoint)
    f = open(mountpoint / "m.safetensors", "rb")  # busy: a plain unmount fails
    try:
        f.read(100)
        os.kill(pid, signal.SIGTERM)
        deadline = time.time() + 10
        while mounted(mountpoint) and time.time() < deadline:
            time.sleep(0.05)
        assert not mounted(mountpoint), "SIGTERM left the mount point mounted"
        assert os.listdir(mountpoint) == [], "the folder is an empty folder again"
    finally:
        try:
            f.close()
        except OSError:
            pass  # ENOTCONN: the daemon is gone, as the docs say
    for _ in range(100):
        if subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the daemon did not exit")


def test_remote_mount_uses_the_block_cache(models, served, tmp_path, mountpoint):
    cache = tmp_path / "cache"
    for run in range(2):
        served.clear()
        hexz("-q", "--cache-dir", cache, "mount", f"{served.url}/minilm.hxz", mountpoint)
        assert sha256(mountpoint / "minilm.safetensors") == sha256(models / "minilm.safetensors")
        hexz("unmount", mountpoint)
        fetched = sum(r[3] for r in served.requests() if r[0] == "GET")
        assert (fetched > 0) if run == 0 else (fetched == 0), (run, fetched)
