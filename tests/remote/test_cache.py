"""The persistent block cache of remote archives, against nginx on loopback
(its access log counts the bytes each request sent): a second process
fetches no data, a new fine-tune fetches only the blocks it does not share,
bad entries are never served, concurrent processes on a cold cache fetch
each block about once between them, and the folder stays under its cap."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import HEXZ, hexz, sha256

ENTRY_HEADER = 40  # "HXZCACH1" + BLAKE3 of the payload


def cache_env(cache, **extra):
    env = dict(os.environ, HEXZ_CACHE_DIR=str(cache))
    env.update(extra)
    return env


def entries(cache):
    """Block entries in the cache folder: path -> size."""
    return {p: p.stat().st_size for p in (cache / "b").glob("*/*")}


def folder_bytes(cache):
    return sum(p.stat().st_size for p in cache.rglob("*") if p.is_file() and p.parent.name != "locks")


def data_bytes(reqs):
    """Body bytes of the GETs (HEAD sends no body)."""
    return sum(r[3] for r in reqs if r[0] == "GET")


def test_a_second_process_fetches_no_data(models, served, tmp_path):
    cache = tmp_path / "cache"
    url = f"{served.url}/ft.hxz"  # and its parent minilm.hxz
    served.clear()
    out = tmp_path / "a.out"
    hexz("-q", "extract", url, out, env=cache_env(cache))
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    first = served.requests()
    assert data_bytes(first) > 0 and entries(cache)
    served.clear()
    out.unlink()
    hexz("-q", "extract", url, out, env=cache_env(cache))
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    second = served.requests()
    assert data_bytes(second) == 0, second
    assert sorted(r[:2] for r in second) == [("HEAD", "/ft.hxz"), ("HEAD", "/minilm.hxz")], second
    # Python, in another process, the folder given as hexz.open's option:
    # the same blocks, still nothing fetched.
    served.clear()
    code = (
        "import hexz, sys\n"
        f"a = hexz.open({url!r}, cache_dir=sys.argv[1])\n"
        "print(sum(a.get_tensor(t.name).nbytes for t in a.tensors()))\n"
    )
    env = dict(os.environ, HEXZ_CACHE_DIR="off")
    res = subprocess.run([sys.executable, "-c", code, str(cache)], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) > 0
    assert data_bytes(served.requests()) == 0, served.requests()
    # cache_dir=False: everything from the origin.
    served.clear()
    code = code.replace("cache_dir=sys.argv[1]", "cache_dir=False")
    res = subprocess.run([sys.executable, "-c", code, str(cache)], env=cache_env(cache), capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert data_bytes(served.requests()) > 0


def test_the_cache_is_on_by_default_in_the_platform_folder_and_can_be_turned_off(models, served, tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "xdg"))
    env.pop("HEXZ_CACHE_DIR", None)
    out = tmp_path / "m.out"
    hexz("-q", "extract", f"{served.url}/minilm.hxz", out, env=env)
    assert entries(tmp_path / "xdg" / "hexz" / "blocks")
    for flags, extra in [(["--no-cache"], {}), ([], {"HEXZ_CACHE_DIR": "off"})]:
        served.clear()
        off = tmp_path / "off"
        hexz("-q", *flags, "extract", f"{served.url}/minilm.hxz", out, "--force", env=dict(env, **extra))
        assert data_bytes(served.requests()) > 0, "nothing came from the cache"
        assert not any(r[0] == "HEAD" for r in served.requests())
        assert not off.exists()
    served.clear()
    hexz("-q", "--cache-dir", tmp_path / "flag", "extract", f"{served.url}/minilm.hxz", out, "--force", env=env)
    assert entries(tmp_path / "flag")


def test_a_new_fine_tune_fetches_only_the_blocks_it_does_not_share(models, served, tmp_path):
    """v1 and v2 fine-tunes of one base; v2 differs from v1 in a few tensors."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    v1 = load_file(models / "minilm-ft.safetensors")
    v2 = dict(v1)
    changed = ["encoder.layer.5.output.dense.weight", "encoder.layer.4.intermediate.dense.weight"]
    for name in changed:
        v2[name] = (v1[name] * np.float32(1.001)).astype(v1[name].dtype)
    src = tmp_path / "v2.safetensors"
    save_file(v2, src)
    hexz("-q", "store", src, served.root / "v2.hxz", "--base", served.root / "minilm.hxz")
    info = json.loads(hexz("inspect", "--json", served.root / "v2.hxz").stdout)
    changed_bytes = sum(t["length"] for t in info["tensors"] if t["name"] in changed)

    cache = tmp_path / "cache"
    hexz("-q", "extract", f"{served.url}/ft.hxz", tmp_path / "v1.out", env=cache_env(cache))
    served.clear()
    out = tmp_path / "v2.out"
    hexz("-q", "extract", f"{served.url}/v2.hxz", out, env=cache_env(cache))
    assert sha256(out) == sha256(src)
    reqs = served.requests()
    # Structure of v2 (header, tail, index pages), then only its new blocks.
    opening = sum(r[3] for r in reqs if r[0] == "GET" and r[1] == "/v2.hxz" and (
        r[4].startswith("bytes=-") or r[4] == "bytes=0-63"))
    fetched = data_bytes(reqs) - opening
    assert not [r for r in reqs if r[1] == "/minilm.hxz" and r[0] == "GET"], "the base came from the cache"
    assert 0 < fetched <= 1.05 * changed_bytes + (64 << 10), (fetched, changed_bytes, reqs)
    # Without the cache v2 costs far more: the shared blocks are its bulk.
    served.clear()
    hexz("-q", "--no-cache", "extract", f"{served.url}/v2.hxz", out, "--force")
    assert data_bytes(served.requests()) > 5 * fetched


