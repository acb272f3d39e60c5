"""Helpers the tests share: a warehouse on temp folders, a sensor tick, and the events layer
expected from Omny files against the one built. (Omny files to land: omny_files.py.)"""

import json
import zlib
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb

from orchestration.definitions import build_definitions
from orchestration.settings import Settings, format_hour

UTC = timezone.utc


def setup(tmp_path):
    settings = Settings(landing=str(tmp_path / "landing"), lake=str(tmp_path / "lake"),
                        duckdb_path=str(tmp_path / "w.duckdb"), start=datetime(2026, 1, 1, tzinfo=UTC))
    defs = build_definitions(settings)
    return settings, defs, dg.DagsterInstance.ephemeral()


def tick(defs, instance, name, cursor=None):
    """One evaluation of the sensor `name`, as the daemon would run it."""
    sensor_def = next(s for s in defs.sensors if s.name == name)
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources, cursor=cursor) as ctx:
        return sensor_def.evaluate_tick(ctx)


def expected_omny_ids(landing: Path) -> dict[str, set[str]]:
    """The events layer, computed independently in plain Python from the Omny files."""
    copies = []  # (event_id, event_hour, arrival_hour, file, line)
    for path in sorted((landing / "omny").rglob("*.jsonl.gz")):
        d = zlib.decompressobj(wbits=31)
        data = d.decompress(path.read_bytes())
        if not d.eof:
            continue  # truncated: quarantined whole
        name = path.name
        arrival = datetime.strptime(name[:13], "%Y-%m-%dT%H").replace(tzinfo=UTC)
        for line_no, line in enumerate(data.decode().splitlines(), start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not (rec.get("EventId") and rec.get("Program", {}).get("Id") and rec.get("Clip", {}).get("Id")):
                continue
            ts = datetime.fromisoformat(rec["Download"]["DownloadedAtUtc"].replace("Z", "+00:00")).astimezone(UTC)
            copies.append((rec["EventId"], ts.replace(minute=0, second=0, microsecond=0), arrival, str(path), line_no))
    hours_by_id = defaultdict(set)
    for event_id, hour, *_ in copies:
        hours_by_id[event_id].add(hour)
    expected = defaultdict(set)
    for event_id, hours in hours_by_id.items():
        previous = None
        for hour in sorted(hours):
            if previous is None or previous < hour - timedelta(hours=24):
                expected[format_hour(hour)].add(event_id)
            previous = hour
    return dict(expected)


def events_ids(lake: Path, source: str) -> dict[str, set[str]]:
    """The event ids of each event hour of `source`'s events layer (none twice in an hour)."""
    out = {}
    for folder in sorted((lake / source / "events").glob("event_hour=*")):
        files = [str(f) for f in sorted(folder.glob("*.parquet"))]
        ids = [r[0] for r in duckdb.sql(f"SELECT event_id FROM read_parquet({files}, hive_partitioning = false)").fetchall()] if files else []
        assert len(ids) == len(set(ids)), f"duplicate ids in {folder}"
        out[folder.name.split("=", 1)[1]] = set(ids)
    return out
