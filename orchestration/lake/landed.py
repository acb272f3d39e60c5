"""The landed layer: every file of an arrival hour read, checked against the source contract,
and written as Parquet under the hour each event happened; bad records to quarantine."""

from __future__ import annotations

import contextlib
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Callable

import duckdb
import numpy as np
import pyarrow as pa

from orchestration.contracts import SourceContract
from orchestration.lake import DATABASE_HOURS, DEDUPE_WINDOW, Connect, on_databases, paths
from orchestration.lake.parquet import (LANDED_PARQUET, PARQUET, event_hour_sql, on_cursors, read_lake, rows_written,
                                        write_file, write_partitioned)
from orchestration.settings import LAKE_MEMORY_VARIABLE, LANDING_VARIABLE, format_hour
from orchestration.sources.landing import HourFiles, scan_landing
from orchestration.sources.readers import (DamagedFile, FlatTyping, ReadAhead, ReadLimits, TypedRows, empty_table,
                                           file_error_table, is_flat, is_typed, read_batches)
from orchestration.sources.records import (EventTimeRange, lake_columns, reason_rule_sql, typed_columns_sql,
                                           typed_records_sql)
from orchestration.sql import column_list, ident
from orchestration.storage import UNORDERED, Store, duckdb_settings
from orchestration.threads import yield_to_main_thread

UTC = timezone.utc
VECTOR_ROWS = 2048  # DuckDB's vector size
FLUSH_BYTES = 64 * 1024 * 1024  # raw records held before they go through the contract query
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
    # touched or removed, and later hours (within 24 h) holding a copy of an id landed here: their winner may change
    event_hours_affected: list[str] = field(default_factory=list)
    lateness: dict[str, int] = field(default_factory=dict)
    late_events: int = 0  # two or more hours late
    beyond_window: int = 0  # more than 24 hours late: kept, and reported
    files_reported: dict[str, str] = field(default_factory=dict)  # file -> why it landed nothing
    schema_drift: dict[str, int] = field(default_factory=dict)  # field the contract does not name -> records
    inputs: str = ""  # digest of the hour's landing files (HourFiles.digest): same files, same digest

    @property
    def balanced(self) -> bool:
        return (self.rows_read == self.rows_landed + self.rows_quarantined
                and self.written_landed == self.rows_landed
                and self.written_quarantined == self.rows_quarantined)


@dataclass(frozen=True)
class LandingRules:
    """What a record must be to land, beyond its contract: read limits and event-time range."""

    limits: ReadLimits
    times: EventTimeRange | None = None


DEFAULT_RULES = LandingRules(ReadLimits())