def flip_payload(path, rehash):
    """Flip the last byte of an entry; with `rehash`, fix the entry's own
    BLAKE3 too: a consistent entry with the wrong bytes, which only the
    index's BLAKE3 of the decoded block can tell."""
    from blake3 import blake3

    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    if rehash:
        data[8:ENTRY_HEADER] = blake3(bytes(data[ENTRY_HEADER:])).digest()
    path.write_bytes(bytes(data))


def test_bad_cache_entries_are_never_served(models, served, tmp_path):
    cache = tmp_path / "cache"
    url = f"{served.url}/minilm.hxz"
    out = tmp_path / "m.out"
    hexz("-q", "extract", url, out, env=cache_env(cache))
    paths = sorted(entries(cache), key=lambda p: -p.stat().st_size)
    torn, flipped, consistent = paths[:3]
    torn.write_bytes(torn.read_bytes()[:1000])
    flip_payload(flipped, rehash=False)
    flip_payload(consistent, rehash=True)
    served.clear()
    out.unlink()
    res = hexz("extract", url, out, env=cache_env(cache, HEXZ_CACHE_DEBUG="1"))
    assert sha256(out) == sha256(models / "minilm.safetensors")
    # The torn one is deleted on sight (its length); the two with wrong
    # bytes fail the index's BLAKE3 after decoding and are fetched again.
    assert res.stderr.count(b"cache entry") == 1, res.stderr
    assert data_bytes(served.requests()) > 0
    # Each bad entry was replaced by a sound one: a third run fetches nothing.
    served.clear()
    out.unlink()
    hexz("-q", "extract", url, out, env=cache_env(cache))
    assert sha256(out) == sha256(models / "minilm.safetensors")
    assert data_bytes(served.requests()) == 0, served.requests()


