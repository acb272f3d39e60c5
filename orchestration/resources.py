"""Dagster resources: the landing area and the lake, each a local folder or an S3 prefix; the
DuckDB file of the marts, behind a file lock that every process of ours takes before opening it."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import boto3
import dagster as dg
import duckdb
from dagster_aws.s3 import S3Resource

from orchestration.settings import Settings
from orchestration.storage import LocalStore, S3Access, S3Store, Store, duckdb_connection, duckdb_file_lock

LAKE_MEMORY_LIMIT = f"{Settings.lake_memory_bytes}B"  # DuckDB spills past it; bench/README.md: the peak it gives


def s3_resource(settings: Settings) -> S3Resource:
    """boto3 clients with the standard retry mode (exponential backoff with jitter, throttling and
    5xx answers and connection errors retried): `settings.s3_max_attempts` attempts in all.
    (botocore's `max_attempts`, which S3Resource passes on, counts the retries after the first.)"""
    return S3Resource(endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region,
                      max_attempts=settings.s3_max_attempts - 1)


class StorageResource(dg.ConfigurableResource):
    """A folder or an `s3://bucket/prefix` (any S3-compatible endpoint, through dagster-aws)."""

    root: str
    s3: S3Resource

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def s3_attempts(self) -> int:
        """Attempts per S3 request, the first included (for DuckDB's httpfs as for boto)."""
        return self.s3.max_attempts + 1

    def store(self) -> Store:
        if self.is_s3:
            return S3Store(self.root, self.s3.get_client(), self.s3_attempts)
        return LocalStore(self.root)

    def s3_access(self) -> S3Access:
        """DuckDB's way to the same S3 as `store()`, from the S3 resource's public fields: its
        client's region and endpoint, and the credentials that client signs with (the resource's
        keys when set, else those of its profile or of boto3's standard chain)."""
        s3 = self.s3
        session = boto3.session.Session(aws_access_key_id=s3.aws_access_key_id,
                                        aws_secret_access_key=s3.aws_secret_access_key,
                                        aws_session_token=s3.aws_session_token, profile_name=s3.profile_name)
        return S3Access.of(s3.get_client(), session)


@contextmanager
def lake_duckdb(*stores: StorageResource,
                memory_bytes: int = Settings.lake_memory_bytes) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB for the lake layers, of `memory_bytes` (WAREHOUSE_LAKE_MEMORY_BYTES): it
    never opens the warehouse file, so parallel partitions take no lock."""
    s3 = next((s for s in stores if s.is_s3), None)
    con = duckdb_connection(s3.s3_access() if s3 else None, memory_limit=f"{memory_bytes}B",
                            max_attempts=s3.s3_attempts if s3 else Settings.s3_max_attempts)
    try:
        yield con
    finally:
        con.close()


WAREHOUSE_POOL = "warehouse_duckdb"  # Dagster concurrency pool: one step at a time opens the DuckDB file


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB file of the dbt models: written by the dbt step only, read by the checks. Every
    opening goes through `lock()`, which spans processes (the Dagster pool does not)."""

    path: str
    lock_timeout_seconds: int = Settings.duckdb_lock_timeout_seconds

    def prepare(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def lock(self, purpose: str, run_id: str | None = None, log: Any = None) -> Iterator[None]:
        with duckdb_file_lock(self.path, self.lock_timeout_seconds, purpose, run_id, log):
            yield

    @contextmanager
    def read_only(self, purpose: str = "reading the marts", run_id: str | None = None,
                  log: Any = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with self.lock(purpose, run_id, log):
            con = duckdb.connect(self.path, read_only=True)
            try:
                yield con
            finally:
                con.close()

    @staticmethod
    def relations(con: duckdb.DuckDBPyConnection) -> set[str]:
        """`schema.table` of every table the file holds."""
        return {r[0] for r in con.sql("select schema_name || '.' || table_name from duckdb_tables()").fetchall()}


def build_resources(settings: Settings, dbt: bool = True) -> dict[str, dg.ConfigurableResource]:
    """The code location's resources; `dbt` (dagster-dbt's, which imports dbt) only if asked."""
    s3 = s3_resource(settings)
    resources = {
        "landing": StorageResource(root=settings.landing, s3=s3),
        "lake": StorageResource(root=settings.lake, s3=s3),
        "warehouse": WarehouseResource(path=settings.duckdb_path,
                                       lock_timeout_seconds=settings.duckdb_lock_timeout_seconds),
    }
    if dbt:
        from orchestration.dbt_project import dbt_resource

        resources["dbt"] = dbt_resource()
    return resources
