"""The code location's jobs: what the sensors, the schedule and `backfill` launch, so that every
run shows in the UI under a job of its own, with its origin, and can be re-executed from there."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import yaml
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.assets.ingestion import events_key, landed_key

PULL_JOB = "pull_vendor_exports"
PULL_DAY_JOB = "pull_vendor_exports_by_day"  # pullers partitioned by day (Altis)
LAND_JOB = "land_arrival_hours"
EVENTS_JOB = "build_event_hours"
MARTS_JOB = "build_marts"
DBT_ASSETS_NAME = "warehouse_dbt"  # the dbt assets of the whole-table models; the partitioned ones add `_<partitioning>`
REPO_ROOT = Path(__file__).resolve().parent.parent
# The code location as workspace.yaml (`make dev`) loads it: its module and its name.
_LOCATION = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())["load_from"][0]["python_module"]
CODE_MODULE = _LOCATION["module_name"]
CODE_LOCATION = _LOCATION.get("location_name", CODE_MODULE)
# What `execute`'s callers read of a run: materialisations, check results and failures.
KEPT_EVENTS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
               dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}


@dataclass(frozen=True)
class MartRun:
    """Marts built together by one run: their partitions (None: whole tables only), the lake
    sources upstream of them, the asset whose partitions say what was built, and the whole-table
    models that must exist before them (built by another run)."""

    name: str  # the job
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
    groups = [(MARTS_JOB, whole + hourly, hourly[0].partitions_def if hourly else None)]
    groups += [(f"{MARTS_JOB}_by_{a.op.name.removeprefix(DBT_ASSETS_NAME + '_')}", [a], a.partitions_def) for a in others]
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


def build_jobs(sources: list[str], dbt_assets: list[dg.AssetsDefinition],
               pulled: list[dg.AssetKey] | None = None,
               pulled_by_day: list[dg.AssetKey] | None = None) -> list[UnresolvedAssetJobDefinition]:
    """`pulled`: the assets that pull vendor exports into the landing area (assets/pullers.py), by
    arrival hour; `pulled_by_day`: those partitioned by day (a job holds one partitioning)."""
    jobs = [dg.define_asset_job(PULL_JOB, selection=pulled, description="Pull the vendors' exports into the landing area.")] \
        if pulled else []
    if pulled_by_day:
        jobs.append(dg.define_asset_job(PULL_DAY_JOB, selection=pulled_by_day,
                                        description="Pull the vendors' daily exports into the landing area, by day."))
    jobs += [
        dg.define_asset_job(LAND_JOB, selection=[landed_key(s) for s in sources],
                            description="Land arrival hours: check each export file against its source contract, "
                                        "file its events under the hour they happened, quarantine the rest."),
        dg.define_asset_job(EVENTS_JOB, selection=[events_key(s) for s in sources],
                            description="Build event hours: one row per event id, first-delivered copy kept."),
    ]
    for run in mart_runs(dbt_assets, sources):
        # One process for the whole run: its steps run one after another anyway (the warehouse
        # pool), and a process per step (Dagster's default executor) loads the code location
        # again for each of them (bench/README.md, "Marts: where the time goes").
        jobs.append(dg.define_asset_job(
            run.name, selection=list(run.keys), executor_def=dg.in_process_executor,
            description="Build the dbt marts " + ("and whole-table models over event hours" if run.name == MARTS_JOB
                                                  else f"partitioned by {run.name.rsplit('_by_', 1)[-1]}")))
    return jobs


def execute(defs: dg.Definitions, job_name: str, asset_selection: list[dg.AssetKey], tags: dict[str, str],
            instance: dg.DagsterInstance, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    """Run `job_name` of `defs` here, in this process, as a run of the code location: the UI shows
    it under its job, with the code location as its origin, and can re-execute it."""
    from dagster._core.definitions.job_base import InMemoryJob
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import ExecuteRunWithPlanIterable, create_execution_plan, job_execution_iterator
    from dagster._core.execution.context_creation_job import (PlanOrchestrationContextManager,
                                                              orchestration_context_event_generator)
    from dagster._core.remote_origin import (ManagedGrpcPythonEnvCodeLocationOrigin, RemoteJobOrigin,
                                             RemoteRepositoryOrigin)
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    job = defs.resolve_job_def(job_name).as_ephemeral_job(resource_defs={}, input_values={}, asset_selection=asset_selection)
    run_config = run_config or {}
    plan = create_execution_plan(InMemoryJob(job), run_config=run_config,
                                 instance_ref=instance.get_ref() if instance.is_persistent else None)
    target = LoadableTargetOrigin(executable_path=sys.executable, module_name=CODE_MODULE,
                                  working_directory=str(REPO_ROOT))
    location = ManagedGrpcPythonEnvCodeLocationOrigin(loadable_target_origin=target, location_name=CODE_LOCATION)
    repository = ReconstructableRepository.for_module(CODE_MODULE, "defs", working_directory=str(REPO_ROOT))
    run = instance.create_run_for_job(
        job_def=job, execution_plan=plan, run_config=run_config, tags={**job.run_tags, **tags},
        asset_selection=frozenset(asset_selection),
        remote_job_origin=RemoteJobOrigin(repository_origin=RemoteRepositoryOrigin(code_location_origin=location,
                                                                                  repository_name="__repository__"),
                                          job_name=job_name),
        job_code_origin=repository.get_reconstructable_job(job_name).get_python_origin())
    # Only KEPT_EVENTS: a long range run's log lines and step events would be held till it ends.
    run_events = ExecuteRunWithPlanIterable(
        execution_plan=plan, iterator=job_execution_iterator,
        execution_context_manager=PlanOrchestrationContextManager(
            context_event_generator=orchestration_context_event_generator, job=InMemoryJob(job), execution_plan=plan,
            dagster_run=run, instance=instance, run_config=run_config, executor_defs=None, output_capture=None,
            raise_on_error=False))
    events = [event for event in run_events if event.event_type in KEPT_EVENTS]
    return dg.ExecuteInProcessResult(job_def=job, event_list=events, dagster_run=instance.get_run_by_id(run.run_id),
                                     output_capture=None)
