"""Where each layer's files live in the lake, and which landing files arrived in an hour."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestration.contracts import SourceContract
from orchestration.settings import format_hour, parse_hour
from orchestration.storage import FileInfo, Store, is_leftover

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
        lake.sweep_leftovers(f"{source}/quarantine/arrival_hour={format_hour(hour)}/.", timedelta(0))
    for hour in event_hours:  # index markers half-written (readers skip them meanwhile)
        lake.sweep_leftovers(index_prefix(source, hour) + ".", LEFTOVER_AGE)
    lake.sweep_leftovers(f"{source}/landed/.", LEFTOVER_AGE)
    lake.sweep_leftovers(f"{source}/.", LEFTOVER_AGE)


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


@dataclass
class HourFiles:
    """The landing files of one arrival hour: those to land (with their format) and those
    reported instead (key -> reason: a name the layout does not match, a refused symlink)."""

    files: list[tuple[FileInfo, str]] = field(default_factory=list)
    reported: dict[str, str] = field(default_factory=dict)

    def digest(self) -> str:
        """Changes when a file of the hour appears, goes, or is rewritten (size, time or ETag)."""
        listing = sorted(f"{info.key}\t{info.version}" for info, _ in self.files)
        listing += sorted(f"{key}\treported" for key in self.reported)
        return hashlib.sha1("\n".join(listing).encode()).hexdigest()


def scan_landing(contract: SourceContract, landing: Store, arrival_hours: list[datetime]) -> dict[datetime, HourFiles]:
    """Every landing file of `contract` that arrived in one of `arrival_hours`, found with one
    listing per day folder (and one of the files directly in each folder above it); files there
    that no layout matches are reported under the first of the hours that listed them, so that
    none is skipped in silence."""
    hours = set(arrival_hours)
    out = {h: HourFiles() for h in arrival_hours}
    owner: dict[str, datetime] = {}  # listed prefix -> the first hour listing it
    for hour in sorted(hours):
        for layout in contract.layouts:
            owner.setdefault(layout.scan_prefix(hour), hour)
    first = min(hours)
    above = sorted({f for l in contract.layouts for h in hours for f in l.folders_above(h)} - set(owner))
    listings = [(p, landing.list_files(p)) for p in sorted(owner)] + [(f, landing.list_folder(f)) for f in above]
    owner.update({f: first for f in above})
    seen = set()
    for prefix, infos in listings:
        for info in infos:
            if info.key in seen:
                continue
            seen.add(info.key)
            hit = next((h for h in (l.match(info.key) for l in contract.layouts) if h), None)
            loose = hit or next((h for h in (l.any_format.match(info.key) for l in contract.layouts) if h), None)
            hour = loose[0] if loose else owner[prefix]
            if hour not in hours:
                continue  # another hour's file
            if info.refused:
                out[hour].reported[info.key] = info.refused
            elif hit:
                out[hour].files.append((info, hit[1]))
            elif loose:
                formats = sorted({f for l in contract.layouts for f in l.formats})
                out[hour].reported[info.key] = f"not one of the formats {', '.join(formats)}"
            else:
                out[hour].reported[info.key] = "name does not match the landing layout"
    return out


def landed_files_for(source: str, lake: Store, event_hour: datetime) -> list[str]:
    """Keys of the landed files holding rows of `event_hour`, across all arrival hours."""
    keys = []
    for marker in lake.list(index_prefix(source, event_hour)):
        if is_leftover(marker.rsplit("/", 1)[-1]):  # a marker half-written by a killed run
            continue
        arrival = hour_from_key(marker, "arrival_hour")
        keys.append(landed_file(source, arrival, event_hour))
    return keys
