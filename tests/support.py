"""Helpers the automation tests share: an Omny export file, a warehouse on temp folders, a sensor tick."""

import gzip
import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg

from orchestration.definitions import build_definitions
from orchestration.settings import Settings

UTC = timezone.utc


def omny_file(landing: Path, arrival: datetime, name: str, events: list[tuple[str, datetime]]) -> None:
    d = arrival
    path = landing / f"omny/{d:%Y}/{d:%Y-%m}/{d:%Y-%m-%d}/{d:%Y-%m-%dT%H}10_000000.000_{name}.jsonl.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"EventId": i, "Program": {"Id": "p"}, "Clip": {"Id": "c"},
                         "Download": {"DownloadedAtUtc": ts.strftime("%Y-%m-%dT%H:%M:%SZ")}}) for i, ts in events]
    path.write_bytes(gzip.compress("\n".join(lines).encode()))


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
