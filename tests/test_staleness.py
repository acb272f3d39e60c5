"""What the UI badges "Unsynced" (Dagster's stale status) after re-runs: nothing that is up to date."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from orchestration.partitions import range_tags
from orchestration.settings import format_hour
from omny_files import omny_file
from support import setup

UTC = timezone.utc


def stale_partitions(defs, instance) -> dict[str, list[str]]:
    """What the UI badges "Unsynced": every materialised partition (or whole asset) that is stale."""
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    out = {}
    for key in graph.materializable_asset_keys:
        partitions = sorted(instance.get_materialized_partitions(key)) if graph.get(key).is_partitioned else [None]
        stale = [p for p in partitions if resolver.get_status(key, p) == StaleStatus.STALE]
        if stale:
            out[key.to_user_string()] = [p or "(whole)" for p in stale]
    return out


def test_a_rerun_that_changed_nothing_leaves_nothing_unsynced(tmp_path, dagster_home):
    from orchestration.backfill import run_backfill

    settings, defs, _ = setup(tmp_path)
    ten, eleven, noon = (datetime(2026, 1, 5, h, tzinfo=UTC) for h in (10, 11, 12))
    omny_file(Path(settings.landing), ten, "a", [("a1", ten), ("a2", ten - timedelta(hours=3))])
    omny_file(Path(settings.landing), eleven, "b", [("b1", eleven)])
    report = run_backfill(settings, ten, noon, ["omny"])
    assert report.ok, report.errors + report.failed_checks
    instance = dg.DagsterInstance.get()
    assert stale_partitions(defs, instance) == {}
    # the same backfill again: new runs, same files: nothing looks out of date
    report = run_backfill(settings, ten, noon, ["omny"])
    assert report.ok, report.errors + report.failed_checks
    assert len(instance.get_runs()) == 8
    assert stale_partitions(defs, instance) == {}
    # the marts rebuilt over one hour leave the other hours' partitions in sync (the staging views
    # they read are versioned by their SQL: dagster-dbt's code version)
    from orchestration.backfill import BackfillReport, build_marts

    rebuilt = BackfillReport(start=eleven, end=noon)
    build_marts(defs, format_hour(eleven), format_hour(eleven), instance, rebuilt, ["omny"])
    assert rebuilt.ok, rebuilt.errors + rebuilt.failed_checks
    assert stale_partitions(defs, instance) == {}
    # a file that did change: the event hours that depend on its arrival hour are out of date
    omny_file(Path(settings.landing), eleven, "b", [("b1", eleven), ("b2", eleven)])
    dg.materialize(list(defs.assets), selection=[dg.AssetKey("omny_landed")], instance=instance,
                   resources=defs.resources, tags=range_tags(format_hour(ten), format_hour(eleven)))
    assert {"2026-01-05T07", "2026-01-05T10", "2026-01-05T11"} <= set(stale_partitions(defs, instance)["omny_events"])
