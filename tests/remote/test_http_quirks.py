"""HTTP servers that follow the RFCs in ways nginx on defaults does not
show: ranged responses sent chunked (206 with no Content-Length), weak
ETags with If-Match compared strongly (RFC 9110 13.1.1: a weak ETag never
matches, so the server answers 412). A small server of our own on
loopback, serving real archives."""

import http.server
import os
import re
import threading

import pytest

from conftest import hexz, sha256


class QuirkyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.serve(body=False)

    def do_GET(self):
        self.serve(body=True)

    def serve(self, body):
        srv = self.server
        path = srv.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = path.read_bytes()
        etag = 'W/"v1"' if srv.weak else '"v1"'
        with srv.lock:
            srv.log.append((self.command, self.headers.get("Range"), self.headers.get("If-Match")))
        im = self.headers.get("If-Match")
        if im is not None and (im.startswith("W/") or etag.startswith("W/") or im != etag):
            # Strong comparison, as RFC 9110 says for If-Match.
            self.send_response(412)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        rng = self.headers.get("Range")
        start, end, status = 0, len(data), 200
        if rng:
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng)
            a, b = m.group(1), m.group(2)
            if a == "":
                start, end = max(0, len(data) - int(b)), len(data)
            else:
                start, end = int(a), min(len(data), int(b) + 1 if b else len(data))
            status = 206
        part = data[start:end]
        self.send_response(status)
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        if srv.chunked and body:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(part), 100_000):
                piece = part[i:i + 100_000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(part)))
            self.end_headers()
            if body:
                self.wfile.write(part)


@pytest.fixture()
def quirky(served):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), QuirkyHandler)
    srv.root, srv.weak, srv.chunked, srv.log, srv.lock = served.root, False, False, [], threading.Lock()
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("cache", ["off", "on"])
def test_chunked_206_responses_are_accepted(models, quirky, tmp_path, cache):
    quirky.chunked = True
    env = dict(os.environ, HEXZ_CACHE_DIR=str(tmp_path / "c") if cache == "on" else "off")
    out = tmp_path / "ft.out"
    hexz("-q", "extract", f"{quirky.url}/ft.hxz", out, env=env)
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    assert any(r[1] for r in quirky.log), "ranged requests were made"


@pytest.mark.parametrize("cache", ["off", "on"])
def test_weak_etags_are_used_for_change_detection_only(models, quirky, tmp_path, cache):
    quirky.weak = True
    env = dict(os.environ, HEXZ_CACHE_DIR=str(tmp_path / "c") if cache == "on" else "off")
    out = tmp_path / "ft.out"
    for _ in range(2):  # with the cache: the second run opens from it (a HEAD)
        hexz("-q", "extract", f"{quirky.url}/ft.hxz", out, "--force", env=env)
        assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    assert not [r for r in quirky.log if r[2]], "no If-Match with a weak ETag"


def test_strong_etags_are_sent_in_if_match(models, quirky, tmp_path):
    out = tmp_path / "ft.out"
    hexz("-q", "--no-cache", "extract", f"{quirky.url}/ft.hxz", out)
    assert sha256(out) == sha256(models / "minilm-ft.safetensors")
    data = [r for r in quirky.log if r[1] and not r[1].startswith("bytes=-") and r[1] != "bytes=0-63"]
    assert data and all(r[2] == '"v1"' for r in data), quirky.log
