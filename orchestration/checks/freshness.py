"""Freshness checks from each contract's latency SLA (`slaProperties`), evaluated on the Dagster
instance's records, and the sensor that runs them.

What the SLA means here:

- A source contract's latency (24 h) is the events layer's promise: an event is in
  `<source>_events` within that long of happening. The check on `<source>_events` fails when an
  event hour that ended more than the latency ago has landed rows (a `<source>_landed`
  materialisation touched it) that were not built into the events layer after they landed, or when
  `<source>_events` has not been built at all for the latency (no new files, or nothing runs).
- A mart contract's latency (1 h) is the mart's promise relative to what it reads: the mart is
  rebuilt within that long of any update of the events layers upstream of it. The check on the
  mart fails when such an update has waited longer than the latency with the mart not built after
  it. It holds whatever the mart's partitioning (hourly, daily or none): it compares records.

The checks warn (severity WARN, never blocking): a stale layer is news, not a reason to stop a
run. They follow Dagster's freshness-check conventions (`dagster/fresh_until_timestamp` on a
passing result), so Dagster's freshness sensor re-evaluates a passing check once it could have
gone stale, a failing one once its asset was built again, and starts no materialisation.
"""

import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone

import dagster as dg

from orchestration.assets.ingestion import events_key, landed_key
from orchestration.checks.evaluations import recorded
from orchestration.contracts import MartContract, SourceContract
from orchestration.settings import parse_hour

FRESHNESS_CHECK = "freshness"
SENSOR_NAME = "freshness_checks_sensor"
# Dagster's freshness-check metadata: the freshness sensor reads the first on a passing result.
FRESH_UNTIL = "dagster/fresh_until_timestamp"
LAST_UPDATED = "dagster/last_updated_timestamp"
HOUR = timedelta(hours=1)
LANDINGS_LOOKBACK = timedelta(days=30)  # landed records read for event hours still to build
RECHECK_EVERY = HOUR  # a passing check is evaluated again after this at the latest (late files)
LISTED = 20  # hours named in a result's description and metadata; the count is always whole


def _duration(delta: timedelta | float) -> str:
    seconds = delta.total_seconds() if isinstance(delta, timedelta) else float(delta)
    seconds = max(seconds, 0.0)
    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds / 86400:.0f} days"
    if seconds >= 3600:
        hours = round(seconds / 3600, 1 if seconds < 10 * 3600 else 0)
        return f"{hours:g} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.EventLogRecord | None:
    records = instance.fetch_materializations(key, limit=1).records
    return records[0] if records else None


def unbuilt_event_hours(instance: dg.DagsterInstance, source: str, first_hour: datetime,
                        now: float) -> dict[str, float]:
    """Event hour -> when rows of it first landed without `<source>_events` being built after them:
    the hours each `<source>_landed` materialisation of the last LANDINGS_LOOKBACK touched
    (`event_hours_touched`), less those whose events partition was materialised after it."""
    records_filter = dg.AssetRecordsFilter(asset_key=landed_key(source),
                                           after_timestamp=now - LANDINGS_LOOKBACK.total_seconds())
    landed: list[dg.EventLogRecord] = []
    cursor = None
    while True:
        page = instance.fetch_materializations(records_filter, limit=1000, cursor=cursor, ascending=True)
        landed.extend(page.records)
        if not page.has_more:
            break
        cursor = page.cursor
    hours_of = {}
    for record in landed:
        entry = record.asset_materialization.metadata.get("event_hours_touched")
        hours_of[record.storage_id] = [h for h in (entry.value if entry is not None else []) or []
                                       if isinstance(h, str) and parse_hour(h) >= first_hour]
    wanted = {h for hours in hours_of.values() for h in hours}
    if not wanted:
        return {}
    built = instance.get_latest_storage_id_by_partition(events_key(source), dg.DagsterEventType.ASSET_MATERIALIZATION,
                                                        partitions=wanted)
    unbuilt: dict[str, float] = {}
    for record in landed:  # oldest first: the first landing not built since says how long it has waited
        for hour in hours_of[record.storage_id]:
            if built.get(hour, 0) < record.storage_id and hour not in unbuilt:
                unbuilt[hour] = record.timestamp
    return dict(sorted(unbuilt.items()))


