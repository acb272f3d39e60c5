"""S3 faults, for real: moto's S3 server behind a proxy on loopback that answers 503 SlowDown /
500 InternalError instead of forwarding, to boto (the stores) and to DuckDB's httpfs alike."""

from __future__ import annotations

import gzip
import logging
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import boto3
import duckdb
import pytest

from orchestration.backfill import run_backfill
from orchestration.dbt_plugin import Plugin
from orchestration.settings import Settings
from orchestration.storage import LocalStore, S3Access, S3Store, duckdb_connection
from sample_exports import generate_all
from s3proxy import AuthMotoServer, FaultProxy
from support import expected_omny_ids

UTC = timezone.utc
START = datetime(2026, 1, 5, 10, tzinfo=UTC)
# A secret key that would break SQL text (and the shell, and JSON): it must reach DuckDB and boto
# intact, and nowhere else.
MARKER = "Zq9secretMarker"
SECRET = f"{MARKER}'quote\"double\\back;semi"


def _upload(client, landing: Path, bucket: str, prefix: str) -> None:
    for path in sorted(landing.rglob("*")):
        if path.is_file():
            client.upload_file(str(path), bucket, prefix + path.relative_to(landing).as_posix())


def _lake_keys(client, bucket: str) -> list[str]:
    return [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]


def _omny_events(client, bucket: str) -> dict[str, set[str]]:
    con = duckdb_connection(S3Access.of(client, boto3.session.Session()))
    out = {}
    for key in _lake_keys(client, bucket):
        if "/omny/events/" in key:
            hour = key.split("event_hour=")[1].split("/")[0]
            ids = {r[0] for r in con.execute(
                f"select event_id from read_parquet('s3://{bucket}/{key}', hive_partitioning = false)").fetchall()}
            if ids:
                out[hour] = ids
    return out


def _settings(tmp_path: Path, endpoint: str, drop: str = "vendor-drop", lake: str = "lake", **extra: str) -> Settings:
    return Settings.from_env({"WAREHOUSE_LANDING": f"s3://{drop}/exports", "WAREHOUSE_LAKE": f"s3://{lake}/warehouse",
                              "WAREHOUSE_DUCKDB": str(tmp_path / "w.duckdb"), "WAREHOUSE_START": "2026-01-01T00",
                              "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1", **extra})


def _an_hour_on_s3(client, tmp_path: Path, name: str, sources: tuple[str, ...] = ("omny",)) -> Path:
    """One hour of sample files in `<name>-drop/exports/`, and an empty `<name>-lake`: buckets of
    the test's own (the server is shared by the session). Returns the files' local folder."""
    for bucket in (f"{name}-drop", f"{name}-lake"):
        client.create_bucket(Bucket=bucket)
    landing = tmp_path / "landing"
    generate_all(landing, START, 1, seed=11, sources=sources)
    _upload(client, landing, f"{name}-drop", "exports/")
    return landing


