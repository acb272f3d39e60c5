"""Test helpers for S3 faults: a fault-injecting HTTP proxy in front of a real S3 API (moto's
server), and a moto server that checks request signatures against a chosen secret key.

`FaultProxy(upstream)` listens on 127.0.0.1 and forwards every request unchanged (the Host
header too, so SigV4 signatures still match) until told to fail: `fail_next(n)` answers the
next n requests, `fail_for(seconds)` every request for that long, `fail_always()` every
request, with an S3 error (503 SlowDown by default, or 500 InternalError, ...); `cut_bodies(n)`
forwards the next n GETs but drops the connection halfway through each answer's body. Clients
are told apart by their User-Agent (`boto` for botocore, `duckdb` for DuckDB's httpfs).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Callable
from urllib.parse import unquote, urlsplit

from fake_vendors.loopback import QuietServer

HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
              "expect"}

ERROR_MESSAGES = {
    "SlowDown": "Please reduce your request rate.",
    "ServiceUnavailable": "Service is unable to handle request.",
    "InternalError": "We encountered an internal error. Please try again.",
}


@dataclass
class Fault:
    """Which requests to answer with an S3 error instead of forwarding them."""

    status: int = 503
    code: str = "SlowDown"
    remaining: int | None = None  # fail this many more requests
    until: float | None = None  # fail until this monotonic time
    every: int | None = None  # fail every n-th request
    outage_after: int | None = None  # after this many more requests, fail everything for `outage_seconds`
    outage_seconds: float = 0.0
    seen: int = 0
    started: float | None = None  # when the outage began
    path_prefix: str = "/"  # only requests for paths under this one (e.g. "/lake/": one bucket), decoded
    client: str | None = None  # only requests of this client ("boto", "duckdb")

    def hit(self, client: str, path: str) -> bool:
        if not unquote(path).startswith(self.path_prefix) or self.client not in (None, client):
            return False
        self.seen += 1
        if self.every is not None:
            return self.seen % self.every == 0
        if self.outage_after is not None:
            if self.seen == self.outage_after + 1:
                self.started = time.monotonic()
                self.until = self.started + self.outage_seconds
            return self.until is not None and time.monotonic() < self.until
        if self.remaining is not None:
            self.remaining -= 1
            return self.remaining >= 0
        return self.until is None or time.monotonic() < self.until


@dataclass
class Stats:
    requests: Counter = field(default_factory=Counter)  # client -> requests seen
    faults: Counter = field(default_factory=Counter)  # client -> requests answered with a fault
    cuts: Counter = field(default_factory=Counter)  # client -> answers cut short


def client_of(user_agent: str) -> str:
    ua = user_agent.lower()
    if "duckdb" in ua or "cpp-httplib" in ua:  # DuckDB's httpfs sends either
        return "duckdb"
    if "boto" in ua:
        return "boto"
    return ua or "unknown"


class FaultProxy:
    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.stats = Stats()
        self.log: list[tuple[float, str, str, str, int]] = []  # (monotonic time, client, method, path, fault status or 0)
        self._faults: list[Fault] = []
        self._cuts: list[tuple[Fault, Callable[[], object]]] = []  # GETs to cut short, and what then
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _handle(self):
                body = self._body()
                client = client_of(self.headers.get("User-Agent", ""))
                fault = proxy._take_fault(client, self.command, self.path)
                if fault is not None:
                    payload = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                               f"<Message>{ERROR_MESSAGES.get(fault.code, fault.code)}</Message>"
                               "<RequestId>fault-proxy</RequestId></Error>").encode()
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in self.headers.items():
                        if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                            conn.putheader(name, value)
                    if body or self.command in ("PUT", "POST"):
                        conn.putheader("Content-Length", str(len(body)))
                    conn.endheaders(body or None)
                    response = conn.getresponse()
                    data = response.read()
                    cut = (self.command == "GET" and response.status in (200, 206) and len(data) > 1
                           and proxy._take_cut(client, self.path))  # its callback, or None
                    self.send_response(response.status, response.reason)
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_BY_HOP and name.lower() not in ("content-length", "date", "server"):
                            self.send_header(name, value)
                    if self.command == "HEAD":
                        self.send_header("Content-Length", response.getheader("Content-Length") or "0")
                    else:
                        self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if cut:  # the whole length announced, half of it sent, then the connection dropped
                        self.wfile.write(data[:len(data) // 2])
                        self.wfile.flush()
                        cut()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                    elif self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle

        self._server = QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FaultProxy":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _take_fault(self, client: str, method: str, path: str) -> Fault | None:
        with self._lock:
            self.stats.requests[client] += 1
            hits = [f for f in self._faults if f.hit(client, path)]  # every rule counts every request
            fault = hits[0] if hits else None
            self.log.append((time.monotonic(), client, method, path, fault.status if fault else 0))
            if fault is not None:
                self.stats.faults[client] += 1
            return fault

    def _take_cut(self, client: str, path: str) -> Callable[[], object] | None:
        with self._lock:
            hits = [then for f, then in self._cuts if f.hit(client, path)]  # every rule counts every GET
            if hits:
                self.stats.cuts[client] += 1
            return hits[0] if hits else None

    def cut_bodies(self, n: int, client: str | None = None, path_prefix: str = "/",
                   then: Callable[[], object] = lambda: None) -> None:
        """The next n GETs (of `client`, for paths under `path_prefix`) lose their connection halfway
        through the body, after a full Content-Length: a network that drops mid-download. `then`
        runs after the half is sent, before the drop (the object replaced meanwhile, say)."""
        with self._lock:
            self._cuts.append((Fault(remaining=n, client=client, path_prefix=path_prefix), then))

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def fail_next(self, n: int, status: int = 503, code: str = "SlowDown", client: str | None = None) -> None:
        """The next n requests (of `client`, when given) fail."""
        self.add(Fault(status, code, remaining=n, client=client))

    def fail_for(self, seconds: float, status: int = 503, code: str = "SlowDown") -> None:
        """Every request fails for that long, from now."""
        self.add(Fault(status, code, until=time.monotonic() + seconds))

    def fail_every(self, n: int, status: int = 500, code: str = "InternalError") -> None:
        """Every n-th request fails."""
        self.add(Fault(status, code, every=n))

    def outage_after(self, requests: int, seconds: float, status: int = 503, code: str = "SlowDown") -> None:
        """Once `requests` more requests went through, every request fails for `seconds`."""
        self.add(Fault(status, code, outage_after=requests, outage_seconds=seconds))

    def fail_always(self, status: int = 503, code: str = "SlowDown", path_prefix: str = "/") -> None:
        """Every request (for a path under `path_prefix`) fails, from now on."""
        self.add(Fault(status, code, path_prefix=path_prefix))

    def heal(self) -> None:
        with self._lock:
            self._faults.clear()
            self._cuts.clear()

    def outages(self) -> list[tuple[float, float]]:
        """(start, end) in monotonic time of each outage that began."""
        return [(f.started, f.until) for f in self._faults if f.started is not None]

    def answered_after(self, t: float) -> int:
        """Requests forwarded (not failed) after monotonic time t."""
        return sum(1 for when, *_rest, status in self.log if when > t and not status)


# --- a moto server that checks signatures ---------------------------------------------------

AUTH_USER = "warehouse-loader"


def _serve_moto_with_auth() -> None:
    """Run in a child process: moto's server with request authentication on, one IAM user whose
    access key has the secret given in $FAULTS_SECRET (moto draws secrets at random; we set ours
    on its IAM backend), allowed everything. Prints `<endpoint> <access key id>` and serves until
    stdin closes."""
    os.environ["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"  # the three IAM calls below, then every request is checked
    import boto3
    from moto.iam.models import iam_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                       aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName=AUTH_USER)
    iam.put_user_policy(UserName=AUTH_USER, PolicyName="all",
                        PolicyDocument='{"Version": "2012-10-17", "Statement": '
                                       '[{"Effect": "Allow", "Action": "*", "Resource": "*"}]}')
    key = iam.create_access_key(UserName=AUTH_USER)["AccessKey"]
    for backend in iam_backends.values():
        for partition in backend.values():
            for user in partition.users.values():
                for access_key in user.access_keys:
                    if access_key.access_key_id == key["AccessKeyId"]:
                        access_key.secret_access_key = os.environ["FAULTS_SECRET"]
    print(endpoint, key["AccessKeyId"], flush=True)
    sys.stdin.read()
    server.stop()


class AuthMotoServer:
    """`with AuthMotoServer(secret) as s:` s.endpoint, s.access_key_id: a moto server in a child
    process that refuses requests not signed with `secret`."""

    def __init__(self, secret: str):
        self.secret = secret

    def __enter__(self) -> "AuthMotoServer":
        env = {**os.environ, "FAULTS_SECRET": self.secret}
        self._process = subprocess.Popen([sys.executable, __file__, "serve-moto-with-auth"], env=env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self._process.stdout.readline().split()
        if len(line) != 2:
            self._process.kill()
            raise RuntimeError("the moto server with authentication did not start")
        self.endpoint, self.access_key_id = line
        return self

    def __exit__(self, *exc) -> None:
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


if __name__ == "__main__" and sys.argv[1:] == ["serve-moto-with-auth"]:
    _serve_moto_with_auth()
