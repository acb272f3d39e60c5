"""The landed layer: every file of an arrival hour read, checked against the source contract,
and written as Parquet under the hour each event happened; bad records to quarantine."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import duckdb
import numpy as np
import pyarrow as pa

from orchestration.contracts import SourceContract
from orchestration.lake import paths
from orchestration.settings import format_hour
from orchestration.sources.readers import RAW_SCHEMA, read_file
from orchestration.sources.records import lake_columns, sql_str, typed_records_sql
from orchestration.storage import Store

UTC = timezone.utc
DEDUPE_WINDOW = timedelta(hours=24)
CHUNK_HOURS = 24
LATENESS_BUCKETS = ("ahead", "0-1h", "2-6h", "7-24h", "over_24h")


@dataclass
class LandedLedger:
    """What one arrival hour's materialisation did. rows_read = rows_landed + rows_quarantined."""

    source: str
    arrival_hour: datetime
    files: int = 0
    rows_read: int = 0
    rows_landed: int = 0
    rows_quarantined: int = 0
    written_landed: int = 0  # counted back from the files written
    written_quarantined: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    event_hours_touched: dict[str, int] = field(default_factory=dict)  # event hour -> rows
    event_hours_removed: list[str] = field(default_factory=list)  # held rows before, none now
    lateness: dict[str, int] = field(default_factory=dict)
    late_events: int = 0  # two or more hours late
    beyond_window: int = 0  # more than 24 hours late: kept, and reported

    @property
    def balanced(self) -> bool:
        return (self.rows_read == self.rows_landed + self.rows_quarantined
                and self.written_landed == self.rows_landed
                and self.written_quarantined == self.rows_quarantined)


def _flat_key_map(contract: SourceContract) -> dict[str, str]:
    return {f.path.lower(): f.path for f in contract.fields}


def _staged(contract: SourceContract, landing: Store, files: list[tuple[str, str]],
            arrival_hour: datetime, con: duckdb.DuckDBPyConnection) -> dict[bool, pa.Table]:
    """Raw records of every file, grouped by shape (nested JSON / flattened)."""
    key_map = _flat_key_map(contract)
    tables: dict[bool, list[pa.Table]] = {False: [], True: []}
    for key, fmt in files:
        result = read_file(fmt, landing.uri(key), lambda k=key: landing.read_bytes(k), con, key_map)
        t = result.table
        n = t.num_rows
        t = t.append_column("source_file", pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32)), pa.array([key], pa.string())))
        t = t.append_column("arrival_hour", pa.array(np.full(n, np.datetime64(arrival_hour.replace(tzinfo=None), "us"))))
        tables[result.flat].append(t)
    return {flat: pa.concat_tables(ts) for flat, ts in tables.items() if ts}


EVENT_HOUR_SQL = "strftime(date_trunc('hour', event_ts), '%Y-%m-%dT%H')"


def write_partitioned(con: duckdb.DuckDBPyConnection, lake: Store, query: str, folder: str) -> None:
    """COPY `query` (with a text `event_hour` column) into `folder/event_hour=H/part_0.parquet`."""
    lake.prepare(folder + "/_")
    con.execute(f"COPY ({query}) TO {sql_str(lake.uri(folder))} (FORMAT parquet, COMPRESSION zstd, "
                f"PARTITION_BY (event_hour), FILENAME_PATTERN '{paths.PARTITION_FILENAME_PATTERN}', OVERWRITE_OR_IGNORE)")


def _write(con: duckdb.DuckDBPyConnection, lake: Store, query: str, key: str) -> None:
    lake.prepare(key)
    con.execute(f"COPY ({query}) TO {sql_str(lake.uri(key))} (FORMAT parquet, COMPRESSION zstd)")


