"""The one settings object. The environment is read here and nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

DEFAULT_START = "2026-01-01T00"
LANDING_VARIABLE = "WAREHOUSE_LANDING"
HOUR_FORMAT = "%Y-%m-%dT%H"
DEFAULT_LAKE = "data/lake"  # WAREHOUSE_LAKE's default, relative to the repo (where the commands run)


def parse_hour(text: str) -> datetime:
    """`YYYY-MM-DDTHH` (UTC) to an aware datetime on the hour."""
    try:
        return datetime.strptime(text, HOUR_FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"expected an hour as YYYY-MM-DDTHH (UTC), got {text!r}") from None


def format_hour(hour: datetime) -> str:
    """The one text form of an hour (partition keys, lake paths): the year always has four digits."""
    h = hour.astimezone(timezone.utc) if hour.tzinfo else hour
    return f"{h.year:04d}-{h.month:02d}-{h.day:02d}T{h.hour:02d}"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {value!r}") from None
    if number <= 0:
        raise ValueError(f"{name} must be positive, got {number}")
    return number


MIB = 1024 * 1024
LAKE_MEMORY_VARIABLE = "WAREHOUSE_LAKE_MEMORY_BYTES"
ATOMIC_FORMATS = ("ndjson", "csv", "parquet")
ALTIS_FORMATS = ("json", "csv")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (env.get(name) or "").strip().lower()
    if not value:
        return default
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


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
    max_line_bytes: int = 8 * MIB  # a longer line is quarantined, never held whole
    max_file_bytes: int = 2048 * MIB  # decompressed bytes read from one file; the rest is quarantined
    max_event_ahead_hours: int = 48  # an event stamped further after its file arrived is quarantined
    # DuckDB's memory for the lake layers (it spills past it); a file whose records alone need more is quarantined
    lake_memory_bytes: int = 600_000_000
    s3_max_attempts: int = 10  # S3 / HTTP requests retried with backoff, then the run fails
    duckdb_lock_timeout_seconds: int = 3600  # how long the dbt step waits for the DuckDB file
    # Atomic's batched analytics API (orchestration/pullers/atomic.py); the token never in a repr
    atomic_api_url: str | None = None
    atomic_environment_id: str | None = None
    atomic_api_token: str | None = field(default=None, repr=False)
    atomic_export_format: str = "ndjson"
    # Altis's analytics events API (orchestration/pullers/altis.py); the application password never in a repr
    altis_url: str | None = None
    altis_username: str | None = None
    altis_app_password: str | None = field(default=None, repr=False)
    altis_export_format: str = "json"
    # the receiver of Altis's push hook (orchestration/receivers/altis.py); the secret never in a repr
    altis_hook_secret: str | None = field(default=None, repr=False)
    altis_hook_max_bytes: int = 64 * MIB

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        return cls(
            landing=_location(env.get(LANDING_VARIABLE, "data/landing")),
            lake=_location(env.get("WAREHOUSE_LAKE", DEFAULT_LAKE)),
            duckdb_path=_location(env.get("WAREHOUSE_DUCKDB", "data/warehouse.duckdb")),
            start=parse_hour(env.get("WAREHOUSE_START", DEFAULT_START)),
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
            max_line_bytes=_int(env, "WAREHOUSE_MAX_LINE_BYTES", cls.max_line_bytes),
            max_file_bytes=_int(env, "WAREHOUSE_MAX_FILE_BYTES", cls.max_file_bytes),
            max_event_ahead_hours=_int(env, "WAREHOUSE_MAX_EVENT_AHEAD_HOURS", cls.max_event_ahead_hours),
            lake_memory_bytes=_int(env, LAKE_MEMORY_VARIABLE, cls.lake_memory_bytes),
            s3_max_attempts=_int(env, "WAREHOUSE_S3_MAX_ATTEMPTS", cls.s3_max_attempts),
            duckdb_lock_timeout_seconds=_int(env, "WAREHOUSE_DUCKDB_LOCK_TIMEOUT", cls.duckdb_lock_timeout_seconds),
            atomic_api_url=(env.get("ATOMIC_API_URL") or "").rstrip("/") or None,
            atomic_environment_id=env.get("ATOMIC_ENVIRONMENT_ID") or None,
            atomic_api_token=env.get("ATOMIC_API_TOKEN") or None,
            atomic_export_format=_choice(env, "ATOMIC_EXPORT_FORMAT", ATOMIC_FORMATS, cls.atomic_export_format),
            altis_url=(env.get("ALTIS_URL") or "").rstrip("/") or None,
            altis_username=env.get("ALTIS_USERNAME") or None,
            altis_app_password=env.get("ALTIS_APP_PASSWORD") or None,
            altis_export_format=_choice(env, "ALTIS_EXPORT_FORMAT", ALTIS_FORMATS, cls.altis_export_format),
            altis_hook_secret=env.get("ALTIS_HOOK_SECRET") or None,
            altis_hook_max_bytes=_int(env, "ALTIS_HOOK_MAX_BYTES", cls.altis_hook_max_bytes),
        )

    @property
    def uses_s3(self) -> bool:
        return self.landing.startswith("s3://") or self.lake.startswith("s3://")
