"""Does one new hour cost the same after 30 days of history as after one day?

    uv run python bench/history_bench.py [--per-hour 2000]

Lands HISTORY hours of Omny files (per-hour events, 5% late), builds their events, then times
landing one more arrival hour and rebuilding the event hours it affects — after 24 hours of
history and after 720 — with the same file. Results go in bench/README.md.
"""

from __future__ import annotations

import argparse
import shutil
import time
from datetime import timedelta

from omny_bench import OUT, START, generate

from orchestration.contracts import load_source_contracts
from orchestration.lake.events import build_event_hours
from orchestration.lake.landed import affected_hours, land_hours
from orchestration.partitions import hours_between
from orchestration.resources import LAKE_MEMORY_LIMIT
from orchestration.settings import parse_hour
from orchestration.storage import LocalStore, duckdb_connection


def one_new_hour(history: int, per_hour: int) -> float:
    landing, lake = OUT / f"hist-landing-{history}", OUT / f"hist-lake-{history}"
    shutil.rmtree(landing, ignore_errors=True)
    shutil.rmtree(lake, ignore_errors=True)
    generate(landing, per_hour * (history + 1), history + 1)
    contract = load_source_contracts()["omny"]
    con = duckdb_connection(memory_limit=LAKE_MEMORY_LIMIT)
    land, store = LocalStore(str(landing)), LocalStore(str(lake))
    affected = affected_hours(land_hours(contract, land, store, hours_between(START, START + timedelta(hours=history)), con))
    build_event_hours(contract, store, parse_hour(min(affected)), parse_hour(max(affected)) + timedelta(hours=1), con)
    new = START + timedelta(hours=history)
    t = time.perf_counter()
    affected = affected_hours(land_hours(contract, land, store, [new], con))
    build_event_hours(contract, store, parse_hour(min(affected)), parse_hour(max(affected)) + timedelta(hours=1), con)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-hour", type=int, default=2000)
    args = parser.parse_args()
    for history in (720, 24, 720):
        print(f"one new hour after {history:4d} hours of history: {one_new_hour(history, args.per_hour):.2f} s")


if __name__ == "__main__":
    main()
