"""dbt-duckdb plugin (named in dbt_project/profiles.yml): every dbt connection runs in UTC, loads
httpfs from the duckdb-ext-httpfs package (no download at run time) and, when the lake is on S3,
gets its credentials from the same boto3 chain the Dagster resources use (never from a log line)."""

from __future__ import annotations

from typing import Any

import boto3
from dbt.adapters.duckdb.plugins import BasePlugin

from orchestration.settings import Settings
from orchestration.storage import HTTPFS_DIR, s3_secret_sql


class Plugin(BasePlugin):
    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self.lake_root = str(plugin_config.get("lake_root") or "")

    def update_connection_config(self, creds: Any, config: dict[str, Any]) -> None:
        config["extension_directory"] = HTTPFS_DIR
        config["autoinstall_known_extensions"] = "false"

    def configure_connection(self, conn: Any) -> None:
        conn.execute("SET TimeZone = 'UTC'")
        if self.lake_root.startswith("s3://"):
            settings = Settings.from_env()
            client = boto3.client("s3", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
            conn.execute("LOAD httpfs")
            conn.execute(s3_secret_sql(client))
