"""`python -m orchestration generate | backfill | demo` — for the README, scripts and cron alike."""

from __future__ import annotations

import argparse
import gc
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from orchestration.report import print_table
from orchestration.settings import Settings, format_hour, parse_hour

DEMO_START = "2026-01-05T00"
DEMO_HOURS = 24
TABLES_QUERY = ("select schema_name || '.' || table_name as relation, estimated_size as rows from duckdb_tables() "
                "order by schema_name = 'marts' desc, 1")
BACKFILL = ".venv/bin/python -m orchestration backfill"
DEMO_QUERY = 'make sql Q="select source, count(*) as sessions from marts.fct_sessions group by 1 order by 1"'


def _progress(line: str) -> None:
    print(line, flush=True)


def cmd_generate(args: argparse.Namespace) -> int:
    from sample_exports import SOURCES, generate_all

    sources = tuple(args.sources.split(",")) if args.sources else SOURCES
    summaries = generate_all(Path(args.out), parse_hour(args.start), args.hours, args.seed, sources)
    print(f"Sample exports written to {args.out}")
    print_table(["source", "files", "records", "duplicates", "late", "malformed", "missing_required"],
                [[s.source, s.files, s.records, s.duplicates, s.late, s.malformed, s.missing_required] for s in summaries])
    return 0


@contextmanager
def _importing():
    """A command's imports with the garbage collector off: they make many objects and free few, and
    its collections during them were a fifth of their time (~0.2 s of a backfill's start). What
    they loaded lives as long as the process: the collector need not walk it again on every
    collection of the run either (~2 % of a backfill's CPU)."""
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()


def cmd_backfill(args: argparse.Namespace) -> int:
    with _importing():
        from orchestration.backfill import run_backfill
    settings = Settings.from_env()
    sources = args.sources.split(",") if args.sources else None
    report = run_backfill(settings, parse_hour(args.start), parse_hour(args.end), sources, marts=not args.no_marts,
                          progress=_progress)
    report.print()
    return 0 if report.ok else 1


def cmd_contracts(args: argparse.Namespace) -> int:
    from orchestration.contracts import CONTRACTS_DIR, ContractError, load_contract, mart_contract, source_contract
    from orchestration.dbt_yaml import stale_files, write_dbt_yaml

    failed = 0
    for path in sorted(CONTRACTS_DIR.rglob("*.yaml")):
        try:
            if path.parent.name == "sources":
                c = source_contract(path, strict=True)
                print(f"ok    {path.relative_to(CONTRACTS_DIR)}  ({len(c.fields)} fields, id: {c.id_field or 'fingerprint'})")
            elif path.parent.name == "lake":  # generated from sources/: the stale check below compares them
                doc = load_contract(path, strict=True)
                print(f"ok    {path.relative_to(CONTRACTS_DIR)}  ({len(doc.schema_[0].properties or [])} columns, "
                      f"the events layer, generated)")
            else:
                m = mart_contract(path, strict=True)
                print(f"ok    {path.relative_to(CONTRACTS_DIR)}  ({len(m.columns)} columns, key: {', '.join(m.primary_key)})")
        except ContractError as exc:
            failed += 1
            print(f"FAIL  {exc}")
    if failed:
        return 1
    if args.write_dbt:
        for path in write_dbt_yaml():
            print(f"wrote {path}")
    elif stale_files():
        print("FAIL  the dbt schema files are out of date with the contracts: "
              "python -m orchestration contracts --write-dbt")
        return 1
    if args.datacontract:
        return _datacontract(Settings.from_env())
    return 0


