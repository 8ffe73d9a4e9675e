"""The one retry layer of remote reads, against nginx behind the
fault-injecting proxy: a bounded, stated number of GETs for a server that
always fails, `Retry-After` waited for, a stalled server reported as a
timeout within the documented bound, a slow transfer that keeps moving
never cut off, and a broken body resumed where it stopped. And URLs
reaching the server exactly as written (presigned queries, `%20`)."""

import email.utils
import json
import os
import shutil
import time

import pytest

from conftest import Nginx, hexz, sha256

TENSOR = "blk.3.ffn_down.weight"  # 1.4 MB: one ranged GET of data


def tensor_info(served, name=TENSOR):
    info = json.loads(hexz("inspect", "--json", f"{served.url}/gemma.hxz").stdout)
    return next(t for t in info["tensors"] if t["name"] == name)


def source_bytes(models, t):
    with open(models / "gemma.gguf", "rb") as f:
        f.seek(t["offset"])
        return f.read(t["length"])


def extract(proxy, tmp_path, env_extra, check=True):
    out = tmp_path / "t.bin"
    env = dict(os.environ, **env_extra)
    started = time.monotonic()
    res = hexz("extract", f"{proxy.url}/gemma.hxz", "--tensor", TENSOR, "-o", out, "--force", env=env, check=check)
    return res, out, time.monotonic() - started


@pytest.mark.parametrize("retries", [None, "0", "2"])
def test_a_server_that_always_fails_gets_a_bounded_number_of_requests(served, proxy, tmp_path, retries):
    proxy.plan(["503"] * 100)
    env = {} if retries is None else {"HEXZ_RETRIES": retries}
    res, out, _ = extract(proxy, tmp_path, env, check=False)
    sent = len(proxy.injected)
    proxy.plan([])
    attempts = 1 + (4 if retries is None else int(retries))  # 4 retries by default
    assert res.returncode != 0 and not out.exists()
    # Exactly 1 + retries GETs of the failing range: no second layer of
    # retries inside (object_store's are off), none after the error.
    assert sent == attempts, (sent, res.stderr)
    err = res.stderr.decode()
    assert f"gave up after {attempts} attempts" in err, err
    assert "HTTP 503 Service Unavailable" in err and "gemma.hxz" in err, err


@pytest.mark.parametrize("status", ["503", "429"])
def test_retry_after_is_waited_for(models, served, proxy, tmp_path, status):
    t = tensor_info(served)
    proxy.plan([f"{status} retry-after 2"])
    res, out, _ = extract(proxy, tmp_path, {})
    log = proxy.log
    proxy.plan([])
    assert out.read_bytes() == source_bytes(models, t)
    assert [f for f, _, _ in log] == [f"{status} retry-after 2", None], log
    waited = log[1][2] - log[0][2]
    assert waited >= 2.0, f"retried after {waited:.2f} s, before the 2 s the server asked for"


def test_retry_after_as_an_http_date(models, served, proxy, tmp_path):
    t = tensor_info(served)
    when = email.utils.formatdate(time.time() + 3, usegmt=True)  # second resolution: 2-3 s from now
    proxy.plan([f"503 retry-after {when}"])
    res, out, _ = extract(proxy, tmp_path, {})
    log = proxy.log
    proxy.plan([])
    assert out.read_bytes() == source_bytes(models, t)
    assert len(log) == 2 and log[1][2] - log[0][2] >= 1.9, log


def test_a_retry_after_beyond_the_limit_fails_at_once_saying_so(served, proxy, tmp_path):
    proxy.plan(["503 retry-after 3600"])
    res, out, elapsed = extract(proxy, tmp_path, {}, check=False)
    sent = len(proxy.log)
    proxy.plan([])
    err = res.stderr.decode()
    assert res.returncode != 0 and not out.exists()
    assert sent == 1, "no retry the server did not want"
    assert "retry after 3600 s" in err and "30 s" in err, err
    assert elapsed < 30, "it did not wait"


@pytest.mark.parametrize("fault", ["stall", "stall body"])
def test_a_stalled_server_times_out_as_a_timeout_within_the_bound(served, proxy, tmp_path, fault):
    # The documented bound: (1 + retries) * stall timeout + the waits
    # between attempts (here 100 ms): 2 * 1 s + 0.1 s.
    proxy.plan([fault] * 100)
    try:
        res, out, elapsed = extract(proxy, tmp_path, {"HEXZ_TIMEOUT_SECS": "1", "HEXZ_RETRIES": "1"}, check=False)
        sent = len(proxy.log)
    finally:
        proxy.plan([])
        proxy.release_stalls()
    err = res.stderr.decode()
    assert res.returncode != 0 and not out.exists()
    assert sent == 2, sent
    assert "timed out" in err and "stall timeout" in err and "1 s" in err, err
    what = "no response within 1 s" if fault == "stall" else "no bytes for 1 s"
    assert what in err, err
    assert "gave up after 2 attempts" in err, err
    # Not a hang: far below anything a whole-request timeout restarted per
    # attempt would allow, with room for a loaded machine.
    assert elapsed < 20, elapsed


