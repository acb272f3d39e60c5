"""The puller assets in the code location: `atomic_export_files` pulls Atomic's batches into the
landing area (a fake Atomic on loopback, fake_vendors/atomic.py), upstream of `atomic_landed`."""

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from fake_vendors.atomic import TOKEN, FakeAtomic, records
from support import tick

from orchestration.definitions import build_definitions
from orchestration.partitions import range_tags
from orchestration.settings import Settings, format_hour

UTC = timezone.utc


def settings_for(tmp_path: Path, fake: FakeAtomic | None) -> Settings:
    credentials = dict(atomic_api_url=fake.base_url, atomic_environment_id="env-1", atomic_api_token=TOKEN) if fake else {}
    return Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"), duckdb_path=str(tmp_path / "w.duckdb"),
                    start=datetime(2026, 1, 1, tzinfo=UTC), **credentials)


def test_the_pull_asset_fills_the_landing_hours_that_atomic_landed_then_lands(tmp_path: Path):
    now = datetime.now(UTC)
    first, second = (now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=h) for h in (3, 2))
    with FakeAtomic(TOKEN, "env-1", now=now) as fake:
        fake.add_batch(format_hour(first), {"part-0": records(format_hour(first), 4, "a")})
        fake.add_empty(format_hour(second))
        settings = settings_for(tmp_path, fake)
        defs = build_definitions(settings)
        graph = defs.resolve_asset_graph()
        assert graph.get(dg.AssetKey("atomic_landed")).parent_keys == {dg.AssetKey("atomic_export_files")}
        tags = range_tags(format_hour(first), format_hour(second))
        instance = dg.DagsterInstance.ephemeral()
        pulled = dg.materialize(list(defs.assets), selection=[dg.AssetKey("atomic_export_files")], resources=defs.resources,
                                tags=tags, instance=instance)
    assert pulled.success
    # the landing sensor lands the hour the pull wrote into, older than the recent hours it watches
    sensed = tick(defs, instance, "landing_files_sensor")
    assert [(r.partition_key, r.asset_selection) for r in sensed.run_requests] == [
        (format_hour(first), [dg.AssetKey("atomic_landed")])]
    assert tick(defs, instance, "landing_files_sensor", cursor=sensed.cursor).run_requests == []
    by_hour = {e.partition: e.event_specific_data.materialization.metadata for e in pulled.get_asset_materialization_events()}
    assert by_hour[format_hour(first)]["files_written"].value == 1
    written = tmp_path / "landing" / "atomic" / format_hour(first) / "part-0.ndjson"
    assert by_hour[format_hour(first)]["bytes_written"].value == written.stat().st_size
    assert by_hour[format_hour(second)]["empty"].value is True
    assert by_hour[format_hour(second)]["pull_hours_asked"].value == 2  # the run's ledger, on each partition
    assert (tmp_path / "landing" / "atomic" / format_hour(first) / "part-0.ndjson").exists()
    landed = dg.materialize(list(defs.assets), selection=[dg.AssetKey("atomic_landed")], resources=defs.resources,
                            tags=tags, instance=dg.DagsterInstance.ephemeral())
    assert landed.success
    rows = {e.partition: e.event_specific_data.materialization.metadata["rows_landed"].value
            for e in landed.get_asset_materialization_events()}
    assert rows == {format_hour(first): 4, format_hour(second): 0}