def test_a_permanent_outage_fails_clearly_naming_the_endpoint_never_the_secret(s3_env, s3_server, tmp_path,
                                                                                monkeypatch, capfd, caplog):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)  # moto here does not check signatures
    direct = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key=SECRET)
    _an_hour_on_s3(direct, tmp_path, "outage")

    caplog.set_level(logging.DEBUG, logger="dagster")
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.fail_always(503, "SlowDown", path_prefix="/outage-lake")  # the landing answers, the lake never does
        settings = _settings(tmp_path, proxy.url, "outage-drop", "outage-lake", WAREHOUSE_S3_MAX_ATTEMPTS="3")
        report = run_backfill(settings, START, START + timedelta(hours=1), ["omny"], marts=False)
        host = proxy.url.removeprefix("http://")
        assert not report.ok
        last = report.errors[-1]  # what `backfill` prints last: the cause, not Dagster's wrapper
        assert last.startswith("omny_landed: ") and "503" in last and host in last, last
        assert "Error occurred while executing" not in last

        # DuckDB's httpfs gives up the same way: after its retries, naming the URL it could not reach.
        session = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key=SECRET)
        store = S3Store("s3://outage-lake/warehouse", session.client("s3", endpoint_url=proxy.url, region_name="us-east-1"))
        con = duckdb_connection(S3Access.of(store.client, session), max_attempts=3)
        with pytest.raises(duckdb.Error) as failure:
            con.execute("select * from read_parquet('s3://outage-lake/warehouse/omny/x.parquet')").fetchall()
        assert f"{host}/outage-lake/warehouse/omny/x.parquet" in str(failure.value) and "503" in str(failure.value)
        with pytest.raises(Exception) as failure:
            store.write_bytes("omny/y.txt", b"y")
        assert host in str(failure.value) and "3 attempts" in str(failure.value)
        assert proxy.stats.faults["duckdb"] == 3  # WAREHOUSE_S3_MAX_ATTEMPTS attempts, then the error

    out, err = capfd.readouterr()
    for text in (out, err, caplog.text, "\n".join(report.errors), str(failure.value)):
        assert MARKER not in text


def test_a_backfill_on_s3_rides_out_errors_and_an_outage_signing_with_a_secret_full_of_quotes(
        tmp_path, monkeypatch, capfd, caplog, dagster_home):
    """Against an S3 server that checks every signature against SECRET, through a proxy where
    DuckDB's first requests and every 30th request fail (503, 500) and, a little way in, every
    request for 3 s (503 SlowDown):
    boto (the stores) and DuckDB (the lake steps, and dbt's connections through our plugin) retry
    with backoff and sign with the secret, the lake ends up exactly as without faults, and no
    log, error, Dagster run storage or DuckDB file holds the secret."""
    caplog.set_level(logging.DEBUG)

    with AuthMotoServer(SECRET) as moto, FaultProxy(moto.endpoint) as proxy:
        for name, value in {"AWS_ENDPOINT_URL": proxy.url, "AWS_ACCESS_KEY_ID": moto.access_key_id,
                            "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
                            "DAGSTER_HOME": str(dagster_home)}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        # (boto3's default session keeps the first credentials it found: name them)
        direct = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                              aws_access_key_id=moto.access_key_id, aws_secret_access_key=SECRET)
        wrong = boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1",
                             aws_access_key_id=moto.access_key_id, aws_secret_access_key=SECRET[:-1])
        for bucket in ("vendor-drop", "lake"):
            direct.create_bucket(Bucket=bucket)
        with pytest.raises(Exception, match="SignatureDoesNotMatch"):  # the server does check
            wrong.list_objects_v2(Bucket="lake")
        landing = tmp_path / "landing"
        generate_all(landing, START, 1, seed=11, sources=("omny",))
        _upload(direct, landing, "vendor-drop", "exports/")

        proxy.fail_next(2, 503, "SlowDown", client="duckdb")
        proxy.fail_every(30, 500, "InternalError")
        proxy.outage_after(25, seconds=3.0)
        settings = _settings(tmp_path, proxy.url)
        report = run_backfill(settings, START, START + timedelta(hours=1), ["omny"], marts=False)
        assert report.ok, (report.errors, report.failed_checks)
        assert proxy.stats.faults["boto"] > 0 and proxy.stats.faults["duckdb"] > 0, proxy.stats
        (_, outage_end), = proxy.outages()  # it happened, in the middle of the run
        assert proxy.answered_after(outage_end) > 0

        assert report.landed["omny"]["rows_landed"] > 0
        expected = expected_omny_ids(landing)
        assert _omny_events(direct, "lake") == expected
        assert not any(".staging" in k or k.endswith(".tmp") for k in _lake_keys(direct, "lake"))

        # dbt's connections (the plugin named in profiles.yml) read the lake with the same secret
        plugin = Plugin(name="orchestration.dbt_plugin", plugin_config={"lake_root": settings.lake})
        config: dict = {}
        plugin.update_connection_config(None, config)
        with duckdb.connect(config=config) as con:
            plugin.configure_connection(con)
            cursor = con.cursor()  # dbt runs its statements on cursors
            rows = cursor.execute("select count(*) from read_parquet('s3://lake/warehouse/omny/events/*/*.parquet')").fetchone()[0]
        assert rows == sum(len(ids) for ids in expected.values())

    out, err = capfd.readouterr()
    for text in (out, err, caplog.text, "\n".join(report.notes)):
        assert MARKER not in text
    written = [p for p in dagster_home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in written)  # the run and event storage
    for path in written:
        assert MARKER.encode() not in path.read_bytes(), path