def evaluate_events(instance: dg.DagsterInstance, contract: SourceContract, first_hour: datetime,
                    now: float | None = None) -> dg.AssetCheckResult:
    """The freshness of `<source>_events` against its source contract's latency (module doc)."""
    now = time.time() if now is None else now
    key, latency = events_key(contract.name), contract.latency
    due = latency.total_seconds()
    latest = _latest(instance, key)
    unbuilt = unbuilt_event_hours(instance, contract.name, first_hour, now)
    deadline = {h: (parse_hour(h) + HOUR + latency).timestamp() for h in unbuilt}
    overdue = [h for h in unbuilt if deadline[h] <= now]
    waiting = [h for h in unbuilt if deadline[h] > now]
    metadata: dict = {"latency": _duration(latency), "event_hours_overdue": len(overdue),
                      "overdue_event_hours": dg.MetadataValue.json(overdue[:LISTED]),
                      "event_hours_landed_not_yet_built": len(waiting)}
    problems = []
    if latest is None:
        problems.append(f"{key.to_user_string()} has never been built")
    else:
        metadata[LAST_UPDATED] = dg.MetadataValue.timestamp(latest.timestamp)
        if now - latest.timestamp > due:
            problems.append(f"{key.to_user_string()} was last built {_duration(now - latest.timestamp)} ago, "
                            f"longer than the {_duration(latency)} SLA: no new {contract.name} files, or nothing "
                            "runs (the landing sensor, the late-events sensor)")
    if overdue:
        named = ", ".join(overdue[:LISTED]) + (" …" if len(overdue) > LISTED else "")
        problems.append(f"{len(overdue)} event hours ended more than {_duration(latency)} ago and have landed rows "
                        f"not yet built into {key.to_user_string()}: {named} (build those partitions, or run a backfill)")
    passed = not problems
    if passed:
        next_due = [latest.timestamp + due, now + RECHECK_EVERY.total_seconds()] + [deadline[h] for h in waiting]
        metadata[FRESH_UNTIL] = dg.MetadataValue.timestamp(min(next_due))
        description = (f"Fresh: {key.to_user_string()} was built {_duration(now - latest.timestamp)} ago and every "
                       f"event hour that ended more than {_duration(latency)} ago is built with the rows landed for it"
                       + (f"; {len(waiting)} more recent hours landed and not yet built." if waiting else "."))
    else:
        description = "Stale: " + "; ".join(problems) + "."
    return dg.AssetCheckResult(asset_key=key, check_name=FRESHNESS_CHECK, passed=passed,
                               severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata)


def evaluate_mart(instance: dg.DagsterInstance, mart: MartContract, upstream: Sequence[dg.AssetKey],
                  now: float | None = None) -> dg.AssetCheckResult:
    """The freshness of a mart against its contract's latency, relative to the events layers it
    reads (module doc)."""
    now = time.time() if now is None else now
    key, latency = dg.AssetKey(mart.name), mart.latency
    due = latency.total_seconds()
    latest = _latest(instance, key)
    built_after = latest.storage_id if latest else 0
    waiting: list[tuple[float, dg.AssetKey]] = []  # the first update of each upstream the mart was not built after
    for up in upstream:
        page = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=up, after_storage_id=built_after),
                                               limit=1, ascending=True)
        if page.records:
            waiting.append((page.records[0].timestamp, up))
    waiting.sort(key=lambda w: w[0])
    metadata: dict = {"latency": _duration(latency),
                      "upstream": dg.MetadataValue.json([k.to_user_string() for k in upstream])}
    if latest is not None:
        metadata[LAST_UPDATED] = dg.MetadataValue.timestamp(latest.timestamp)
    overdue = [(t, up) for t, up in waiting if now - t > due]
    built = f"last built {_duration(now - latest.timestamp)} ago" if latest else "never built"
    if overdue:
        since, up = overdue[0]
        names = ", ".join(u.to_user_string() for _, u in overdue)
        metadata["waiting_since"] = dg.MetadataValue.timestamp(since)
        description = (f"Stale: {names} changed {_duration(now - since)} ago and {mart.name} ({built}) was not "
                       f"rebuilt after it, past the {_duration(latency)} SLA (the marts sensor, or a backfill, "
                       "rebuilds it).")
        passed = False
    else:
        metadata[FRESH_UNTIL] = dg.MetadataValue.timestamp(
            min([t + due for t, _ in waiting] + [now + min(due, RECHECK_EVERY.total_seconds())]))
        description = (f"Fresh: {mart.name} ({built}) reflects every update of the events it reads"
                       if not waiting else
                       f"Fresh: {mart.name} ({built}) is to be rebuilt for "
                       f"{', '.join(u.to_user_string() for _, u in waiting)} within {_duration(latency)} of "
                       f"{_duration(now - waiting[0][0])} ago")
        description += f" (SLA {_duration(latency)})."
        passed = True
    return dg.AssetCheckResult(asset_key=key, check_name=FRESHNESS_CHECK, passed=passed,
                               severity=dg.AssetCheckSeverity.WARN, description=description, metadata=metadata)


