"""A backfill through Dagster: land the arrival hours of a window (one run), then rebuild every
event hour they affected (one run), and report the ledger."""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable

import dagster as dg

from orchestration.assets.ingestion import events_key, landed_key
from orchestration.checks.marts import window_query
from orchestration.contracts import load_mart_contracts, load_source_contracts
from orchestration.definitions import build_definitions
from orchestration.partitions import range_tags
from orchestration.jobs import EVENTS_JOB, LAND_JOB, execute, mart_runs
from orchestration.report import print_table
from orchestration.resources import WarehouseResource
from orchestration.settings import LANDING_VARIABLE, Settings, format_hour, parse_hour


BACKFILL_TAG = "warehouse/launched_by"  # the runs of `python -m orchestration backfill` / `demo`


@dataclass
class BackfillReport:
    start: datetime
    end: datetime
    landed: dict[str, dict] = field(default_factory=dict)  # source -> landed metadata
    events: dict[str, dict] = field(default_factory=dict)  # source -> events metadata
    marts: dict[str, tuple[int, int]] = field(default_factory=dict)  # mart -> (rows, rows in window)
    marts_window: tuple[datetime, datetime] | None = None
    failed_checks: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duckdb_path: str = ""

    @property
    def ok(self) -> bool:
        return not self.failed_checks and not self.errors

    def print(self) -> None:
        print(f"Ledger for arrival hours [{format_hour(self.start)}, {format_hour(self.end)})")
        rows = []
        for source, m in self.landed.items():
            e = self.events.get(source, {})
            rows.append([source, m.get("files", 0), m.get("rows_read", 0), m.get("rows_landed", 0),
                         m.get("rows_quarantined", 0), e.get("duplicates_dropped", 0), m.get("late_events", 0),
                         len(m.get("event_hours_touched", [])), e.get("rows_kept", 0)])
        print_table(["source", "files", "rows_read", "landed", "quarantined", "duplicates_dropped",
                     "late_events", "event_hours_touched", "events_kept"], rows)
        for source, m in self.landed.items():
            if m.get("quarantine_reasons"):
                top = ", ".join(f"{r} ({n})" for r, n in list(m["quarantine_reasons"].items())[:3])
                print(f"  {source} quarantine: {top}")
            if m.get("beyond_dedupe_window"):
                print(f"  {source}: {m['beyond_dedupe_window']} events arrived more than 24 h late (kept)")
            if m.get("files_reported"):
                named = list(m.get("reported_files", {}).items())
                print(f"  {source}: {m['files_reported']} files landed nothing: "
                      + "; ".join(f"{k} ({r})" for k, r in named[:3]) + (" …" if m["files_reported"] > 3 else ""))
            if m.get("schema_drift"):
                drift = ", ".join(f"{f} ({n})" for f, n in list(m["schema_drift"].items())[:5])
                print(f"  {source} schema drift, fields the contract does not name (kept out of the lake): {drift}")
        if self.marts_window:
            lo, hi = self.marts_window
            print(f"\nMarts in {self.duckdb_path}, rebuilt over event hours [{format_hour(lo)}, {format_hour(hi)})")
            print_table(["mart", "rows", "rows_in_window"], [[m, *n] for m, n in self.marts.items()])
        for note in self.notes:
            print(f"NOTE {note}")
        for failure in self.failed_checks:
            print(f"FAILED CHECK {failure}")
        for error in self.errors:
            print(f"ERROR {error}")


def _instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def _combined(values: list):
    """One value from the same metadata entry of several partitions: counts add up, lists of
    hours merge, the per-hour ledgers follow one another."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, float, dict, list)):
        return first
    if isinstance(first, (int, float)):
        return sum(values)
    if isinstance(first, dict):
        out: dict = {}
        for value in values:
            for k, v in value.items():
                out[k] = out.get(k, 0) + v if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        return dict(sorted(out.items(), key=lambda kv: -kv[1])) if all(isinstance(v, int) for v in out.values()) else out
    if all(isinstance(v, str) for value in values for v in value):
        return sorted({v for value in values for v in value})
    return [v for value in values for v in value]


def _metadata(result, key: dg.AssetKey) -> dict:
    """The run's totals for `key`, summed over the metadata of each partition it materialised."""
    entries: dict[str, list] = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key == key:
            for k, v in event.materialization.metadata.items():
                entries.setdefault(k, []).append(v.value)
    return {k: _combined(values) for k, values in entries.items()}


