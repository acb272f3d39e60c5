"""Where each layer's files live in the lake, and which landing files arrived in an hour."""

from __future__ import annotations

from datetime import datetime

from orchestration.contracts import SourceContract
from orchestration.settings import format_hour, parse_hour
from orchestration.storage import Store

DATA_FILE = "part_0.parquet"  # the one file DuckDB writes per hive partition (FILENAME_PATTERN part_{i})
PARTITION_FILENAME_PATTERN = "part_{i}"


def landed_partition(source: str, arrival_hour: datetime) -> str:
    return f"{source}/landed/arrival_hour={format_hour(arrival_hour)}"


def landed_file(source: str, arrival_hour: datetime, event_hour: datetime) -> str:
    return f"{landed_partition(source, arrival_hour)}/event_hour={format_hour(event_hour)}/{DATA_FILE}"


def index_prefix(source: str, event_hour: datetime) -> str:
    """Markers naming the arrival hours that landed rows in `event_hour`: finding an event hour's
    landed files costs one small listing, however long the history."""
    return f"{source}/landed/_index/event_hour={format_hour(event_hour)}/"


def index_marker(source: str, event_hour: datetime, arrival_hour: datetime) -> str:
    return index_prefix(source, event_hour) + f"arrival_hour={format_hour(arrival_hour)}"


def quarantine_file(source: str, arrival_hour: datetime) -> str:
    return f"{source}/quarantine/arrival_hour={format_hour(arrival_hour)}/{DATA_FILE}"


def events_prefix(source: str) -> str:
    return f"{source}/events"


def events_file(source: str, event_hour: datetime) -> str:
    return f"{source}/events/event_hour={format_hour(event_hour)}/{DATA_FILE}"


def hour_from_key(key: str, name: str) -> datetime:
    """The hour in a `name=YYYY-MM-DDTHH` path segment of `key`."""
    for part in key.split("/"):
        if part.startswith(name + "="):
            return parse_hour(part.split("=", 1)[1])
    raise ValueError(f"no {name}= segment in {key!r}")


def arrived_files(contract: SourceContract, landing: Store, arrival_hour: datetime) -> list[tuple[str, str]]:
    """(key, format) of every landing file of `contract` that arrived in `arrival_hour`."""
    out = {}
    for layout in contract.layouts:
        prefix = layout.list_prefix(arrival_hour)
        if prefix is None:
            continue
        for key in landing.list(prefix):
            hit = layout.match(key)
            if hit and hit[0] == arrival_hour:
                out.setdefault(key, hit[1])
    return sorted(out.items())


def landed_files_for(source: str, lake: Store, event_hour: datetime) -> list[str]:
    """Keys of the landed files holding rows of `event_hour`, across all arrival hours."""
    keys = []
    for marker in lake.list(index_prefix(source, event_hour)):
        arrival = hour_from_key(marker, "arrival_hour")
        keys.append(landed_file(source, arrival, event_hour))
    return keys
