"""`python -m fake_vendors atomic|altis`: a fake vendor API on loopback serving sample data of the
last hours or days, printing what to set and what to run to pull it; Ctrl-C stops it."""

from __future__ import annotations

import argparse
import secrets
import signal
import sys
import threading
from datetime import datetime, timedelta, timezone

from fake_vendors.altis import FakeAltis
from fake_vendors.atomic import FakeAtomic
from orchestration.pullers import arrival_hour_of
from orchestration.settings import format_hour

UTC = timezone.utc
CLI = ".venv/bin/python -m orchestration"


def _atomic(args: argparse.Namespace) -> tuple[object, list[str]]:
    token = secrets.token_urlsafe(16)  # a fresh one each start: nothing to keep out of the repo
    fake = FakeAtomic(token, args.environment_id, port=args.port)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # the last hour that ended
    keys = fake.add_samples(end - timedelta(hours=args.hours), args.hours, args.seed)
    first, last = keys[0], f"{end + timedelta(hours=1):%Y-%m-%dT%H}"
    return fake, [
        f"fake Atomic batched analytics API on {fake.base_url}: sample batch keys {keys[0]} .. {keys[-1]} "
        "(ndjson, csv, parquet), file URLs expiring after 15 minutes",
        "In another shell, from the repo root:",
        f"export ATOMIC_API_URL={fake.base_url} ATOMIC_ENVIRONMENT_ID={args.environment_id} ATOMIC_API_TOKEN={token}",
        f"{CLI} pull atomic --start {first} --end {last}",
        f"{CLI} backfill --start {first} --end {last} --sources atomic",
    ]


def _altis(args: argparse.Namespace) -> tuple[object, list[str]]:
    password = " ".join(secrets.token_hex(2) for _ in range(6))  # shaped like a WordPress application password
    fake = FakeAltis(args.username, password, port=args.port)
    today = datetime.now(UTC).date()
    days = fake.add_samples(today - timedelta(days=args.days), args.days, args.seed)
    return fake, [
        f"fake Altis analytics events API on {fake.base_url}: sample days {days[0]} .. {days[-1]} (json, csv)",
        "In another shell, from the repo root:",
        f"export ALTIS_URL={fake.base_url} ALTIS_USERNAME={args.username} ALTIS_APP_PASSWORD='{password}'",
        f"{CLI} pull altis --start {days[0]} --end {today}",
        f"{CLI} backfill --start {format_hour(arrival_hour_of(days[0]))} "
        f"--end {format_hour(arrival_hour_of(days[-1]) + timedelta(hours=1))} --sources altis",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fake_vendors", description=__doc__)
    sub = parser.add_subparsers(dest="vendor", required=True)
    a = sub.add_parser("atomic", help="Atomic's batched analytics API with the last hours of sample batches")
    a.add_argument("--port", type=int, default=8701, help="0: any free port")
    a.add_argument("--hours", type=int, default=24, help="sample batch keys up to the last hour that ended")
    a.add_argument("--environment-id", default="sample-env")
    a.add_argument("--seed", type=int, default=7)
    t = sub.add_parser("altis", help="Altis's analytics events endpoint with the last days of sample events")
    t.add_argument("--port", type=int, default=8702, help="0: any free port")
    t.add_argument("--days", type=int, default=1, help="sample days up to yesterday (UTC)")
    t.add_argument("--username", default="exporter")
    t.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    fake, lines = (_atomic if args.vendor == "atomic" else _altis)(args)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with fake:
        print("\n".join(lines), flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
