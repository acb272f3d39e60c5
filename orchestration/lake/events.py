"""The events layer: one row per event id, in the hour the event happened.

Event hour H keeps, of the landed rows of H (from every arrival hour), the copy delivered first
(earliest arrival hour, then file, then line), and drops every id that already has a landed
copy in one of the 24 event hours before H. The answer depends only on what has landed.
An hour's folder holds the winners written (DATA_FILE) and each landed first-copies file none of
whose rows is dropped, copied whole: most rows are not decoded and encoded a second time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

import duckdb

from orchestration.contracts import SourceContract
from orchestration.lake import CHUNK, DEDUPE_WINDOW, paths
from orchestration.lake.parquet import rows_written, write_files
from orchestration.partitions import hours_between
from orchestration.settings import format_hour
from orchestration.sources.records import lake_columns
from orchestration.sql import column_list, sql_str
from orchestration.storage import Store

UTC = timezone.utc


@dataclass
class EventsLedger:
    """What one event hour's materialisation did. rows_in = rows_kept + duplicates_dropped."""

    source: str
    event_hour: datetime
    rows_in: int = 0
    rows_kept: int = 0
    duplicates_dropped: int = 0
    duplicates_in_hour: int = 0  # further copies in the same event hour
    duplicates_in_window: int = 0  # ids already landed in the 24 event hours before
    written_rows: int = 0  # counted back from the files written
    arrival_hours: int = 0  # arrival hours contributing landed rows

    @property
    def balanced(self) -> bool:
        return self.rows_in == self.rows_kept + self.duplicates_dropped and self.written_rows == self.rows_kept


# Only counts per (id, event hour): which copy came first matters only for the few ids with more
# than one, and is settled in DROPPED_SQL. Carrying the first copy's file and line through this
# aggregate held ~600 MB of non-spillable state per chunk (bench/README.md).
DEDUPE_SQL = """
CREATE OR REPLACE TEMP TABLE _winners AS
WITH per_hour AS (
    SELECT event_id, date_trunc('hour', event_ts) AS event_hour, count(*) AS copies
    FROM read_parquet([{uris}], union_by_name = true, hive_partitioning = false)
    GROUP BY ALL
), windowed AS (
    SELECT *, lag(event_hour) OVER (PARTITION BY event_id ORDER BY event_hour) AS previous_hour
    FROM per_hour
)
SELECT event_id, event_hour, copies,
       previous_hour IS NOT NULL AND previous_hour >= event_hour - INTERVAL {window_hours} HOUR AS in_window
FROM windowed
WHERE event_hour >= TIMESTAMP '{start}' AND event_hour < TIMESTAMP '{end}'
"""


# The landed rows of the target hours that are not kept: every copy of an id in the window, and
# every copy but the first delivered (earliest arrival hour, then file, then line) of the others.
# Few, so the writes anti-join them (a semi join with the winners built a hash table of every row).
# Not TEMP: the writes run on cursors of the connection.
DROPPED_SQL = """
CREATE OR REPLACE TABLE _dropped AS
SELECT source_file, source_line, landed_file
FROM (
    SELECT l.source_file, l.source_line, l.filename AS landed_file, w.in_window,
           row_number() OVER (PARTITION BY l.event_id, w.event_hour
                              ORDER BY l.arrival_hour, l.source_file, l.source_line) AS copy
    FROM read_parquet([{uris}], union_by_name = true, hive_partitioning = false, filename = true) l
    JOIN (SELECT * FROM _winners WHERE copies > 1 OR in_window) w
      ON l.event_id = w.event_id AND date_trunc('hour', l.event_ts) = w.event_hour
)
WHERE in_window OR copy > 1
"""


def build_event_hours(contract: SourceContract, lake: Store, start: datetime, end: datetime,
                      con: duckdb.DuckDBPyConnection,
                      on_chunk: Callable[[list[EventsLedger]], None] = lambda ledgers: None) -> list[EventsLedger]:
    """Materialise the event hours of [start, end), CHUNK of them at a time."""
    paths.sweep_leftovers(contract.name, lake)
    ledgers, chunk_start = [], start
    while chunk_start < end:
        chunk_end = min(chunk_start + CHUNK, end)
        chunk = _build_chunk(contract, lake, chunk_start, chunk_end, con)
        on_chunk(chunk)
        ledgers.extend(chunk)
        chunk_start = chunk_end
    return ledgers


