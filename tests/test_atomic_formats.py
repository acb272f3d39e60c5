"""Atomic's NDJSON (nested), CSV and Parquet (flattened, CSV formula-escaped) land to identical rows."""

import random
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from orchestration.lake.landed import land_hours
from orchestration.storage import LocalStore, duckdb_connection
from sample_exports import atomic

UTC = timezone.utc


def test_three_formats_land_identical_rows(tmp_path: Path, contracts):
    # a generated batch: every kind of event Atomic sends, with formula-like values
    gen_root = tmp_path / "gen"
    atomic.generate(gen_root, datetime(2026, 1, 5, 3, tzinfo=UTC), 2, random.Random(3))
    records = []
    import json
    for f in sorted(gen_root.rglob("*.ndjson")):
        for line in f.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("id") and rec.get("timestamp") and rec.get("endUserId"):
                records.append(rec)
    assert len(records) > 20
    records[0].setdefault("cardContext", {})["cardTemplateName"] = "=HYPERLINK(\"x\")"  # escaped in CSV
    records[1].setdefault("properties", {})["message"] = "-5 stars, +1 for effort @team"

    landing = tmp_path / "landing"
    for hour, writer, ext in ((4, atomic.write_ndjson, "ndjson"), (5, atomic.write_csv, "csv"),
                              (6, atomic.write_parquet, "parquet")):
        path = landing / f"atomic/2026-01-05T{hour:02d}/batch.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path, records)
    lake = LocalStore(str(tmp_path / "lake"))
    ledgers = land_hours(contracts["atomic"], LocalStore(str(landing)), lake,
                            [datetime(2026, 1, 5, h, tzinfo=UTC) for h in (4, 5, 6)], duckdb_connection())
    counts = [(l.rows_landed, l.rows_quarantined) for l in ledgers]
    assert counts[0] == counts[1] == counts[2], counts
    assert counts[0][0] == len(records)

    def rows(hour):
        return duckdb.sql(
            f"SELECT * EXCLUDE (arrival_hour, source_file) FROM read_parquet('{lake.uri('atomic/landed')}/arrival_hour=2026-01-05T{hour:02d}/*/*.parquet', "
            f"hive_partitioning = false) ORDER BY source_line").fetchall()

    ndjson, csv_rows, parquet = rows(4), rows(5), rows(6)
    assert ndjson == csv_rows
    assert ndjson == parquet
    names = duckdb.sql(f"SELECT card_context_card_template_name FROM read_parquet('{lake.uri('atomic/landed')}/arrival_hour=2026-01-05T05/*/*.parquet', "
                       f"hive_partitioning = false) WHERE event_id = '{records[0]['id']}'").fetchall()
    assert names == [('=HYPERLINK("x")',)]
