"""Omny export files as the vendor drops them, for the tests and bench/ alike. Standard library only:
bench's measured processes fork after importing this, and must not carry Dagster in their memory."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from pathlib import Path


def write_omny_file(landing: Path, arrival: datetime, name: str, records: list) -> Path:
    """`records` as one gzipped JSON Lines file that arrived in `arrival`'s hour, in Omny's landing
    layout: omny/{YYYY}/{YYYY-MM}/{YYYY-MM-DD}/{YYYY-MM-DD}T{HH}{mm}_{*}.jsonl.gz."""
    d = arrival
    path = landing / f"omny/{d:%Y}/{d:%Y-%m}/{d:%Y-%m-%d}/{d:%Y-%m-%dT%H}10_000000.000_{name}.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in records).encode(), compresslevel=6))
    return path


def omny_file(landing: Path, arrival: datetime, name: str, events: list[tuple[str, datetime]]) -> Path:
    """The smallest Omny records that land: (EventId, download time) pairs."""
    return write_omny_file(landing, arrival, name, [
        {"EventId": event_id, "Program": {"Id": "p", "Name": "Program"}, "Clip": {"Id": "c", "Title": "Clip"},
         "Download": {"DownloadedAtUtc": ts.strftime("%Y-%m-%dT%H:%M:%SZ")}} for event_id, ts in events])
