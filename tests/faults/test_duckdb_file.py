"""The DuckDB file of the marts across processes: overlapping backfills wait for it instead of
failing, a holder that keeps it too long is named, dbt's own errors reach the report, and dbt's
target folder does not grow with every run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from orchestration.backfill import run_backfill
from orchestration.dbt_project import DBT_PROJECT_DIR
from orchestration.settings import Settings, format_hour
from sample_exports import generate_all
from support import events_ids, expected_omny_ids

UTC = timezone.utc
START = datetime(2026, 1, 5, 10, tzinfo=UTC)
END = START + timedelta(hours=1)
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("landing")
    generate_all(folder, START, 1, seed=21, sources=("omny", "airkit"))
    return folder


def _env(landing: Path, root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # each process: its own ephemeral instance
    env.update({"WAREHOUSE_LANDING": str(landing), "WAREHOUSE_LAKE": str(root / "lake"),
                "WAREHOUSE_DUCKDB": str(root / "warehouse.duckdb"), "WAREHOUSE_START": "2026-01-01T00", **extra})
    return env


def _hold_lock(duckdb_path: Path, purpose: str) -> subprocess.Popen:
    """Another process holding the DuckDB file the way our own processes do, until told to stop."""
    code = ("import sys\nfrom orchestration.storage import duckdb_file_lock\n"
            f"with duckdb_file_lock({str(duckdb_path)!r}, 60, {purpose!r}):\n"
            "    print('held', flush=True)\n    sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(timeout=30)


def _our_dbt_folders(duckdb_path: Path) -> list[Path]:
    """dbt target folders that a run on this DuckDB file left behind (its path is in their dbt.log)."""
    target = DBT_PROJECT_DIR / "target"
    folders = [*target.glob("runs/*"), *target.glob("warehouse_dbt-*")]
    return [f for f in folders if (f / "dbt.log").is_file() and str(duckdb_path) in (f / "dbt.log").read_text(errors="replace")]


def _wait_for(path: Path, text: str, processes: list[subprocess.Popen], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path}"
        assert all(p.poll() is None for p in processes), path.read_text()
        time.sleep(0.2)


def test_two_overlapping_backfills_both_succeed_the_second_waiting_for_the_duckdb_file(landing, tmp_path):
    """Two `python -m orchestration backfill` processes (each with its own Dagster instance, so no
    Dagster pool spans them) reach their dbt step while the file is held: both wait, take it in
    turn, succeed, and the marts hold every row of both."""
    duckdb_path = tmp_path / "warehouse.duckdb"
    holder = _hold_lock(duckdb_path, "a test holding the file")
    processes, logs = [], []
    try:
        for source in ("omny", "airkit"):
            log = tmp_path / f"{source}.log"
            command = [sys.executable, "-m", "orchestration", "backfill", "--start", format_hour(START),
                       "--end", format_hour(END), "--sources", source]
            with log.open("w") as out:
                processes.append(subprocess.Popen(command, cwd=REPO, env=_env(landing, tmp_path), stdout=out,
                                                  stderr=subprocess.STDOUT))
            logs.append(log)
        for log in logs:  # both dbt steps are waiting for the file
            _wait_for(log, "waiting up to", processes)
    finally:
        _release(holder)
    for process, log in zip(processes, logs):
        assert process.wait(timeout=240) == 0, log.read_text()
    for log in logs:
        text = log.read_text()
        assert f"held by pid {holder.pid}" in text and "a test holding the file" in text
        assert "Could not set lock" not in text and "run_results.json" not in text

    omny = expected_omny_ids(landing)
    airkit = events_ids(tmp_path / "lake", "airkit")
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        downloads = con.sql("select sum(downloads) from marts.fct_download_geo_daily").fetchone()[0]
        airkit_events = con.sql("select sum(events) from marts.fct_platform_hourly where source = 'airkit'").fetchone()[0]
    assert downloads == sum(len(ids) for ids in omny.values())
    assert airkit_events == sum(len(ids) for ids in airkit.values())
    assert _our_dbt_folders(duckdb_path) == []  # dbt's target folder kept nothing of these runs


def test_a_duckdb_file_held_too_long_fails_the_dbt_step_naming_the_holder(landing, tmp_path, monkeypatch):
    for name, value in _env(landing, tmp_path, WAREHOUSE_DUCKDB_LOCK_TIMEOUT="2").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env()
    holder = _hold_lock(Path(settings.duckdb_path), "an analyst's export")
    try:
        report = run_backfill(settings, START, END, ["omny"])
    finally:
        _release(holder)
    assert report.landed["omny"]["rows_landed"] > 0
    last = report.errors[-1]  # what `backfill` prints last
    assert last.startswith("warehouse_dbt: ") and f"held by pid {holder.pid}" in last, last
    assert "an analyst's export" in last and "since " in last and "WAREHOUSE_DUCKDB_LOCK_TIMEOUT" in last, last


def test_when_dbt_itself_fails_the_report_carries_its_error_not_a_missing_run_results(landing, tmp_path, monkeypatch):
    """A process outside the warehouse (an analyst's DuckDB, writable) holds DuckDB's own lock:
    dbt cannot open the file, and the step's error is dbt's."""
    for name, value in _env(landing, tmp_path, WAREHOUSE_DUCKDB_LOCK_TIMEOUT="5").items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    settings = Settings.from_env()
    code = (f"import duckdb, sys\ncon = duckdb.connect({settings.duckdb_path!r})\n"
            "print('open', flush=True)\nsys.stdin.read()\n")
    analyst = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert analyst.stdout.readline().strip() == "open"
        report = run_backfill(settings, START, END, ["omny"])
    finally:
        analyst.stdin.close()
        analyst.wait(timeout=30)
    last = report.errors[-1]
    assert last.startswith("warehouse_dbt: dbt build failed: "), last
    assert "Could not set lock on file" in last and f"PID {analyst.pid}" in last, last
    assert "run_results.json" not in last and "FileNotFoundError" not in last
    kept = _our_dbt_folders(Path(settings.duckdb_path))  # the failed run's dbt.log is kept, marked
    assert len(kept) == 1 and (kept[0] / "FAILED").exists()
    shutil.rmtree(kept[0])
