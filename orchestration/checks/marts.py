"""Great Expectations suites compiled from the mart contracts, run as blocking Dagster asset
checks on the rows of the run's partition window (the whole mart when the run has none)."""


from datetime import datetime

import dagster as dg
from dagster import AssetCheckExecutionContext

from orchestration.contracts import MartContract
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.partitions import run_window

CONTRACT_CHECK = "contract"


def window_query(mart: MartContract, window: tuple[datetime, datetime] | None) -> str:
    """The mart's rows a window selects, by its contract's `windowColumn` (whole days for a DATE)."""
    query = f"select * from {mart.relation}"
    if window is None or not mart.window_column:
        return query
    column = next(c for c in mart.columns if c.name == mart.window_column)
    lo, hi = (t.replace(tzinfo=None) for t in window)
    if column.data_type == "DATE":
        lo = lo.replace(hour=0)
    return f"{query} where {column.name} >= TIMESTAMP '{lo:%Y-%m-%d %H:%M:%S}' and {column.name} < TIMESTAMP '{hi:%Y-%m-%d %H:%M:%S}'"


def build_mart_checks(marts: dict[str, MartContract]) -> dg.AssetChecksDefinition:
    specs = [dg.AssetCheckSpec(CONTRACT_CHECK, asset=dg.AssetKey(name), blocking=True,
                               description=("The rows of the run's partitions keep" if marts[name].partitioning != "none" else "Every row keeps")
                               + f" every rule of data_contracts/marts/{name}.yaml (Great Expectations).")
             for name in sorted(marts)]

    @dg.multi_asset_check(specs=specs, name="mart_contracts", can_subset=True, pool=WAREHOUSE_POOL)
    def mart_contracts(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        from orchestration.checks.great_expectations import validate_mart

        window = run_window(context.run.tags)
        with warehouse.read_only("mart contract checks", run_id=context.run.run_id, log=context.log) as con:
            tables = WarehouseResource.relations(con)
            for key in sorted(context.selected_asset_check_keys, key=str):
                mart = marts[key.asset_key.path[-1]]
                if mart.relation not in tables:
                    yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=False,
                                              description=f"{mart.relation} does not exist in {warehouse.path}")
                    continue
                # A partitioned mart: the rows of the run's window; a whole-table mart: all of it.
                checked = window if mart.partitioning != "none" else None
                result = validate_mart(mart, con.sql(window_query(mart, checked)).df())
                yield dg.AssetCheckResult(
                    asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                    description=result.message[:2000],
                    metadata={"rows_checked": result.rows_checked, "rules_broken": len(result.failures),
                              "window": "whole mart" if checked is None else f"[{checked[0]:%Y-%m-%dT%H}, {checked[1]:%Y-%m-%dT%H})"},
                )

    return mart_contracts
