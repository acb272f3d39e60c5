"""The Dagster code location: `dagster dev` in the repo root loads it through workspace.yaml."""

from __future__ import annotations

import warnings

import dagster as dg

# backfill_policy and partition mappings are marked beta/preview in Dagster 1.13: we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from orchestration.assets.ingestion import build_ingestion_assets
from orchestration.assets.pullers import build_puller_assets, landed_dep
from orchestration.checks.freshness import build_freshness_checks, build_freshness_sensor
from orchestration.checks.marts import build_mart_checks
from orchestration.contracts import load_mart_contracts, load_source_contracts
from orchestration.jobs import build_jobs
from orchestration.partitions import arrival_hour_partitions, day_partitions, event_hour_partitions
from orchestration.resources import build_resources
from orchestration.schedules import build_schedules
from orchestration.sensors import build_sensors
from orchestration.settings import Settings


def build_definitions(settings: Settings | None = None, marts: bool = True) -> dg.Definitions:
    """The code location; without `marts`, only the vendors' and the lake's assets, for the CLI's
    runs that build no mart: they do not import dagster-dbt and dbt (~1 s of a run's start)."""
    settings = settings or Settings.from_env()
    arrival, event = arrival_hour_partitions(settings), event_hour_partitions(settings)
    contracts = load_source_contracts()
    pullers = build_puller_assets(contracts, arrival, settings)  # vendors that must be polled
    assets = [*pullers.values()]
    for c in contracts.values():
        pulled_by = landed_dep(pullers[c.name]) if c.name in pullers else None
        assets += build_ingestion_assets(c, arrival, event, settings, pulled_by=pulled_by)
    dbt, mart_checks, mart_contracts = [], [], {}
    if marts:
        from orchestration.assets.marts import build_dbt_assets

        mart_contracts = load_mart_contracts()
        dbt = build_dbt_assets(mart_contracts, {"event_hour": event, "day": day_partitions(settings)})
        mart_checks = [build_mart_checks(mart_contracts)]
    freshness = build_freshness_checks(contracts, mart_contracts, [*assets, *dbt], settings.start)  # the contracts' SLA
    hourly_pulls = [p.key for p in pullers.values() if p.partitions_def is arrival]
    daily_pulls = [p.key for p in pullers.values() if p.partitions_def is not arrival]
    jobs = {j.name: j for j in build_jobs(list(contracts), dbt, hourly_pulls, daily_pulls)}
    return dg.Definitions(
        assets=[*assets, *dbt],
        jobs=list(jobs.values()),
        asset_checks=[*mart_checks, *freshness],
        sensors=[*build_sensors(contracts, settings, jobs, dbt_assets=dbt), build_freshness_sensor(freshness)],
        schedules=build_schedules(contracts, settings, jobs),
        resources=build_resources(settings, dbt=marts),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The code location, built when Dagster loads it: importing this module builds nothing (the
    CLI builds its own from its settings)."""
    return build_definitions()
