"""Sensors: new landing files start their arrival hours; landed rows re-run the event hours
they affect (late events included) — automation, not a person."""


import hashlib
import json
from datetime import datetime, timezone

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from orchestration.assets.ingestion import events_key, landed_key
from orchestration.contracts import SourceContract
from orchestration.lake import paths
from orchestration.partitions import HOUR
from orchestration.resources import StorageResource
from orchestration.settings import Settings, format_hour, parse_hour

MARTS_WITNESS = dg.AssetKey("fct_platform_hourly")  # built from every source in each marts run
RECENT_ARRIVAL_HOURS = 3  # the landing sensor watches the current hour and the two before


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partition range [first, last] (single-run backfill)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def not_yet_reflected(instance: dg.DagsterInstance, downstream: dg.AssetKey, pending: dict[str, int]) -> set[str]:
    """The hours of `pending` (hour -> storage id of the upstream record that asks for them) whose
    `downstream` partition was not materialised after that record: a backfill that already built
    them (or a sensor's earlier run) leaves nothing to redo."""
    if not pending:
        return set()
    done = instance.get_latest_storage_id_by_partition(
        downstream, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(pending))
    return {hour for hour, asked in pending.items() if done.get(hour, 0) < asked}


def build_sensors(contracts: dict[str, SourceContract], settings: Settings,
                  mart_keys: list[dg.AssetKey] | None = None) -> list[dg.SensorDefinition]:
    """`mart_keys`: the dbt assets the marts sensor rebuilds after event hours change."""
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

    @dg.sensor(
        name="marts_sensor", minimum_interval_seconds=60, target=mart_keys or None,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="After event hours change, rebuilds the dbt marts over those hours in one run.",
    )
    def marts_sensor(context: dg.SensorEvaluationContext):
        cursor = json.loads(context.cursor) if context.cursor else {}
        pending: dict[str, int] = {}  # event hour -> the newest events record of it
        for source in contracts:
            result = context.instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=events_key(source), after_storage_id=cursor.get(source)),
                limit=5000, ascending=True)
            for record in result.records:
                if record.asset_materialization and record.asset_materialization.partition:
                    hour = record.asset_materialization.partition
                    pending[hour] = max(pending.get(hour, 0), record.storage_id)
                cursor[source] = max(cursor.get(source) or 0, record.storage_id)
        context.update_cursor(json.dumps(cursor))
        witness = MARTS_WITNESS if MARTS_WITNESS in mart_keys else mart_keys[0]
        hours = not_yet_reflected(context.instance, witness, pending)
        if not hours:
            return []
        first, last = min(hours), max(hours)
        return [dg.RunRequest(run_key=f"marts|{first}|{last}|{max(cursor.values())}", asset_selection=mart_keys,
                              tags=range_tags(first, last))]

    return [landing_files_sensor, late_events_sensor] + ([marts_sensor] if mart_keys else [])
