"""The Dagster instance's storage (`dagster.yaml`): Dagster's own SQLite storage, the same files in
the same places, with changes to its event log that only make it cheaper. Dagster's SQLite event
log makes a SQLAlchemy engine for every write, opens the shard's file, commits and disposes of it:
~9 ms a stored event, two events a partition of a range run (planned, materialised), 1.5 s of a
2 M-event backfill at one core (bench/README.md, "ninth"). Here a shard's engine, and the
connection it pools, is kept for the shards used last; a new run's shard is a copy of an empty
one; what Dagster asks of the index shard's tables before each stored event is remembered.
Nothing else changes: `storage: sqlite` reads what this writes."""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import threading
import uuid
import weakref
from collections import OrderedDict
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from dagster import __version__ as DAGSTER_VERSION
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (INDEX_SHARD_NAME, SQLITE_BUSY_TIMEOUT_SECONDS,
                                                                     SqliteEventLogStorage)
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

KEPT_SHARDS = 8  # the index shard and the runs written or read last; a webserver reads many runs
# Dagster hands a run's planned and materialised partitions to `store_event_batch` in batches of
# this many when DAGSTER_EVENT_BATCH_SIZE is set (else one by one); stored here in one transaction
# a shard, one commit where each event made two (bench/README.md). Set by the instance that uses
# this storage, for its process, unless the environment says otherwise.
EVENT_BATCH_SIZE = 1000


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """SqliteEventLogStorage keeping the engines of the KEPT_SHARDS shards used last. Writes are
    serialised by the storage's lock as before; a wiped shard's engine is disposed of with it; a
    forked child makes its own connections."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._batch = threading.local()  # .shards: shard -> its connection, in a transaction, while a batch is stored
        self._schema: set[tuple[str, str]] = set()  # tables and asset_keys columns found in the index shard
        super().__init__(base_dir, inst_data)
        # An empty run shard of this Dagster version, beside the shards, not named `*.db` (Dagster
        # takes those for runs): a new run's shard is a copy of it (`_copy_template`).
        self._template = os.path.join(self._base_dir, f".empty_run_shard-{DAGSTER_VERSION}.sqlite")
        self._has_template()
        _live.add(self)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, kept; called under the storage's lock."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard),
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            if shard not in self._initialized_dbs:
                if shard == INDEX_SHARD_NAME or not self._copy_template(shard):
                    self._initdb(engine)
                self._initialized_dbs.add(shard)
        self._engines[shard] = engine  # the most recent last
        while len(self._engines) > KEPT_SHARDS:
            self._engines.popitem(last=False)[1].dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        batch = getattr(self._batch, "shards", None)
        if batch is not None:  # storing a batch: the shard's one transaction, committed at its end
            if shard not in batch:
                conn = self._engine(shard).connect()
                conn.begin()
                batch[shard] = conn
            yield batch[shard]
            return
        with self._db_lock:
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def _copy_template(self, shard: str) -> bool:
        """A new run's shard as a copy of the empty one: making it (tables, write-ahead log, alembic's
        stamp) took ~60 ms of every run (bench/README.md). False when the shard exists already."""
        path = self.path_for_shard(shard)
        if os.path.exists(path):
            return False
        if not self._has_template():
            return False
        staged = f"{path}.{uuid.uuid4().hex}.tmp"
        try:
            shutil.copyfile(self._template, staged)
            os.link(staged, path)  # never over a shard another process made meanwhile
        except OSError:  # made meanwhile, or no hard links here: Dagster makes it
            return False
        finally:
            with suppress(OSError):
                os.unlink(staged)
        return True

    def _has_template(self) -> bool:
        """Whether the empty run shard is there, made now if it is not: by Dagster as it makes any
        run's, then moved into place. False where it cannot be written (Dagster makes each shard)."""
        if os.path.exists(self._template):
            return True
        staged = f"{self._template}.{uuid.uuid4().hex}.tmp"
        try:
            engine = create_engine(f"sqlite:///{staged}", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            try:
                self._initdb(engine)
            finally:
                engine.dispose()  # its last connection closed: the write-ahead log is in the file
            os.replace(staged, self._template)
        except (OSError, sqlite3.Error, DBAPIError):
            for leftover in (staged, staged + "-wal", staged + "-shm"):
                with suppress(OSError):
                    os.unlink(leftover)
            return False
        return True

    # Dagster asks whether the index shard has a table (through an engine made for the question)
    # or the asset_keys table a column (inspecting it) before storing each asset event or check:
    # ~0.5 ms each, ~0.1 s of a backfill (bench/README.md). What it found is remembered.
    def has_table(self, table_name: str) -> bool:
        item = ("table", table_name)
        if item not in self._schema and super().has_table(table_name):
            self._schema.add(item)
        return item in self._schema  # not found: asked again next time (a migration may add it)

    def _has_asset_key_col_on_connection(self, conn: Connection, column_name: str) -> bool:
        item = ("asset_keys column", column_name)
        if item not in self._schema and super()._has_asset_key_col_on_connection(conn, column_name):
            self._schema.add(item)
        return item in self._schema

    def store_event_batch(self, events) -> None:
        """The events one by one as `store_event` stores them, in one transaction per shard: all of
        them or, on an error (Dagster then stores them one by one), none."""
        with self._db_lock:
            self._batch.shards = batch = {}
            try:
                for event in events:
                    self.store_event(event)
                for conn in batch.values():
                    conn.commit()
            finally:
                self._batch.shards = None
                for conn in batch.values():
                    conn.close()  # rolls back what was not committed

    def _dispose_engines(self, close: bool = True) -> None:
        with self._db_lock:
            engines, self._engines = list(self._engines.values()), OrderedDict()
        for engine in engines:
            engine.dispose(close=close)

    def wipe(self) -> None:
        self._dispose_engines()
        self._schema.clear()
        super().wipe()

    def upgrade(self) -> None:
        self._dispose_engines()
        self._schema.clear()
        super().upgrade()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


_live: weakref.WeakSet[PooledSqliteEventLogStorage] = weakref.WeakSet()


def _in_child() -> None:
    """A forked child must not use its parent's SQLite connections: it drops them unclosed, and
    makes the lock (held by a parent's thread, perhaps) anew."""
    for storage in list(_live):
        storage._db_lock = threading.Lock()
        storage._dispose_engines(close=False)


def _at_exit() -> None:
    """Closing a shard's last connection checkpoints its write-ahead log into the file."""
    for storage in list(_live):
        storage._dispose_engines()


os.register_at_fork(after_in_child=_in_child)
atexit.register(_at_exit)


class WarehouseSqliteStorage(DagsterSqliteStorage):
    """`storage: sqlite` of dagster.yaml, with the pooled event log above."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data)
        self._event_log_storage = PooledSqliteEventLogStorage(_event_logs_directory(base_dir))
        os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", str(EVENT_BATCH_SIZE))

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> WarehouseSqliteStorage:
        return cls.from_local(inst_data=inst_data, **config_value)


INSTANCE_YAML = Path(__file__).with_name("dagster_instance.yaml")  # the instance's dagster.yaml (`make install`)
