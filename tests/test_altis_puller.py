"""The Altis puller against a fake of Altis's analytics events API on loopback (fake_vendors/altis.py):
every rule of the vendor document through the real HTTP client; the daily file lands where
`altis_landed` reads it, under the arrival hour the day ended."""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest
from fake_vendors.altis import PASSWORD, USER, FakeAltis, records
from support import tick

from orchestration.definitions import build_definitions
from orchestration.pullers import NotConfigured
from orchestration.pullers.altis import AltisApiError, AltisConfig, pull_altis
from orchestration.settings import Settings
from orchestration.storage import LocalStore, S3Store

UTC = timezone.utc
NOW = datetime(2026, 2, 21, 0, 20, tzinfo=UTC)
DAY = "2026-02-20"


@pytest.fixture
def fake():
    with FakeAltis(hang_seconds=2.0) as server:
        server.set_day(DAY, records(DAY, 7))
        yield server


def config(fake: FakeAltis, fmt: str = "json", password: str = PASSWORD, **kw) -> AltisConfig:
    return AltisConfig(site_url=fake.base_url, username=USER, app_password=password, format=fmt,
                       timeout=(2, 0.4), backoff=0.01, **kw)


def test_the_day_lands_in_both_formats_with_the_default_chunk_size(fake, tmp_path: Path):
    store = LocalStore(str(tmp_path))
    report = pull_altis(config(fake), store, DAY, now=NOW)
    assert report.written and not report.unchanged and report.chunk_sizes_tried == [3000]
    assert report.key == f"altis/{DAY}.json"
    assert [r["event_type"] for r in json.loads((tmp_path / "altis" / f"{DAY}.json").read_text())] == ["pageView"] * 7
    csv_report = pull_altis(config(fake, "csv", chunk_size=2), store, DAY, now=NOW)
    assert csv_report.written and csv_report.key == f"altis/{DAY}.csv"
    lines = (tmp_path / "altis" / f"{DAY}.csv").read_text().splitlines()
    assert "endpoint.Id" in lines[0].split(",") and len(lines) == 8
    assert [(r["format"], r["chunk_size"]) for r in fake.requests] == [("json", 3000), ("csv", 2)]
    assert not [p for p in (tmp_path / ".pulls").rglob("*") if p.is_file()]  # no staging left


def test_wrong_password_fails_clearly_and_never_shows_it(fake, tmp_path: Path, caplog):
    with caplog.at_level(logging.DEBUG), pytest.raises(AltisApiError) as err:
        pull_altis(config(fake, password="wrong secret pw"), LocalStore(str(tmp_path)), DAY, now=NOW)
    assert "HTTP 401" in str(err.value) and "ALTIS_APP_PASSWORD" in str(err.value)
    assert "wrong secret pw" not in str(err.value) and "wrong secret pw" not in caplog.text
    assert "wrong secret pw" not in repr(config(fake, password="wrong secret pw"))
    assert not (tmp_path / "altis").exists()


def test_chunk_size_is_limited_to_10000_and_the_fake_refuses_more(fake, tmp_path: Path):
    with pytest.raises(ValueError, match="10000"):
        config(fake, chunk_size=10001)
    import requests
    resp = requests.get(f"{fake.base_url}/wp-json/analytics/v1/events/{DAY}", params={"chunk_size": 10001},
                        auth=(USER, PASSWORD), timeout=5)
    assert resp.status_code == 400
    assert requests.get(f"{fake.base_url}/wp-json/analytics/v1/events/{DAY}", timeout=5).status_code == 401


def test_a_timeout_then_a_break_are_asked_again_with_smaller_chunks(fake, tmp_path: Path, caplog):
    fake.hang_next(1)
    fake.break_next(1)
    with caplog.at_level(logging.INFO):
        report = pull_altis(config(fake), LocalStore(str(tmp_path)), DAY, now=NOW)
    assert report.written and report.chunk_sizes_tried == [3000, 1000, 300]
    assert [(r["chunk_size"], r["outcome"]) for r in fake.requests] == [(3000, "hung"), (1000, "broken"), (300, "ok")]
    assert len(json.loads((tmp_path / "altis" / f"{DAY}.json").read_text())) == 7
    assert PASSWORD not in caplog.text


