"""Shared building blocks for the sample-export generators (one module per source)."""

from __future__ import annotations

import copy
import gzip
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterable

UTC = timezone.utc
HOUR = timedelta(hours=1)


@dataclass
class Event:
    """One generated event: when it happened and the hour its file is delivered in."""

    ts: datetime  # aware, UTC
    record: dict
    arrival_hour: datetime  # aware, UTC, on the hour


@dataclass
class GenerationSummary:
    source: str
    files: int = 0
    records: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: int = 0
    missing_required: int = 0
    notes: list[str] = field(default_factory=list)


def hours(start: datetime, count: int) -> list[datetime]:
    start = start.replace(minute=0, second=0, microsecond=0, tzinfo=start.tzinfo or UTC)
    return [start + timedelta(hours=i) for i in range(count)]


def event_time_in(hour: datetime, rng: random.Random) -> datetime:
    """A time inside the hour with millisecond precision."""
    return hour + timedelta(milliseconds=rng.randrange(3_600_000))


def lateness(rng: random.Random, late_share: float = 0.08, max_hours: int = 24) -> timedelta:
    """How late an event is delivered: mostly on time, a share up to `max_hours` late."""
    if rng.random() < late_share:
        return timedelta(minutes=rng.randrange(60, max_hours * 60))
    return timedelta(0)


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def iso_z(ts: datetime, ms: bool = True) -> str:
    ts = ts.astimezone(UTC)
    text = ts.strftime("%Y-%m-%dT%H:%M:%S")
    if ms:
        text += f".{ts.microsecond // 1000:03d}"
    return text + "Z"


def iso_offset(ts: datetime, offset_hours: float) -> str:
    """The same instant written in another UTC offset, e.g. 2026-01-05T15:00:00.000+10:00."""
    tz = timezone(timedelta(hours=offset_hours))
    local = ts.astimezone(tz)
    return local.isoformat(timespec="milliseconds")


def epoch_ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def write_lines(path: Path, lines: Iterable[str], gz: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


def truncate_gzip(path: Path, keep_fraction: float = 0.6) -> None:
    """Cut a gzip file short, as an interrupted upload would."""
    data = path.read_bytes()
    path.write_bytes(data[: max(20, int(len(data) * keep_fraction))])


def floor_hour(ts: datetime) -> datetime:
    return ts.replace(minute=0, second=0, microsecond=0)


def duplicate_deliveries(events: list[Event], last: datetime, rng: random.Random) -> list[Event]:
    """Copies of delivered events: ~3 % again in the same hour, ~3 % in a later hour (< 24 h).
    At least one of each kind when the range allows."""
    copies = []
    for e in events:
        roll = rng.random()
        if roll < 0.03:
            copies.append(Event(e.ts, e.record, e.arrival_hour))
        elif roll < 0.06:
            later = e.arrival_hour + timedelta(hours=rng.randint(1, 23))
            if later <= last:
                copies.append(Event(e.ts, e.record, later))
    arrival = {id(e.record): e.arrival_hour for e in events}
    if events and not any(c.arrival_hour == arrival[id(c.record)] for c in copies):
        copies.append(Event(events[0].ts, events[0].record, events[0].arrival_hour))
    if not any(c.arrival_hour > arrival[id(c.record)] for c in copies):
        for e in events:
            if e.arrival_hour + HOUR <= last:
                copies.append(Event(e.ts, e.record, e.arrival_hour + HOUR))
                break
    return copies


def force_across_midnight(events: list[Event], last: datetime, rng: random.Random,
                          movable: Callable[[Event], bool] = lambda e: True) -> Event | None:
    """Make one on-time (and `movable`) event of a 23:00 hour arrive 2-8 h later, after midnight,
    when the range allows: the event moved, for the caller to restamp its arrival, or None."""
    for e in events:
        hour = floor_hour(e.ts)
        if hour.hour == 23 and hour + 2 * HOUR <= last and e.arrival_hour == hour and movable(e):
            e.arrival_hour = hour + timedelta(hours=rng.randint(2, min(8, (last - hour) // HOUR)))
            return e
    return None


def malformed_line(sample: str, stray: str, rng: random.Random) -> str:
    """A line that is not JSON: the sample record cut short, or `stray` text from a broken writer."""
    if rng.random() < 0.5:
        return sample[: max(10, len(sample) // 2)]
    return stray


def without_field(record: dict, path: str) -> dict:
    """A copy of the record without the (dotted) field."""
    out = copy.deepcopy(record)
    node = out
    *parents, leaf = path.split(".")
    for p in parents:
        node = node[p]
    node.pop(leaf, None)
    return out


def break_required(delivered: list[Event], required: list[str], rng: random.Random,
                   count: int) -> tuple[list[Event], set[int]]:
    """Drop a required field from `count` delivered records (never re-delivered): the records
    left sound, and the `id()`s of the broken ones."""
    broken = rng.sample(range(len(delivered)), min(len(delivered), count))
    for i in broken:
        delivered[i].record = without_field(delivered[i].record, rng.choice(required))
    broken_ids = {id(delivered[i].record) for i in broken}
    return [e for e in delivered if id(e.record) not in broken_ids], broken_ids