def test_a_reader_without_hash_checks_still_never_gets_a_bad_entry(models, served, tmp_path, capfd,
                                                                   monkeypatch):
    """verify_hashes=False skips the index's check of decoded blocks, so
    the cache checks each entry's own BLAKE3 instead."""
    import hexz as hx
    import numpy as np

    cache = tmp_path / "cache"
    url = f"{served.url}/minilm.hxz"
    want = hx.open(str(served.root / "minilm.hxz"))
    names = want.keys()
    expected = {n: want.get_tensor(n) for n in names}
    first = hx.open(url, cache_dir=str(cache), verify_hashes=False)
    for n in names:
        first.get_tensor(n)
    flipped = list(entries(cache))
    for p in flipped:
        flip_payload(p, rehash=False)
    monkeypatch.setenv("HEXZ_CACHE_DEBUG", "1")
    capfd.readouterr()
    again = hx.open(url, cache_dir=str(cache), verify_hashes=False)
    for n in names:
        assert np.array_equal(again.get_tensor(n), expected[n]), n
    # Each flipped entry was refused by its own hash (not by a decode
    # error), deleted, and fetched again.
    assert capfd.readouterr().err.count("fails its hash: deleted") == len(flipped)


def test_concurrent_processes_on_a_cold_cache_fetch_each_block_about_once(models, served, tmp_path):
    url = f"{served.url}/gemma.hxz"
    served.clear()
    hexz("-q", "--no-cache", "extract", url, tmp_path / "one.gguf")
    once = data_bytes(served.requests())
    cache = tmp_path / "cache"
    served.clear()
    procs = [subprocess.Popen([str(HEXZ), "-q", "extract", url, str(tmp_path / f"g{i}.gguf")],
                              env=cache_env(cache), stderr=subprocess.PIPE) for i in range(6)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    want = sha256(models / "gemma.gguf")
    for i in range(6):
        assert sha256(tmp_path / f"g{i}.gguf") == want
    total = data_bytes(served.requests())
    opening = 6 * (256 << 10) + (64 << 10) * 6
    assert total <= 1.05 * once + opening, (total, once)


def test_eviction_keeps_the_cap(models, served, tmp_path):
    cache = tmp_path / "cache"
    cap = 24 << 20
    out = tmp_path / "g.gguf"
    hexz("-q", "extract", f"{served.url}/gemma.hxz", out, env=cache_env(cache, HEXZ_CACHE_MAX_BYTES=str(cap)))
    assert sha256(out) == sha256(models / "gemma.gguf")
    assert 0 < folder_bytes(cache) <= cap, folder_bytes(cache)
    # The flag wins over the variable.
    hexz("-q", "--cache-max", "8M", "extract", f"{served.url}/gemma.hxz", out, "--force",
         env=cache_env(cache, HEXZ_CACHE_MAX_BYTES=str(cap)))
    assert folder_bytes(cache) <= 8 << 20, folder_bytes(cache)


def test_a_replaced_object_is_never_mistaken_for_the_old_one(models, served, tmp_path):
    cache = tmp_path / "cache"
    target = served.root / "replaced.hxz"
    shutil.copy(served.root / "minilm.hxz", target)
    url = f"{served.url}/replaced.hxz"
    out = tmp_path / "r.out"
    hexz("-q", "extract", url, out, env=cache_env(cache))
    assert sha256(out) == sha256(models / "minilm.safetensors")
    shutil.copy(served.root / "gemma.hxz", target.with_suffix(".tmp"))
    os.replace(target.with_suffix(".tmp"), target)
    hexz("-q", "extract", url, out, "--force", env=cache_env(cache))
    assert sha256(out) == sha256(models / "gemma.gguf")
    target.unlink()
    res = hexz("inspect", url, env=cache_env(cache), check=False)
    assert res.returncode != 0 and b"replaced.hxz" in res.stderr


@pytest.mark.parametrize("bad", ["", "0", "12Q"])
def test_a_bad_cache_cap_is_refused(bad):
    res = hexz("--cache-max", bad, "ls", "/nonexistent", check=False)
    assert res.returncode != 0 and b"cache-max" in res.stderr