def _store_failure(exc: BaseException) -> bool:
    """An error of the store (network, throttling, credentials), not of one file."""
    if isinstance(exc, duckdb.HTTPException):
        return True
    try:
        import botocore.exceptions as bex
    except ImportError:  # pragma: no cover
        return False
    if isinstance(exc, bex.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return status >= 500 or status in (401, 403, 429)
    return isinstance(exc, bex.BotoCoreError)


def _run_failure(exc: BaseException) -> bool:
    """An error that is not one file's: the store's, or Python's memory run out (a re-run heals it;
    the file would be quarantined for nothing). DuckDB's is told apart (`_HourWriter.refuse`)."""
    return _store_failure(exc) or isinstance(exc, MemoryError)


def _file_reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file vanished between listing and reading"
    if isinstance(exc, PermissionError):
        return "file cannot be read: permission denied"
    if isinstance(exc, IsADirectoryError):
        return "not a file: a folder"
    return f"unreadable file: {type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def key_map(contract: SourceContract) -> dict[str, str]:
    """The contract's dotted paths by their lower case: flattened files' columns match them so."""
    return {f.path.lower(): f.path for f in contract.fields}


def flat_typing(contract: SourceContract, arrival_hour: datetime, key: str, rules: LandingRules) -> FlatTyping:
    """How the reader types a flattened file's rows (CSV, Parquet) from its columns: no JSON text
    is built for a row unless it is quarantined, nor parsed again (bench/README.md)."""
    return partial(typed_columns_sql, contract, arrival_hour=arrival_hour, source_file=key, times=rules.times)


class _HourWriter:
    """Typed records of one arrival hour in the DuckDB table `table` (an identifier; held under
    DuckDB's memory limit, spilled to disk past it; not TEMP, so the writes' cursors see it): raw
    batches are held up to FLUSH_BYTES, then typed at once."""

    def __init__(self, contract: SourceContract, arrival_hour: datetime, con: duckdb.DuckDBPyConnection,
                 rules: LandingRules, table: str, ahead: ReadAhead | None = None):
        self.contract, self.con, self.rules, self.table, self.ahead = contract, con, rules, table, ahead
        self.arrival_hour = arrival_hour
        self.arrival = np.datetime64(arrival_hour.replace(tzinfo=None), "us")
        # (file, kind, raw records) not yet in the table: kind is "json" or "flat"
        self.pending: list[tuple[str, str, pa.Table]] = []
        self.pending_bytes = 0
        self.empty = True  # nothing put in the table yet
        self.refused: set[str] = set()  # files quarantined whole: their records alone ran out of DuckDB's memory
        # The contract query's columns, bound once per connection and source: binding it is most
        # of the cost of a small hour (bench/README.md).
        shape = ident(f"_typed_shape_{contract.name}")
        try:  # asking the catalog (duckdb_tables()) first cost 26 ms an hour
            con.execute(f"CREATE OR REPLACE TABLE {self.table} AS SELECT * FROM {shape}")
        except duckdb.CatalogException:
            con.register("_batch", self._with_file(empty_table(), ""))
            con.execute(f"CREATE TEMP TABLE {shape} AS SELECT * FROM "
                        f"({typed_records_sql(contract, '_batch', False, rules.times)}) LIMIT 0")
            con.unregister("_batch")
            con.execute(f"CREATE OR REPLACE TABLE {self.table} AS SELECT * FROM {shape}")

    def _with_file(self, table: pa.Table, key: str) -> pa.Table:
        n = table.num_rows
        table = table.append_column("source_file", pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, np.int32)), pa.array([key], pa.string())))
        return table.append_column("arrival_hour", pa.array(np.full(n, self.arrival)))

    def add(self, batch: pa.Table | TypedRows, key: str, flat: bool) -> int:
        """Hold a batch of raw records (they go through the contract query) until enough are held;
        a reader's typed rows go into the table at once (each of its tables holds DuckDB memory: an
        hour of 500 small CSV files held ran out of it, bench/README.md)."""
        if key in self.refused:  # the rest of a file refused at a flush
            if is_typed(batch):
                self.con.execute(f"DROP TABLE IF EXISTS {batch.table}")
            return batch.num_rows
        if is_typed(batch):
            self._take(batch)
            return batch.num_rows
        self.pending.append((key, "flat" if flat else "json", self._with_file(batch, key)))
        self.pending_bytes += batch.nbytes
        if self.pending_bytes >= FLUSH_BYTES:
            self.flush()
        return batch.num_rows

    def flush(self) -> None:
        """The contract query over every batch held, at once: each query has a fixed cost (~20 ms to
        bind and plan, plus the Arrow scan's set-up) and runs faster on more rows; one per 16 MB
        chunk cost ~4 s more on 2 M events (bench/README.md). What went into the table leaves what is
        held at once: after a failure, nothing is put in twice. When DuckDB runs out of memory, each
        file's records are typed alone, and one whose records alone run out of it is refused."""
        for kind in ("json", "flat"):
            held = [(k, t) for k, kd, t in self.pending if kd == kind]
            if not held:
                continue
            try:
                self._type([t for _, t in held], kind == "flat")
            except duckdb.OutOfMemoryException:
                for key in dict.fromkeys(k for k, _ in held):
                    try:
                        self._type([t for k, t in held if k == key], kind == "flat")
                    except duckdb.OutOfMemoryException as exc:
                        self.refuse(key, kind == "flat", exc)
            self.empty = False
            self.pending = [p for p in self.pending if p[1] != kind]
        self.pending_bytes = 0

    def _type(self, tables: list[pa.Table], flat: bool) -> None:
        """Raw records through the contract query into the table (one statement: all or nothing)."""
        # One table in record batches of one DuckDB vector, which DuckDB shares among its threads.
        table = _in_vectors(tables)
        self.con.register("_batch", pa.Table.from_batches(table.to_batches(max_chunksize=VECTOR_ROWS), table.schema))
        try:
            self.con.execute(f"INSERT INTO {self.table} BY NAME "
                             + typed_records_sql(self.contract, "_batch", flat, self.rules.times))
        finally:
            self.con.unregister("_batch")

    def refuse(self, key: str, flat: bool, exc: duckdb.OutOfMemoryException) -> None:
        """A file whose records alone ran out of DuckDB's memory: quarantined whole, as one record
        naming the limit, as a line past the length limit is; the rest of the hour lands. When
        DuckDB cannot type even one record, memory ran out for the run, not for the file: `exc`
        is raised (the run fails; a re-run heals)."""
        self.con.register("_batch", self._with_file(file_error_table("memory"), key))
        try:
            self.con.execute(f"SELECT count(*) FROM ({typed_records_sql(self.contract, '_batch', flat)})").fetchone()
        except duckdb.OutOfMemoryException:
            raise exc from None
        finally:
            self.con.unregister("_batch")
        self.refused.add(key)
        self.drop(key)
        limit = self.con.execute("SELECT current_setting('memory_limit')").fetchone()[0]
        reason = f"file too large to type within DuckDB's memory limit ({limit}, {LAKE_MEMORY_VARIABLE})"
        self._type([self._with_file(file_error_table(reason), key)], flat)

    def _take(self, rows: TypedRows) -> None:
        """A reader's typed rows into the table: the reader's table becomes the hour's while that is
        empty and has the same columns (an hour of one flat file is not copied), else it is copied in."""
        describe = "SELECT column_name, column_type FROM (DESCRIBE {})"
        try:
            if self.empty and (self.con.execute(describe.format(rows.table)).fetchall()
                               == self.con.execute(describe.format(self.table)).fetchall()):
                self.con.execute(f"DROP TABLE {self.table}; ALTER TABLE {rows.table} RENAME TO {self.table}")
            else:
                self.con.execute(f"INSERT INTO {self.table} BY NAME SELECT * FROM {rows.table}")
        finally:
            self.con.execute(f"DROP TABLE IF EXISTS {rows.table}")
        self.empty = False

    def drop(self, key: str) -> None:
        self.pending = [p for p in self.pending if p[0] != key]
        self.pending_bytes = sum(t.nbytes for _, _, t in self.pending)
        self.con.execute(f"DELETE FROM {self.table} WHERE source_file = ?", [key])

    def read(self, landing: Store, key: str, fmt: str, damaged: str | None = None) -> int:
        flat = is_flat(fmt)
        if damaged is None and self.ahead is not None:
            batches = self.ahead.batches(key)
        else:
            batches = read_batches(fmt, landing.uri(key), lambda: landing.open(key), self.con, key_map(self.contract),
                                   self.rules.limits, damaged, flat_typing(self.contract, self.arrival_hour, key, self.rules))
        return sum(self.add(batch, key, flat) for batch in batches)

    def land_file(self, landing: Store, key: str, fmt: str) -> str | None:
        """Read one file into the hour's table, isolating its failures; returns why it gave no records, if so."""
        try:
            if self.read(landing, key, fmt) == 0:
                return "empty file: no records"
            return None
        except DamagedFile as exc:  # found at its end: read again, every record quarantined
            self.drop(key)
            try:
                self.read(landing, key, fmt, damaged=str(exc))
            except Exception as again:
                if _run_failure(again):
                    raise
                self.drop(key)
                self.add(file_error_table(str(exc)), key, is_flat(fmt))
        except duckdb.OutOfMemoryException as exc:  # a flat file read by DuckDB, or a file's records alone
            if key not in self.refused:
                self.refuse(key, is_flat(fmt), exc)
        except Exception as exc:
            if _run_failure(exc):
                raise
            self.drop(key)
            self.add(file_error_table(_file_reason(exc)), key, is_flat(fmt))
        return None


