"""How both lake layers write and count their Parquet files."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Callable

import duckdb

from orchestration.lake import paths
from orchestration.settings import HOUR_FORMAT
from orchestration.sql import ident, sql_str
from orchestration.storage import Store

# zstd at level 1 for what is kept and read often (events, quarantine): as fast to write as no
# compression for big files, smaller than DuckDB's default level 3, which cost a quarter more.
PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"
# The landed layer is read once or twice, and an arrival hour writes one big file and a small one
# per late hour: zstd's set-up per column of each small file made it 8 ms a file; snappy halves it.
LANDED_PARQUET = "FORMAT parquet, COMPRESSION snappy, PARQUET_VERSION V2"


def read_lake(lake: Store, keys: list[str], filename: bool = False) -> str:
    """`read_parquet` of the lake's files `keys` (their partition folders not read as columns) for a
    query of the leading columns alone: in every file, with the same types, they bind by the first
    file's footer, where a union by name reads every file's footer once more (the events layer of
    2 M events reads ~5,000 files; bench/README.md)."""
    return (f"read_parquet([{_uris(lake, keys)}], union_by_name = false, hive_partitioning = false"
            f"{', filename = true' if filename else ''})")


def read_lake_rows(lake: Store, keys: list[str], schema: dict[str, str]) -> str:
    """The rows of the lake's files `keys` with every column of `schema` (name -> DuckDB type), as a
    subquery. Files landed under an older contract may lack a field: their columns are unioned by
    name, and a field none of them has is NULL (an empty row of every column, unioned too)."""
    nulls = ", ".join(f"NULL::{lake_type} AS {ident(column)}" for column, lake_type in schema.items())
    return (f"(SELECT * FROM read_parquet([{_uris(lake, keys)}], union_by_name = true, hive_partitioning = false) "
            f"UNION ALL BY NAME SELECT {nulls} WHERE false)")


def _uris(lake: Store, keys: list[str]) -> str:
    return ", ".join(sql_str(lake.uri(k)) for k in keys)


def event_hour_sql(ts_column: str = "event_ts") -> str:
    """The text `event_hour` partition of a row, from its event time."""
    return f"strftime(date_trunc('hour', {ts_column}), {sql_str(HOUR_FORMAT)})"


# Partitions one partitioned COPY writes: DuckDB holds a buffer per partition for each column until
# the COPY ends (~1.4 MB each), so an arrival hour of 400 event hours (a vendor's replay of history)
# ran out of memory in one COPY (bench/README.md). A day and a half of hours.
PARTITIONS_PER_COPY = 36


def write_partitioned(con: duckdb.DuckDBPyConnection, lake: Store, query: str, folder: str, hours: list[str],
                      parquet: str = PARQUET) -> None:
    """COPY `query` (with a text `event_hour` column, one of `hours`) into
    `folder/event_hour=H/part_0.parquet`: PARTITIONS_PER_COPY hours at a time."""
    lake.prepare(folder + "/_")
    groups = [hours[i: i + PARTITIONS_PER_COPY] for i in range(0, len(hours), PARTITIONS_PER_COPY)]
    for group in groups:
        rows = query if len(groups) == 1 else f"SELECT * FROM ({query}) WHERE event_hour IN ({', '.join(map(sql_str, group))})"
        con.execute(f"COPY ({rows}) TO {sql_str(lake.uri(folder))} ({parquet}, PARTITION_BY (event_hour), "
                    f"FILENAME_PATTERN '{paths.PARTITION_FILENAME_PATTERN}', OVERWRITE_OR_IGNORE)")


def write_file(con: duckdb.DuckDBPyConnection, lake: Store, query: str, key: str, parquet: str = PARQUET) -> None:
    """COPY `query` into the one Parquet file `key`."""
    lake.prepare(key)
    con.execute(f"COPY ({query}) TO {sql_str(lake.uri(key))} ({parquet})")


def on_cursors(con: duckdb.DuckDBPyConnection, jobs: list[Callable[[duckdb.DuckDBPyConnection], None]]) -> None:
    """Run each job on a cursor of its own, as many at once as the machine has cores: small writes
    run faster side by side than one after another (bench/README.md). DuckDB's thread count is
    left alone: each change of it hands all of DuckDB's free memory back to the system (its
    scheduler flushes the allocator), which the next query faults in again. Tables the jobs read
    must be visible to cursors of `con` (not TEMP)."""

    def run(job: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        with con.cursor() as cursor:
            job(cursor)

    with ThreadPoolExecutor(max(1, min(os.cpu_count() or 1, len(jobs)))) as pool:
        for done in [pool.submit(run, job) for job in jobs]:
            done.result()


def write_files(con: duckdb.DuckDBPyConnection, lake: Store, queries: dict[str, str], parquet: str = PARQUET) -> None:
    """COPY each query into its own file (key -> query), side by side (`on_cursors`). A partitioned
    COPY of the events layer's rows took 4x as long and held every partition at once."""
    on_cursors(con, [partial(write_file, lake=lake, query=query, key=key, parquet=parquet)
                     for key, query in queries.items()])


def rows_written(con: duckdb.DuckDBPyConnection, lake: Store, keys: list[str]) -> dict[str, int]:
    """Rows of each file in `keys`, counted back from its Parquet footer."""
    if not keys:
        return {}
    by_uri = {lake.uri(k): k for k in keys}
    counts = dict.fromkeys(keys, 0)
    uris = ", ".join(sql_str(u) for u in by_uri)
    for uri, n in con.execute(f"SELECT DISTINCT file_name, num_rows FROM parquet_file_metadata([{uris}])").fetchall():
        counts[by_uri[uri]] += n
    return counts
