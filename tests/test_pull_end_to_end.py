"""A new user's way through a puller, as the README shows it: start a fake vendor with
`python -m fake_vendors`, run in a shell the commands it prints (export, pull, backfill), query the
marts. The pulled files must give the same rows as the same files dropped in by hand."""

from __future__ import annotations

import os
import random
import re
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from orchestration import cli
from sample_exports import atomic as atomic_gen

REPO = Path(__file__).resolve().parent.parent
UTC = timezone.utc


def warehouse(root: Path) -> dict[str, str]:
    return {"WAREHOUSE_LANDING": str(root / "landing"), "WAREHOUSE_LAKE": str(root / "lake"),
            "WAREHOUSE_DUCKDB": str(root / "warehouse.duckdb"), "WAREHOUSE_START": "2026-01-01T00"}


def start_fake(vendor: str, *args: str) -> tuple[subprocess.Popen, list[str]]:
    """The fake as the README starts it (on any free port), and the commands it prints."""
    readme = (REPO / "README.md").read_text()
    command = f".venv/bin/python -m fake_vendors {vendor}"
    assert re.search(rf"^{re.escape(command)} ", readme, re.M), f"the README no longer starts the fake as {command}"
    fake = subprocess.Popen(["bash", "-c", f"exec {command} {' '.join(args)} --port 0"], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in fake.stdout:
        lines.append(line.rstrip("\n"))
        if " backfill " in line:
            return fake, lines
    fake.kill()
    pytest.fail("the fake printed no commands:\n" + "\n".join(lines))


def shell(commands: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(["bash", "-ec", "\n".join(commands)], cwd=REPO, capture_output=True, text=True,
                            timeout=400, env={**{k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}, **env})
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result


def lake_rows(root: Path, source: str, layer: str) -> list[tuple]:
    with duckdb.connect() as con:
        return con.sql(f"select * from read_parquet('{root}/lake/{source}/{layer}/**/*.parquet', hive_partitioning=false) "
                       "order by all").fetchall()


def test_atomic_from_the_fake_api_to_the_marts_gives_the_rows_of_files_dropped_by_hand(tmp_path: Path, monkeypatch):
    pulled, by_hand = tmp_path / "pulled", tmp_path / "by_hand"
    fake, printed = start_fake("atomic", "--hours", "3")
    try:
        export, pull, backfill = (next(line for line in printed if line.startswith(p)) for p in
                                  ("export ATOMIC_API_URL=", ".venv/bin/python -m orchestration pull atomic",
                                   ".venv/bin/python -m orchestration backfill"))
        query = 'make sql Q="select sum(events) from marts.fct_platform_hourly where source = \'atomic\'"'
        result = shell([export, pull, backfill, query], warehouse(pulled))
    finally:
        fake.terminate()
        fake.wait(10)
    assert "3 hours asked;" in result.stdout and "0 hours failed" in result.stdout, result.stdout
    assert "next, land them: " + backfill in result.stdout  # pull prints the same next step

    # the same sample files, dropped into a landing folder by hand, landed and built in-process
    first = datetime.strptime(re.search(r"--start (\S+)", pull).group(1), "%Y-%m-%dT%H").replace(tzinfo=UTC)
    atomic_gen.generate(by_hand / "landing", first - timedelta(hours=1), 3, random.Random(7), formats=("ndjson",))
    pulled_files = sorted(p.relative_to(pulled / "landing") for p in (pulled / "landing" / "atomic").rglob("*.ndjson"))
    assert pulled_files == sorted(p.relative_to(by_hand / "landing") for p in (by_hand / "landing" / "atomic").rglob("*.ndjson"))
    for k, v in warehouse(by_hand).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    hand_args = re.search(r"--start .*", backfill).group(0).split()
    assert cli.main(["backfill", *hand_args, "--no-marts"]) == 0

    for layer in ("landed", "events", "quarantine"):
        assert lake_rows(pulled, "atomic", layer) == lake_rows(by_hand, "atomic", layer), layer
    events = len(lake_rows(pulled, "atomic", "events"))
    assert events > 100
    assert re.search(rf"│ *{events} *│", result.stdout), result.stdout[-2000:]  # every event in the mart


def test_altis_from_the_fake_api_lands_yesterday(tmp_path: Path):
    fake, printed = start_fake("altis")
    try:
        export, pull, backfill = (next(line for line in printed if line.startswith(p)) for p in
                                  ("export ALTIS_URL=", ".venv/bin/python -m orchestration pull altis",
                                   ".venv/bin/python -m orchestration backfill"))
        result = shell([export, pull, backfill + " --no-marts"], warehouse(tmp_path))  # marts: the Atomic test
    finally:
        fake.terminate()
        fake.wait(10)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    assert (tmp_path / "landing" / "altis" / f"{yesterday}.json").is_file(), result.stdout
    assert "written" in result.stdout and "next, land them: " + backfill in result.stdout
    password = re.search(r"ALTIS_APP_PASSWORD='([^']+)'", export).group(1)
    assert password not in result.stdout + result.stderr
    assert len(lake_rows(tmp_path, "altis", "events")) > 50
