"""Sensors: new landing files start their arrival hours; landed rows re-run the event hours
they affect (late events included) — automation, not a person."""


import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg

from orchestration.assets.ingestion import events_key, landed_key
from orchestration.contracts import SourceContract
from orchestration.lake import paths
from orchestration.partitions import HOUR, range_tags
from orchestration.resources import StorageResource
from orchestration.settings import Settings, format_hour, parse_hour

RECENT_ARRIVAL_HOURS = 3  # the landing sensor watches the current hour and the two before


def not_yet_reflected(instance: dg.DagsterInstance, downstream: dg.AssetKey, pending: dict[str, int]) -> set[str]:
    """The hours of `pending` (hour -> storage id of the upstream record that asks for them) whose
    `downstream` partition was not materialised after that record: a backfill that already built
    them (or a sensor's earlier run) leaves nothing to redo."""
    if not pending:
        return set()
    done = instance.get_latest_storage_id_by_partition(
        downstream, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(pending))
    return {hour for hour, asked in pending.items() if done.get(hour, 0) < asked}


@dataclass(frozen=True)
class MartRun:
    """Marts built together by one run: their partitions (None: whole tables only), the lake
    sources upstream of them, the asset whose partitions say what was built, and the whole-table
    models that must exist before them (built by another run)."""

    name: str
    keys: tuple[dg.AssetKey, ...]
    partitions_def: dg.PartitionsDefinition | None
    sources: tuple[str, ...]
    witness: dg.AssetKey
    needs: tuple[dg.AssetKey, ...] = ()


def mart_runs(dbt_assets: list[dg.AssetsDefinition], sources: list[str]) -> list[MartRun]:
    """The runs that rebuild the marts after event hours change: the whole-table models with the
    event-hour marts (one run, the same window), then one run per other partitioning (days)."""
    deps = {k: set(ds) for a in dbt_assets for k, ds in a.asset_deps.items()}
    events = {events_key(s): s for s in sources}

    def upstream(key: dg.AssetKey, seen: set) -> set[str]:
        found = set()
        for dep in deps.get(key, ()):
            if dep in events:
                found.add(events[dep])
            elif dep not in seen:
                seen.add(dep)
                found |= upstream(dep, seen)
        return found

    whole = [a for a in dbt_assets if a.partitions_def is None]
    whole_keys = {k for a in whole for k in a.keys}
    hourly = [a for a in dbt_assets if isinstance(a.partitions_def, dg.HourlyPartitionsDefinition)]
    others = [a for a in dbt_assets if a.partitions_def is not None and a not in hourly]
    groups = [("marts", whole + hourly, hourly[0].partitions_def if hourly else None)]
    groups += [(a.op.name, [a], a.partitions_def) for a in others]
    out = []
    for name, defs, partitions_def in groups:
        keys = sorted((k for a in defs for k in a.keys), key=str)
        if not keys:
            continue
        own = sorted((k for a in defs if a.partitions_def is partitions_def for k in a.keys), key=str)
        reach = {k: upstream(k, set()) for k in own}
        witness = max(own, key=lambda k: (len(reach[k]), str(k)))  # built from the most sources
        needs = sorted({d for k in keys for d in deps.get(k, ()) if d in whole_keys} - set(keys), key=str)
        out.append(MartRun(name=name, keys=tuple(keys), partitions_def=partitions_def,
                           sources=tuple(sorted(set().union(*reach.values()))), witness=witness, needs=tuple(needs)))
    return out


def build_sensors(contracts: dict[str, SourceContract], settings: Settings,
                  dbt_assets: list[dg.AssetsDefinition] | None = None) -> list[dg.SensorDefinition]:
    """`dbt_assets`: what the marts sensor rebuilds after event hours change."""
    landed_keys = [landed_key(s) for s in contracts]

    @dg.sensor(
        name="landing_files_sensor", minimum_interval_seconds=60, target=landed_keys,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Lands an arrival hour when its landing files change: a new file, or one rewritten (size, time or ETag) (recent hours only).",
    )
    def landing_files_sensor(context: dg.SensorEvaluationContext, landing: StorageResource):
        store = landing.store()
        seen = json.loads(context.cursor) if context.cursor else {}
        now = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        hours = [now - HOUR * i for i in range(RECENT_ARRIVAL_HOURS)]
        requests, new_seen = [], {}
        hours = [h for h in hours if h >= settings.start]
        for source, contract in contracts.items():
            for hour, found in paths.scan_landing(contract, store, hours).items():
                if not found.files:  # files it only reports (strays) are named when the hour lands
                    continue
                label = f"{source}|{format_hour(hour)}"
                # A file rewritten under the same name changes its size, time or ETag: land it again.
                listing = sorted(f"{info.key}\t{info.version}" for info, _ in found.files)
                digest = hashlib.sha1("\n".join(listing).encode()).hexdigest()
                new_seen[label] = digest
                if seen.get(label) != digest:
                    requests.append(dg.RunRequest(
                        run_key=f"{label}|{digest}", asset_selection=[landed_key(source)],
                        partition_key=format_hour(hour)))
        context.update_cursor(json.dumps(new_seen))
        return requests

    @dg.sensor(
        name="late_events_sensor", minimum_interval_seconds=30,
        target=[events_key(s) for s in contracts], default_status=dg.DefaultSensorStatus.RUNNING,
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
    all_mart_keys = sorted({k for r in runs for k in r.keys}, key=str)

    @dg.sensor(
        name="marts_sensor", minimum_interval_seconds=60, target=all_mart_keys or None,
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
                requests.append(dg.RunRequest(run_key=f"{run.name}|{first}|{last}|{newest}",
                                              asset_selection=list(run.keys), tags=range_tags(first, last)))
        context.update_cursor(json.dumps(cursor))
        return requests

    return [landing_files_sensor, late_events_sensor] + ([marts_sensor] if runs else [])