def test_a_server_error_is_retried_then_asked_again_with_a_smaller_chunk(fake, tmp_path: Path):
    fake.fail_next(2, 500)  # the first attempt and its one retry at 3000
    report = pull_altis(config(fake, retries=1), LocalStore(str(tmp_path)), DAY, now=NOW)
    assert report.written and report.chunk_sizes_tried == [3000, 1000]
    assert [(r["chunk_size"], r["status"]) for r in fake.requests] == [(3000, 500), (3000, 500), (1000, 200)]


def test_the_day_lands_in_an_s3_landing_store_and_an_unchanged_repull_keeps_it(fake, s3_env):
    s3_env.create_bucket(Bucket="altis-landing")
    store = S3Store("s3://altis-landing/landing", s3_env)
    assert pull_altis(config(fake, "csv"), store, DAY, now=NOW).written
    assert len(store.read_bytes(f"altis/{DAY}.csv").splitlines()) == 8
    etag = s3_env.head_object(Bucket="altis-landing", Key=f"landing/altis/{DAY}.csv")["ETag"]
    assert pull_altis(config(fake, "csv"), store, DAY, now=NOW).unchanged
    assert s3_env.head_object(Bucket="altis-landing", Key=f"landing/altis/{DAY}.csv")["ETag"] == etag
    fake.set_day(DAY, records(DAY, 9, "d"))
    assert pull_altis(config(fake, "csv"), store, DAY, now=NOW).written
    assert len(store.read_bytes(f"altis/{DAY}.csv").splitlines()) == 10
    keys = [o["Key"] for o in s3_env.list_objects_v2(Bucket="altis-landing").get("Contents", [])]
    assert keys == [f"landing/altis/{DAY}.csv"]  # no staged object left


def test_when_every_chunk_size_fails_the_day_fails_clearly_and_the_old_file_stays(fake, tmp_path: Path, caplog):
    store = LocalStore(str(tmp_path))
    pull_altis(config(fake), store, DAY, now=NOW)
    before = (tmp_path / "altis" / f"{DAY}.json").read_bytes()
    fake.set_day(DAY, records(DAY, 9, "b"))
    fake.break_next(3)
    with caplog.at_level(logging.DEBUG), pytest.raises(AltisApiError) as err:
        pull_altis(config(fake), store, DAY, now=NOW)
    message = str(err.value)
    assert DAY in message and "chunk_size 3000" in message and "chunk_size 300:" in message and "broke off" in message
    assert PASSWORD not in message and PASSWORD not in caplog.text
    assert (tmp_path / "altis" / f"{DAY}.json").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.name != f"{DAY}.json"]  # nothing staged left


def test_a_site_that_cannot_be_reached_fails_at_once_not_at_smaller_chunk_sizes(tmp_path: Path):
    closed = AltisConfig(site_url="http://127.0.0.1:9", username=USER, app_password=PASSWORD, retries=1, backoff=0.01)
    with pytest.raises(AltisApiError, match=r"could not be reached: ConnectionError") as err:
        pull_altis(closed, LocalStore(str(tmp_path)), DAY, now=NOW)
    assert "chunk_size" not in str(err.value) and PASSWORD not in str(err.value)


def test_a_repull_keeps_an_unchanged_file_and_replaces_a_changed_one(fake, tmp_path: Path):
    store = LocalStore(str(tmp_path))
    path = tmp_path / "altis" / f"{DAY}.json"
    assert pull_altis(config(fake), store, DAY, now=NOW).written
    inode, mtime = os.stat(path).st_ino, os.stat(path).st_mtime_ns
    again = pull_altis(config(fake), store, DAY, now=NOW)
    assert again.unchanged and not again.written
    assert (os.stat(path).st_ino, os.stat(path).st_mtime_ns) == (inode, mtime)  # the very same file
    fake.set_day(DAY, records(DAY, 8, "c"))
    changed = pull_altis(config(fake), store, DAY, now=NOW)
    assert changed.written and len(json.loads(path.read_text())) == 8
    assert os.stat(path).st_ino != inode  # moved into place, not rewritten in place
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [f"{DAY}.json"]


