"""The instance `make install` configures (orchestration/dagster_instance.yaml): Dagster's SQLite
storage with its event log keeping connections. What it writes is Dagster's own: the UI's stock
storage reads the same runs and materialisations, whatever shards the pool kept or let go."""

import os
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

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

    ours = dg.DagsterInstance.get()  # one pool through every run's shard: more shards than it keeps
    assert isinstance(ours.event_log_storage, PooledSqliteEventLogStorage)
    runs = sorted(ours.get_runs(), key=lambda r: ours.get_run_record_by_id(r.run_id).create_timestamp)
    assert len(runs) == 2 * len(hours) > KEPT_SHARDS
    partitions = lambda instance, run: [e.asset_materialization.partition for e in instance.all_logs(
        run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)]
    for _ in range(2):  # the second time round, each shard is opened again after the pool let it go
        assert [partitions(ours, r) for r in runs] == [[h.strftime("%Y-%m-%dT%H")] for h in hours for _ in (0, 1)]
    assert len(ours.event_log_storage._engines) == KEPT_SHARDS

    with stock_instance(dagster_home, tmp_path / "stock") as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert {r.status for r in stock.get_runs()} == {dg.DagsterRunStatus.SUCCESS}
        expected = {h.strftime("%Y-%m-%dT%H") for h in hours}
        for key in (landed_key("omny"), events_key("omny")):
            assert stock.get_materialized_partitions(key) == expected
        assert [partitions(stock, r) for r in runs] == [partitions(ours, r) for r in runs]

        ours.delete_run(runs[0].run_id)  # its shard long let go by the pool: gone for the stock storage too
        assert stock.get_run_by_id(runs[0].run_id) is None
        assert stock.all_logs(runs[0].run_id) == []
        assert len(stock.get_runs()) == 2 * len(hours) - 1


def test_a_range_runs_partitions_are_stored_as_one_batch_whole_or_not_at_all(tmp_path, dagster_home):
    from orchestration.backfill import run_backfill

    settings, _, _ = setup(tmp_path)
    first = datetime(2026, 1, 5, 10, tzinfo=UTC)
    hours = [first + timedelta(hours=i) for i in range(3)]
    for i, hour in enumerate(hours):
        omny_file(Path(settings.landing), hour, f"f{i}", [(f"e{i}", hour)])
    report = run_backfill(settings, first, hours[-1] + timedelta(hours=1), ["omny"], marts=False)
    assert report.ok, report.errors + report.failed_checks

    ours = dg.DagsterInstance.get()
    assert int(os.environ["DAGSTER_EVENT_BATCH_SIZE"]) > 1  # Dagster hands the partitions over as batches
    run = next(r for r in ours.get_runs() if landed_key("omny") in r.asset_selection)
    materialised = ours.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    planned = ours.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
    labels = [h.strftime("%Y-%m-%dT%H") for h in hours]
    assert sorted(e.asset_materialization.partition for e in materialised) == labels
    assert len(planned) == len(hours)

    storage = ours.event_log_storage
    with pytest.raises(Exception):  # the second event is not one: nothing of the batch is stored
        storage.store_event_batch([materialised[0], "not an event"])
    storage.store_event_batch([materialised[0], materialised[1]])  # a batch that goes through is stored whole
    with stock_instance(dagster_home, tmp_path / "stock") as stock:
        again = stock.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        assert sorted(e.asset_materialization.partition for e in again) == sorted([*labels, *labels[:2]])
        records = stock.fetch_materializations(landed_key("omny"), limit=100).records
        assert len(records) == len(hours) + 2  # the asset index holds the same: the failed batch left nothing there either


def test_a_new_runs_shard_is_dagsters_empty_shard_copied_and_never_taken_for_a_run(tmp_path, dagster_home):
    from orchestration.backfill import run_backfill

    settings, _, _ = setup(tmp_path)
    hour = datetime(2026, 1, 5, 10, tzinfo=UTC)
    omny_file(Path(settings.landing), hour, "f", [("e1", hour)])
    assert run_backfill(settings, hour, hour + timedelta(hours=1), ["omny"], marts=False).ok

    def schema(path: Path) -> tuple:
        with sqlite3.connect(path) as db:
            return (sorted(db.execute("SELECT type, name, sql FROM sqlite_master").fetchall()),
                    db.execute("SELECT version_num FROM alembic_version").fetchall(),
                    db.execute("PRAGMA journal_mode").fetchall())

    ours = dg.DagsterInstance.get()
    runs = ours.get_runs()
    assert len(runs) == 2
    shards = dagster_home / "history" / "runs"
    with stock_instance(dagster_home, tmp_path / "stock") as stock:
        made = stock.event_log_storage
        with made.run_connection("made-by-dagster"):  # a shard made by Dagster itself, for comparison
            pass
        assert schema(shards / "made-by-dagster.db")[1], "Dagster stamps its shards"
        (template,) = shards.glob(".empty_run_shard-*.sqlite")  # kept by the instance, for the runs to come
        assert schema(template) == schema(shards / "made-by-dagster.db")
        for run in runs:  # copies of the empty shard, with the run's events in them
            assert schema(shards / f"{run.run_id}.db") == schema(shards / "made-by-dagster.db")
            assert stock.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
        # the empty shard kept beside the runs is none of them, for our storage or Dagster's
        assert sorted(made.get_all_run_ids()) == sorted([r.run_id for r in runs] + ["made-by-dagster"])
        assert sorted(ours.event_log_storage.get_all_run_ids()) == sorted(made.get_all_run_ids())
    assert not list(shards.glob("*.tmp"))
