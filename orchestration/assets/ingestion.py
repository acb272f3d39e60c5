"""The asset factory: from each source contract, `<source>_landed` (arrival-hour partitions) and
`<source>_events` (event-hour partitions). Both run a whole partition range as one run."""


import hashlib
import json
import time
from dataclasses import asdict
from datetime import timedelta
from functools import partial

import dagster as dg

from orchestration.contracts import LEADING, LEADING_DESCRIPTIONS, SourceContract
from orchestration.lake.events import EventsLedger, build_event_hours
from orchestration.lake import DEDUPE_WINDOW
from orchestration.lake.landed import (LandedLedger, LandingInterrupted, LandingRules, affected_hours, at_most_reasons,
                                      land_hours)
from orchestration.partitions import hours_between
from orchestration.resources import StorageResource, lake_duckdb
from orchestration.settings import Settings, format_hour
from orchestration.sources.readers import ReadLimits
from orchestration.sources.records import EventTimeRange

LEDGER_CHECK = "ledger_balances"
WINDOW_HOURS = DEDUPE_WINDOW // timedelta(hours=1)
# A run logs its progress (a stored event of its log each) at most this often: one per hour of a
# long range was ~10 ms of an hour of its critical path (bench/README.md).
PROGRESS_SECONDS = 5


def landed_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}_landed")


def events_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}_events")


REPORTED_NAMES = 50  # file names listed in metadata; the count is always whole


def landing_rules(settings: Settings) -> LandingRules:
    return LandingRules(
        limits=ReadLimits(max_line_bytes=settings.max_line_bytes, max_file_bytes=settings.max_file_bytes),
        times=EventTimeRange(first_hour=settings.start, max_ahead=timedelta(hours=settings.max_event_ahead_hours)))


def _sum_counts(dicts) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            out[k] = out.get(k, 0) + n
    return out


def landed_metadata(ledgers: list[LandedLedger]) -> dict:
    """The ledger of some arrival hours (one, on each hour's materialisation), with the event
    hours they affected (what the late-events sensor rebuilds)."""
    total = lambda attr: sum(getattr(l, attr) for l in ledgers)
    reasons = _sum_counts(l.quarantine_reasons for l in ledgers)
    reasons = at_most_reasons(dict(sorted(reasons.items(), key=lambda kv: -kv[1])))
    lateness = _sum_counts(l.lateness for l in ledgers)
    reported = {k: r for l in ledgers for k, r in l.files_reported.items()}
    touched = sorted({h for l in ledgers for h in l.event_hours_touched})
    return {
        "arrival_hours": len(ledgers),
        "files": total("files"),
        "rows_read": total("rows_read"),
        "rows_landed": total("rows_landed"),
        "rows_quarantined": total("rows_quarantined"),
        "late_events": total("late_events"),
        "beyond_dedupe_window": total("beyond_window"),
        "files_reported": len(reported),
        "reported_files": dg.MetadataValue.json(dict(list(reported.items())[:REPORTED_NAMES])),
        "schema_drift": dg.MetadataValue.json(_sum_counts(l.schema_drift for l in ledgers)),
        "quarantine_reasons": dg.MetadataValue.json(reasons),
        "lateness": dg.MetadataValue.json(lateness),
        "event_hours_touched": dg.MetadataValue.json(touched),
        "event_hours_affected": dg.MetadataValue.json(affected_hours(ledgers)),
        "ledger": dg.MetadataValue.json([
            {k: (format_hour(v) if k == "arrival_hour" else v) for k, v in asdict(l).items()
             if k not in ("source", "inputs", "event_hours_affected")} for l in ledgers]),
    }


def events_metadata(ledgers: list[EventsLedger]) -> dict:
    total = lambda attr: sum(getattr(l, attr) for l in ledgers)
    return {
        "event_hours": len(ledgers),
        "rows_in": total("rows_in"),
        "rows_kept": total("rows_kept"),
        "duplicates_dropped": total("duplicates_dropped"),
        "duplicates_in_hour": total("duplicates_in_hour"),
        "duplicates_in_window": total("duplicates_in_window"),
        "ledger": dg.MetadataValue.json([
            {"event_hour": format_hour(l.event_hour), "rows_in": l.rows_in, "rows_kept": l.rows_kept,
             "duplicates_dropped": l.duplicates_dropped, "written_rows": l.written_rows}
            for l in ledgers if l.rows_in or l.arrival_hours]),
    }