def test_a_killed_pulls_staged_file_is_swept_by_the_next_pull(fake, tmp_path: Path):
    left = tmp_path / ".pulls" / "altis" / f".staging-{DAY}.json-0123abcd"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"[\n{")
    os.utime(left, (1e9, 1e9))
    assert pull_altis(config(fake), LocalStore(str(tmp_path)), DAY, now=NOW).written
    assert not left.exists()


def test_a_day_not_ended_is_not_asked_for(fake, tmp_path: Path):
    report = pull_altis(config(fake), LocalStore(str(tmp_path)), "2026-02-21", now=NOW)
    assert report.not_ended and not report.written and fake.requests == []


def test_without_credentials_the_config_names_what_is_missing(tmp_path: Path):
    settings = Settings(landing=str(tmp_path), lake=str(tmp_path), duckdb_path=str(tmp_path / "w.duckdb"),
                        start=datetime(2026, 1, 1, tzinfo=UTC), altis_url="https://example.com")
    with pytest.raises(NotConfigured, match="ALTIS_USERNAME, ALTIS_APP_PASSWORD are not set"):
        AltisConfig.from_settings(settings)
    assert "secret" not in repr(Settings.from_env({"ALTIS_APP_PASSWORD": "secret", "ALTIS_EXPORT_FORMAT": "csv"}))
    assert Settings.from_env({"ALTIS_EXPORT_FORMAT": "csv"}).altis_export_format == "csv"


def settings_for(tmp_path: Path, fake: FakeAltis | None) -> Settings:
    credentials = dict(altis_url=fake.base_url, altis_username=USER, altis_app_password=PASSWORD) if fake else {}
    return Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"), duckdb_path=str(tmp_path / "w.duckdb"),
                    start=datetime(2026, 1, 1, tzinfo=UTC), **credentials)


def test_the_asset_pulls_a_day_that_altis_landed_then_lands_in_the_hour_the_day_ended(fake, tmp_path: Path):
    defs = build_definitions(settings_for(tmp_path, fake))
    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey("altis_landed")).parent_keys == {dg.AssetKey("altis_export_files")}
    instance = dg.DagsterInstance.ephemeral()
    pulled = dg.materialize(list(defs.assets), selection=[dg.AssetKey("altis_export_files")], resources=defs.resources,
                            partition_key=DAY, instance=instance)
    assert pulled.success
    (meta,) = [e.event_specific_data.materialization.metadata for e in pulled.get_asset_materialization_events()]
    assert meta["written"].value is True and PASSWORD not in str(meta)
    assert (tmp_path / "landing" / "altis" / f"{DAY}.json").exists()
    sensed = tick(defs, instance, "landing_files_sensor")  # the landing sensor lands the hour the day ended
    assert [(r.partition_key, r.asset_selection) for r in sensed.run_requests] == [("2026-02-21T00", [dg.AssetKey("altis_landed")])]
    landed = dg.materialize(list(defs.assets), selection=[dg.AssetKey("altis_landed")], resources=defs.resources,
                            partition_key="2026-02-21T00", instance=dg.DagsterInstance.ephemeral())
    assert landed.success
    (rows,) = [e.event_specific_data.materialization.metadata["rows_landed"].value
               for e in landed.get_asset_materialization_events()]
    assert rows == 7


def test_a_day_not_ended_fails_the_asset_and_the_daily_pull_asks_for_yesterday(fake, tmp_path: Path):
    defs = build_definitions(settings_for(tmp_path, fake))
    today = datetime.now(UTC).date().isoformat()
    result = dg.materialize(list(defs.assets), selection=[dg.AssetKey("altis_export_files")], resources=defs.resources,
                            partition_key=today, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success and fake.requests == []
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert "once the day has ended" in failure.step_failure_data.user_failure_data.description
    schedule = next(s for s in defs.schedules if s.name == "daily_pull")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    at = datetime(2026, 3, 2, 0, 20, tzinfo=UTC)
    context = dg.build_schedule_context(scheduled_execution_time=at, repository_def=defs.get_repository_def())
    (request,) = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-03-01" and request.job_name in (None, "pull_vendor_exports_by_day")