def upstream_events(assets: Iterable[dg.AssetsDefinition], key: dg.AssetKey,
                    events: set[dg.AssetKey]) -> list[dg.AssetKey]:
    """The events layers `key` is built from, through any models between them."""
    deps: dict[dg.AssetKey, set[dg.AssetKey]] = {}
    for a in assets:
        for k, ds in a.asset_deps.items():
            deps.setdefault(k, set()).update(ds)
    found, seen, todo = set(), set(), [key]
    while todo:
        for dep in deps.get(todo.pop(), ()):
            if dep in events:
                found.add(dep)
            elif dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(found, key=str)


def build_freshness_checks(sources: Mapping[str, SourceContract], marts: Mapping[str, MartContract],
                           assets: Sequence[dg.AssetsDefinition], first_hour: datetime) -> list[dg.AssetChecksDefinition]:
    """A `freshness` check on each `<source>_events` and on each mart whose contract has a latency."""
    first_hour = first_hour.astimezone(timezone.utc)
    timed = {name: c for name, c in sorted(sources.items()) if c.latency}
    event_keys = {events_key(name) for name in sources}
    mart_upstream = {name: upstream_events(assets, dg.AssetKey(name), event_keys)
                     for name, m in sorted(marts.items()) if m.latency}
    source_specs = [dg.AssetCheckSpec(
        FRESHNESS_CHECK, asset=events_key(name), blocking=False,
        description=(f"SLA of data_contracts/sources/{name}.yaml: an event is in {name}_events within "
                     f"{_duration(c.latency)} of happening. Fails when an event hour that ended more than "
                     f"{_duration(c.latency)} ago has landed rows not built into {name}_events since, or when "
                     f"{name}_events has not been built for {_duration(c.latency)}. Warns, never blocks."),
        metadata={"contract": f"data_contracts/sources/{name}.yaml", "latency": _duration(c.latency)},
    ) for name, c in timed.items()]
    mart_specs = [dg.AssetCheckSpec(
        FRESHNESS_CHECK, asset=dg.AssetKey(name), blocking=False,
        description=(f"SLA of data_contracts/marts/{name}.yaml: {name} is rebuilt within "
                     f"{_duration(marts[name].latency)} of any update of the events it reads "
                     f"({', '.join(k.to_user_string() for k in up) or 'none'}). Fails when such an update has "
                     "waited longer with the mart not built after it. Warns, never blocks."),
        metadata={"contract": f"data_contracts/marts/{name}.yaml", "latency": _duration(marts[name].latency)},
    ) for name, up in mart_upstream.items()]

    checks = []
    if source_specs:
        @dg.multi_asset_check(specs=source_specs, name="events_freshness", can_subset=True)
        def events_freshness(context: dg.AssetCheckExecutionContext):
            for check_key in sorted(context.selected_asset_check_keys, key=str):
                source = check_key.asset_key.to_user_string().removesuffix("_events")
                yield from recorded(context, evaluate_events(context.instance, timed[source], first_hour))

        checks.append(events_freshness)
    if mart_specs:
        @dg.multi_asset_check(specs=mart_specs, name="marts_freshness", can_subset=True)
        def marts_freshness(context: dg.AssetCheckExecutionContext):
            for check_key in sorted(context.selected_asset_check_keys, key=str):
                name = check_key.asset_key.to_user_string()
                yield from recorded(context, evaluate_mart(context.instance, marts[name], mart_upstream[name]))

        checks.append(marts_freshness)
    return checks


def build_freshness_sensor(checks: Sequence[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    """Dagster's freshness sensor over these checks: runs that evaluate checks only, never a
    materialisation, so it runs by default (opening the UI after `make demo` rebuilds nothing).
    Freshness checks are 'superseded' in Dagster 1.13 by FreshnessPolicy, which judges an asset by
    when it was last materialised, not by event hours, and needs the freshness daemon enabled in
    dagster.yaml; this sensor and these checks are the supported way to run the contracts' SLA."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=list(checks), name=SENSOR_NAME, minimum_interval_seconds=60,
            default_status=dg.DefaultSensorStatus.RUNNING)
