"""The partitionings, UTC: arrival and event hours (keys `YYYY-MM-DDTHH`, the same text as the lake's
paths) and event days for the daily marts (`YYYY-MM-DD`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping

import dagster as dg

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.settings import HOUR_FORMAT, Settings, format_hour, parse_hour

HOUR = timedelta(hours=1)
DAY_FORMAT = "%Y-%m-%d"


def arrival_hour_partitions(settings: Settings) -> dg.HourlyPartitionsDefinition:
    """The hour an export file arrived in (from its path or name)."""
    return dg.HourlyPartitionsDefinition(
        start_date=format_hour(settings.start), fmt=HOUR_FORMAT, timezone="UTC", end_offset=1
    )


def event_hour_partitions(settings: Settings) -> dg.HourlyPartitionsDefinition:
    """The hour an event happened in (its event time, UTC)."""
    return dg.HourlyPartitionsDefinition(
        start_date=format_hour(settings.start), fmt=HOUR_FORMAT, timezone="UTC", end_offset=1
    )


def day_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    """The UTC day of the events (daily marts); keys `YYYY-MM-DD`."""
    return dg.DailyPartitionsDefinition(start_date=settings.start.strftime(DAY_FORMAT), fmt=DAY_FORMAT,
                                        timezone="UTC", end_offset=1)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """The hours of the half-open window [start, end)."""
    out, hour = [], start
    while hour < end:
        out.append(hour)
        hour += HOUR
    return out


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partition range [first, last] (single-run backfill)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def _period(key: str) -> tuple[datetime, datetime]:
    """[start, end) of an hour (`YYYY-MM-DDTHH`) or a day (`YYYY-MM-DD`) partition key."""
    if len(key) == len("YYYY-MM-DD"):
        day = datetime.strptime(key, DAY_FORMAT).replace(tzinfo=timezone.utc)
        return day, day + timedelta(days=1)
    hour = parse_hour(key)
    return hour, hour + HOUR


def run_window(tags: Mapping[str, str]) -> tuple[datetime, datetime] | None:
    """[start, end) of the hours a run covers, from its partition tags (hour or day keys); None
    for a run without partitions."""
    first = tags.get(ASSET_PARTITION_RANGE_START_TAG) or tags.get("dagster/partition")
    last = tags.get(ASSET_PARTITION_RANGE_END_TAG) or tags.get("dagster/partition")
    if not first or not last:
        return None
    return _period(first)[0], _period(last)[1]
