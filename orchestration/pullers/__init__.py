"""Pullers: clients for the vendors that must be polled; each writes what it fetches into the
landing store, in the layout its source contract names, so the `<source>_landed` asset reads it."""

from datetime import date, datetime, time, timedelta, timezone

from orchestration.settings import parse_hour


class NotConfigured(RuntimeError):
    """A variable a puller needs is not set."""


def require(vendor: str, variables: dict[str, str | None], meaning: str) -> None:
    """Raise NotConfigured naming the `variables` (name -> value) that are not set."""
    missing = [name for name, value in variables.items() if not value]
    if missing:
        raise NotConfigured(f"cannot pull from {vendor}: {', '.join(missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not set ({meaning})")


def arrival_hour_of(pulled_partition: str) -> datetime:
    """The arrival hour of what a puller wrote for its partition: a batch key is one; a day's file
    arrives at the hour the day ended (the next day's 00, the landing layout's arrivalShiftHours 24)."""
    if len(pulled_partition) == len("YYYY-MM-DD"):
        return datetime.combine(date.fromisoformat(pulled_partition) + timedelta(days=1), time(), timezone.utc)
    return parse_hour(pulled_partition)
