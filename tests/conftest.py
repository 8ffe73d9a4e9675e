"""Fixtures of the pytest suites under tests/ (remote archives, mounts).

Real servers on loopback for the remote tests: moto's S3 server, nginx
serving a folder of archives (with an access log of every request's range
and bytes), and a fault-injecting proxy of our own in front of nginx."""

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEXZ = ROOT / "target" / "release" / "hexz"

# The persistent block cache is off unless a test turns it on
# (tests/remote/test_cache.py): the other tests count requests and inject
# faults into them, and none may fill the user's own cache folder.
os.environ["HEXZ_CACHE_DIR"] = "off"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}")


def sha256(path) -> str:
    """sha256 of a file, read in 1 MiB pieces."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hexz(*args, env=None, check=True):
    """Run the hexz binary; returns the CompletedProcess."""
    out = subprocess.run([str(HEXZ), *map(str, args)], env=env, capture_output=True)
    if check and out.returncode != 0:
        raise AssertionError(f"hexz {' '.join(map(str, args))}: {out.returncode}\n{out.stderr.decode()}")
    return out


@pytest.fixture(scope="session")
def models() -> Path:
    out = subprocess.run([str(ROOT / "scripts" / "fetch-models.sh")], check=True, stdout=subprocess.PIPE, text=True)
    path = Path(out.stdout.strip())
    subprocess.run(["python3", str(ROOT / "tests" / "make_folders.py"), str(path)], check=True,
                   stdout=subprocess.DEVNULL)
    return path


@pytest.fixture(scope="session")
def s3(tmp_path_factory):
    """moto's S3 server with a bucket 'models'; yields the environment for
    hexz (standard AWS variables, a plain-HTTP endpoint)."""
    import boto3

    port = free_port()
    log = open(tmp_path_factory.mktemp("moto") / "moto.log", "wb")
    proc = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        wait_for_port(port, proc, "moto_server")
        endpoint = f"http://127.0.0.1:{port}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
                   AWS_ENDPOINT_URL=endpoint)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        client.create_bucket(Bucket="models")
        yield {"env": env, "endpoint": endpoint, "client": client}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class Nginx:
    """nginx serving `root`; `locations` replaces the default `location / { }`
    (a location that refuses requests unless their query is exact, say)."""

    def __init__(self, root: Path, work: Path, locations: str = "location / { }"):
        self.root = root
        self.port = free_port()
        self.log = work / "access.log"
        self.raw_log = work / "raw.log"
        conf = work / "nginx.conf"
        conf.write_text(f"""
user root;
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
    log_format hexz '$request_method $uri $status $body_bytes_sent "$http_range"';
    log_format raw '$status $request_uri';
    access_log {self.log} hexz;
    access_log {self.raw_log} raw;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
        {locations}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", str(work), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for_port(self.port, self.proc, "nginx")
        self.url = f"http://127.0.0.1:{self.port}"

    def requests(self):
        """(method, uri, status, bytes, range) of every request since the last clear."""
        out = []
        for line in self.log.read_text().splitlines():
            method, uri, status, nbytes, rng = line.split(" ", 4)
            out.append((method, uri, int(status), int(nbytes), rng.strip('"')))
        return out

    def raw_requests(self):
        """(status, request URI exactly as the client sent it, path and query
        still percent-encoded) of every request since the last clear."""
        out = []
        for line in self.raw_log.read_text().splitlines():
            status, uri = line.split(" ", 1)
            out.append((int(status), uri))
        return out

    def clear(self):
        # nginx appends (O_APPEND): after truncation it writes from 0 again.
        self.log.write_text("")
        self.raw_log.write_text("")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def served(models, tmp_path_factory):
    """nginx serving gemma.hxz, and minilm.hxz with its fine-tune ft.hxz
    (stored against it: its parent hint is the sibling minilm.hxz)."""
    root = tmp_path_factory.mktemp("www")
    hexz("-q", "store", models / "gemma.gguf", root / "gemma.hxz")
    hexz("-q", "store", models / "minilm.safetensors", root / "minilm.hxz")
    hexz("-q", "store", models / "minilm-ft.safetensors", root / "ft.hxz", "--base", root / "minilm.hxz")
    server = Nginx(root, tmp_path_factory.mktemp("nginx"))
    yield server
    server.stop()