def landed_version(contract: SourceContract, rules: LandingRules, ledgers: list[LandedLedger]) -> dg.DataVersion:
    """The landed hours' data version: their landing files (names, sizes, times or ETags) and the
    rules that landed them. Landing the same files again gives the same version, so the event
    hours that depend on them do not show as Unsynced. (Dagster gives a run's partitions one
    version: a range landed again as a whole, or a single hour, keeps its version.)"""
    code = json.dumps([contract.document.model_dump(mode="json", exclude_none=True), repr(rules)], sort_keys=True)
    inputs = "\n".join(f"{format_hour(l.arrival_hour)}\t{l.inputs}" for l in ledgers)
    return dg.DataVersion(hashlib.sha1(f"{code}\n{inputs}".encode()).hexdigest()[:24])


def _ledger_check(asset_key: dg.AssetKey, ledgers, describe) -> dg.AssetCheckResult:
    unbalanced = [describe(l) for l in ledgers if not l.balanced]
    return dg.AssetCheckResult(
        asset_key=asset_key, check_name=LEDGER_CHECK, passed=not unbalanced,
        severity=dg.AssetCheckSeverity.ERROR,
        description=("every hour balances" if not unbalanced else "ledger does not balance: " + "; ".join(unbalanced[:10])),
        metadata={"unbalanced_hours": len(unbalanced)},
    )


def column_schema(contract: SourceContract) -> dg.TableSchema:
    """The columns of a landed or events row, typed and described as in the source contract
    (shown on the asset's Columns tab in the Dagster UI, like the dbt marts')."""
    fields = {f.column: f for f in contract.fields}
    columns = []
    for name, typ in contract.lake_schema().items():
        field = fields.get(name)
        text = LEADING_DESCRIPTIONS.get(name) or (field.description if field else None) or ""
        if field is not None and name not in LEADING_DESCRIPTIONS and field.path != name:
            text = f"{text} (vendor field `{field.path}`)".strip()
        required = name in LEADING or (field is not None and field.required)
        columns.append(dg.TableColumn(name=name, type=typ.lower(), description=" ".join(text.split()) or None,
                                      constraints=dg.TableColumnConstraints(nullable=not required)))
    return dg.TableSchema(columns=columns)


