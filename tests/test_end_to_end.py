"""The ingestion assets end to end through Dagster, on generated exports in a temp folder."""

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from orchestration.backfill import run_backfill
from orchestration.settings import Settings, format_hour
from sample_exports import SOURCES, generate_all
from support import events_ids, expected_omny_ids

UTC = timezone.utc
START = datetime(2026, 1, 5, tzinfo=UTC)
HOURS = 6


def lake_snapshot(lake: Path) -> dict[str, list]:
    snap = {}
    for f in sorted(lake.rglob("*.parquet")):
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{f}', hive_partitioning = false) ORDER BY ALL").fetchall()
        snap[str(f.relative_to(lake))] = rows
    return snap


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("wh")
    generate_all(root / "landing", START, HOURS, seed=11)
    settings = Settings(landing=str(root / "landing"), lake=str(root / "lake"),
                        duckdb_path=str(root / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    report = run_backfill(settings, START, START + timedelta(hours=HOURS), None, marts=False)
    return root, settings, report


def test_every_source_lands_and_the_ledger_balances(warehouse):
    root, _, report = warehouse
    assert report.ok, (report.failed_checks, report.errors)
    assert set(report.landed) == set(SOURCES)
    for source, m in report.landed.items():
        assert m["files"] > 0 and m["rows_landed"] > 0, source
        assert m["rows_read"] == m["rows_landed"] + m["rows_quarantined"], source
        e = report.events[source]
        assert e["rows_in"] == e["rows_kept"] + e["duplicates_dropped"], source
        assert events_ids(root / "lake", source), source
    assert report.landed["omny"]["late_events"] > 0
    assert report.events["omny"]["duplicates_dropped"] > 0


def test_events_hold_exactly_the_expected_ids_per_hour(warehouse):
    root, _, _ = warehouse
    expected = expected_omny_ids(root / "landing")
    actual = {h: ids for h, ids in events_ids(root / "lake", "omny").items() if ids}
    assert actual == expected


def test_bad_records_are_quarantined_while_the_rest_of_their_files_land(warehouse):
    root, _, _ = warehouse
    q = duckdb.sql(f"SELECT source_file, source_line, raw, reason FROM read_parquet('{root}/lake/omny/quarantine/*/*.parquet', "
                   f"hive_partitioning = false)").fetchall()
    reasons = {r[3] for r in q}
    assert "not valid JSON" in reasons
    assert "missing required field EventId" in reasons
    assert any(r.startswith("truncated gzip file") for r in reasons)
    bad_line = next(r for r in q if r[3] == "not valid JSON")
    assert bad_line[1] > 0 and bad_line[2].startswith('{"EventId": "broken"')
    landed_from_same_file = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{root}/lake/omny/landed/*/*/*.parquet', hive_partitioning = false) "
        f"WHERE source_file = '{bad_line[0]}'").fetchone()[0]
    assert landed_from_same_file > 0
    truncated = {r[0] for r in q if r[3].startswith("truncated gzip file")}
    landed_from_truncated = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{root}/lake/omny/landed/*/*/*.parquet', hive_partitioning = false) "
        f"WHERE source_file IN ({', '.join(repr(t) for t in truncated)})").fetchone()[0]
    assert landed_from_truncated == 0


def test_rerunning_changes_nothing_and_a_second_delivery_adds_nothing(warehouse, tmp_path):
    root, settings, _ = warehouse
    lake = Path(settings.lake)
    before = lake_snapshot(lake)
    report = run_backfill(settings, START, START + timedelta(hours=HOURS), ["omny", "atomic"], marts=False)
    assert report.ok
    assert lake_snapshot(lake) == before

    ids_before = events_ids(lake, "omny")
    # the vendor delivers an hour-1 file again, under a new name, two hours later
    first = sorted((Path(settings.landing) / "omny").rglob(f"{format_hour(START + timedelta(hours=1))}*.jsonl.gz"))[0]
    again_hour = START + timedelta(hours=3)
    copy = first.parent / f"{again_hour:%Y-%m-%dT%H}30_000000.000_redelivery.jsonl.gz"
    shutil.copy(first, copy)
    try:
        report = run_backfill(settings, again_hour, again_hour + timedelta(hours=1), ["omny"], marts=False)
        assert report.ok
        assert report.landed["omny"]["rows_landed"] > before_rows(before, "omny", again_hour)
        assert events_ids(lake, "omny") == ids_before
        assert report.events["omny"]["duplicates_dropped"] >= report.landed["omny"]["rows_landed"] - before_rows(before, "omny", again_hour)
    finally:
        copy.unlink()
        run_backfill(settings, again_hour, again_hour + timedelta(hours=1), ["omny"], marts=False)


def before_rows(snapshot, source, arrival_hour):
    prefix = f"{source}/landed/arrival_hour={format_hour(arrival_hour)}/"
    return sum(len(rows) for k, rows in snapshot.items() if k.startswith(prefix))


def test_events_before_the_first_partition_are_quarantined_with_the_reason(tmp_path):
    generate_all(tmp_path / "landing", START, 4, seed=3, sources=("omny",))
    first = START + timedelta(hours=2)
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=first)
    report = run_backfill(settings, first, first + timedelta(hours=2), ["omny"], marts=False)
    assert report.ok
    reason = "event time before the first partition 2026-01-05T02 (WAREHOUSE_START)"
    early = report.landed["omny"]["quarantine_reasons"][reason]
    assert early > 0
    assert not report.notes
    quarantined = duckdb.sql(f"select count(*) from read_parquet('{tmp_path}/lake/omny/quarantine/*/*.parquet') "
                             f"where reason like '{reason}%'").fetchone()[0]
    assert quarantined == early
    assert report.landed["omny"]["rows_landed"] == report.events["omny"]["rows_in"]
