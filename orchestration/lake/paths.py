"""Where each layer's files live in the lake."""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestration.settings import format_hour, parse_hour
from orchestration.storage import Store, is_leftover

DATA_FILE = "part_0.parquet"  # the one file DuckDB writes per hive partition (FILENAME_PATTERN part_{i})
PARTITION_FILENAME_PATTERN = "part_{i}"
PARTITION_GLOB = "*.parquet"  # every file of a hive partition


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


def quarantine_prefix(source: str) -> str:
    return f"{source}/quarantine"


def quarantine_file(source: str, arrival_hour: datetime) -> str:
    return f"{quarantine_prefix(source)}/arrival_hour={format_hour(arrival_hour)}/{DATA_FILE}"


LEFTOVER_AGE = timedelta(hours=1)  # a staging place untouched this long belongs to a killed run


def sweep_leftovers(source: str, lake: Store, arrival_hours: list[datetime] = (),
                    event_hours: list[datetime] = ()) -> None:
    """Remove what killed runs left in `source`'s lake: staging of the arrival hours about to be
    written (whatever its age: this run rewrites them), and any other staging left long enough.
    A store written in place (S3: each object write is atomic) leaves none."""
    if lake.writes_in_place:
        return
    for hour in arrival_hours:
        lake.sweep_leftovers(f"{landed_partition(source, hour)}/.", timedelta(0))
        for moved in ("staging", "trash"):
            lake.sweep_leftovers(f"{source}/landed/.{moved}-arrival_hour={format_hour(hour)}-", timedelta(0))
        lake.sweep_leftovers(f"{quarantine_prefix(source)}/arrival_hour={format_hour(hour)}/.", timedelta(0))
    for hour in event_hours:  # index markers half-written (readers skip them meanwhile)
        lake.sweep_leftovers(index_prefix(source, hour) + ".", LEFTOVER_AGE)
    lake.sweep_leftovers(f"{source}/landed/.", LEFTOVER_AGE)
    lake.sweep_leftovers(f"{source}/.", LEFTOVER_AGE)


def events_prefix(source: str) -> str:
    return f"{source}/events"


def events_files(source: str, event_hour: str = "*") -> str:
    """A glob of every events file of `source` (of one `event_hour`, formatted, if given)."""
    return f"{events_prefix(source)}/event_hour={event_hour}/{PARTITION_GLOB}"


QUARANTINE_FILES = f"{quarantine_prefix('*')}/arrival_hour=*/{PARTITION_GLOB}"  # a glob of every source's quarantine


def events_file(source: str, event_hour: datetime) -> str:
    return f"{events_prefix(source)}/event_hour={format_hour(event_hour)}/{DATA_FILE}"


def hour_from_key(key: str, name: str) -> datetime:
    """The hour in a `name=YYYY-MM-DDTHH` path segment of `key`."""
    for part in key.split("/"):
        if part.startswith(name + "="):
            return parse_hour(part.split("=", 1)[1])
    raise ValueError(f"no {name}= segment in {key!r}")


def landed_files_for(source: str, lake: Store, event_hour: datetime) -> list[str]:
    """Keys of the landed files holding rows of `event_hour`, across all arrival hours."""
    keys = []
    for marker in lake.list(index_prefix(source, event_hour)):
        if is_leftover(marker.rsplit("/", 1)[-1]):  # a marker half-written by a killed run
            continue
        arrival = hour_from_key(marker, "arrival_hour")
        keys.append(landed_file(source, arrival, event_hour))
    return keys
