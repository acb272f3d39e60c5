"""The dbt project as Dagster assets: one `@dbt_assets` over the event-hour partitions. A range
runs as one run and one `dbt build` over the whole window (vars `min_date`/`max_date`, half-open).
This is the only step that writes the DuckDB file."""


import json
from datetime import timezone
from pathlib import Path
from typing import Any, Mapping

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, DbtProject, dbt_assets

from orchestration.assets.ingestion import events_key
from orchestration.dbt_yaml import DBT_EXECUTABLE, DBT_PROJECT_DIR
from orchestration.resources import WAREHOUSE_POOL, StorageResource, WarehouseResource

DBT_ASSETS_NAME = "warehouse_dbt"
DBT_PROJECT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def _newest_source_file() -> float:
    files = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for folder in ("models", "macros", "tests"):
        files.extend(p for p in (DBT_PROJECT_DIR / folder).rglob("*") if p.is_file())
    return max(p.stat().st_mtime for p in files)


def ensure_manifest() -> Path:
    """dbt's manifest, parsed again when the project changed since the last parse."""
    manifest = Path(DBT_PROJECT.manifest_path)
    if not manifest.exists() or manifest.stat().st_mtime < _newest_source_file():
        DbtCliResource(project_dir=DBT_PROJECT, dbt_executable=DBT_EXECUTABLE).cli(["parse", "--quiet"], target_path=Path("target")).wait()
    return manifest


class WarehouseTranslator(DagsterDbtTranslator):
    """Lake sources are the `<source>_events` assets; models are grouped by layer."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source" and dbt_resource_props["source_name"] == "lake":
            return events_key(dbt_resource_props["name"].removesuffix("_events"))
        return dg.AssetKey(dbt_resource_props["name"])

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


def dbt_vars(window: dg.TimeWindow, lake: StorageResource, warehouse: WarehouseResource) -> dict[str, str]:
    def iso(t):
        return t.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")

    return {"min_date": iso(window.start), "max_date": iso(window.end), "lake_root": lake.root,
            "duckdb_path": warehouse.path}


def build_dbt_assets(event_partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    @dbt_assets(
        manifest=ensure_manifest(),
        project=DBT_PROJECT,
        name=DBT_ASSETS_NAME,
        partitions_def=event_partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=WarehouseTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True)),
        pool=WAREHOUSE_POOL,
    )
    def warehouse_dbt(context: AssetExecutionContext, dbt: DbtCliResource, lake: StorageResource,
                      warehouse: WarehouseResource):
        warehouse.prepare()
        variables = dbt_vars(context.partition_time_window, lake, warehouse)
        context.log.info(f"dbt build over [{variables['min_date']}, {variables['max_date']})")
        # Failed dbt tests are reported as failed (blocking) asset checks, not as a crash of the
        # step, so the contract checks still run and name the rows; a model that fails to build does fail it.
        invocation = dbt.cli(["build", "--vars", json.dumps(variables)], context=context, raise_on_error=False)
        yield from invocation.stream()
        failed = [r for r in invocation.get_artifact("run_results.json").get("results", [])
                  if r.get("unique_id", "").startswith("model.") and r.get("status") == "error"]
        if failed:
            raise dg.Failure(
                description="dbt could not build " + ", ".join(r["unique_id"].split(".")[-1] for r in failed),
                metadata={r["unique_id"].split(".")[-1]: (r.get("message") or "")[:1000] for r in failed})

    return warehouse_dbt
