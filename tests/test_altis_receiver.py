"""The receiver of Altis's push hook, over real HTTP on loopback: a batch lands where `altis_landed`
reads it; unauthenticated, oversized, length-less and cut-short bodies are refused and leave nothing."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import socket
import struct
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from fake_vendors.altis import records

from orchestration.cli import main
from orchestration.definitions import build_definitions
from orchestration.receivers.altis import PATH, SECRET_HEADER, make_server
from orchestration.settings import Settings, format_hour
from orchestration.storage import LocalStore, S3Store

SECRET = "hook-s3cr3t-9f8e7d6c5b4a"  # the tests' shared secret: it must show up nowhere
UTC = timezone.utc


@pytest.fixture
def receiver(tmp_path: Path):
    server = make_server(LocalStore(str(tmp_path / "landing")), SECRET, max_bytes=10_000, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def post(port: int, body: bytes, secret: str | None = SECRET) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", PATH, body=body, headers={SECRET_HEADER: secret} if secret else {})
    resp = conn.getresponse()
    out = resp.status, json.loads(resp.read() or b"{}")
    conn.close()
    return out


def raw_request(port: int, head: str, body: bytes = b"") -> int:
    """Send a request by hand (no Content-Length, or a body shorter than it says); its status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        sock.shutdown(socket.SHUT_WR)
        return int(sock.makefile("rb").readline().split()[1])


def ndjson(recs: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in recs).encode()


def test_a_batch_lands_under_the_hour_it_arrived_and_altis_landed_reads_it(receiver, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    now = datetime.now(UTC)
    day = f"{now:%Y-%m-%d}"
    status, answer = post(receiver, ndjson(records(day, 5, "hook")))
    assert status == 202, answer
    key = answer["key"]
    assert key.startswith(f"altis/batches/{day}/{now:%H}/hook-") and key.endswith(".ndjson.gz")
    assert gzip.decompress((tmp_path / "landing" / key).read_bytes()) == ndjson(records(day, 5, "hook"))
    assert not [p for p in (tmp_path / "landing").rglob(".*") if p.is_file()]  # nothing staged left
    assert SECRET not in caplog.text

    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    defs = build_definitions(settings)
    landed = dg.materialize(list(defs.assets), selection=[dg.AssetKey("altis_landed")], resources=defs.resources,
                            partition_key=format_hour(now), instance=dg.DagsterInstance.ephemeral())
    (meta,) = [e.event_specific_data.materialization.metadata for e in landed.get_asset_materialization_events()]
    assert meta["rows_landed"].value == 5


def test_unauthenticated_oversized_and_broken_bodies_are_refused_and_leave_nothing(receiver, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    body = ndjson(records("2026-02-20", 2))
    assert post(receiver, body, secret=None)[0] == 401
    assert post(receiver, body, secret=SECRET[::-1])[0] == 401
    assert post(receiver, b"x" * 10_001)[0] == 413
    # over the limit is refused on its Content-Length, before a byte of the body is read
    assert raw_request(receiver, f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
                                 f"Content-Length: 5000000000\r\n") == 413
    assert raw_request(receiver, f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n") == 411
    assert raw_request(receiver, f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\n"
                                 f"Content-Length: {len(body)}\r\n", body[: len(body) // 2]) == 400
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]
    assert SECRET not in caplog.text and SECRET[::-1] not in caplog.text


def test_a_batch_lands_in_an_s3_landing_store(s3_env):
    s3_env.create_bucket(Bucket="hook-landing")
    server = make_server(S3Store("s3://hook-landing/landing", s3_env), SECRET, max_bytes=10_000, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        status, answer = post(server.server_address[1], ndjson(records("2026-02-20", 3)))
    finally:
        server.shutdown()
        server.server_close()
    assert status == 202
    body = s3_env.get_object(Bucket="hook-landing", Key="landing/" + answer["key"])["Body"].read()
    assert gzip.decompress(body).count(b"\n") == 3


def test_without_a_secret_the_receiver_does_not_start(monkeypatch, capsys):
    monkeypatch.delenv("ALTIS_HOOK_SECRET", raising=False)
    assert main(["receive", "altis", "--port", "0"]) == 2
    assert "ALTIS_HOOK_SECRET is not set" in capsys.readouterr().err


def test_a_failing_landing_store_is_a_503_and_the_receiver_goes_on(tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    (tmp_path / "landing").write_text("a file where the landing folder should be")
    server = make_server(LocalStore(str(tmp_path / "landing")), SECRET, max_bytes=10_000, port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        for _ in range(2):  # the receiver answers, and answers again
            status, answer = post(server.server_address[1], ndjson(records("2026-02-20", 2)))
            assert status == 503
            assert answer["error"].startswith("the landing store failed (") and "send the batch again" in answer["error"]
    finally:
        server.shutdown()
        server.server_close()
    assert "the landing store failed" in caplog.text and SECRET not in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["landing"]


def test_a_client_gone_mid_body_is_a_log_line_not_a_traceback(receiver, tmp_path: Path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    with socket.create_connection(("127.0.0.1", receiver), timeout=10) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{SECRET_HEADER}: {SECRET}\r\nContent-Length: 5000\r\n\r\n"
                     .encode() + b"x" * 100)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed with a reset
    deadline = time.monotonic() + 10
    while "went away" not in caplog.text and "nothing written" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "went away" in caplog.text or "nothing written" in caplog.text  # the server saw the cut
    assert post(receiver, ndjson(records("2026-02-20", 1)))[0] == 202  # the next batch lands
    assert "Traceback" not in capfd.readouterr().err
    assert len([p for p in (tmp_path / "landing").rglob("*") if p.is_file()]) == 1  # the cut batch left nothing