def _run(defs: dg.Definitions, job: str, keys: list[dg.AssetKey], first: str, last: str, instance,
         report: BackfillReport):
    with contextlib.redirect_stdout(io.StringIO()):  # dbt's own log lines: the report says what matters
        result = execute(defs, job, keys, {**range_tags(first, last), BACKFILL_TAG: "cli"}, instance,
                         run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            line = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}: {evaluation.description}"
            if evaluation.severity == dg.AssetCheckSeverity.WARN:  # news (a stale layer), not a failed backfill
                report.notes.append(f"check warns: {line}")
            else:
                report.failed_checks.append(line)

    def one_line(text: str | None) -> str:
        return " ".join((text or "").split())

    def cause(error, failure=None) -> str:
        """The user's error inside Dagster's wrappers ("Error occurred while executing op ..."):
        a Failure's description, else the first error of the cause chain raised by our code or
        a library, then what caused it in turn."""
        if failure is not None and failure.description:
            return one_line(failure.description)
        chain, seen = [], 0
        while error is not None and seen < 10:
            chain.append(error)
            error, seen = error.cause or error.context, seen + 1
        own = [e for e in chain if not (e.cls_name or "").startswith("Dagster")
               or (e.cls_name or "").startswith("DagsterDbt")] or chain[-1:]
        parts = []
        for e in own[:3]:
            message = one_line(e.message)
            named, sep, rest = message.partition(": ")  # "module.Class: text" -> "Class: text"
            if sep and e.cls_name and named.rsplit(".", 1)[-1] == e.cls_name:
                message = rest
            parts.append(f"{e.cls_name}: {message}" if e.cls_name else message)
        return " <- caused by ".join(parts)

    if not result.success:
        for event in result.all_events:
            if event.is_step_failure:
                data = event.step_failure_data
                report.errors.append(f"{event.step_key}: {cause(data.error, data.user_failure_data)[:1000]}")
        if not report.errors:
            for event in result.all_events:
                if event.is_run_failure and event.event_specific_data and event.event_specific_data.error:
                    report.errors.append(f"run failed: {cause(event.event_specific_data.error)[:1000]}")
        if not report.errors:
            report.errors.append("run failed")
    return result


def run_backfill(settings: Settings, start: datetime, end: datetime, sources: list[str] | None,
                 marts: bool = True, progress: Callable[[str], None] = lambda line: None) -> BackfillReport:
    """Land [start, end), rebuild the event hours it affected, then (unless `marts` is false) the dbt
    marts; `progress` hears a line as each step starts and ends."""
    if end <= start:
        raise ValueError("--end must be after --start")
    if start < settings.start:
        raise ValueError(f"--start is before the first partition {format_hour(settings.start)} (WAREHOUSE_START)")
    defs = build_definitions(settings, marts=marts)
    known = sorted(load_source_contracts())
    sources = sources or known
    unknown = set(sources) - set(known)
    if unknown:
        raise ValueError(f"unknown sources {sorted(unknown)}; known: {known}")
    landing = defs.resources["landing"]
    if not landing.store().root_exists():
        raise ValueError(f"{LANDING_VARIABLE} points at {landing.root}, which does not exist")
    report = BackfillReport(start=start, end=end, duckdb_path=settings.duckdb_path)
    instance = _instance()

    steps = 3 if marts else 2
    hours = int((end - start) / timedelta(hours=1))
    progress(f"[1/{steps}] landing {hours} arrival hours of {', '.join(sources)} ...")
    began = time.monotonic()
    result = _run(defs, LAND_JOB, [landed_key(s) for s in sources], format_hour(start), format_hour(end - timedelta(hours=1)),
                  instance, report)
    affected: set[str] = set()
    for source in sources:
        report.landed[source] = _metadata(result, landed_key(source))
        affected.update(report.landed[source].get("event_hours_affected", []))
    del result  # its events are in the report: not held through the next run
    totals = lambda step, key: sum(m.get(key, 0) for m in getattr(report, step).values())
    progress(f"      {totals('landed', 'files')} files, {totals('landed', 'rows_landed')} rows landed, "
             f"{totals('landed', 'rows_quarantined')} quarantined ({time.monotonic() - began:.0f} s)")
    if report.ok and not any(m.get("files") or m.get("files_reported") for m in report.landed.values()):
        report.notes.append(f"no landing files in [{format_hour(start)}, {format_hour(end)}) under {landing.root}")
    before_start = sorted(h for h in affected if parse_hour(h) < settings.start)
    if before_start:
        report.notes.append(f"{len(before_start)} event hours before WAREHOUSE_START ({format_hour(settings.start)}) "
                            f"hold landed rows but have no events partition: {before_start[0]} … {before_start[-1]}")
    affected = {h for h in affected if parse_hour(h) >= settings.start}
    if report.ok and affected:
        progress(f"[2/{steps}] building {len(affected)} event hours, {min(affected)} … {max(affected)} ...")
        began = time.monotonic()
        result = _run(defs, EVENTS_JOB, [events_key(s) for s in sources], min(affected), max(affected), instance, report)
        for source in sources:
            report.events[source] = _metadata(result, events_key(source))
        progress(f"      {totals('events', 'rows_kept')} events kept, {totals('events', 'duplicates_dropped')} "
                 f"duplicates dropped ({time.monotonic() - began:.0f} s)")
    if marts and report.ok and affected:
        first, last = min(affected), max(affected)
        progress(f"[3/{steps}] building the dbt marts over event hours {first} … {last} ...")
        began = time.monotonic()
        build_marts(defs, first, last, instance, report, sources)
        progress(f"      {'done' if report.ok else 'failed'} ({time.monotonic() - began:.0f} s)")
        report.marts_window = (parse_hour(first), parse_hour(last) + timedelta(hours=1))
        report.marts = mart_summary(settings.duckdb_path, report.marts_window, settings.duckdb_lock_timeout_seconds)
    return report