def land_hour(contract: SourceContract, landing: Store, lake: Store, arrival_hour: datetime,
              con: duckdb.DuckDBPyConnection, run_ids: str | None = None) -> LandedLedger:
    """Materialise one arrival hour of the landed layer, idempotently.

    When `run_ids` names a table (event_id, event_hour), the ids landed here are appended to it."""
    source = contract.name
    ledger = LandedLedger(source=source, arrival_hour=arrival_hour)
    files = paths.arrived_files(contract, landing, arrival_hour)
    ledger.files = len(files)

    partition = paths.landed_partition(source, arrival_hour)
    old_keys = lake.list(partition + "/")
    old_hours = {paths.hour_from_key(k, "event_hour") for k in old_keys if "event_hour=" in k}
    q_key = paths.quarantine_file(source, arrival_hour)

    staged = _staged(contract, landing, files, arrival_hour, con)
    selects = []
    for flat, table in staged.items():
        name = f"_staged_{'flat' if flat else 'nested'}"
        con.register(name, table)
        selects.append(typed_records_sql(contract, name, flat))
    columns = ", ".join(f'"{c}"' for c in lake_columns(contract))
    if selects:
        con.execute("CREATE OR REPLACE TEMP TABLE _typed AS " + " UNION ALL BY NAME ".join(f"({s})" for s in selects))
    else:
        con.execute("CREATE OR REPLACE TEMP TABLE _typed AS SELECT * FROM (" +
                    typed_records_sql(contract, "_empty", False).replace("FROM _empty",
                    "FROM (SELECT NULL::TIMESTAMP AS arrival_hour, NULL::VARCHAR AS source_file, "
                    "NULL::BIGINT AS source_line, NULL::VARCHAR AS raw, NULL::VARCHAR AS file_error) WHERE false") + ")")
    for flat in staged:
        con.unregister(f"_staged_{'flat' if flat else 'nested'}")

    counts = con.execute("""
        SELECT count(*), count(*) FILTER (reason IS NULL), count(*) FILTER (reason IS NOT NULL) FROM _typed
    """).fetchone()
    ledger.rows_read, ledger.rows_landed, ledger.rows_quarantined = counts
    ledger.quarantine_reasons = dict(con.execute("""
        SELECT split_part(reason, '; ', 1) AS r, count(*) FROM _typed WHERE reason IS NOT NULL
        GROUP BY r ORDER BY count(*) DESC, r
    """).fetchall())

    hours = con.execute("""
        SELECT date_trunc('hour', event_ts) AS h, count(*) FROM _typed WHERE reason IS NULL GROUP BY h ORDER BY h
    """).fetchall()
    new_hours = {h.replace(tzinfo=arrival_hour.tzinfo): n for h, n in hours}
    ledger.event_hours_touched = {format_hour(h): n for h, n in new_hours.items()}
    ledger.event_hours_removed = sorted(format_hour(h) for h in old_hours - set(new_hours))

    lateness = dict(con.execute(f"""
        SELECT CASE WHEN hours < 0 THEN 'ahead' WHEN hours <= 1 THEN '0-1h' WHEN hours <= 6 THEN '2-6h'
                    WHEN hours <= 24 THEN '7-24h' ELSE 'over_24h' END AS bucket, count(*)
        FROM (SELECT datediff('hour', date_trunc('hour', event_ts), arrival_hour) AS hours FROM _typed WHERE reason IS NULL)
        GROUP BY bucket
    """).fetchall())
    ledger.lateness = {b: lateness.get(b, 0) for b in LATENESS_BUCKETS}
    ledger.late_events = sum(lateness.get(b, 0) for b in ("2-6h", "7-24h", "over_24h"))
    ledger.beyond_window = lateness.get("over_24h", 0)

    # Write the whole partition to a staging place (one COPY, a file per event hour), then move it into place.
    staging = lake.staging_key(partition)
    written = [f"{staging}/event_hour={format_hour(h)}/{paths.DATA_FILE}" for h in sorted(new_hours)]
    if new_hours:
        write_partitioned(con, lake, f"SELECT {columns}, {EVENT_HOUR_SQL} AS event_hour FROM _typed "
                                     f"WHERE reason IS NULL", staging)
    for hour, n in new_hours.items():  # index first, so a reader never misses a landed file
        lake.write_bytes(paths.index_marker(source, hour, arrival_hour), str(n).encode())
    if written or old_keys:
        if staging != partition:
            if written:
                lake.publish(staging, partition)
            else:
                lake.delete([partition])
        else:
            lake.delete([k for k in old_keys if k not in set(written)])
    lake.delete([paths.index_marker(source, h, arrival_hour) for h in old_hours - set(new_hours)])

    if ledger.rows_quarantined:
        q_staging = lake.staging_key(q_key)
        _write(con, lake, "SELECT arrival_hour, source_file, source_line, raw, reason FROM _typed "
                          "WHERE reason IS NOT NULL ORDER BY source_file, source_line", q_staging)
        lake.publish(q_staging, q_key)
    elif lake.exists(q_key):
        lake.delete([q_key])

    final = [paths.landed_file(source, arrival_hour, h) for h in sorted(new_hours)]
    ledger.written_landed = _count_rows(con, lake, final)
    ledger.written_quarantined = _count_rows(con, lake, [q_key] if ledger.rows_quarantined else [])

    if run_ids:
        con.execute(f"INSERT INTO {run_ids} SELECT DISTINCT event_id, date_trunc('hour', event_ts) "
                    f"FROM _typed WHERE reason IS NULL")
    con.execute("DROP TABLE _typed")
    return ledger