def _datacontract(settings: Settings) -> int:
    """datacontract-cli (its own environment) on every contract: lint, then test against the data."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from orchestration.contracts import CONTRACTS_DIR
    from orchestration.datacontract_cli import ToolMissing, datacontract_lint, datacontract_test, testable_contracts

    failed = 0
    try:
        # Each check is its own datacontract process: run them side by side, in order of output.
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
            outcomes = list(pool.map(datacontract_lint, sorted(CONTRACTS_DIR.rglob("*.yaml"))))
            outcomes += list(pool.map(lambda p: datacontract_test(p, settings), testable_contracts()))
    except ToolMissing as exc:
        print(f"FAIL  {exc}")
        return 2
    for o in outcomes:
        name = f"{o.command:<5} {o.path.relative_to(CONTRACTS_DIR)}"
        if o.skipped:
            failed += 1
            print(f"FAIL  {name}: {o.skipped}")
        elif o.ok:
            said = [line.strip() for line in o.output.splitlines() if "Data contract " in line]
            print(f"ok    {name}  ({said[-1] if said else 'no summary'})")
        else:
            failed += 1
            print(f"FAIL  {name}\n{o.output}")
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sample_exports import generate_all

    settings = Settings.from_env()
    if settings.landing.startswith("s3://"):
        print("demo writes sample files to a local landing folder: unset WAREHOUSE_LANDING or point it at a folder",
              file=sys.stderr)
        return 2
    start = parse_hour(DEMO_START)
    summaries = generate_all(Path(settings.landing), start, DEMO_HOURS, seed=args.seed)
    print(f"Generated {sum(s.files for s in summaries)} sample export files for {DEMO_HOURS} hours from "
          f"{DEMO_START} into {settings.landing}")
    # One more hour: daily exports of the demo day arrive at the hour the day ended.
    end = start + timedelta(hours=DEMO_HOURS + 1)
    print(f"Backfilling arrival hours [{format_hour(start)}, {format_hour(end)}) ...\n")
    with _importing():
        from orchestration.backfill import run_backfill
    report = run_backfill(settings, start, end, None, progress=_progress)
    report.print()
    if report.ok:
        print(f"\nThe lake is in {settings.lake}; the marts are in {settings.duckdb_path}. Query them:\n"
              f"  {DEMO_QUERY}\n"
              "Browse everything in the Dagster UI: make dev  (http://127.0.0.1:3000)")
    return 0 if report.ok else 1


def _as_bigint(result):
    """DuckDB sums BIGINT counts into HUGEINT (INT128): show them as BIGINT when they fit."""
    import duckdb

    if not any(str(t) == "HUGEINT" for t in result.types):
        return result
    from orchestration.sql import ident

    quoted = [ident(c) for c in result.columns]
    casts = ", ".join(f"{q}::BIGINT AS {q}" if str(t) == "HUGEINT" else q for q, t in zip(quoted, result.types))
    try:
        return result.project(casts).execute()
    except (duckdb.ConversionException, duckdb.OutOfRangeException):  # beyond BIGINT: keep the exact HUGEINT
        return result


def cmd_receive(args: argparse.Namespace) -> int:
    """Serve the receiver of Altis's push hook until interrupted; 2 without ALTIS_HOOK_SECRET."""
    import logging

    from orchestration.receivers.altis import PATH, SECRET_HEADER, AltisHookNotConfigured, make_server
    from orchestration.resources import build_resources

    settings = Settings.from_env()
    try:
        server = make_server(build_resources(settings, dbt=False)["landing"].store(), settings.altis_hook_secret,
                             settings.altis_hook_max_bytes, args.host, args.port)
    except AltisHookNotConfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    host, port = server.server_address[:2]
    print(f"receiving Altis batches on http://{host}:{port}{PATH} (header {SECRET_HEADER}), into {settings.landing}; "
          "Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    """Pull a vendor that must be polled into the landing area: Atomic's batch keys (hours ended) in
    [start, end), or Altis's days in [start, end). Prints the ledger; exits 1 when an hour or a day
    could not be pulled (hours not ready yet are reported, not errors), 2 when misconfigured."""
    from datetime import date

    from orchestration.pullers import NotConfigured, arrival_hour_of
    from orchestration.resources import build_resources

    settings = Settings.from_env()
    store = build_resources(settings, dbt=False)["landing"].store()
    try:
        if args.vendor == "atomic":
            from orchestration.pullers.atomic import AtomicApiError, pull_atomic

            try:
                report = pull_atomic(settings, store, parse_hour(args.start), parse_hour(args.end))
            except NotConfigured as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            except AtomicApiError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 1
            rows = [[key, len(h.written), h.bytes_written, len(h.already_there), "yes" if h.empty else "",
                     "yes" if h.not_processed else "", h.expired_retried, "yes" if h.expired_left else "",
                     "yes" if h.too_old else "", h.failed] for key, h in sorted(report.hours.items())]
            print_table(["batch_key", "written", "bytes", "already_there", "empty", "not_ready", "expired_retried",
                         "left_expired", "too_old", "failed"], rows)
            print(report.summary())
            if report.written:
                print(f"next, land them: {BACKFILL} --start {args.start} --end {args.end} --sources atomic")
            return 1 if report.keys("failed") or report.keys("expired_left") or report.keys("too_old") else 0
        from orchestration.pullers.altis import AltisApiError, pull_altis

        first, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
        failed = written = 0
        for n in range((end - first).days):
            day = first + timedelta(days=n)
            try:
                report = pull_altis(settings, store, day)
            except NotConfigured as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            except AltisApiError as exc:
                failed += 1
                print(f"FAILED altis {day}: {exc}")
                continue
            written += report.written
            print(report.summary())
        if written:  # the arrival hours of the files of the first and last day
            last = arrival_hour_of(f"{end - timedelta(days=1)}") + timedelta(hours=1)
            print(f"next, land them: {BACKFILL} --start {format_hour(arrival_hour_of(args.start))} "
                  f"--end {format_hour(last)} --sources altis")
        return 1 if failed else 0
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_sql(args: argparse.Namespace) -> int:
    """A query on the marts, read-only, printed as a table (between runs: it waits for the dbt step)."""
    import duckdb

    from orchestration.storage import duckdb_file_lock

    settings = Settings.from_env()
    if not Path(settings.duckdb_path).exists():
        print(f"error: no warehouse at {settings.duckdb_path} (WAREHOUSE_DUCKDB) yet: run `make demo` or a backfill first",
              file=sys.stderr)
        return 2
    query = " ".join(args.query).strip() or TABLES_QUERY
    with duckdb_file_lock(settings.duckdb_path, settings.duckdb_lock_timeout_seconds, "sql"):
        con = duckdb.connect(settings.duckdb_path, read_only=True)
        try:
            result = con.sql(query)
            if result is not None:
                _as_bigint(result).show(max_rows=args.max_rows, max_width=200)
        except duckdb.Error as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            con.close()
    return 0


def cmd_dbt(args: argparse.Namespace) -> int:
    """dbt on this warehouse's lake and DuckDB file (the settings' paths, passed as vars)."""
    import json
    import subprocess

    from orchestration.dbt_project import DBT_EXECUTABLE, DBT_PROJECT_DIR
    from orchestration.storage import duckdb_file_lock

    settings = Settings.from_env()
    Path(settings.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    variables = {"lake_root": settings.lake, "duckdb_path": settings.duckdb_path}
    command = [DBT_EXECUTABLE, *args.dbt_args, "--project-dir", str(DBT_PROJECT_DIR),
               "--profiles-dir", str(DBT_PROJECT_DIR), "--vars", json.dumps(variables)]
    with duckdb_file_lock(settings.duckdb_path, settings.duckdb_lock_timeout_seconds, "dbt " + " ".join(args.dbt_args[:2])):
        return subprocess.call(command, cwd=DBT_PROJECT_DIR)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write realistic sample exports for every source")
    g.add_argument("--out", required=True, help="landing folder to write into")
    g.add_argument("--start", required=True, help="first arrival hour, YYYY-MM-DDTHH (UTC)")
    g.add_argument("--hours", type=int, default=24, help="how many arrival hours")
    g.add_argument("--seed", type=int, default=7)
    g.add_argument("--sources", help="comma-separated subset of sources")
    g.set_defaults(func=cmd_generate)

    b = sub.add_parser("backfill", help="land arrival hours [start, end), then every event hour they touched")
    b.add_argument("--start", required=True, help="YYYY-MM-DDTHH (UTC), inclusive")
    b.add_argument("--end", required=True, help="YYYY-MM-DDTHH (UTC), exclusive")
    b.add_argument("--sources", help="comma-separated subset of sources")
    b.add_argument("--no-marts", action="store_true", help="land and rebuild the event hours only, not the dbt marts")
    b.set_defaults(func=cmd_backfill)

    c = sub.add_parser("contracts", help="validate every data contract against the ODCS v3 JSON schema")
    c.add_argument("--write-dbt", action="store_true",
                   help="regenerate dbt_project's schema YAML (sources, mart contracts and tests) and the events "
                        "layer's contracts (data_contracts/lake/) from the contracts")
    c.add_argument("--datacontract", action="store_true",
                   help="then run datacontract-cli (.venv-datacontract): lint every contract, test the marts against "
                        "the DuckDB file and the events layer against the lake (`make contracts-test`)")
    c.set_defaults(func=cmd_contracts)

    t = sub.add_parser("dbt", help="run dbt on the configured lake and DuckDB file, e.g. `dbt docs generate`")
    t.add_argument("dbt_args", nargs=argparse.REMAINDER, help="dbt's own arguments")
    t.set_defaults(func=cmd_dbt)

    pl = sub.add_parser("pull", help="pull a vendor that must be polled into the landing area (ATOMIC_* / ALTIS_* settings)")
    pl.add_argument("vendor", choices=["atomic", "altis"])
    pl.add_argument("--start", required=True, help="atomic: first batch key YYYY-MM-DDTHH; altis: first day YYYY-MM-DD")
    pl.add_argument("--end", required=True, help="exclusive, in the same form")
    pl.set_defaults(func=cmd_pull)

    rv = sub.add_parser("receive", help="receive Altis's push hook batches into the landing area (ALTIS_HOOK_SECRET)")
    rv.add_argument("vendor", choices=["altis"])
    rv.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to listen beyond this machine (behind TLS)")
    rv.add_argument("--port", type=int, default=8710)
    rv.set_defaults(func=cmd_receive)

    q = sub.add_parser("sql", help="run a query on the marts (read-only) and print it; no query: list the tables")
    q.add_argument("query", nargs="*", help="the SQL, e.g. \"select source, count(*) from marts.fct_sessions group by 1\"")
    q.add_argument("--max-rows", type=int, default=40)
    q.set_defaults(func=cmd_sql)

    d = sub.add_parser("demo", help="generate a day of samples into the landing folder and backfill it")
    d.add_argument("--seed", type=int, default=7)
    d.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
