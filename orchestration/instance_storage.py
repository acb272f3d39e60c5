"""The Dagster instance's storage (`dagster.yaml`): Dagster's own SQLite storage, the same files in
the same places, with one change to its event log. Dagster's SQLite event log makes a SQLAlchemy
engine for every write, opens the shard's file, commits and disposes of it: ~9 ms a stored event,
two events a partition of a range run (planned, materialised), 1.5 s of a 2 M-event backfill at
one core (bench/README.md, "ninth"). Here a shard's engine, and the connection it pools, is kept
for the shards used last. Nothing else changes: `storage: sqlite` reads what this writes."""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster._core.storage.sql import create_engine
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from sqlalchemy.engine import Connection, Engine

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
        super().__init__(base_dir, inst_data)
        _live.add(self)

    def _engine(self, shard: str) -> Engine:
        """The shard's engine, kept; called under the storage's lock."""
        engine = self._engines.pop(shard, None)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard),
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
            if shard not in self._initialized_dbs:
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
        super().wipe()

    def upgrade(self) -> None:
        self._dispose_engines()
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
