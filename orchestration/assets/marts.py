"""The dbt project as Dagster assets: one `@dbt_assets` per partitioning its mart contracts declare
(event hours, days, none: the staging views, the dimensions and the card funnel). A range runs as
one run and one `dbt build` over the whole window (vars `min_date`/`max_date`, half-open); the
whole-table models take the window of the run they are in (the hours that changed), or rebuild
from every hour. This is the only step that writes the DuckDB file."""


import shutil
import time
from datetime import timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from orchestration.assets.ingestion import events_key
from orchestration.contracts import MartContract, SourceContract, load_mart_contracts, load_source_contracts
from orchestration.dbt_project import DBT_PROJECT, DBT_PROJECT_DIR
from orchestration.dbt_runner import dbt_build
from orchestration.jobs import DBT_ASSETS_NAME
from orchestration.partitions import run_window
from orchestration.resources import WAREHOUSE_POOL, StorageResource, WarehouseResource

# One target folder per dbt step of a run under target/runs/: removed when the step succeeds; a
# failed one (its dbt.log) is kept, the newest KEEP_FAILED_RUNS of them.
DBT_RUNS_DIR = Path("target") / "runs"
KEEP_FAILED_RUNS = 3
FAILED_MARKER = "FAILED"
STALE_AFTER_SECONDS = 24 * 3600  # a run folder nobody finished (the process was killed)


def project_manifest() -> Path:
    """dbt's manifest, as `dagster dev` or `make install` prepared it."""
    manifest = Path(DBT_PROJECT.manifest_path)
    if not manifest.exists():
        raise FileNotFoundError(f"no dbt manifest at {manifest}: run `make install` (it prepares the dbt project)")
    return manifest


@lru_cache(maxsize=1)
def _contracts() -> tuple[dict[str, MartContract], dict[str, SourceContract]]:
    """The contracts the translator reads owners from: loaded once, not once per dbt node."""
    return load_mart_contracts(), load_source_contracts()