def _in_vectors(tables: list[pa.Table]) -> pa.Table:
    """`tables` as one, each run of tables smaller than a DuckDB vector copied into one chunk: the
    contract query holds a vector's worth of memory for every batch it scans, however few its rows,
    so an hour of 500 small files ran out of memory (bench/README.md). Larger tables are not copied."""
    out: list[pa.Table] = []
    small: list[pa.Table] = []
    for table in [*tables, None]:
        if table is not None and table.num_rows < VECTOR_ROWS:
            small.append(table)
            continue
        if small:
            out.append(pa.concat_tables(small).combine_chunks() if len(small) > 1 else small[0])
            small = []
        if table is not None:
            out.append(table)
    return pa.concat_tables(out)


@dataclass
class _TypedHour:
    """An arrival hour read, typed and counted (`table` holds its rows), not yet published."""

    ledger: LandedLedger
    new_hours: dict[datetime, int]  # event hour -> rows landed
    table: str  # its identifier


def _type_hour(contract: SourceContract, landing: Store, arrival_hour: datetime, con: duckdb.DuckDBPyConnection,
               rules: LandingRules, found: HourFiles, run_ids: str | None, ahead: ReadAhead | None) -> _TypedHour:
    """Read and type every file of the hour into a table of its own, and count it in the ledger; the
    ids landed go to the table `run_ids` (id_hash, event_hour, arrival_hour) when it is named, and
    `ahead` has read the hour's files ahead, on a thread."""
    ledger = LandedLedger(source=contract.name, arrival_hour=arrival_hour)
    ledger.files = len(found.files)
    ledger.files_reported = dict(found.reported)
    table = ident(f"_typed_{arrival_hour:%Y%m%d%H}")
    writer = _HourWriter(contract, arrival_hour, con, rules, table, ahead)
    for info, fmt in found.files:
        empty = writer.land_file(landing, info.key, fmt)
        if empty:
            ledger.files_reported[info.key] = empty
    writer.flush()
    new_hours = _account(con, table, ledger)
    if run_ids:
        con.execute(f"INSERT INTO {ident(run_ids)} SELECT DISTINCT hash(event_id), date_trunc('hour', event_ts), arrival_hour "
                    f"FROM {table} WHERE reason IS NULL")
    return _TypedHour(ledger, new_hours, table)