def test_downloads_cut_short_are_resumed_and_the_lake_is_as_without_faults(s3_env, s3_server, tmp_path, monkeypatch):
    """The network drops the landing's first downloads halfway through (their whole length
    announced), Omny's gzipped files and Airkit's plain JSON Lines: each goes on from the byte it
    broke at: every line is read, the ledgers are those of the same files without faults, and the
    Omny events are exactly the expected ones.
    (botocore alone retries requests, not a body it has begun to stream: a gzip file read as
    truncated, a plain one as shorter than it is.)"""
    landing = _an_hour_on_s3(s3_env, tmp_path, "cut", ("omny", "airkit"))
    airkit_lines = sum(len((gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()).splitlines())
                       for p in (landing / "airkit").rglob("*.jsonl*"))
    s3_env.create_bucket(Bucket="cut-clean")
    clean = run_backfill(_settings(tmp_path, s3_server, "cut-drop", "cut-clean"), START, START + timedelta(hours=1),
                         ["omny", "airkit"], marts=False)  # the same files, no fault
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.cut_bodies(3, client="boto", path_prefix="/cut-drop/exports/omny/")
        proxy.cut_bodies(2, client="boto", path_prefix="/cut-drop/exports/airkit/")
        report = run_backfill(_settings(tmp_path, proxy.url, "cut-drop", "cut-lake"), START, START + timedelta(hours=1),
                              ["omny", "airkit"], marts=False)
        assert report.ok, (report.errors, report.failed_checks)
        assert proxy.stats.cuts["boto"] == 5
    ledger = ("rows_read", "rows_landed", "rows_quarantined", "quarantine_reasons")
    for source in ("omny", "airkit"):
        assert {k: report.landed[source].get(k) for k in ledger} == {k: clean.landed[source].get(k) for k in ledger}
    assert report.landed["omny"]["rows_quarantined"] == 0
    assert report.landed["airkit"]["rows_read"] == airkit_lines  # every line read
    assert _omny_events(s3_env, "cut-lake") == expected_omny_ids(landing)


def test_a_file_replaced_while_it_is_read_is_reported_so_and_landed_again_by_a_rerun(s3_env, s3_server, tmp_path,
                                                                                      monkeypatch):
    """A landing file rewritten by its vendor while its download was cut: the rest of the old
    version is gone, so its records are quarantined with that reason, the other files land, and
    a re-run of the hour lands the new version (here the same records, gzipped again)."""
    landing = _an_hour_on_s3(s3_env, tmp_path, "swap")
    key = next(o["Key"] for o in s3_env.list_objects_v2(Bucket="swap-drop")["Contents"] if "/omny/" in o["Key"])
    regzipped = gzip.compress(gzip.decompress((landing / key.removeprefix("exports/")).read_bytes()), mtime=1)
    with FaultProxy(s3_server) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        proxy.cut_bodies(1, client="boto", path_prefix=f"/swap-drop/{key}",
                         then=lambda: s3_env.put_object(Bucket="swap-drop", Key=key, Body=regzipped))
        settings = _settings(tmp_path, proxy.url, "swap-drop", "swap-lake")
        first = run_backfill(settings, START, START + timedelta(hours=1), ["omny"], marts=False)
        assert first.ok, (first.errors, first.failed_checks)
        assert proxy.stats.cuts["boto"] == 1
        assert first.landed["omny"]["quarantine_reasons"] == {
            "unreadable file: ChangedWhileRead: the object was replaced while it was read": 1}
        assert first.landed["omny"]["rows_landed"] > 0  # the other files landed
        again = run_backfill(settings, START, START + timedelta(hours=1), ["omny"], marts=False)
        assert again.ok, (again.errors, again.failed_checks)
    assert again.landed["omny"]["rows_quarantined"] == 0
    assert _omny_events(s3_env, "swap-lake") == expected_omny_ids(landing)