def build_ingestion_assets(contract: SourceContract, arrival_partitions: dg.PartitionsDefinition,
                           event_partitions: dg.PartitionsDefinition, settings: Settings,
                           pulled_by: dg.AssetKey | dg.AssetDep | None = None) -> list[dg.AssetsDefinition]:
    """`pulled_by`: the asset that copies this source's files from its vendor (same arrival hours)."""
    source = contract.name
    rules = landing_rules(settings)
    lake_db = partial(lake_duckdb, memory_bytes=settings.lake_memory_bytes)  # the lake layers' DuckDB, of its stores
    landed_asset_key, events_asset_key = landed_key(source), events_key(source)
    # the contract's team and owners; the columns as the contract types and describes them
    common = dict(group_name=source, backfill_policy=dg.BackfillPolicy.single_run(), kinds={"parquet", "duckdb"},
                  owners=list(contract.owners))
    schema = {"dagster/column_schema": column_schema(contract)}

    @dg.asset(
        key=landed_asset_key, partitions_def=arrival_partitions, **common,
        deps=[pulled_by] if pulled_by else None,
        description=(f"{contract.name} export files by the hour they arrived, checked against the source "
                     f"contract and filed under the hour each event happened; bad records quarantined. "
                     f"{contract.description}"),
        check_specs=[dg.AssetCheckSpec(LEDGER_CHECK, asset=landed_asset_key, blocking=True,
                                       description="rows read = rows landed + rows quarantined, and the files hold them")],
        metadata={"contract": f"data_contracts/sources/{source}.yaml",
                  "layout": dg.MetadataValue.json([l.pattern for l in contract.layouts]), **schema},
    )
    def landed(context: dg.AssetExecutionContext, landing: StorageResource, lake: StorageResource):
        start, end = context.partition_time_window
        hours = hours_between(start, end)
        done, said = iter(range(1, len(hours) + 1)), [time.monotonic()]

        def landed_one(l: LandedLedger) -> None:  # progress in the run's log, every PROGRESS_SECONDS at most
            n = next(done)
            if n == len(hours) or time.monotonic() - said[0] >= PROGRESS_SECONDS:
                said[0] = time.monotonic()
                context.log.info(f"{source} arrival hour {format_hour(l.arrival_hour)} landed ({n}/{len(hours)}): "
                                 f"{l.files} files, {l.rows_landed} rows landed, {l.rows_quarantined} quarantined")

        try:
            ledgers = land_hours(contract, landing.store(), lake.store(), hours, partial(lake_db, landing, lake), rules,
                                 on_hour=landed_one)
        except LandingInterrupted as exc:  # say what was published before it failed
            raise dg.Failure(
                description=f"{source}: {'the store' if exc.store_failed else 'the landing'} failed after "
                            f"{len(exc.ledgers)} of {len(hours)} arrival hours landed: "
                            f"{type(exc.cause).__name__}: {exc.cause}",
                metadata=landed_metadata(exc.ledgers)) from exc
        except FileNotFoundError as exc:  # the landing root itself
            raise dg.Failure(description=str(exc)) from None
        meta = landed_metadata(ledgers)
        context.log.info(f"{source}: {meta['files']} files, {meta['rows_read']} rows read, {meta['rows_landed']} landed, "
                         f"{meta['rows_quarantined']} quarantined; {len(meta['event_hours_affected'].value)} event hours affected")
        if not meta["files"] and not meta["files_reported"]:
            context.log.warning(f"{source}: no landing files in [{format_hour(start)}, {format_hour(end)}) "
                                f"under {landing.root}")
        if meta["files_reported"]:
            context.log.warning(f"{source}: {meta['files_reported']} files landed nothing: "
                                + "; ".join(f"{k} ({r})" for k, r in list(meta["reported_files"].value.items())[:5]))
        for ledger in ledgers:  # each hour's own numbers, so the UI plots the real hours
            context.add_asset_metadata(landed_metadata([ledger]), partition_key=format_hour(ledger.arrival_hour))
        return dg.MaterializeResult(data_version=landed_version(contract, rules, ledgers), check_results=[_ledger_check(
            landed_asset_key, ledgers,
            lambda l: f"{format_hour(l.arrival_hour)}: read {l.rows_read} != landed {l.rows_landed} + quarantined {l.rows_quarantined} "
                      f"(written {l.written_landed} + {l.written_quarantined})")])

    @dg.asset(
        key=events_asset_key, partitions_def=event_partitions, **common,
        description=(f"{contract.name} events by the hour they happened, one row per event id: the first-delivered "
                     f"copy, with copies in the {WINDOW_HOURS} hours before dropped."),
        deps=[dg.AssetDep(landed_asset_key, partition_mapping=dg.TimeWindowPartitionMapping(
            start_offset=-WINDOW_HOURS, end_offset=WINDOW_HOURS, allow_nonexistent_upstream_partitions=True))],
        check_specs=[dg.AssetCheckSpec(LEDGER_CHECK, asset=events_asset_key, blocking=True,
                                       description="rows in = rows kept + duplicates dropped, and the files hold them")],
        metadata={"contract": f"data_contracts/sources/{source}.yaml",
                  "dedupe_key": contract.id_field or "fingerprint of the record", "dedupe_window_hours": WINDOW_HOURS,
                  **schema},
    )
    def events(context: dg.AssetExecutionContext, lake: StorageResource):
        start, end = context.partition_time_window
        ledgers = build_event_hours(
            contract, lake.store(), start, end, partial(lake_db, lake), on_chunk=lambda chunk: context.log.info(
                f"{source} event hours {format_hour(chunk[0].event_hour)} … {format_hour(chunk[-1].event_hour)} built: "
                f"{sum(l.rows_kept for l in chunk)} events kept"))
        meta = events_metadata(ledgers)
        context.log.info(f"{source}: {meta['rows_in']} landed rows in, {meta['rows_kept']} kept, "
                         f"{meta['duplicates_dropped']} duplicates dropped")
        for ledger in ledgers:
            context.add_asset_metadata(events_metadata([ledger]), partition_key=format_hour(ledger.event_hour))
        return dg.MaterializeResult(check_results=[_ledger_check(
            events_asset_key, ledgers,
            lambda l: f"{format_hour(l.event_hour)}: in {l.rows_in} != kept {l.rows_kept} + duplicates {l.duplicates_dropped} "
                      f"(written {l.written_rows})")])

    return [landed, events]
