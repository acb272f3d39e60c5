"""The one settings object. The environment is read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

DEFAULT_START = "2026-01-01T00"
HOUR_FORMAT = "%Y-%m-%dT%H"


def parse_hour(text: str) -> datetime:
    """`YYYY-MM-DDTHH` (UTC) to an aware datetime on the hour."""
    try:
        return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"expected an hour as YYYY-MM-DDTHH (UTC), got {text!r}") from None


def format_hour(hour: datetime) -> str:
    return hour.astimezone(timezone.utc).strftime(HOUR_FORMAT)


def _location(value: str) -> str:
    """s3:// URLs stay as they are; folders become absolute paths."""
    if value.startswith("s3://"):
        return value.rstrip("/")
    return str(Path(value).expanduser().resolve())


@dataclass(frozen=True)
class Settings:
    landing: str
    lake: str
    duckdb_path: str
    start: datetime
    aws_endpoint_url: str | None = None
    aws_region: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            landing=_location(env.get("WAREHOUSE_LANDING", "data/landing")),
            lake=_location(env.get("WAREHOUSE_LAKE", "data/lake")),
            duckdb_path=_location(env.get("WAREHOUSE_DUCKDB", "data/warehouse.duckdb")),
            start=parse_hour(env.get("WAREHOUSE_START", DEFAULT_START)),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    @property
    def uses_s3(self) -> bool:
        return self.landing.startswith("s3://") or self.lake.startswith("s3://")
