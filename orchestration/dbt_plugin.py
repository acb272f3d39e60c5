"""dbt-duckdb plugin (named in dbt_project/profiles.yml): every dbt connection runs in UTC, loads
httpfs from the duckdb-ext-httpfs package (no download at run time) and, when the lake is on S3,
retries its HTTP requests with backoff and gets its credentials from the same boto3 chain the
Dagster resources use, bound as statement parameters (never in SQL text, never in a log line)."""

from __future__ import annotations

from typing import Any

import boto3
from dbt.adapters.duckdb.plugins import BasePlugin

from orchestration.settings import Settings
from orchestration.storage import HTTPFS_DIR, S3Access, configure_s3


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.lake_root = str(plugin_config.get("lake_root") or "")

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        config["extension_directory"] = HTTPFS_DIR
        config["autoinstall_known_extensions"] = "false"

    def configure_connection(self, conn: Any) -> None:
        # GLOBAL: dbt runs its statements on cursors of this connection, which do not inherit
        # session settings.
        conn.execute("SET GLOBAL TimeZone = 'UTC'")
        if self.lake_root.startswith("s3://"):
            settings = Settings.from_env()
            # A session of its own: the chain as it is now (boto3's default session keeps what it found first).
            session = boto3.session.Session()
            client = session.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
            configure_s3(conn, S3Access.of(client, session), settings.s3_max_attempts)