class FaultProxy:
    """A TCP proxy in front of a server that breaks the next responses to
    data requests (ranged GETs other than the two of open) as told:
    "503", "reset" (half the body, then a connection reset), "short" (a
    consistent but shorter 206 response), "slow" (a delay), "cut" (half
    the body, then the connection closed), "503 retry-after N" and
    "429 retry-after N" (the status with `Retry-After: N`; N may be an
    HTTP date), "stall" (no response at all), "stall body" (the headers
    and half the body, then nothing), or "trickle" (the body in 16 pieces
    over `trickle_seconds`). `log` keeps (fault, Range header, time) of
    every data request."""

    def __init__(self, upstream_port: int, slow_seconds: float = 4.0):
        self.upstream = upstream_port
        self.faults = []
        self.injected = []
        self.log = []
        self.slow_seconds = slow_seconds
        self.trickle_seconds = 4.0
        self.stop_stalls = threading.Event()
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def plan(self, faults):
        with self.lock:
            self.faults = list(faults)
            self.injected = []
            self.log = []

    def release_stalls(self):
        """End the connections held by "stall" faults."""
        self.stop_stalls.set()
        time.sleep(0.2)
        self.stop_stalls.clear()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read_head(sock):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return None, b""
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        return head, rest

    def _serve(self, client):
        try:
            while True:
                head, _ = self._read_head(client)
                if head is None:
                    return
                lines = head.decode("latin-1").split("\r\n")
                headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
                rng = headers.get("range", "")
                is_open = rng.startswith("bytes=-") or rng == "bytes=0-63"
                fault = None
                with self.lock:
                    if rng and not is_open:
                        if self.faults:
                            fault = self.faults.pop(0)
                            self.injected.append(fault)
                        self.log.append((fault, rng, time.monotonic()))
                if fault == "503":
                    client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                    continue
                if fault and " retry-after " in fault:
                    status, _, after = fault.split(" ", 2)
                    reason = {"503": "Service Unavailable", "429": "Too Many Requests"}[status]
                    client.sendall(f"HTTP/1.1 {status} {reason}\r\nRetry-After: {after}\r\n"
                                   f"Content-Length: 0\r\n\r\n".encode("latin-1"))
                    continue
                if fault == "stall":
                    self.stop_stalls.wait()
                    return
                # Forward, one upstream connection per request.
                up = socket.create_connection(("127.0.0.1", self.upstream))
                fwd = [lines[0]] + [l for l in lines[1:] if not l.lower().startswith("connection:")]
                up.sendall(("\r\n".join(fwd) + "\r\nConnection: close\r\n\r\n").encode("latin-1"))
                response = b""
                while True:
                    chunk = up.recv(1 << 20)
                    if not chunk:
                        break
                    response += chunk
                up.close()
                rhead, _, body = response.partition(b"\r\n\r\n")
                if fault == "slow":
                    time.sleep(self.slow_seconds)
                if fault in ("cut", "stall body"):
                    client.sendall(rhead + b"\r\n\r\n" + body[: len(body) // 2])
                    if fault == "stall body":
                        self.stop_stalls.wait()
                    else:
                        time.sleep(0.2)  # delivered before the close
                    return
                if fault == "trickle":
                    client.sendall(rhead + b"\r\n\r\n")
                    step = -(-len(body) // 16)
                    for i in range(0, len(body), step):
                        time.sleep(self.trickle_seconds / 16)
                        client.sendall(body[i:i + step])
                    continue
                if fault == "reset":
                    client.sendall(rhead + b"\r\n\r\n" + body[: len(body) // 2])
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    client.close()
                    return
                if fault == "short" and len(body) > 1:
                    keep = len(body) // 2
                    out = []
                    for l in rhead.decode("latin-1").split("\r\n"):
                        k = l.split(":", 1)[0].lower()
                        if k == "content-length":
                            l = f"Content-Length: {keep}"
                        elif k == "content-range":
                            unit_range, total = l.split(":", 1)[1].strip().split("/")
                            start = int(unit_range.split()[1].split("-")[0])
                            l = f"Content-Range: bytes {start}-{start + keep - 1}/{total}"
                        out.append(l)
                    rhead, body = "\r\n".join(out).encode("latin-1"), body[:keep]
                client.sendall(rhead + b"\r\n\r\n" + body)
        except OSError:
            pass
        finally:
            try:
                client.close()
            except OSError:
                pass


@pytest.fixture(scope="session")
def proxy(served):
    return FaultProxy(served.port)
