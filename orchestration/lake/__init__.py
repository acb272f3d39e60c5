"""The two Parquet lake layers: landed (by arrival hour) and events (by event hour)."""

from contextlib import AbstractContextManager, nullcontext
from datetime import timedelta
from typing import Callable, Iterator, TypeVar, Union

import duckdb

DEDUPE_WINDOW = timedelta(hours=24)  # an id landed again within this many event hours is a duplicate
CHUNK = timedelta(hours=24)  # hours of a run handled per pass (ids held, files per COPY): bounds memory

# A run opens a DuckDB database afresh every DATABASE_HOURS of its hours (a whole number of
# chunks), through a callable, and closes it after: DuckDB keeps ~1 KB for every Parquet file a
# database opens until it is closed, so on one database a year-long run would hold 0.5-1 GB more
# at its end. A database a chunk bounds it tighter, but cost a 2 M run ~0.3 s (bench/README.md).
DATABASE_HOURS = timedelta(days=7)
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]
T = TypeVar("T")


def on_databases(hours: list[T], con: Union[duckdb.DuckDBPyConnection, Connect], database_hours: timedelta = DATABASE_HOURS
                 ) -> Iterator[tuple[duckdb.DuckDBPyConnection, list[list[T]]]]:
    """Each database a run's `hours` run on, with its hours CHUNK at a time: a new one from `con`
    every `database_hours`, closed after, or `con` itself for every chunk when it is a connection
    (tests, scripts)."""
    per_chunk = CHUNK // timedelta(hours=1)
    per_database = max(1, database_hours // CHUNK) * per_chunk
    for first in range(0, len(hours), per_database):
        mine = hours[first : first + per_database]
        with nullcontext(con) if isinstance(con, duckdb.DuckDBPyConnection) else con() as database:
            yield database, [mine[i : i + per_chunk] for i in range(0, len(mine), per_chunk)]