def _count_rows(con: duckdb.DuckDBPyConnection, lake: Store, keys: list[str]) -> int:
    if not keys:
        return 0
    uris = ", ".join(sql_str(lake.uri(k)) for k in keys)
    return con.execute(f"SELECT coalesce(sum(num_rows), 0) FROM (SELECT DISTINCT file_name, num_rows "
                       f"FROM parquet_file_metadata([{uris}]))").fetchone()[0]


def land_hours(contract: SourceContract, landing: Store, lake: Store, arrival_hours: list[datetime],
               con: duckdb.DuckDBPyConnection) -> tuple[list[LandedLedger], list[str]]:
    """Materialise several arrival hours (one run); return their ledgers and the event hours
    affected: those touched, plus later hours (within 24 h) holding a copy of an id landed here."""
    ledgers, affected = [], set()
    for i in range(0, len(arrival_hours), CHUNK_HOURS):  # a day at a time bounds the ids held
        con.execute("CREATE OR REPLACE TEMP TABLE _run_ids (event_id VARCHAR, event_hour TIMESTAMP)")
        chunk = [land_hour(contract, landing, lake, hour, con, run_ids="_run_ids")
                 for hour in arrival_hours[i : i + CHUNK_HOURS]]
        for ledger in chunk:
            affected.update(ledger.event_hours_touched)
            affected.update(ledger.event_hours_removed)
        affected.update(_later_copies(contract, lake, con))
        con.execute("DROP TABLE _run_ids")
        ledgers.extend(chunk)
    return ledgers, sorted(affected)


def _later_copies(contract: SourceContract, lake: Store, con: duckdb.DuckDBPyConnection) -> set[str]:
    touched = [r[0] for r in con.execute("SELECT DISTINCT event_hour FROM _run_ids ORDER BY 1").fetchall()]
    if not touched:
        return set()
    candidates = set()
    for hour in touched:
        candidates.update(hour + timedelta(hours=i) for i in range(1, DEDUPE_WINDOW // timedelta(hours=1) + 1))
    files = []
    for hour in sorted(candidates):
        files.extend(paths.landed_files_for(contract.name, lake, hour.replace(tzinfo=UTC)))
    if not files:
        return set()
    uris = ", ".join(sql_str(lake.uri(k)) for k in files)
    rows = con.execute(f"""
        SELECT DISTINCT l.h FROM (
            SELECT event_id, date_trunc('hour', event_ts) AS h FROM read_parquet([{uris}], union_by_name = true, hive_partitioning = false)
        ) l JOIN _run_ids r ON l.event_id = r.event_id
        WHERE l.h > r.event_hour AND l.h <= r.event_hour + INTERVAL 24 HOUR
    """).fetchall()
    return {format_hour(h.replace(tzinfo=UTC)) for (h,) in rows}