def build_marts(defs: dg.Definitions, first: str, last: str, instance: dg.DagsterInstance, report: BackfillReport,
                sources: list[str] | None = None) -> None:
    """Rebuild the marts over event hours [first, last] of `sources` (all by default): the event-hour
    marts with the whole-table models in one run, then each daily mart over the days of those hours."""
    for run in mart_runs(dbt_assets(defs), sources or sorted(load_source_contracts())):
        if report.ok and run.sources:
            keys = sorted({run.partitions_def.get_partition_key_for_timestamp(parse_hour(h).timestamp())
                           for h in (first, last)}) if run.partitions_def else [first, last]
            _run(defs, run.name, list(run.keys), keys[0], keys[-1], instance, report)


def dbt_assets(defs: dg.Definitions) -> list[dg.AssetsDefinition]:
    """The assets of the dbt project (staging views and marts), one definition per partitioning."""
    return [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and any("dbt" in s.kinds for s in a.specs)]


def mart_asset_keys(defs: dg.Definitions) -> list[dg.AssetKey]:
    """Every asset the dbt project defines (staging views and marts)."""
    return sorted((k for a in dbt_assets(defs) for k in a.keys), key=str)


def mart_summary(duckdb_path: str, window: tuple[datetime, datetime],
                 lock_timeout_seconds: int | None = None) -> dict[str, tuple[int, int]]:
    """Rows of each mart, in all and in the window, as the analyst will find them. Waits (up to
    `lock_timeout_seconds`, by default WAREHOUSE_DUCKDB_LOCK_TIMEOUT) while another process has
    the file; empty when it is still held after that, or when a process outside the warehouse
    holds DuckDB's own lock on it (the dbt step then failed on it too, and the report says so)."""
    import duckdb

    from orchestration.storage import DuckDBFileBusy

    if not os.path.exists(duckdb_path):
        return {}
    if lock_timeout_seconds is None:
        lock_timeout_seconds = Settings.from_env().duckdb_lock_timeout_seconds
    out = {}
    warehouse = WarehouseResource(path=duckdb_path, lock_timeout_seconds=lock_timeout_seconds)
    try:
        with warehouse.read_only("backfill summary") as con:
            tables = WarehouseResource.relations(con)
            for name, mart in load_mart_contracts().items():
                if mart.relation in tables:
                    total = con.sql(f"select count(*) from {mart.relation}").fetchone()[0]
                    in_window = con.sql(f"select count(*) from ({window_query(mart, window)})").fetchone()[0]
                    out[name] = (total, in_window)
    except (duckdb.IOException, DuckDBFileBusy):
        return {}
    return out