def _publish_hour(contract: SourceContract, lake: Store, con: duckdb.DuckDBPyConnection, typed: _TypedHour) -> None:
    """Write a typed hour's landed and quarantined rows in place of what the hour held, then drop its table."""
    ledger, table = typed.ledger, typed.table
    _publish_landed(contract, lake, con, table, ledger.arrival_hour, typed.new_hours, ledger)
    ledger.event_hours_affected = sorted({*ledger.event_hours_touched, *ledger.event_hours_removed})  # land_hours adds later copies
    _publish_quarantine(lake, con, table, ledger.arrival_hour, ledger)
    con.execute(f"DROP TABLE {table}")


def land_hour(contract: SourceContract, landing: Store, lake: Store, arrival_hour: datetime,
              con: duckdb.DuckDBPyConnection, rules: LandingRules = DEFAULT_RULES,
              found: HourFiles | None = None) -> LandedLedger:
    """Materialise one arrival hour of the landed layer, idempotently. A file that cannot be read
    is quarantined (every record of it, or one record naming the file) and the others land."""
    if found is None:
        found = scan_landing(contract, landing, [arrival_hour])[arrival_hour]
    typed = _type_hour(contract, landing, arrival_hour, con, rules, found, None, None)
    _publish_hour(contract, lake, con, typed)
    return typed.ledger


