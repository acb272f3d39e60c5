"""Automation: new landing files start their arrival hour; landed rows re-run the event hours they affect."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import yaml
from omny_files import omny_file
from support import setup, tick

from orchestration.partitions import range_tags
from orchestration.settings import format_hour

UTC = timezone.utc


def test_late_file_rebuilds_the_event_hours_it_affects(tmp_path):
    settings, defs, instance = setup(tmp_path)
    arrival = datetime(2026, 1, 6, 10, tzinfo=UTC)
    # a late file: events of the day before, one of them a copy stamped later of an id landed earlier
    omny_file(Path(settings.landing), datetime(2026, 1, 6, 2, tzinfo=UTC), "early", [("a", datetime(2026, 1, 6, 1, 30, tzinfo=UTC))])
    omny_file(Path(settings.landing), arrival, "late", [("b", datetime(2026, 1, 5, 20, 5, tzinfo=UTC)),
                                                       ("a", datetime(2026, 1, 5, 22, 0, tzinfo=UTC))])
    assert not tick(defs, instance, "late_events_sensor").run_requests  # nothing landed yet

    for hour in ("2026-01-06T02", "2026-01-06T10"):
        dg.materialize(list(defs.assets), selection=[dg.AssetKey("omny_landed")], instance=instance,
                       resources=defs.resources, partition_key=hour)
    result = tick(defs, instance, "late_events_sensor")
    (request,) = result.run_requests
    assert request.asset_selection == [dg.AssetKey("omny_events")]
    # 20 and 22 of the 5th are touched; 01 of the 6th holds a copy of "a" within 24 h of 22: affected
    assert range_tags("2026-01-05T20", "2026-01-06T01").items() <= request.tags.items()

    # the run it asks for, as the daemon would launch it: one run over the range
    dg.materialize(list(defs.assets), selection=request.asset_selection, instance=instance,
                   resources=defs.resources, tags=request.tags)
    lake = Path(settings.lake) / "omny" / "events"
    assert sorted(p.name for p in lake.iterdir() if not p.name.startswith(".")) == [
        "event_hour=2026-01-05T20", "event_hour=2026-01-05T22"]  # "a" at 01 is now a duplicate
    assert not tick(defs, instance, "late_events_sensor", result.cursor).run_requests  # nothing new since

    # the rebuilt event hours, in turn, rebuild the marts over those hours: the hourly facts with the
    # whole-table models (staging views, dimensions) in one run ...
    marts = tick(defs, instance, "marts_sensor")
    (request,) = marts.run_requests
    assert {dg.AssetKey("fct_sessions"), dg.AssetKey("dim_programs"), dg.AssetKey("stg_omny__downloads")} <= set(request.asset_selection)
    assert dg.AssetKey("fct_download_geo_daily") not in request.asset_selection  # its staging view comes first
    assert range_tags("2026-01-05T20", "2026-01-06T01").items() <= request.tags.items()
    run = dg.materialize([*defs.assets, *defs.asset_checks], selection=request.asset_selection, instance=instance,
                         resources=defs.resources, tags=request.tags)
    assert run.success
    # ... then the daily mart over the days of those hours
    daily = tick(defs, instance, "marts_sensor", marts.cursor)
    (request,) = daily.run_requests
    assert request.asset_selection == [dg.AssetKey("fct_download_geo_daily")]
    assert range_tags("2026-01-05", "2026-01-06").items() <= request.tags.items()
    run = dg.materialize([*defs.assets, *defs.asset_checks], selection=request.asset_selection, instance=instance,
                         resources=defs.resources, tags=request.tags)
    assert run.success
    import duckdb
    with duckdb.connect(settings.duckdb_path, read_only=True) as con:
        assert con.sql("select download_date::varchar, sum(downloads) from marts.fct_download_geo_daily "
                       "group by 1").fetchall() == [("2026-01-05", 2)]
    assert not tick(defs, instance, "marts_sensor", daily.cursor).run_requests


def test_new_files_in_a_recent_hour_start_its_landing(tmp_path):
    settings, defs, instance = setup(tmp_path)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    omny_file(Path(settings.landing), now, "one", [("x", now)])
    result = tick(defs, instance, "landing_files_sensor")
    (request,) = result.run_requests
    assert request.partition_key == format_hour(now) and request.asset_selection == [dg.AssetKey("omny_landed")]
    again = tick(defs, instance, "landing_files_sensor", result.cursor)
    assert not again.run_requests
    omny_file(Path(settings.landing), now - timedelta(hours=1), "two", [("y", now - timedelta(hours=1))])
    third = tick(defs, instance, "landing_files_sensor", result.cursor)
    assert [r.partition_key for r in third.run_requests] == [format_hour(now - timedelta(hours=1))]


def test_a_file_rewritten_under_the_same_name_is_landed_again(tmp_path):
    settings, defs, instance = setup(tmp_path)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    omny_file(Path(settings.landing), now, "same", [("x", now)])
    first = tick(defs, instance, "landing_files_sensor")
    assert len(first.run_requests) == 1
    # the vendor rewrites the file (more events, same name): its size and modification time change
    omny_file(Path(settings.landing), now, "same", [("x", now), ("y", now + timedelta(minutes=1))])
    second = tick(defs, instance, "landing_files_sensor", first.cursor)
    assert [r.partition_key for r in second.run_requests] == [format_hour(now)]
    assert second.run_requests[0].run_key != first.run_requests[0].run_key


def test_each_partition_of_a_range_run_carries_its_own_ledger(tmp_path):
    settings, defs, instance = setup(tmp_path)
    first, second = datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 5, 11, tzinfo=UTC)
    omny_file(Path(settings.landing), first, "a", [("a1", first), ("b1", first)])  # b1 again an hour later
    omny_file(Path(settings.landing), second, "b", [("b1", second), ("b2", second)])
    omny_file(Path(settings.landing), second, "c", [("c1", second)])
    dg.materialize(list(defs.assets), selection=[dg.AssetKey("omny_landed")], instance=instance,
                   resources=defs.resources, tags=range_tags(format_hour(first), format_hour(second)))
    records = instance.fetch_materializations(dg.AssetKey("omny_landed"), limit=10).records
    by_hour = {r.asset_materialization.partition: r.asset_materialization.metadata for r in records}
    assert {h: (m["files"].value, m["rows_landed"].value) for h, m in by_hour.items()} == {
        "2026-01-05T10": (1, 2), "2026-01-05T11": (2, 3)}
    # what the late-events sensor needs, each hour its own: the event hours its rows touched, and
    # later ones holding a copy of an id it landed (b1 at 11 may now be a duplicate of 10's)
    assert by_hour["2026-01-05T10"]["event_hours_affected"].value == ["2026-01-05T10", "2026-01-05T11"]
    assert by_hour["2026-01-05T11"]["event_hours_affected"].value == ["2026-01-05T11"]


def test_sensors_after_a_backfill_request_nothing(tmp_path, dagster_home):
    """`make dev` right after `make demo`: the sensors see the demo's work as done, not as new."""
    from orchestration.backfill import run_backfill

    settings, defs, _ = setup(tmp_path)
    hour = datetime(2026, 1, 5, 10, tzinfo=UTC)
    omny_file(Path(settings.landing), hour, "a", [("a1", hour), ("a2", hour - timedelta(hours=3))])
    report = run_backfill(settings, hour, hour + timedelta(hours=1), ["omny"])
    assert report.ok, report.errors + report.failed_checks
    instance = dg.DagsterInstance.get()
    assert not tick(defs, instance, "late_events_sensor").run_requests
    assert not tick(defs, instance, "marts_sensor").run_requests
    # the backfill's runs are the code location's own: its jobs, its origin (the UI re-executes them)
    runs = sorted(instance.get_runs(), key=lambda r: r.run_id)
    assert {r.job_name for r in runs} == {"land_arrival_hours", "build_event_hours", "build_marts", "build_marts_by_day"}
    repo = Path(__file__).parent.parent
    location = yaml.safe_load((repo / "workspace.yaml").read_text())["load_from"][0]["python_module"]
    # `dagster dev` with or without workspace.yaml names the location alike
    pyproject = (repo / "pyproject.toml").read_text()
    assert f'code_location_name = "{location["location_name"]}"' in pyproject
    assert f'module_name = "{location["module_name"]}"' in pyproject
    for run in runs:
        assert defs.resolve_job_def(run.job_name).name == run.job_name
        assert run.remote_job_origin.location_name == location["location_name"]
        assert run.remote_job_origin.repository_origin.repository_name == "__repository__"
    # a late file after it is new work again
    omny_file(Path(settings.landing), hour + timedelta(hours=1), "b", [("b1", hour - timedelta(hours=5))])
    dg.materialize(list(defs.assets), selection=[dg.AssetKey("omny_landed")], instance=instance,
                   resources=defs.resources, partition_key=format_hour(hour + timedelta(hours=1)))
    (request,) = tick(defs, instance, "late_events_sensor").run_requests
    assert range_tags("2026-01-05T05", "2026-01-05T05").items() <= request.tags.items()

