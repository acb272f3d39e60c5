"""The Atomic puller against a fake of Atomic's batched analytics API on loopback (fake_vendors/atomic.py):
every rule of the vendor document, through the real HTTP client; files land where `atomic_landed` reads them."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from fake_vendors.atomic import TOKEN, FakeAtomic, records

from orchestration.assets.ingestion import build_ingestion_assets
from orchestration.partitions import arrival_hour_partitions, event_hour_partitions
from orchestration.pullers import NotConfigured
from orchestration.pullers.atomic import (AtomicApiError, AtomicClient, AtomicConfig, HourPull,
                                          _Failed, empty_marker, pull_atomic)
from orchestration.resources import StorageResource, s3_resource
from orchestration.settings import Settings
from orchestration.storage import LocalStore, S3Store

UTC = timezone.utc
NOW = datetime(2026, 2, 20, 12, 30, tzinfo=UTC)


def hour(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)


@pytest.fixture
def fake():
    with FakeAtomic(TOKEN, "env-1", now=NOW) as server:
        yield server


def config(fake: FakeAtomic, fmt: str = "ndjson", **kw) -> AtomicConfig:
    return AtomicConfig(base_url=fake.base_url, environment_id="env-1", token=TOKEN, format=fmt, backoff=0.01, **kw)


def test_files_land_in_the_layout_the_landed_asset_reads_and_a_repull_changes_nothing(fake, tmp_path: Path):
    fake.add_batch("2026-02-20T03", {"part-0": records("2026-02-20T03", 5, "a"), "part-1": records("2026-02-20T03", 3, "b")})
    landing = LocalStore(str(tmp_path / "landing"))
    report = pull_atomic(config(fake), landing, hour("2026-02-20T03"), hour("2026-02-20T04"), NOW)
    assert report.written == ["atomic/2026-02-20T03/part-0.ndjson", "atomic/2026-02-20T03/part-1.ndjson"]
    assert [r["format"] for r in fake.api_requests] == ["ndjson"]
    assert not [p for p in (tmp_path / "landing").rglob(".*") if p.is_file()]  # nothing staged left behind
    before = {k: (landing.list_files(k)[0].version) for k in report.written}

    # the existing landed asset reads them: one arrival hour, 8 rows, nothing quarantined
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    from orchestration.contracts import load_source_contracts
    assets = build_ingestion_assets(load_source_contracts()["atomic"], arrival_hour_partitions(settings),
                                    event_hour_partitions(settings), settings)
    s3 = s3_resource(settings)
    result = dg.materialize(assets, selection=[dg.AssetKey("atomic_landed")], partition_key="2026-02-20T03",
                            resources={"landing": StorageResource(root=settings.landing, s3=s3),
                                       "lake": StorageResource(root=settings.lake, s3=s3)})
    assert result.success
    (mat,) = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    assert mat.metadata["rows_landed"].value == 8
    assert mat.metadata["rows_quarantined"].value == 0

    # pulling the hour again downloads nothing and rewrites nothing
    downloads = len(fake.downloads)
    again = pull_atomic(config(fake), landing, hour("2026-02-20T03"), hour("2026-02-20T04"), NOW)
    assert again.written == [] and again.already_there == report.written
    assert len(fake.downloads) == downloads
    assert {k: landing.list_files(k)[0].version for k in report.written} == before


@pytest.mark.parametrize("fmt, magic", [("csv", b"id,"), ("parquet", b"PAR1")])
def test_the_format_is_a_setting(fake, tmp_path: Path, fmt, magic):
    fake.add_batch("2026-02-20T05", {"batch": records("2026-02-20T05", 4, "c")})
    landing = LocalStore(str(tmp_path))
    report = pull_atomic(config(fake, fmt), landing, hour("2026-02-20T05"), hour("2026-02-20T06"), NOW)
    assert report.written == [f"atomic/2026-02-20T05/batch.{fmt}"]
    assert landing.read_bytes(report.written[0]).startswith(magic)
    assert fake.api_requests[-1]["format"] == fmt
    assert Settings.from_env({"ATOMIC_EXPORT_FORMAT": fmt}).atomic_export_format == fmt
    assert Settings.from_env({}).atomic_export_format == "ndjson"
    with pytest.raises(ValueError, match="ATOMIC_EXPORT_FORMAT"):
        Settings.from_env({"ATOMIC_EXPORT_FORMAT": "xml"})


def test_from_is_rounded_down_and_to_up_and_keys_are_the_hours_ended(fake):
    for key in ("2026-02-20T03", "2026-02-20T04", "2026-02-20T06", "2026-02-20T07"):
        fake.add_batch(key, {"f": records(key, 1, "d")})
    client = AtomicClient(config(fake))
    try:
        answer = client.batched(datetime(2026, 2, 20, 3, 25, tzinfo=UTC), datetime(2026, 2, 20, 5, 10, tzinfo=UTC))
    finally:
        client.close()
    assert fake.api_requests[-1]["from"] == hour("2026-02-20T03") and fake.api_requests[-1]["to"] == hour("2026-02-20T06")
    assert sorted(answer) == ["2026-02-20T04", "2026-02-20T06"]  # (03, 06]; 05 not processed
    # more than 30 days: the client does not ask, and the vendor would answer 400
    client = AtomicClient(config(fake))
    with pytest.raises(ValueError, match="30 days"):
        client.batched(hour("2026-01-20T00"), hour("2026-02-19T01"))
    too_long = client.api.get(f"{fake.base_url}/v1/env-1/analytics/batched",
                              params={"from": "2026-01-20T00:00:00Z", "to": "2026-02-19T00:30:00+00:00"})
    client.close()
    assert too_long.status_code == 400 and "30 days" in too_long.text


def test_a_download_broken_off_is_asked_again_and_leaves_nothing_behind(fake, tmp_path: Path):
    fake.add_batch("2026-02-20T07", {"big": records("2026-02-20T07", 50, "k")})
    landing = LocalStore(str(tmp_path))
    fake.truncate_next(2)
    report = pull_atomic(config(fake, retries=1), landing, hour("2026-02-20T07"), hour("2026-02-20T08"), NOW)
    assert report.written == [] and "broke off 2 times" in report.failures["2026-02-20T07"]
    assert "signature" not in report.summary()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]  # no partial file, no staging left
    fake.truncate_next(1)  # the connection drops mid-file once: asked again, the run goes on
    report = pull_atomic(config(fake), landing, hour("2026-02-20T07"), hour("2026-02-20T08"), NOW)
    assert report.written == ["atomic/2026-02-20T07/big.ndjson"] and report.retries == 1 and not report.failures
    assert len(landing.read_bytes(report.written[0]).splitlines()) == 50
    assert report.metadata()["bytes_written"] == (tmp_path / "atomic/2026-02-20T07/big.ndjson").stat().st_size


def test_a_429_waits_as_retry_after_says_and_a_500_is_asked_again(fake, tmp_path: Path):
    fake.add_batch("2026-02-20T05", {"a": records("2026-02-20T05", 2, "r")})
    fake.fail_next(1, 429, retry_after=1)  # the backoff alone would wait 0.01 s
    fake.fail_downloads_next(1, 500)
    report = pull_atomic(config(fake), LocalStore(str(tmp_path)), hour("2026-02-20T05"), hour("2026-02-20T06"), NOW)
    assert report.written == ["atomic/2026-02-20T05/a.ndjson"]
    first, second = fake.request_times
    assert second - first >= 1.0  # Retry-After honoured
    assert [s for _, s in fake.downloads] == [500, 200]
    assert report.retries == 2 and report.metadata()["retries"] == 2


def test_an_hour_that_cannot_be_downloaded_fails_alone(fake, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3's own lines too: they name no signature
    for key, n in (("2026-02-20T01", 1), ("2026-02-20T02", 2)):
        fake.add_batch(key, {f"f{n}": records(key, n, "x")})
    fake.fail_downloads_next(3, 503)  # the first hour's file: every attempt
    report = pull_atomic(config(fake, retries=2, max_downloads=1), LocalStore(str(tmp_path)),
                         hour("2026-02-20T01"), hour("2026-02-20T03"), NOW)
    assert report.failures == {"2026-02-20T01": f"{fake.base_url}/files/env-1/2026-02-20T01/f1.ndjson answered HTTP 503"}
    assert report.written == ["atomic/2026-02-20T02/f2.ndjson"]
    assert report.metadata()["hours_failed"] == ["2026-02-20T01"]
    assert "Incremented Retry" in caplog.text and "signature=" not in caplog.text and "expires=" not in caplog.text

    # a file listed, then gone from the vendor (404): that hour fails too, not asked again in this pull
    fake.add_batch("2026-02-20T03", {"gone": records("2026-02-20T03", 1, "y")})
    client = AtomicClient(config(fake))
    answer = client.batched(hour("2026-02-20T02"), hour("2026-02-20T03"))
    fake.batches["2026-02-20T03"] = []
    hour_pull = HourPull()
    with pytest.raises(_Failed, match="gone.ndjson answered HTTP 404"):
        client.download(answer["2026-02-20T03"][0], LocalStore(str(tmp_path)), "atomic/2026-02-20T03/gone.ndjson", hour_pull)
    client.close()
    assert hour_pull.retries == 0 and not (tmp_path / "atomic/2026-02-20T03").exists()


def test_downloads_run_at_most_max_downloads_at_once(fake, tmp_path: Path):
    keys = [f"2026-02-20T{h:02d}" for h in range(1, 7)]
    for key in keys:
        fake.add_batch(key, {"p": records(key, 1, "c")})
    fake.download_delay = 0.2
    report = pull_atomic(config(fake, max_downloads=2), LocalStore(str(tmp_path)), hour(keys[0]), hour("2026-02-20T07"), NOW)
    assert len(report.written) == 6 and fake.most_in_flight == 2


def test_files_land_in_an_s3_landing_store(fake, s3_env):
    s3_env.create_bucket(Bucket="atomic-landing")
    store = S3Store("s3://atomic-landing/landing", s3_env)
    fake.add_batch("2026-02-20T02", {"p": records("2026-02-20T02", 3, "s3")})
    fake.add_empty("2026-02-20T01")
    report = pull_atomic(config(fake), store, hour("2026-02-20T01"), hour("2026-02-20T03"), NOW)
    assert report.written == ["atomic/2026-02-20T02/p.ndjson"] and report.keys("empty") == ["2026-02-20T01"]
    assert len(store.read_bytes("atomic/2026-02-20T02/p.ndjson").splitlines()) == 3
    again = pull_atomic(config(fake), store, hour("2026-02-20T01"), hour("2026-02-20T03"), NOW)
    assert again.written == [] and again.already_there == report.written


def test_an_expired_url_asks_for_the_hour_again_and_never_fails_the_run(fake, tmp_path: Path):
    fake.add_batch("2026-02-20T08", {"x": records("2026-02-20T08", 2, "e")})
    landing = LocalStore(str(tmp_path))
    fake.expire_next(1)
    report = pull_atomic(config(fake), landing, hour("2026-02-20T08"), hour("2026-02-20T09"), NOW)
    assert report.hours["2026-02-20T08"].expired_retried == 1
    assert report.written == ["atomic/2026-02-20T08/x.ndjson"]
    assert [s for _, s in fake.downloads] == [403, 200]
    assert len(fake.api_requests) == 2  # the range, then the hour again

    fake.add_batch("2026-02-20T09", {"y": records("2026-02-20T09", 2, "f")})
    fake.expire_next(10)  # every answer expired: the hour is left for the next pull, the run goes on
    stuck = pull_atomic(config(fake), landing, hour("2026-02-20T09"), hour("2026-02-20T10"), NOW)
    assert stuck.written == [] and stuck.hours["2026-02-20T09"].expired_left == ["atomic/2026-02-20T09/y.ndjson"]
    fake._expire_next = 0
    later = pull_atomic(config(fake), landing, hour("2026-02-20T09"), hour("2026-02-20T10"), NOW)
    assert later.written == ["atomic/2026-02-20T09/y.ndjson"]


def test_a_45_day_range_is_asked_in_two_requests(fake, tmp_path: Path):
    # an environment whose retention keeps more than 30 days: still at most 30 days per request
    fake.retention_days = 90
    first, last = hour("2026-01-01T01"), hour("2026-02-15T01")  # 45 days of batch keys
    fake.add_batch("2026-01-10T00", {"a": records("2026-01-10T00", 1, "g")})
    fake.add_batch("2026-02-14T00", {"b": records("2026-02-14T00", 1, "h")})
    report = pull_atomic(config(fake, retention_days=90), LocalStore(str(tmp_path)), first, last, NOW)
    assert len(fake.api_requests) == 2
    spans = [(r["from"], r["to"]) for r in fake.api_requests]
    assert spans[0][0] == first - timedelta(hours=1) and spans[-1][1] == last - timedelta(hours=1)
    assert all(to - fr <= timedelta(days=30) for fr, to in spans)
    assert spans[0][1] == spans[1][0]  # contiguous, no hour asked twice or skipped
    assert report.written == ["atomic/2026-01-10T00/a.ndjson", "atomic/2026-02-14T00/b.ndjson"]


def test_an_empty_hour_is_recorded_and_not_asked_again_an_absent_hour_is(fake, tmp_path: Path):
    fake.add_empty("2026-02-20T10")
    landing = LocalStore(str(tmp_path))
    report = pull_atomic(config(fake), landing, hour("2026-02-20T10"), hour("2026-02-20T12"), NOW)
    assert report.keys("empty") == ["2026-02-20T10"] and report.keys("not_processed") == ["2026-02-20T11"]
    assert landing.exists(empty_marker("2026-02-20T10"))
    assert report.metadata() == {"hours_asked": 2, "hours_empty": ["2026-02-20T10"], "hours_not_ready": ["2026-02-20T11"],
                                 "hours_failed": [], "hours_left_expired": [], "hours_too_old": [], "files_written": 0,
                                 "bytes_written": 0, "files_already_there": 0, "expired_asked_again": 0, "retries": 0,
                                 "api_requests": 1}
    assert not landing.list("atomic/")  # no file, and nothing the landed asset would read
    fake.add_batch("2026-02-20T11", {"late": records("2026-02-20T11", 2, "i")})
    again = pull_atomic(config(fake), landing, hour("2026-02-20T10"), hour("2026-02-20T12"), NOW)
    assert again.keys("empty") == ["2026-02-20T10"] and again.written == ["atomic/2026-02-20T11/late.ndjson"]
    assert fake.api_requests[-1]["from"] == hour("2026-02-20T10")  # only 11 asked: (10, 11]


def test_data_older_than_30_days_is_said_to_be_gone(fake, tmp_path: Path, caplog):
    caplog.set_level(logging.INFO)
    report = pull_atomic(config(fake), LocalStore(str(tmp_path)), hour("2026-01-10T00"), hour("2026-01-11T00"), NOW)
    assert len(report.keys("too_old")) == 24 and not fake.api_requests
    assert "30 days" in report.summary() and "can no longer be pulled" in caplog.text


def test_the_token_is_in_no_error_log_or_repr_and_missing_settings_are_named(fake, tmp_path: Path, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(NotConfigured, match="ATOMIC_API_URL, ATOMIC_ENVIRONMENT_ID, ATOMIC_API_TOKEN are not set"):
        pull_atomic(Settings.from_env({}), LocalStore(str(tmp_path)), NOW, NOW, NOW)
    settings = Settings.from_env({"ATOMIC_API_URL": fake.base_url + "/", "ATOMIC_ENVIRONMENT_ID": "env-1",
                                  "ATOMIC_API_TOKEN": TOKEN})
    assert TOKEN not in repr(settings) and TOKEN not in repr(AtomicConfig.from_settings(settings))
    texts = []
    fake.fail_next(2, 503)  # retried with backoff, then answered
    fake.add_batch("2026-02-20T03", {"ok": records("2026-02-20T03", 1, "j")})
    report = pull_atomic(settings, LocalStore(str(tmp_path)), hour("2026-02-20T03"), hour("2026-02-20T04"), NOW)
    assert report.written == ["atomic/2026-02-20T03/ok.ndjson"]
    wrong = AtomicConfig(base_url=fake.base_url, environment_id="env-1", token=TOKEN[::-1], retries=0)
    with pytest.raises(AtomicApiError, match="refused the token") as refused:
        pull_atomic(wrong, LocalStore(str(tmp_path)), hour("2026-02-20T04"), hour("2026-02-20T05"), NOW)
    texts += [str(refused.value), repr(refused.value)]
    with pytest.raises(AtomicApiError) as unreachable:
        pull_atomic(AtomicConfig(base_url="http://127.0.0.1:9", environment_id="e", token=TOKEN, retries=0),
                    LocalStore(str(tmp_path)), hour("2026-02-20T04"), hour("2026-02-20T05"), NOW)
    texts += [str(unreachable.value), repr(unreachable.value), caplog.text]
    assert all(TOKEN not in t and TOKEN[::-1] not in t for t in texts)
    assert "signature=" not in caplog.text  # file URLs are named without their signature, urllib3's lines too
