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
from orchestration.lake import DATABASE_HOURS, DEDUPE_WINDOW, Connect, on_databases, paths
from orchestration.lake.parquet import read_lake, read_lake_rows, rows_written, write_files
from orchestration.partitions import hours_between
from orchestration.settings import format_hour
from orchestration.sources.records import lake_columns
from orchestration.sql import column_list
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


# One pass over the window's ids: the rows of each event hour, and the ids that are not simply
# kept (more than one copy, or copies in more than one event hour). Most ids are neither, and
# are never held past the aggregate: a row per id and event hour, and a window over them, cost
# ~40 % more on 2 M events (bench/README.md).
IDS_SQL = """
CREATE OR REPLACE TEMP TABLE _ids AS
SELECT GROUPING(event_id) = 1 AS per_hour, event_id, event_hour,
       min(event_hour) AS first_hour, max(event_hour) AS last_hour, count(*) AS copies
FROM (SELECT event_id, date_trunc('hour', event_ts) AS event_hour
      FROM {ids})
GROUP BY GROUPING SETS ((event_id), (event_hour))
HAVING GROUPING(event_id) = 1 OR count(*) > 1 OR min(event_hour) <> max(event_hour)
"""

# The ids of the target hours not simply kept, by event hour: `copies` there, and whether a copy
# landed in one of the DEDUPE_WINDOW event hours before (`in_window`). Ids in more than one event
# hour (few: a copy stamped later) are counted per hour from the files again, when there are any.
WINNERS_SQL = """
CREATE OR REPLACE TEMP TABLE _winners AS
SELECT event_id, first_hour AS event_hour, copies, false AS in_window
FROM _ids
WHERE NOT per_hour AND first_hour = last_hour AND first_hour >= TIMESTAMP '{start}' AND first_hour < TIMESTAMP '{end}'
"""
SPREAD_IDS = "NOT per_hour AND first_hour <> last_hour AND last_hour >= TIMESTAMP '{start}'"  # over _ids
MULTI_HOUR_SQL = """
INSERT INTO _winners
WITH by_hour AS (
    SELECT event_id, date_trunc('hour', event_ts) AS event_hour, count(*) AS copies
    FROM {ids}
    WHERE event_id IN (SELECT event_id FROM _ids WHERE {spread})
    GROUP BY ALL
), windowed AS (
    SELECT *, lag(event_hour) OVER (PARTITION BY event_id ORDER BY event_hour) AS previous_hour
    FROM by_hour
), flagged AS (
    SELECT event_id, event_hour, copies,
           previous_hour IS NOT NULL AND previous_hour >= event_hour - INTERVAL {window_hours} HOUR AS in_window
    FROM windowed
)
SELECT * FROM flagged
WHERE (copies > 1 OR in_window) AND event_hour >= TIMESTAMP '{start}' AND event_hour < TIMESTAMP '{end}'
"""

# Each target hour's rows in, kept, further copies in the hour, and copies in the window: an id
# not in `_winners` is one row, kept.
STATS_SQL = """
SELECT h.event_hour, h.copies, h.copies - coalesce(w.in_hour, 0) - coalesce(w.in_window, 0),
       coalesce(w.in_hour, 0), coalesce(w.in_window, 0)
FROM (SELECT event_hour, copies FROM _ids WHERE per_hour) h
LEFT JOIN (SELECT event_hour, sum(copies - 1) FILTER (NOT in_window) AS in_hour,
                  sum(copies) FILTER (in_window) AS in_window
           FROM _winners GROUP BY event_hour) w USING (event_hour)
WHERE h.event_hour >= TIMESTAMP '{start}' AND h.event_hour < TIMESTAMP '{end}'
"""


# The landed rows of the target hours that are not kept: every copy of an id in the window, and
# every copy but the first delivered (earliest arrival hour, then file, then line) of the others.
# Few, so the writes anti-join them (a semi join with the winners built a hash table of every row),
# each hour's write those of its own hour (a hash table of the chunk's for each hour cost ~4 %).
# Not TEMP: the writes run on cursors of the connection.
DROPPED_SQL = """
CREATE OR REPLACE TABLE _dropped AS
SELECT source_file, source_line, landed_file, event_hour
FROM (
    SELECT l.source_file, l.source_line, l.filename AS landed_file, w.in_window, w.event_hour,
           row_number() OVER (PARTITION BY l.event_id, w.event_hour
                              ORDER BY l.arrival_hour, l.source_file, l.source_line) AS copy
    FROM {rows} l
    JOIN _winners w
      ON l.event_id = w.event_id AND date_trunc('hour', l.event_ts) = w.event_hour
)
WHERE in_window OR copy > 1
"""


def build_event_hours(contract: SourceContract, lake: Store, start: datetime, end: datetime,
                      con: duckdb.DuckDBPyConnection | Connect,
                      on_chunk: Callable[[list[EventsLedger]], None] = lambda ledgers: None,
                      database_hours: timedelta = DATABASE_HOURS) -> list[EventsLedger]:
    """Materialise the event hours of [start, end), CHUNK of them at a time, on the DuckDB databases
    `con` opens (`on_databases`)."""
    paths.sweep_leftovers(contract.name, lake)
    ledgers = []
    for database, chunks in on_databases(hours_between(start, end), con, database_hours):
        for hours in chunks:
            chunk = _build_chunk(contract, lake, hours[0], hours[-1] + timedelta(hours=1), database)
            on_chunk(chunk)
            ledgers.extend(chunk)
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
    stats = {}
    if all_files:
        ids = read_lake(lake, all_files)
        bounds = {"start": f"{start:%Y-%m-%d %H:00:00}", "end": f"{end:%Y-%m-%d %H:00:00}"}
        con.execute(IDS_SQL.format(ids=ids))
        con.execute(WINNERS_SQL.format(**bounds))
        spread = SPREAD_IDS.format(**bounds)
        if con.execute(f"SELECT count(*) FROM _ids WHERE {spread}").fetchone()[0]:
            con.execute(MULTI_HOUR_SQL.format(ids=ids, window_hours=window_hours, spread=spread, **bounds))
        stats = {h.replace(tzinfo=UTC): row for h, *row in con.execute(STATS_SQL.format(**bounds)).fetchall()}
    target_files = [f for h in targets for f in files_by_hour.get(h, [])]
    staging = lake.staging_key(paths.events_prefix(source))
    kept_hours = [h for h in targets if stats.get(h, (0, 0))[1]]
    files: dict[datetime, list[str]] = {}  # event hour -> its staged files
    if kept_hours:
        con.execute(DROPPED_SQL.format(rows=read_lake(lake, target_files, filename=True)))
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
                    FROM {read_lake_rows(lake, rest, contract.lake_schema())} l
                    ANTI JOIN (SELECT * FROM _dropped WHERE event_hour = TIMESTAMP '{h:%Y-%m-%d %H:00:00}') d
                      ON l.source_file = d.source_file AND l.source_line = d.source_line"""
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
    con.execute("DROP TABLE IF EXISTS _ids; DROP TABLE IF EXISTS _winners; DROP TABLE IF EXISTS _dropped")
    return ledgers


def _staged(staging: str, hour: datetime) -> str:
    return f"{staging}/event_hour={format_hour(hour)}"


def event_hour_label(ledger: EventsLedger) -> str:
    return format_hour(ledger.event_hour)
