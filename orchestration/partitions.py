"""The two hourly partitionings, UTC. Keys are `YYYY-MM-DDTHH`, the same text as the lake's paths."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from orchestration.settings import HOUR_FORMAT, Settings, format_hour

HOUR = timedelta(hours=1)


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


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """The hours of the half-open window [start, end)."""
    out, hour = [], start
    while hour < end:
        out.append(hour)
        hour += HOUR
    return out