def test_a_slow_transfer_that_keeps_moving_is_not_cut_off(models, served, proxy, tmp_path):
    # 4 s for the body, a piece every 0.25 s, with a 1 s stall timeout: a
    # whole-request timeout of 1 s would fail it on every attempt.
    t = tensor_info(served)
    proxy.trickle_seconds = 4.0
    proxy.plan(["trickle"])
    res, out, elapsed = extract(proxy, tmp_path, {"HEXZ_TIMEOUT_SECS": "1"})
    log = proxy.log
    proxy.plan([])
    assert out.read_bytes() == source_bytes(models, t)
    assert [f for f, _, _ in log] == ["trickle"], log  # one request, never retried
    assert elapsed >= 4


def test_a_broken_body_is_resumed_from_where_it_stopped(models, served, proxy, tmp_path):
    t = tensor_info(served)
    proxy.plan(["cut"])
    extract(proxy, tmp_path, {})
    log = proxy.log
    proxy.plan([])
    assert (tmp_path / "t.bin").read_bytes() == source_bytes(models, t)
    assert [f for f, _, _ in log] == ["cut", None], log
    first = [int(x) for x in log[0][1].removeprefix("bytes=").split("-")]
    again = [int(x) for x in log[1][1].removeprefix("bytes=").split("-")]
    half = (first[1] - first[0] + 1) // 2
    # Only the bytes not yet received are asked for again.
    assert again == [first[0] + half, first[1]], (first, again)


def test_names_with_percent_20_reach_the_server_encoded_once(models, served, tmp_path):
    shutil.copy(served.root / "gemma.hxz", served.root / "gemma model.hxz")
    url = f"{served.url}/gemma%20model.hxz"
    served.clear()
    out = tmp_path / "g.gguf"
    hexz("-q", "extract", url, out)
    assert sha256(out) == sha256(models / "gemma.gguf")
    uris = {u for _, u in served.raw_requests()}
    assert uris == {"/gemma%20model.hxz"}, uris
    assert all(s == 206 for s, _ in served.raw_requests())


@pytest.fixture(scope="module")
def signed(models, served, tmp_path_factory):
    """nginx serving the same folder, refusing (403) any request whose query
    is not exactly the presigned one, as S3 refuses a signature that does
    not match. The query is what boto3 presigns for a GET."""
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url="http://127.0.0.1:9", region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test",
                          config=Config(signature_version="s3v4"))
    presigned = client.generate_presigned_url("get_object", Params={"Bucket": "models", "Key": "gemma.hxz"},
                                              ExpiresIn=3600)
    query = presigned.split("?", 1)[1]
    assert "X-Amz-Signature=" in query, query
    assert "%2F" in query  # the credential scope: encoded characters that must stay as they are
    locations = f"""location / {{ if ($args != "{query}") {{ return 403; }} }}"""
    server = Nginx(served.root, tmp_path_factory.mktemp("nginx-signed"), locations)
    yield server, query
    server.stop()


def test_presigned_urls_reach_the_server_exactly_as_given(models, signed, tmp_path):
    server, query = signed
    shutil.copy(server.root / "gemma.hxz", server.root / "gemma model.hxz")
    for name in ["gemma.hxz", "gemma%20model.hxz"]:
        url = f"{server.url}/{name}?{query}"
        server.clear()
        info = json.loads(hexz("inspect", "--json", url).stdout)
        t = next(t for t in info["tensors"] if t["name"] == TENSOR)
        out = tmp_path / "t.bin"
        hexz("-q", "extract", url, "--tensor", TENSOR, "-o", out, "--force")
        assert out.read_bytes() == source_bytes(models, t)
        reqs = server.raw_requests()
        assert reqs and all(r == (206, f"/{name}?{query}") for r in reqs), reqs
    # A query changed by one character is refused: the check is real.
    bad = f"{server.url}/gemma.hxz?{query[:-1]}"
    res = hexz("inspect", bad, check=False)
    assert res.returncode != 0 and b"403" in res.stderr, res.stderr
