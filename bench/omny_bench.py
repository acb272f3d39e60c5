"""Omny at scale: landing + events for N events over H hours, against DuckDB's bare read_json.

    uv run python bench/omny_bench.py [--events 2000000] [--hours 48]

Prints wall time and peak memory (max RSS of a child process) of: DuckDB read_json of the same
files (the parse floor), landing all arrival hours (one run), building all event hours (one run),
and one more arrival hour on top of the history. Numbers go in bench/README.md, never in a test.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the Omny file writer the tests use
from omny_files import write_omny_file  # noqa: E402

from bench_dirs import OUT  # noqa: E402

UTC = timezone.utc
START = datetime(2026, 2, 1, tzinfo=UTC)


def generate(landing: Path, events: int, hours: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    per_hour = events // hours
    for h in range(hours):
        arrival = START + timedelta(hours=h)
        records = []
        for i in range(per_hour):
            late = rng.random() < 0.05
            ts = arrival + timedelta(seconds=rng.randrange(3600)) - (timedelta(hours=rng.randrange(1, 24)) if late else timedelta(0))
            eid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            records.append({
                "EventId": eid, "Program": {"Id": "27aa1c43-82bf-4b8a-9e78-a93b002c0a85", "Name": f"Program {i % 20}"},
                "Clip": {"Id": f"clip-{i % 200}", "Title": "Etiam porta sem malesuada magna mollis euismod.", "AudioDurationSeconds": 5105.251},
                "Download": {"RawUserAgent": "AppleCoreMedia/1.0.0.15A402 (iPhone; U; CPU OS 11_0_1 like Mac OS X; en_au)",
                             "DownloadedAtUtc": ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z",
                             "IpAddress": f"203.0.{rng.randrange(256)}.{rng.randrange(256)}",
                             "Device": {"Type": "Mobile", "Brand": "Apple", "Family": "iPhone"},
                             "OS": {"Family": "iOS", "MajorVersion": "17"}, "Source": "Podcast",
                             "Geo": {"Country": "Australia", "CountryIsoCode": "AU", "State": "NSW", "City": "Sydney"}}})
            if rng.random() < 0.03:  # at-least-once
                records.append(records[-1])
        write_omny_file(landing, arrival, str(uuid.UUID(int=rng.getrandbits(128))), records)


def _measure(fn, args, queue):
    import orchestration.lake.events, orchestration.lake.landed, orchestration.resources  # noqa: F401 (imports are not the work)
    t = time.perf_counter()
    result = fn(*args)
    queue.put((time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, result))


def measured(fn, *args):
    """Run fn in a fresh process: (seconds, peak MB, result)."""
    queue = mp.get_context("fork").Queue()
    p = mp.get_context("fork").Process(target=_measure, args=(fn, args, queue))
    p.start()
    out = queue.get()
    p.join()
    return out


def read_json_floor(landing: Path) -> int:
    import duckdb
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t AS SELECT * FROM read_json('{landing}/omny/**/*.jsonl.gz')")
    return con.execute("SELECT count(*) FROM t").fetchone()[0]


def land(landing: Path, lake: Path, first: datetime, hours: int):
    from orchestration.contracts import load_source_contracts
    from orchestration.lake.landed import affected_hours, land_hours
    from orchestration.partitions import hours_between
    from orchestration.resources import LAKE_MEMORY_LIMIT
    from orchestration.storage import LocalStore, duckdb_connection
    ledgers = land_hours(load_source_contracts()["omny"], LocalStore(str(landing)), LocalStore(str(lake)),
                                   hours_between(first, first + timedelta(hours=hours)),
                                   duckdb_connection(memory_limit=LAKE_MEMORY_LIMIT))
    return sum(l.rows_landed for l in ledgers), affected_hours(ledgers)


def build(lake: Path, affected: list[str]):
    from orchestration.contracts import load_source_contracts
    from orchestration.lake.events import build_event_hours
    from orchestration.resources import LAKE_MEMORY_LIMIT
    from orchestration.settings import parse_hour
    from orchestration.storage import LocalStore, duckdb_connection
    ledgers = build_event_hours(load_source_contracts()["omny"], LocalStore(str(lake)), parse_hour(min(affected)),
                                parse_hour(max(affected)) + timedelta(hours=1), duckdb_connection(memory_limit=LAKE_MEMORY_LIMIT))
    return sum(l.rows_kept for l in ledgers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--hours", type=int, default=48)
    args = parser.parse_args()
    landing, lake = OUT / f"landing-{args.events}-{args.hours}", OUT / f"lake-{args.events}-{args.hours}"
    if not landing.exists():
        print(f"generating {args.events} events over {args.hours} hours into {landing} ...")
        generate(landing, args.events, args.hours)
    import shutil
    shutil.rmtree(lake, ignore_errors=True)
    s, mb, n = measured(read_json_floor, landing)
    print(f"DuckDB read_json (floor): {s:7.1f} s  {mb:7.0f} MB  {n} rows")
    s1, mb1, (landed, affected) = measured(land, landing, lake, START, args.hours)
    print(f"landed, {args.hours} arrival hours:  {s1:7.1f} s  {mb1:7.0f} MB  {landed} rows")
    s2, mb2, kept = measured(build, lake, affected)
    print(f"events, {len(affected)} event hours:   {s2:7.1f} s  {mb2:7.0f} MB  {kept} rows kept")
    print(f"landing + events: {s1 + s2:.1f} s = {(s1 + s2) / s:.2f} x read_json; peak {max(mb1, mb2):.0f} MB")


if __name__ == "__main__":
    main()
