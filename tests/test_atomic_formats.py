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


def test_flat_files_typed_from_their_columns_give_what_their_rows_as_json_give(tmp_path: Path, contracts):
    """CSV and Parquet rows are typed from their columns (no JSON text built and parsed again): every
    column of every row, the quarantined rows' raw text, reasons and schema drift included, is what
    the same rows as JSON text through the contract query give."""
    import pyarrow as pa
    import pyarrow.parquet as papq

    from orchestration.lake.landed import DEFAULT_RULES, flat_typing, key_map
    from orchestration.sources.readers import ReadLimits, is_typed, read_batches
    from orchestration.sources.records import typed_records_sql

    csv = tmp_path / "batch.csv"
    csv.write_text(
        "id,endUserId,analyticsEvent,timestamp,properties.message,STREAMCONTEXT.streamLength,Extra.Col,other\n"
        "a1,u1,card-displayed,2026-01-05T05:00:00Z,'=SUM(A1),2,x,\n"              # formula-escaped cell, drift
        "a2,u1,card-displayed,2026-01-05T05:00:00Z,\"quote \"\" \\ é\",many,,y\n"  # not an integer
        ",,,,,,,\n"                                                                # every cell empty
        "a3,u1,not-an-event,yesterday,,,,\n"
        "a4,u1,'-card-displayed,2026-01-05T05:00:00Z,,,,\n", encoding="utf-8")
    parquet = tmp_path / "batch.parquet"
    papq.write_table(pa.table({
        "id": ["p1", "p2", "p3"], "endUserId": ["u", "u", None], "analyticsEvent": ["card-displayed"] * 3,
        "timestamp": pa.array([datetime(2026, 1, 5, 5), datetime(2026, 1, 5, 5, 30), None], pa.timestamp("us")),
        "sdkContext.containerId": pa.array([1, 2, 3], pa.int32()), "cardContext.cardPriority": [1.0, 2.5, 3.0],
        "sdkContext.isDnDActive": [True, False, None], "extra": pa.array([{"x": 1}, None, {"x": 3}]),
        "platformContext.targetStreamIds": [["a"], [], None], "platformContext.flowVersion": [1e300, 0.1, None]}), parquet)

    contract, hour = contracts["atomic"], datetime(2026, 1, 5, 5, tzinfo=UTC)
    con = duckdb_connection()
    for path, fmt in ((csv, "csv"), (parquet, "parquet")):
        def batches(typing):
            return list(read_batches(fmt, str(path), lambda: open(path, "rb"), con, key_map(contract), ReadLimits(),
                                     typing=typing))

        typed = pa.concat_tables([con.sql(f"SELECT * FROM {b.table}").fetch_arrow_table()  # a reader's table of the rows it typed
                                  for b in batches(flat_typing(contract, hour, "f", DEFAULT_RULES)) if is_typed(b)])
        raw = pa.concat_tables([b for b in batches(None) if not is_typed(b)])
        raw = raw.append_column("source_file", pa.array(["f"] * raw.num_rows)).append_column(
            "arrival_hour", pa.array([hour.replace(tzinfo=None)] * raw.num_rows, pa.timestamp("us")))
        con.register("from_text", raw)
        con.register("from_cells", typed)
        from_json = con.execute(f"SELECT * FROM ({typed_records_sql(contract, 'from_text', True)}) "
                                "WHERE reason IS NULL OR NOT starts_with(reason, 'malformed') ORDER BY source_line").fetchall()
        from_columns = con.execute("SELECT * FROM from_cells ORDER BY source_line").fetchall()
        assert from_columns == from_json
        reason, drift, text = -3, -2, -1
        assert any(r[reason] for r in from_json) and any(r[reason] is None for r in from_json)  # quarantined and landed
        assert all(r[text] for r in from_json if r[reason]) and any(r[drift] for r in from_json)


def test_a_csv_header_parsed_here_or_read_by_duckdb_gives_the_same_rows(tmp_path: Path, contracts):
    """A CSV's header is parsed from its first bytes (gunzipped when gzip), the rows then read by
    DuckDB with those names; a header DuckDB would name otherwise (padded with spaces, a column
    without a name) is read by DuckDB's own sniffer. Either way the contract's fields are found, and
    the rows keep their own line numbers around a malformed one."""
    import gzip

    from orchestration.lake.landed import DEFAULT_RULES, flat_typing, key_map
    from orchestration.sources.readers import ReadLimits, _csv_names, is_typed, read_batches

    rows = "a1,u1,card-displayed,2026-01-05T05:00:00Z\r\nbroken,row\r\na2,\"u,2\",card-displayed,2026-01-05T05:10:00Z\r\n"
    files = {"plain.csv": ("id,endUserId,analyticsEvent,timestamp\r\n" + rows).encode(),
             "gzipped.csv.gz": gzip.compress(("\ufeffid,\"endUserId\",analyticsEvent,timestamp\r\n" + rows).encode()),
             "padded.csv": (" id , endUserId,analyticsEvent,timestamp\r\n" + rows).encode()}
    contract, hour, con = contracts["atomic"], datetime(2026, 1, 5, 5, tzinfo=UTC), duckdb_connection()
    landed = {}
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        opener = lambda path=path: open(path, "rb")  # noqa: E731
        batches = read_batches("csv.gz" if name.endswith(".gz") else "csv", str(path), opener, con, key_map(contract),
                               ReadLimits(), typing=flat_typing(contract, hour, name, DEFAULT_RULES))
        landed[name] = sorted(row for batch in batches for row in (con.sql(
            f"SELECT source_line, event_id, end_user_id, reason FROM {batch.table}").fetchall() if is_typed(batch) else
            [(line, None, None, reason[:19]) for line, reason in zip(batch.column("source_line").to_pylist(),
                                                                    batch.column("file_error").to_pylist())]))
        assert (_csv_names(opener) is None) == (name == "padded.csv")  # the sniffer reads that one
    assert landed["plain.csv"] == landed["gzipped.csv.gz"] == landed["padded.csv"] == [
        (1, "a1", "u1", None), (2, None, None, "malformed CSV row: "), (3, "a2", "u,2", None)]