def test_a_killed_runs_leftovers_are_swept_once_old_enough_never_a_live_runs(tmp_path, s3_env):
    """kill -9 in the middle of writing leaves `.staging-*` folders, `.trash-*` folders and
    `.*.tmp` files; `sweep_leftovers` removes them under a prefix once they are older than asked,
    and leaves younger ones (a run in progress) and everything else alone."""
    lake = tmp_path / "lake"
    code = f"""
import os, sys
from orchestration.storage import LocalStore
store = LocalStore({str(lake)!r})
store.write_bytes("omny/events/event_hour=2026-01-05T10/data.parquet", b"published")
staging = store.staging_key("omny/events")
store.prepare(staging + "/event_hour=2026-01-05T10/data.parquet")
open(os.path.join(store.root, staging, "event_hour=2026-01-05T10", "data.parquet"), "wb").write(b"half")
os.makedirs(os.path.join(store.root, "omny/landed/.trash-arrival_hour=2026-01-05T10-0f"))
os.makedirs(os.path.join(store.root, "omny/landed/_index"), exist_ok=True)
open(os.path.join(store.root, "omny/landed/_index/.marker.0f.tmp"), "wb").write(b"half")
os.makedirs(os.path.join(store.root, "airkit/events/.staging-events-0f"))
print("written", flush=True)
sys.stdin.read()
"""
    writer = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "written"
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    store = LocalStore(str(lake))
    before = sorted(str(p.relative_to(lake)) for p in lake.rglob("*"))
    assert store.sweep_leftovers("omny/", timedelta(hours=1)) == []  # young: maybe a live run's
    assert sorted(str(p.relative_to(lake)) for p in lake.rglob("*")) == before
    two_hours_ago = datetime.now(UTC).timestamp() - 7200
    for path in lake.rglob("*"):
        os.utime(path, (two_hours_ago, two_hours_ago))
    removed = store.sweep_leftovers("omny/", timedelta(hours=1))
    assert len(removed) == 3 and all(r.startswith("omny/") for r in removed), removed
    assert {k.rsplit("/", 1)[-1][:7] for k in removed} == {".stagin", ".trash-", ".marker"}
    assert store.list("") == ["omny/events/event_hour=2026-01-05T10/data.parquet"]
    assert (lake / "airkit/events/.staging-events-0f").is_dir()  # outside the prefix

    s3 = S3Store("s3://sweep-lake/warehouse", s3_env)  # a bucket of its own: the server is shared by the session
    s3_env.create_bucket(Bucket="sweep-lake")
    for key in ("omny/events/event_hour=2026-01-05T10/data.parquet", "omny/.staging-events-0f/event_hour=x/data.parquet",
                "omny/landed/.data.parquet.0f.tmp", "omny/landed/.trash-a-0f/data.parquet"):
        s3.write_bytes(key, b"x")
    assert s3.sweep_leftovers("omny/", timedelta(hours=1)) == []
    assert s3.sweep_leftovers("omny/", timedelta(0)) == ["omny/.staging-events-0f/event_hour=x/data.parquet",
                                                         "omny/landed/.data.parquet.0f.tmp",
                                                         "omny/landed/.trash-a-0f/data.parquet"]
    assert s3.list("") == ["omny/events/event_hour=2026-01-05T10/data.parquet"]
