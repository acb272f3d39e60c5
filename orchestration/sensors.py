"""Sensors: new landing files start their arrival hours; landed rows re-run the event hours
they affect (late events included) — automation, not a person."""


import json
from datetime import datetime, timezone

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.assets.ingestion import events_key, landed_key
from orchestration.assets.pullers import export_files_key
from orchestration.pullers import arrival_hour_of
from orchestration.contracts import SourceContract
from orchestration.jobs import EVENTS_JOB, LAND_JOB, mart_runs
from orchestration.partitions import HOUR, range_tags
from orchestration.resources import StorageResource
from orchestration.settings import Settings, format_hour, parse_hour
from orchestration.sources.landing import scan_landing

RECENT_ARRIVAL_HOURS = 3  # the landing sensor watches the current hour and the two before
PULLED = "pulled"  # its cursor's entry: source -> the last puller materialisation seen


def _pulled_hours(instance: dg.DagsterInstance, source: str, after: int | None) -> tuple[set[datetime], int | None]:
    """The arrival hours a puller wrote files into since the record `after` (a pull of older hours
    lands too, not only the recent hours), and the newest record seen."""
    result = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=export_files_key(source), after_storage_id=after), limit=1000, ascending=True)
    hours = set()
    for record in result.records:
        written = record.asset_materialization.metadata.get("files_written") if record.asset_materialization else None
        if written is not None and written.value and record.partition_key:
            hours.add(arrival_hour_of(record.partition_key))
        after = max(after or 0, record.storage_id)
    return hours, after


def not_yet_reflected(instance: dg.DagsterInstance, downstream: dg.AssetKey, pending: dict[str, int]) -> set[str]:
    """The hours of `pending` (hour -> storage id of the upstream record that asks for them) whose
    `downstream` partition was not materialised after that record: a backfill that already built
    them (or a sensor's earlier run) leaves nothing to redo."""
    if not pending:
        return set()
    done = instance.get_latest_storage_id_by_partition(
        downstream, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(pending))
    return {hour for hour, asked in pending.items() if done.get(hour, 0) < asked}


def build_sensors(contracts: dict[str, SourceContract], settings: Settings, jobs: dict[str, UnresolvedAssetJobDefinition],
                  dbt_assets: list[dg.AssetsDefinition] | None = None) -> list[dg.SensorDefinition]:
    """`jobs`: the code location's jobs (jobs.build_jobs), by name; `dbt_assets`: what the marts
    sensor rebuilds after event hours change."""

    @dg.sensor(
        name="landing_files_sensor", minimum_interval_seconds=60, job=jobs[LAND_JOB],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Lands an arrival hour when its landing files change: a new file, or one rewritten (size, time or ETag): "
                    "the recent hours, and any hour a puller wrote files into.",
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext, landing: StorageResource):
        store = landing.store()
        seen = json.loads(context.cursor) if context.cursor else {}
        pulled_after = seen.pop(PULLED, {})
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        recent = [now - HOUR * i for i in range(RECENT_ARRIVAL_HOURS)]
        requests, new_seen = [], {}
        for source, contract in contracts.items():
            pulled, pulled_after[source] = _pulled_hours(context.instance, source, pulled_after.get(source))
            hours = sorted({h for h in [*recent, *pulled] if h >= settings.start}, reverse=True)
            for hour, found in scan_landing(contract, store, hours).items():
                if not found.files:  # files it only reports (strays) are named when the hour lands
                    continue
                label = f"{source}|{format_hour(hour)}"
                # A file rewritten under the same name changes its size, time or ETag: land it again.
                digest = found.digest()
                new_seen[label] = digest
                if seen.get(label) != digest:
                    requests.append(dg.RunRequest(
                        run_key=f"{label}|{digest}", asset_selection=[landed_key(source)],
                        partition_key=format_hour(hour)))
        new_seen[PULLED] = {k: v for k, v in pulled_after.items() if v is not None}
        context.update_cursor(json.dumps(new_seen))
        return requests

    @dg.sensor(
        name="late_events_sensor", minimum_interval_seconds=30,
        job=jobs[EVENTS_JOB], default_status=dg.DefaultSensorStatus.RUNNING,
        description="After landed rows change, re-materialises every event hour they affect, in one run per source.",
    )
    def late_events_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for source in contracts:
            after = cursor.get(source)
            result = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=landed_key(source), after_storage_id=after), limit=1000, ascending=True)
            pending: dict[str, int] = {}  # event hour -> the newest landed record affecting it
            for record in result.records:
                meta = record.asset_materialization.metadata if record.asset_materialization else {}
                affected = meta.get("event_hours_affected")
                for hour in (affected.value if affected is not None else []):
                    if parse_hour(hour) >= settings.start:
                        pending[hour] = max(pending.get(hour, 0), record.storage_id)
                cursor[source] = max(cursor.get(source) or 0, record.storage_id)
            hours = not_yet_reflected(context.instance, events_key(source), pending)
            if hours:
                first, last = min(hours), max(hours)
                requests.append(dg.RunRequest(
                    run_key=f"{source}|events|{cursor[source]}", asset_selection=[events_key(source)],
                    tags=range_tags(first, last)))
        context.update_cursor(json.dumps(cursor))
        return requests

    runs = mart_runs(dbt_assets or [], list(contracts))

    @dg.sensor(
        name="marts_sensor", minimum_interval_seconds=60, jobs=[jobs[r.name] for r in runs],
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After event hours change, rebuilds the dbt marts over them: the event-hour marts and the "
                    "whole-table models in one run, each daily mart over the days of those hours in another.",
    )
    def marts_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for run in runs:
            if any(context.instance.get_latest_materialization_event(k) is None for k in run.needs):
                continue  # its views are built by the first run: ask again once they exist
            pending: dict[str, int] = {}  # partition -> the newest events record of an hour in it
            for source in run.sources:
                mark = f"{run.name}|{source}"
                result = context.instance.fetch_materializations(
                    dg.AssetRecordsFilter(asset_key=events_key(source), after_storage_id=cursor.get(mark)),
                    limit=5000, ascending=True)
                for record in result.records:
                    if record.asset_materialization and record.asset_materialization.partition:
                        hour = parse_hour(record.asset_materialization.partition)
                        key = (run.partitions_def.get_partition_key_for_timestamp(hour.timestamp())
                               if run.partitions_def else format_hour(hour))
                        pending[key] = max(pending.get(key, 0), record.storage_id)
                    cursor[mark] = max(cursor.get(mark) or 0, record.storage_id)
            keys = not_yet_reflected(context.instance, run.witness, pending)
            if keys:
                first, last = min(keys), max(keys)
                newest = max(cursor.get(f"{run.name}|{s}") or 0 for s in run.sources)
                requests.append(dg.RunRequest(run_key=f"{run.name}|{first}|{last}|{newest}", job_name=run.name,
                                              asset_selection=list(run.keys), tags=range_tags(first, last)))
        context.update_cursor(json.dumps(cursor))
        return requests

    return [landing_files_sensor, late_events_sensor] + ([marts_sensor] if runs else [])