def test_an_hour_that_cannot_be_pulled_fails_the_run_naming_it_and_the_others_land(tmp_path: Path):
    now = datetime.now(UTC)
    first, second = (now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=h) for h in (3, 2))
    with FakeAtomic(TOKEN, "env-1", now=now) as fake:
        for key in (first, second):
            fake.add_batch(format_hour(key), {"part-0": records(format_hour(key), 2, "f")})
        fake.fail_downloads_next(1, 404)  # the first file asked is gone at the vendor (a 404 is not retried)
        defs = build_definitions(settings_for(tmp_path, fake))
        result = dg.materialize(list(defs.assets), selection=[dg.AssetKey("atomic_export_files")],
                                resources=defs.resources, tags=range_tags(format_hour(first), format_hour(second)),
                                instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    data = failure.step_failure_data.user_failure_data
    assert "1 hours could not be pulled" in data.description and "answered HTTP 404" in data.description
    assert data.metadata["files_written"].value == 1 and len(data.metadata["hours_failed"].value) == 1
    assert len(list((tmp_path / "landing" / "atomic").rglob("*.ndjson"))) == 1  # the other hour's file, to land


@pytest.mark.parametrize("asset, partition, schedule, variables", [
    ("atomic_export_files", format_hour(datetime.now(UTC) - timedelta(hours=2)), "hourly_pull",
     ["ATOMIC_API_URL", "ATOMIC_ENVIRONMENT_ID", "ATOMIC_API_TOKEN"]),
    ("altis_export_files", "2026-02-20", "daily_pull", ["ALTIS_URL", "ALTIS_USERNAME", "ALTIS_APP_PASSWORD"]),
])
def test_without_credentials_the_pull_says_what_is_missing_and_its_schedule_stays_off(
        tmp_path: Path, asset, partition, schedule, variables):
    defs = build_definitions(settings_for(tmp_path, None))
    result = dg.materialize(list(defs.assets), selection=[dg.AssetKey(asset)], resources=defs.resources,
                            partition_key=partition, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.user_failure_data.description
    assert all(v in message for v in variables), message
    assert next(s for s in defs.schedules if s.name == schedule).default_status == dg.DefaultScheduleStatus.STOPPED


def test_the_hourly_pull_asks_for_the_three_hours_that_ended(tmp_path: Path):
    with FakeAtomic(TOKEN, "env-1") as fake:
        defs = build_definitions(settings_for(tmp_path, fake))
    schedule = next(s for s in defs.schedules if s.name == "hourly_pull")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING  # credentials set: it runs
    at = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    (request,) = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=at)).run_requests
    assert range_tags("2026-03-02T07", "2026-03-02T09").items() <= request.tags.items()
    assert request.job_name in (None, "pull_vendor_exports")



def test_the_pull_command_prints_its_ledger_and_fails_only_on_what_could_not_be_pulled(tmp_path: Path, monkeypatch, capsys):
    from fake_vendors.altis import PASSWORD, USER, FakeAltis
    from fake_vendors.altis import records as altis_records

    from orchestration.cli import main

    def pull(command: str) -> tuple[int, str]:
        code = main(["pull", *command.split()])
        out = capsys.readouterr()
        return code, out.out + out.err

    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    first = format_hour(hour - timedelta(hours=3))
    day = (now - timedelta(days=2)).date()
    for name in [k for k in os.environ if k.startswith(("ATOMIC_", "ALTIS_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WAREHOUSE_LANDING", str(tmp_path / "landing"))
    missing = pull(f"atomic --start {first} --end {format_hour(hour)}")
    assert missing[0] == 2 and "ATOMIC_API_TOKEN" in missing[1]
    with FakeAtomic(TOKEN, "env-1", now=now) as atomic, FakeAltis() as altis:
        atomic.add_batch(first, {"part-0": records(first, 2, "x")})
        atomic.add_empty(format_hour(hour - timedelta(hours=2)))
        altis.set_day(day.isoformat(), altis_records(day.isoformat(), 3))
        for k, v in dict(ATOMIC_API_URL=atomic.base_url, ATOMIC_ENVIRONMENT_ID="env-1", ATOMIC_API_TOKEN=TOKEN,
                         ALTIS_URL=altis.base_url, ALTIS_USERNAME=USER, ALTIS_APP_PASSWORD=PASSWORD).items():
            monkeypatch.setenv(k, v)
        # the hour that just ended is not ready yet: reported, not an error
        pulled = pull(f"atomic --start {first} --end {format_hour(hour)}")
        days = pull(f"altis --start {day} --end {day + timedelta(days=1)}")
        gone = format_hour(hour - timedelta(hours=1))
        atomic.add_batch(gone, {"gone": records(gone, 1, "g")})
        atomic.fail_downloads_next(50, 404)
        failed = pull(f"atomic --start {gone} --end {format_hour(hour)}")
    assert failed[0] == 1 and "answered HTTP 404" in failed[1] and "1 hours failed" in failed[1]
    assert pulled[0] == 0, pulled[1]
    assert "1 files written" in pulled[1] and "batch_key" in pulled[1]
    assert (tmp_path / "landing" / "atomic" / first / "part-0.ndjson").exists()
    assert days[0] == 0, days[1]
    assert (tmp_path / "landing" / "altis" / f"{day}.json").exists()
    for _, out in (missing, pulled, days, failed):
        assert TOKEN not in out and PASSWORD not in out
