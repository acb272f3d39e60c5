"""Where each layer's files live in the lake."""

from __future__ import annotations

from datetime import datetime, timedelta

from orchestration.settings import format_hour, parse_hour
from orchestration.storage import Store, is_leftover

DATA_FILE = "part_0.parquet"  # the one file DuckDB writes per hive partition (FILENAME_PATTERN part_{i})
PARTITION_FILENAME_PATTERN = "part_{i}"
PARTITION_GLOB = "*.parquet"  # every file of a hive partition
# In an arrival hour's main event hour (the one most of its rows happened in), the first copy of
# each id delivered in the arrival hour; its further copies go to DATA_FILE beside it. The events
# layer copies this file whole when none of its rows is dropped (written in the events layer's format).
FIRST_COPIES_FILE = "first_copies.parquet"


def landed_partition(source: str, arrival_hour: datetime) -> str:
    return f"{source}/landed/arrival_hour={format_hour(arrival_hour)}"


def landed_file(source: str, arrival_hour: datetime, event_hour: datetime, name: str = DATA_FILE) -> str:
    return f"{landed_partition(source, arrival_hour)}/event_hour={format_hour(event_hour)}/{name}"


def index_prefix(source: str, event_hour: datetime) -> str:
    """Markers naming the arrival hours that landed rows in `event_hour`: finding an event hour's
    landed files costs one small listing, however long the history."""
    return f"{source}/landed/_index/event_hour={format_hour(event_hour)}/"


def index_marker(source: str, event_hour: datetime, arrival_hour: datetime, name: str = DATA_FILE) -> str:
    """The marker of one landed file (`name`, in the folder of `arrival_hour` and `event_hour`):
    `arrival_hour=H` for DATA_FILE, `arrival_hour=H.<stem>` for another file."""
    stem = "" if name == DATA_FILE else "." + name.removesuffix(".parquet")
    return index_prefix(source, event_hour) + f"arrival_hour={format_hour(arrival_hour)}{stem}"


def index_marker_of(source: str, landed_key: str) -> str:
    """The marker of the landed file `landed_key`."""
    return index_marker(source, hour_from_key(landed_key, "event_hour"), hour_from_key(landed_key, "arrival_hour"),
                        landed_key.rsplit("/", 1)[-1])


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


def events_partition(source: str, event_hour: datetime) -> str:
    """The folder of an event hour: DATA_FILE (the winners written) and the landed first-copies
    files copied whole (`first_copies_<arrival hour>.parquet`)."""
    return f"{events_prefix(source)}/event_hour={format_hour(event_hour)}"


def events_copy_name(arrival_hour: datetime) -> str:
    """The name, in an event hour's folder, of the landed first-copies file of `arrival_hour` copied whole."""
    return f"first_copies_{format_hour(arrival_hour)}.parquet"


def hour_from_key(key: str, name: str) -> datetime:
    """The hour in a `name=YYYY-MM-DDTHH` path segment of `key` (an index marker's may go on `.<stem>`)."""
    for part in key.split("/"):
        if part.startswith(name + "="):
            return parse_hour(part.split("=", 1)[1].partition(".")[0])
    raise ValueError(f"no {name}= segment in {key!r}")


def landed_files_for(source: str, lake: Store, event_hour: datetime) -> list[str]:
    """Keys of the landed files holding rows of `event_hour`, across all arrival hours."""
    keys = []
    for marker in lake.list(index_prefix(source, event_hour)):
        name = marker.rsplit("/", 1)[-1]
        if is_leftover(name):  # a marker half-written by a killed run
            continue
        stem = name.partition(".")[2]
        keys.append(landed_file(source, hour_from_key(marker, "arrival_hour"), event_hour,
                                f"{stem}.parquet" if stem else DATA_FILE))
    return keys