def _account(con: duckdb.DuckDBPyConnection, typed: str, ledger: LandedLedger) -> dict[datetime, int]:
    """The ledger's counts from the table `typed`, in two queries: rows, quarantine reasons, schema
    drift, event hours, and lateness (from the event hours). Returns the rows of each event hour landed."""
    hours = con.execute(f"""
        SELECT date_trunc('hour', event_ts) AS h, count(*) FROM {typed} WHERE reason IS NULL GROUP BY h ORDER BY h
    """).fetchall()
    counts = con.execute(f"""
        SELECT 'reason', {reason_rule_sql("split_part(reason, '; ', 1)")}, count(*) FROM {typed} WHERE reason IS NOT NULL
        GROUP BY ALL
        UNION ALL
        SELECT 'drift', field, count(*) FROM (SELECT unnest(unknown_fields) AS field FROM {typed} WHERE unknown_fields IS NOT NULL)
        GROUP BY ALL
    """).fetchall()

    def most_first(kind: str) -> dict[str, int]:
        return dict(sorted(((key, n) for k, key, n in counts if k == kind), key=lambda kn: (-kn[1], kn[0])))

    ledger.quarantine_reasons, ledger.schema_drift = at_most_reasons(most_first("reason")), most_first("drift")
    new_hours = {h.replace(tzinfo=UTC): n for h, n in hours}
    ledger.event_hours_touched = {format_hour(h): n for h, n in new_hours.items()}
    ledger.rows_landed, ledger.rows_quarantined = sum(new_hours.values()), sum(ledger.quarantine_reasons.values())
    ledger.rows_read = ledger.rows_landed + ledger.rows_quarantined
    ledger.lateness = dict.fromkeys(LATENESS_BUCKETS, 0)
    for hour, n in new_hours.items():
        ledger.lateness[_lateness_bucket((ledger.arrival_hour - hour) // timedelta(hours=1))] += n
    ledger.late_events = sum(ledger.lateness[b] for b in ("2-6h", "7-24h", "over_24h"))
    ledger.beyond_window = ledger.lateness["over_24h"]
    return new_hours


MAX_REASONS = 20  # quarantine reasons a ledger names; the rest are counted together
OTHER_REASONS = "other reasons (the quarantine files name each record's)"


def at_most_reasons(reasons: dict[str, int]) -> dict[str, int]:
    """The MAX_REASONS - 1 most frequent of `reasons` (most first), the rest counted under
    OTHER_REASONS (with any count already there): a ledger is Dagster metadata, stored and shown
    for every materialisation."""
    if len(reasons) <= MAX_REASONS:
        return reasons
    kept = dict([(r, n) for r, n in reasons.items() if r != OTHER_REASONS][:MAX_REASONS - 1])
    return {**kept, OTHER_REASONS: sum(reasons.values()) - sum(kept.values())}


def _lateness_bucket(hours: int) -> str:
    """The LATENESS_BUCKETS bucket of an event hour `hours` before its arrival hour."""
    if hours < 0:
        return "ahead"
    return "0-1h" if hours <= 1 else "2-6h" if hours <= 6 else "7-24h" if hours <= 24 else "over_24h"


# The further copies of an id within the arrival hour's main event hour: never kept by the
# events layer (an earlier copy of the same hour and arrival hour is), so they are written apart
# and the first copies' file can be copied whole into the events layer. Few: the window runs only
# over the ids with more than one copy.
REPEATS_SQL = """
SELECT source_file, source_line FROM (
    SELECT source_file, source_line,
           row_number() OVER (PARTITION BY event_id ORDER BY source_file, source_line) AS copy
    FROM {typed}
    WHERE {in_main} AND event_id IN (SELECT event_id FROM {typed} WHERE {in_main} GROUP BY event_id HAVING count(*) > 1)
) WHERE copy > 1
"""


def _publish_landed(contract: SourceContract, lake: Store, con: duckdb.DuckDBPyConnection, typed: str,
                    arrival_hour: datetime, new_hours: dict[datetime, int], ledger: LandedLedger) -> None:
    """Write the hour's landed rows whole to a staging place, index them, then move them into place
    over what the hour held before. The main event hour's first copies go to FIRST_COPIES_FILE, in
    the events layer's format; every other landed row to a DATA_FILE per event hour (one COPY)."""
    source = contract.name
    partition = paths.landed_partition(source, arrival_hour)
    old_keys = lake.list(partition + "/")
    old_hours = {paths.hour_from_key(k, "event_hour") for k in old_keys if "event_hour=" in k}
    ledger.event_hours_removed = sorted(format_hour(h) for h in old_hours - set(new_hours))
    staging = lake.staging_key(partition)
    written: dict[str, int] = {}  # staged key -> rows
    if new_hours:
        # Most rows happened in one hour (the arrival hour): its file is written beside the late
        # hours' small ones, each on one thread (on two, a write of small files ran at half the speed).
        main = max(new_hours, key=new_hours.get)
        columns = column_list(lake_columns(contract), "t")
        in_main = f"t.reason IS NULL AND date_trunc('hour', t.event_ts) = TIMESTAMP '{main:%Y-%m-%d %H:00:00}'"
        repeats = ident(f"_repeats_{arrival_hour:%Y%m%d%H}")  # not TEMP: the writes' cursors read it
        con.execute(f"CREATE OR REPLACE TABLE {repeats} AS " + REPEATS_SQL.format(typed=f"{typed} t", in_main=in_main))
        n_repeats = con.execute(f"SELECT count(*) FROM {repeats}").fetchone()[0]
        same_row = "t.source_file = r.source_file AND t.source_line = r.source_line"
        first_key = f"{staging}/event_hour={format_hour(main)}/{paths.FIRST_COPIES_FILE}"
        written[first_key] = new_hours[main] - n_repeats
        jobs = [partial(write_file, lake=lake, key=first_key, parquet=PARQUET,
                        query=f"SELECT {columns} FROM {typed} t ANTI JOIN {repeats} r ON {same_row} WHERE {in_main}")]
        rest = {h: n for h, n in new_hours.items() if h != main}
        if n_repeats:
            rest[main] = n_repeats
        if rest:
            others = (f"FROM {typed} t LEFT JOIN {repeats} r ON {same_row} "
                      f"WHERE t.reason IS NULL AND (NOT ({in_main}) OR r.source_line IS NOT NULL)" if n_repeats else
                      f"FROM {typed} t WHERE t.reason IS NULL AND NOT ({in_main})")
            jobs.append(partial(write_partitioned, lake=lake, folder=staging, parquet=LANDED_PARQUET,
                                hours=[format_hour(h) for h in sorted(rest)],
                                query=f"SELECT {columns}, {event_hour_sql('t.event_ts')} AS event_hour {others}"))
            written.update({f"{staging}/event_hour={format_hour(h)}/{paths.DATA_FILE}": n for h, n in rest.items()})
        on_cursors(con, jobs)
        con.execute(f"DROP TABLE {repeats}")
    final = {partition + key[len(staging):]: n for key, n in written.items()}
    markers = {paths.index_marker_of(source, key): n for key, n in final.items()}
    for marker, n in markers.items():  # index first, so a reader never misses a landed file
        lake.write_bytes(marker, str(n).encode())
    paths.sweep_leftovers(source, lake, event_hours=sorted(new_hours))
    if written or old_keys:
        if staging != partition:
            if written:
                lake.publish(staging, partition)
            else:
                lake.delete([partition])
        else:
            lake.delete([k for k in old_keys if k not in written])
    lake.delete([m for m in {paths.index_marker_of(source, k) for k in old_keys if "event_hour=" in k} if m not in markers])
    ledger.written_landed = sum(rows_written(con, lake, list(final)).values())


def _publish_quarantine(lake: Store, con: duckdb.DuckDBPyConnection, typed: str, arrival_hour: datetime,
                        ledger: LandedLedger) -> None:
    """The hour's quarantined records, in file and line order, in place of what it held before."""
    key = paths.quarantine_file(ledger.source, arrival_hour)
    if ledger.rows_quarantined:
        staging = lake.staging_key(key)
        write_file(con, lake, f"SELECT arrival_hour, source_file, source_line, raw, reason FROM {typed} "
                              "WHERE reason IS NOT NULL ORDER BY source_file, source_line", staging)
        lake.publish(staging, key)
        ledger.written_quarantined = rows_written(con, lake, [key])[key]
    elif lake.exists(key):
        lake.delete([key])


def affected_hours(ledgers: list[LandedLedger]) -> list[str]:
    """The event hours some arrival hours affected: the union of their `event_hours_affected`."""
    return sorted({h for ledger in ledgers for h in ledger.event_hours_affected})


class LandingInterrupted(RuntimeError):
    """The store (or the run) failed part-way: `ledgers` are the arrival hours published before it did."""

    def __init__(self, cause: BaseException, ledgers: list[LandedLedger]):
        super().__init__(str(cause))
        self.cause, self.ledgers = cause, ledgers
        self.store_failed = _store_failure(cause)


def land_hours(contract: SourceContract, landing: Store, lake: Store, arrival_hours: list[datetime],
               con: duckdb.DuckDBPyConnection | Connect, rules: LandingRules = DEFAULT_RULES,
               on_hour: Callable[[LandedLedger], None] = lambda ledger: None,
               database_hours: timedelta = DATABASE_HOURS) -> list[LandedLedger]:
    """Materialise several arrival hours (one run) and return their ledgers; the event hours the
    run affected are `affected_hours(ledgers)`. A CHUNK of hours at a time, on the DuckDB databases
    `con` opens (`on_databases`). When the store fails part-way, LandingInterrupted carries the
    ledgers of the hours published."""
    if not landing.root_exists():
        raise FileNotFoundError(f"the landing root {landing.root} does not exist: check {LANDING_VARIABLE}")
    ledgers: list[LandedLedger] = []

    def published(ledger: LandedLedger) -> None:
        ledgers.append(ledger)
        on_hour(ledger)

    # Several hours run side by side (one typed while the two before are written), each query on a
    # thread of its own: given DuckDB's second thread, each query's caller spin-waited on it. Not
    # on S3, where DuckDB's threads overlap the network requests of its reads and writes. Settings
    # are the DuckDB instance's, for every cursor: set on each database before any of its threads
    # starts (a SET beside a running query crashed DuckDB). Rows in any order then: on one thread,
    # readers that number rows as they come (CSV, JSON arrays) still see them in order.
    side_by_side = len(arrival_hours) > 1 and not (landing.remote or lake.remote)
    try:
        paths.sweep_leftovers(contract.name, lake, arrival_hours)
        found = scan_landing(contract, landing, arrival_hours)
        for database, chunks in on_databases(arrival_hours, con, database_hours):
            with duckdb_settings(database, **({"threads": 1, **UNORDERED} if side_by_side else {})):
                _land_on(contract, landing, lake, chunks, found, database, rules, published)
    except Exception as exc:
        if ledgers or _store_failure(exc):
            raise LandingInterrupted(exc, ledgers) from exc
        raise
    return ledgers


def _land_on(contract: SourceContract, landing: Store, lake: Store, chunks: list[list[datetime]],
             found: dict[datetime, HourFiles], con: duckdb.DuckDBPyConnection, rules: LandingRules,
             published: Callable[[LandedLedger], None]) -> None:
    """Land the arrival hours of `chunks` on the database `con`: each hour's files read ahead on a
    thread, the hour typed, then published on another while the next is typed (`published` hears of
    each, in order); at each chunk's end, its hours' ledgers get the later hours holding a copy of
    an id they landed."""
    landed: list[LandedLedger] = []
    ahead, reader, publisher = None, None, None

    def one(ledger: LandedLedger) -> None:
        landed.append(ledger)
        published(ledger)

    try:
        reader, columns = con.cursor(), key_map(contract)  # CSV and Parquet files read ahead by DuckDB, beside the typing
        ahead = ReadAhead([(info.key, partial(read_batches, fmt, landing.uri(info.key), partial(landing.open, info.key),
                                              reader, columns, rules.limits,
                                              typing=flat_typing(contract, hour, info.key, rules)))
                           for hours in chunks for hour in hours for info, fmt in found[hour].files])
        publisher = _Publisher(contract, lake, con, one)
        for hours in chunks:  # a chunk at a time bounds the ids held
            # not TEMP: the later copies' cursors read it. The ids' hashes, not the ids: half the
            # memory, in the table and in the join's hash tables; two ids of one hash can only name
            # an event hour affected that is not, which is then rebuilt to the same rows.
            con.execute("CREATE OR REPLACE TABLE _run_ids (id_hash UBIGINT, event_hour TIMESTAMP, arrival_hour TIMESTAMP)")
            first = len(landed)
            for hour in hours:
                typed = _type_hour(contract, landing, hour, con, rules, found[hour], "_run_ids", ahead)
                typed.ledger.inputs = found[hour].digest()
                publisher.submit(typed)
            publisher.wait()
            later = _later_copies(contract, lake, con, "_run_ids")
            for ledger in landed[first:]:  # each hour lists its own: a run's list on each of its hours grew with the run squared
                ledger.event_hours_affected = sorted({*ledger.event_hours_affected,
                                                      *later.get(ledger.arrival_hour.replace(tzinfo=None), ())})
            con.execute("DROP TABLE _run_ids")
    except Exception:
        if publisher is not None:
            with contextlib.suppress(Exception):  # the hour in flight counts if it was published
                publisher.wait()
        raise
    finally:
        if publisher is not None:
            publisher.close()
        if ahead is not None:
            ahead.close()
        if reader is not None:
            reader.close()


class _Publisher:
    """Publishes typed hours on a thread while the next hours are read and typed, in order, up to
    `depth` hours in flight: with one, the typing waited ~1 s of a 2 M run for the writes of the
    hour before while a core idled (bench/README.md). Its thread (and the writes' threads it
    starts) runs at a lower priority: the typing on the main thread is the run's critical path.
    Each hour in flight holds its typed table (two: ~50 MB more at the peak of a 2 M run). After
    an hour fails, the hours behind it are not published."""

    def __init__(self, contract: SourceContract, lake: Store, con: duckdb.DuckDBPyConnection,
                 published: Callable[[LandedLedger], None], depth: int = 2):
        self.contract, self.lake, self.published, self.depth = contract, lake, published, depth
        self.cursor = con.cursor()
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="publish", initializer=yield_to_main_thread)
        self.pending: deque[tuple[Future, LandedLedger]] = deque()
        self.failed = False

    def _publish(self, typed: _TypedHour) -> None:
        if self.failed:
            raise RuntimeError(f"not published: an arrival hour before {format_hour(typed.ledger.arrival_hour)} failed")
        try:
            _publish_hour(self.contract, self.lake, self.cursor, typed)
        except BaseException:
            self.failed = True
            raise

    def submit(self, typed: _TypedHour) -> None:
        while len(self.pending) >= self.depth:
            self._wait_one()
        self.pending.append((self.pool.submit(self._publish, typed), typed.ledger))

    def _wait_one(self) -> None:
        future, ledger = self.pending.popleft()
        try:
            future.result()
        except BaseException:
            for later, _ in self.pending:  # not published: cancelled, or refused if already started
                later.cancel()
            self.pending.clear()
            raise
        self.published(ledger)

    def wait(self) -> None:
        """Until every hour in flight is published, each heard of by `published` in order; raises
        the first error (the hours behind it are not published)."""
        while self.pending:
            self._wait_one()

    def close(self) -> None:
        self.pool.shutdown()
        self.cursor.close()


def _later_copies(contract: SourceContract, lake: Store, con: duckdb.DuckDBPyConnection,
                  run_ids: str) -> dict[datetime, set[str]]:
    """Event hours, up to DEDUPE_WINDOW after one of `run_ids` (a table of id_hash, the `hash` of an
    event_id, event_hour and arrival_hour), whose landed rows hold a copy of that id (their winner
    may change), by the arrival hour (naive UTC) that landed the id."""
    window_hours = DEDUPE_WINDOW // timedelta(hours=1)
    touched = [r[0] for r in con.execute(f"SELECT DISTINCT event_hour FROM {ident(run_ids)} ORDER BY 1").fetchall()]
    if not touched:
        return {}
    candidates = set()
    for hour in touched:
        candidates.update(hour + timedelta(hours=i) for i in range(1, window_hours + 1))
    # Two halves of the event hours, each joined on a cursor of its own: the landing's queries run
    # on one thread each, and nothing else runs at a chunk's end (bench/README.md).
    halves: list[list[str]] = [[], []]
    for i, hour in enumerate(sorted(candidates)):
        halves[i % 2].extend(paths.landed_files_for(contract.name, lake, hour.replace(tzinfo=UTC)))
    rows: list[tuple] = []

    def join(files: list[str], cursor: duckdb.DuckDBPyConnection) -> None:
        rows.extend(cursor.execute(f"""
            SELECT DISTINCT r.arrival_hour, l.h FROM (
                SELECT hash(event_id) AS id_hash, date_trunc('hour', event_ts) AS h FROM {read_lake(lake, files)}
            ) l JOIN {ident(run_ids)} r ON l.id_hash = r.id_hash
            WHERE l.h > r.event_hour AND l.h <= r.event_hour + INTERVAL {window_hours} HOUR
        """).fetchall())

    on_cursors(con, [partial(join, files) for files in halves if files])
    later: dict[datetime, set[str]] = {}
    for arrival, h in rows:
        later.setdefault(arrival, set()).add(format_hour(h.replace(tzinfo=UTC)))
    return later

