"""The contracts' latency SLA as freshness checks, evaluated on real materialisations: data times
are chosen relative to now, so an event hour is stale (ended more than 24 h ago, landed, not built)
or fresh; nothing stands in for the clock or the instance."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest
from omny_files import omny_file

from orchestration.backfill import run_backfill
from orchestration.checks.freshness import FRESHNESS_CHECK, SENSOR_NAME, evaluate_mart
from orchestration.contracts import load_mart_contracts
from orchestration.definitions import build_definitions
from orchestration.settings import Settings, format_hour

UTC = timezone.utc
OMNY_EVENTS = dg.AssetKey("omny_events")
OMNY_CHECK = dg.AssetCheckKey(OMNY_EVENTS, FRESHNESS_CHECK)


def materialize(defs, instance, key: dg.AssetKey, hour: datetime) -> dg.ExecuteInProcessResult:
    """One partition, with the asset's checks, as the UI's Materialize does."""
    result = dg.materialize([*defs.assets, *defs.asset_checks], selection=[key], instance=instance,
                            resources=defs.resources, partition_key=format_hour(hour))
    assert result.success
    return result


def evaluations(result: dg.ExecuteInProcessResult) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    return {dg.AssetCheckKey(e.asset_key, e.check_name): e for e in result.get_asset_check_evaluations()}


def tick(defs, instance):
    sensor = next(s for s in defs.sensors if s.name == SENSOR_NAME)
    with dg.build_sensor_context(instance=instance, definitions=defs) as context:
        return sensor.evaluate_tick(context)


def run_checks(defs, instance, keys) -> dict[dg.AssetCheckKey, dg.AssetCheckEvaluation]:
    """Evaluate checks alone, as the freshness sensor's run (or the UI's Execute on a check) does."""
    result = dg.materialize([*defs.assets, *defs.asset_checks], selection=dg.AssetSelection.checks(*keys),
                            instance=instance, resources=defs.resources)
    assert result.success
    assert not result.get_asset_materialization_events()  # checks only: nothing is rebuilt
    return evaluations(result)


def test_freshness_checks_fail_when_an_hour_is_stale_and_pass_after_it_lands(tmp_path):
    now = datetime.now(UTC)
    hour = now.replace(minute=0, second=0, microsecond=0)
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=hour - timedelta(days=3))
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    landing = Path(settings.landing)

    # Nothing built yet: the sensor asks for every freshness check, and for nothing else.
    (request,) = tick(defs, instance).run_requests
    assert OMNY_CHECK in request.asset_check_keys and not request.asset_selection
    assert all(k.name == FRESHNESS_CHECK for k in request.asset_check_keys)
    first = run_checks(defs, instance, request.asset_check_keys)
    assert not first[OMNY_CHECK].passed and "never been built" in first[OMNY_CHECK].description
    assert first[OMNY_CHECK].severity == dg.AssetCheckSeverity.WARN
    # a failed check is not evaluated again until its asset is built again: no run per tick
    assert not tick(defs, instance).run_requests

    # An on-time hour lands and is built: the check runs with it, and passes.
    on_time = hour - timedelta(hours=2)
    omny_file(landing, on_time, "on-time", [("a", on_time + timedelta(minutes=5))])
    materialize(defs, instance, dg.AssetKey("omny_landed"), on_time)
    run = materialize(defs, instance, OMNY_EVENTS, on_time)
    built = evaluations(run)
    assert built[OMNY_CHECK].passed, built[OMNY_CHECK].description
    assert built[OMNY_CHECK].target_materialization_data.run_id == run.run_id  # the UI ties it to that build

    # A late file lands: events of 30 h ago (past the 24 h SLA) and of 3 h ago (not yet due).
    stale, recent = hour - timedelta(hours=30), hour - timedelta(hours=3)
    omny_file(landing, hour - timedelta(hours=1), "late", [("b", stale + timedelta(minutes=5)),
                                                          ("c", recent + timedelta(minutes=5))])
    materialize(defs, instance, dg.AssetKey("omny_landed"), hour - timedelta(hours=1))
    late = run_checks(defs, instance, [OMNY_CHECK])[OMNY_CHECK]
    assert not late.passed
    assert format_hour(stale) in late.description and format_hour(recent) not in late.description
    assert late.metadata["overdue_event_hours"].value == [format_hour(stale)]

    # The stale hour is built: fresh again, the recent hour still within its SLA.
    healed = evaluations(materialize(defs, instance, OMNY_EVENTS, stale))[OMNY_CHECK]
    assert healed.passed, healed.description
    assert healed.metadata["event_hours_landed_not_yet_built"].value == 1
    fresh_until = healed.metadata["dagster/fresh_until_timestamp"].value
    assert now.timestamp() < fresh_until <= now.timestamp() + 3600 + 60  # evaluated again within the hour


def test_a_mart_is_stale_when_its_events_changed_more_than_an_hour_ago_and_fresh_once_rebuilt(tmp_path, dagster_home):
    # the backfill's runs and this test share one instance (`dagster_home`)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=hour - timedelta(days=1))
    omny_file(Path(settings.landing), hour, "one", [("a", hour + timedelta(minutes=5))])
    mart = load_mart_contracts()["dim_clips"]

    report = run_backfill(settings, hour, hour + timedelta(hours=1), ["omny"], marts=False)
    assert report.ok, report.errors + report.failed_checks  # the events' freshness check ran, and passed
    with dg.DagsterInstance.get() as instance:
        now = datetime.now(UTC).timestamp()
        assert evaluate_mart(instance, mart, [OMNY_EVENTS], now=now).passed  # within the hour
        later = evaluate_mart(instance, mart, [OMNY_EVENTS], now=now + 2 * 3600)  # two hours on, not rebuilt
        assert not later.passed and "omny_events changed 2 h ago" in later.description

    report = run_backfill(settings, hour, hour + timedelta(hours=1), None)  # every source, and the marts
    assert report.ok, report.errors + report.failed_checks
    with dg.DagsterInstance.get() as instance:
        rebuilt = evaluate_mart(instance, mart, [OMNY_EVENTS], now=datetime.now(UTC).timestamp() + 2 * 3600)
        assert rebuilt.passed, rebuilt.description
        key = dg.AssetCheckKey(dg.AssetKey("dim_clips"), FRESHNESS_CHECK)
        summary = instance.event_log_storage.get_asset_check_summary_records([key])[key]
        evaluation = summary.last_completed_check_execution_record.event.asset_check_evaluation
        assert evaluation.passed, evaluation.description  # the backfill's marts run evaluated it too
        # each check of the run over a range of hours is tied to the build it checked, as the UI shows it
        for checked in (key, dg.AssetCheckKey(OMNY_EVENTS, FRESHNESS_CHECK), dg.AssetCheckKey(dg.AssetKey("fct_sessions"), "contract")):
            record = instance.event_log_storage.get_asset_check_summary_records([checked])[checked]
            target = record.last_completed_check_execution_record.event.asset_check_evaluation.target_materialization_data
            latest = instance.fetch_materializations(checked.asset_key, limit=1).records[0]
            assert (target.run_id, target.storage_id) == (latest.run_id, latest.storage_id), checked
        # every freshness check ran with the backfill and passed: opening the UI now starts no run
        assert not tick(build_definitions(settings), instance).run_requests


@pytest.mark.parametrize("layer", ["landed", "events"])
def test_lake_assets_show_their_owners_and_columns(layer, contracts):
    defs = build_definitions(Settings.from_env({"WAREHOUSE_START": "2026-01-01T00"}))
    graph = defs.resolve_asset_graph()
    for name, contract in contracts.items():
        node = graph.get(dg.AssetKey(f"{name}_{layer}"))
        assert node.owners == list(contract.owners) and "team:data-platform" in node.owners
        schema = node.metadata["dagster/column_schema"]
        assert [(c.name, c.type) for c in schema.columns] == [(k, t.lower()) for k, t in contract.lake_schema().items()]
        assert all(c.description for c in schema.columns), [c.name for c in schema.columns if not c.description]
    omny = {c.name: c for c in graph.get(dg.AssetKey(f"omny_{layer}")).metadata["dagster/column_schema"].columns}
    assert "vendor field `Program.Id`" in omny["program_id"].description
    assert not omny["program_id"].constraints.nullable and omny["program_name"].constraints.nullable