class WarehouseTranslator(DagsterDbtTranslator):
    """Lake sources are the `<source>_events` assets; models are grouped by layer and owned by the
    team of their contract (a staging model: of its source's)."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["source_name"] == "lake":
            return events_key(dbt_resource_props["name"].removesuffix("_events"))
        return dg.AssetKey(dbt_resource_props["name"])

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str] | None:
        marts, sources = _contracts()
        mart = marts.get(dbt_resource_props["name"])
        if mart is not None:
            return list(mart.owners)
        upstream = [n.rsplit(".", 1)[-1].removesuffix("_events")
                    for n in (dbt_resource_props.get("depends_on") or {}).get("nodes", []) if n.startswith("source.")]
        # A model over no one source (stg_quarantine reads every source's quarantine): all their teams.
        owners = [o for name in (upstream or sources) if name in sources for o in sources[name].owners]
        return list(dict.fromkeys(owners)) or super().get_owners(dbt_resource_props)

    def get_asset_check_spec(self, asset_spec, manifest, unique_id, project):
        # dbt tests report failures without stopping the step: the blocking gate of a mart is
        # its contract check (checks/marts.py), which then still runs and names the rows.
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None:
            return None
        return dg.AssetCheckSpec(name=spec.name, asset=spec.asset_key, description=spec.description,
                                 additional_deps=spec.additional_deps, blocking=False, metadata=spec.metadata)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        fqn = dbt_resource_props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else "marts"


def tidy_target(run_target: Path, succeeded: bool) -> None:
    """Remove this run's dbt target folder when it succeeded (mark it when it failed), then the
    failed ones beyond the newest KEEP_FAILED_RUNS, the stale ones, and the per-invocation
    folders older versions left in target/ (`warehouse_dbt-<run>-<uuid>`)."""
    if succeeded:
        shutil.rmtree(run_target, ignore_errors=True)
    elif run_target.is_dir():
        (run_target / FAILED_MARKER).touch()
    runs_dir = run_target.parent
    now = time.time()

    def age(path: Path) -> float:
        try:
            return now - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    failed = sorted((p for p in runs_dir.glob(f"*/{FAILED_MARKER}")), key=age)
    doomed = [p.parent for p in failed[KEEP_FAILED_RUNS:]]
    doomed += [p for p in runs_dir.iterdir() if p.is_dir() and not (p / FAILED_MARKER).exists()
               and p != run_target and age(p) > STALE_AFTER_SECONDS] if runs_dir.is_dir() else []
    doomed += [p for p in runs_dir.parent.glob(f"{DBT_ASSETS_NAME}-*") if p.is_dir() and age(p) > 3600]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)


WINDOW_VARS = ("min_date", "max_date")  # read when compiling only: the project is parsed without them


def dbt_vars(window: tuple | None, lake: StorageResource, warehouse: WarehouseResource) -> dict[str, str]:
    """The run's window as dbt vars (none: dbt's defaults, every hour), and where the lake and file are."""
    def iso(t):
        return t.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")

    window_vars = {"min_date": iso(window[0]), "max_date": iso(window[1])} if window else {}
    return {**window_vars, "lake_root": lake.root, "duckdb_path": warehouse.path}


def _dbt_build(context: AssetExecutionContext, dbt: DbtCliResource, variables: dict[str, str],
               warehouse: WarehouseResource):
    target = DBT_PROJECT_DIR / DBT_RUNS_DIR / f"{context.run_id}-{context.op_def.name}"  # this step's artifacts and log, removed when it succeeds
    # The Dagster pool only orders steps of one instance: the file lock makes a second backfill
    # (another process, another instance) wait here instead of failing on DuckDB's own lock.
    with warehouse.lock("dbt build", run_id=context.run_id, log=context.log):
        span = f"[{variables['min_date']}, {variables['max_date']})" if "min_date" in variables else "every hour"
        context.log.info(f"dbt build over {span}")
        # Failed dbt tests are reported as failed (blocking) asset checks, not as a crash of the
        # step, so the contract checks still run and name the rows; a model that fails to build does fail it.
        parse_variables = {k: v for k, v in variables.items() if k not in WINDOW_VARS}
        succeeded = False
        try:
            build = yield from dbt_build(context, Path(dbt.project_dir), Path(dbt.profiles_dir or dbt.project_dir),
                                         variables, parse_variables, target)
            if not build.ran:  # dbt stopped before running anything: say why, in its words
                raise dg.Failure(description=f"dbt build failed: {build.error_text()}",
                                 metadata={"dbt_log": str(target / "dbt.log")})
            failed = build.failed_models()
            if failed:
                raise dg.Failure(description="dbt could not build " + "; ".join(f"{name}: {message[:500]}" for name, message in failed),
                                 metadata={name: message[:1000] for name, message in failed})
            succeeded = True
        finally:
            tidy_target(target, succeeded)


def build_dbt_assets(marts: dict[str, MartContract],
                     partitions: dict[str, dg.PartitionsDefinition]) -> list[dg.AssetsDefinition]:
    """One `@dbt_assets` per partitioning of `partitions` (partitioning -> definition) that a mart
    contract declares, and one for every other model (staging views and whole-table marts)."""
    manifest = project_manifest()
    translator = WarehouseTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))
    partitioned = {p: sorted(n for n, m in marts.items() if m.partitioning == p) for p in partitions}
    partitioned = {p: names for p, names in partitioned.items() if names}
    groups = [(f"{DBT_ASSETS_NAME}_{p}", partitions[p], " ".join(names), "") for p, names in partitioned.items()]
    groups.append((DBT_ASSETS_NAME, None, "fqn:*", " ".join(n for names in partitioned.values() for n in names)))
    out = []
    for name, partitions_def, select, exclude in groups:
        @dbt_assets(
            manifest=manifest, project=DBT_PROJECT, name=name, select=select, exclude=exclude or None,
            partitions_def=partitions_def,
            backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
            dagster_dbt_translator=translator, pool=WAREHOUSE_POOL,
        )
        def warehouse_dbt(context: AssetExecutionContext, dbt: DbtCliResource, lake: StorageResource,
                          warehouse: WarehouseResource):
            warehouse.prepare()
            # A partitioned step: its partitions; a whole-table step: the window of the run it is
            # in (the hours that changed; a fold per key keeps each row exact), else every hour.
            window = context.partition_time_window if context.assets_def.partitions_def else run_window(context.run.tags)
            yield from _dbt_build(context, dbt, dbt_vars(window, lake, warehouse), warehouse)

        out.append(warehouse_dbt)
    return out
