"""The instance `make install` configures (orchestration/dagster_instance.yaml): Dagster's SQLite
storage with its event log keeping connections. What it writes is Dagster's own: the UI's stock
storage reads the same runs and materialisations, whatever shards the pool kept or let go."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg

from omny_files import omny_file
from orchestration.assets.ingestion import events_key, landed_key
from orchestration.instance_storage import KEPT_SHARDS, PooledSqliteEventLogStorage
from support import setup

UTC = timezone.utc


def stock_instance(home: Path, where: Path) -> dg.DagsterInstance:
    """Dagster's own SQLite storage over `home`'s files."""
    where.mkdir()
    (where / "dagster.yaml").write_text(f"telemetry:\n  enabled: false\nstorage:\n  sqlite:\n    base_dir: {home}\n")
    return dg.DagsterInstance.from_config(str(where))


def test_dagsters_own_storage_reads_every_run_the_pooled_event_log_wrote(tmp_path, dagster_home):
    from orchestration.backfill import run_backfill

    settings, _, _ = setup(tmp_path)
    first = datetime(2026, 1, 5, 10, tzinfo=UTC)
    hours = [first + timedelta(hours=i) for i in range(KEPT_SHARDS // 2 + 1)]  # more runs than shards kept
    for i, hour in enumerate(hours):
        omny_file(Path(settings.landing), hour, f"f{i}", [(f"e{i}", hour), (f"e{i}", hour)])  # a copy dropped
        report = run_backfill(settings, hour, hour + timedelta(hours=1), ["omny"], marts=False)
        assert report.ok, report.errors + report.failed_checks

    ours = dg.DagsterInstance.get()
    assert isinstance(ours.event_log_storage, PooledSqliteEventLogStorage)
    with stock_instance(dagster_home, tmp_path / "stock") as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        runs = stock.get_runs()
        assert len(runs) == 2 * len(hours) and {r.status for r in runs} == {dg.DagsterRunStatus.SUCCESS}
        expected = {h.strftime("%Y-%m-%dT%H") for h in hours}
        for key in (landed_key("omny"), events_key("omny")):
            assert stock.get_materialized_partitions(key) == expected
        # each run's own events too (its shard), the first runs' shards long let go by the pool
        oldest = min(runs, key=lambda r: stock.get_run_record_by_id(r.run_id).create_timestamp)
        logged = stock.all_logs(oldest.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert [e.asset_materialization.partition for e in logged] == [hours[0].strftime("%Y-%m-%dT%H")]

        ours.delete_run(oldest.run_id)  # through the pool: gone for the stock storage too
        assert stock.get_run_by_id(oldest.run_id) is None
        assert len(stock.get_runs()) == 2 * len(hours) - 1