def _build_chunk(contract: SourceContract, lake: Store, start: datetime, end: datetime,
                 con: duckdb.DuckDBPyConnection) -> list[EventsLedger]:
    """The event hours of [start, end) in one pass over the landed ids they need."""
    source = contract.name
    window_hours = DEDUPE_WINDOW // timedelta(hours=1)
    files_by_hour = {h: paths.landed_files_for(source, lake, h) for h in hours_between(start - DEDUPE_WINDOW, end)}
    all_files = [f for fs in files_by_hour.values() for f in fs]
    targets = hours_between(start, end)
    ledgers = []
    if all_files:
        con.execute(DEDUPE_SQL.format(
            uris=", ".join(sql_str(lake.uri(k)) for k in all_files), window_hours=window_hours,
            start=f"{start:%Y-%m-%d %H:00:00}", end=f"{end:%Y-%m-%d %H:00:00}",
        ))
    stats = {}
    if all_files:
        stats = {h.replace(tzinfo=UTC): row for h, *row in con.execute("""
            SELECT event_hour, sum(copies), count(*) FILTER (NOT in_window),
                   coalesce(sum(copies - 1) FILTER (NOT in_window), 0), coalesce(sum(copies) FILTER (in_window), 0)
            FROM _winners GROUP BY event_hour
        """).fetchall()}
    target_files = [f for h in targets for f in files_by_hour.get(h, [])]
    staging = lake.staging_key(paths.events_prefix(source))
    kept_hours = [h for h in targets if stats.get(h, (0, 0))[1]]
    files: dict[datetime, list[str]] = {}  # event hour -> its staged files
    if kept_hours:
        con.execute(DROPPED_SQL.format(uris=", ".join(sql_str(lake.uri(k)) for k in target_files)))
        with_dropped = {uri for (uri,) in con.execute("SELECT DISTINCT landed_file FROM _dropped").fetchall()}
        # A landed first-copies file none of whose rows is dropped is copied whole (bytes, no decoding):
        # most of an hour's rows, on time and delivered once, arrive so.
        whole = {h: [k for k in files_by_hour[h] if k.endswith("/" + paths.FIRST_COPIES_FILE)
                     and lake.uri(k) not in with_dropped] for h in kept_hours}
        whole_rows = rows_written(con, lake, [k for keys in whole.values() for k in keys])
        queries = {}
        for h in kept_hours:
            files[h] = []
            for key in whole[h]:
                files[h].append(f"{_staged(staging, h)}/{paths.events_copy_name(paths.hour_from_key(key, 'arrival_hour'))}")
                lake.copy(key, files[h][-1])
            if stats[h][1] > sum(whole_rows[k] for k in whole[h]):  # winners in other files: written
                rest = [k for k in files_by_hour[h] if k not in whole[h]]
                files[h].append(f"{_staged(staging, h)}/{paths.DATA_FILE}")
                queries[files[h][-1]] = f"""
                    SELECT {column_list(lake_columns(contract), "l")}
                    FROM read_parquet([{", ".join(sql_str(lake.uri(k)) for k in rest)}],
                                      union_by_name = true, hive_partitioning = false) l
                    ANTI JOIN _dropped d ON l.source_file = d.source_file AND l.source_line = d.source_line"""
        write_files(con, lake, queries)
    published: dict[datetime, list[str]] = {}
    for hour in targets:
        ledger = EventsLedger(source=source, event_hour=hour, arrival_hours=len(files_by_hour.get(hour, [])))
        partition = paths.events_partition(source, hour)
        n_in, kept, in_hour, in_window = map(int, stats.get(hour, (0, 0, 0, 0)))
        ledger.rows_in, ledger.rows_kept, ledger.duplicates_in_hour, ledger.duplicates_in_window = n_in, kept, in_hour, in_window
        ledger.duplicates_dropped = in_hour + in_window
        final = [partition + key[len(_staged(staging, hour)):] for key in files.get(hour, [])]
        if final and staging != paths.events_prefix(source):
            lake.publish(_staged(staging, hour), partition)
        lake.delete([k for k in lake.list(partition + "/") if k not in final])  # nothing left, or a file of a run before
        published[hour] = final
        ledgers.append(ledger)
    if staging != paths.events_prefix(source):
        lake.delete([staging])
    counts = rows_written(con, lake, [k for keys in published.values() for k in keys])
    for ledger in ledgers:
        ledger.written_rows = sum(counts[k] for k in published[ledger.event_hour])
    con.execute("DROP TABLE IF EXISTS _winners; DROP TABLE IF EXISTS _dropped")
    return ledgers


def _staged(staging: str, hour: datetime) -> str:
    return f"{staging}/event_hour={format_hour(hour)}"


def event_hour_label(ledger: EventsLedger) -> str:
    return format_hour(ledger.event_hour)
