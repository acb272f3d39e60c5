"""Each mart's contract as one blocking Dagster asset check, on the rows of the run's partition
window (the whole mart when the run has none).

One engine per rule, the contract the source of both (orchestration/dbt_yaml.py compiles it to
dbt, checks/great_expectations.py to Great Expectations): dbt's model contract and tests own the
column rules (columns and types, not null, keys, enums, ranges, patterns, `sql` rules) and run in
the dbt step of the same run; this check runs the rules dbt cannot express (`custom`
great-expectations rules) and passes only when that mart's dbt tests passed too. When one of them
failed, or none ran in this run (the check launched on its own), it runs the whole suite instead,
so that the failure is reported rule by rule with the rows that break it."""


from datetime import datetime

import dagster as dg
from dagster import AssetCheckExecutionContext

from orchestration.checks.evaluations import recorded
from orchestration.contracts import MartContract
from orchestration.resources import WAREHOUSE_POOL, WarehouseResource
from orchestration.partitions import run_window
from orchestration.settings import format_hour

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


def dbt_test_outcomes(context: AssetCheckExecutionContext, marts: dict[str, MartContract]) -> dict[str, tuple[int, bool]]:
    """mart -> (dbt tests of it evaluated in this run, whether every one passed); a mart none ran
    for is absent."""
    records = context.instance.get_records_for_run(
        context.run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=100_000).records
    out: dict[str, tuple[int, bool]] = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        unique_id = evaluation.metadata.get("unique_id")
        name = evaluation.asset_key.path[-1]
        if name not in marts or unique_id is None or not str(unique_id.value).startswith("test."):
            continue  # not a dbt test (a contract or freshness check)
        count, passed = out.get(name, (0, True))
        out[name] = (count + 1, passed and evaluation.passed)
    return out


def build_mart_checks(marts: dict[str, MartContract]) -> dg.AssetChecksDefinition:
    specs = [dg.AssetCheckSpec(CONTRACT_CHECK, asset=dg.AssetKey(name), blocking=True,
                               description=("The rows of the run's partitions keep" if marts[name].partitioning != "none" else "Every row keeps")
                               + f" every rule of data_contracts/marts/{name}.yaml: the column rules by dbt's model contract and "
                               "tests, the rest by Great Expectations, which names the rows that break any.")
             for name in sorted(marts)]

    @dg.multi_asset_check(specs=specs, name="mart_contracts", can_subset=True, pool=WAREHOUSE_POOL)
    def mart_contracts(context: AssetCheckExecutionContext, warehouse: WarehouseResource):
        from orchestration.checks.great_expectations import MartValidation, validate_mart

        window = run_window(context.run.tags)
        dbt_tests = dbt_test_outcomes(context, marts)
        with warehouse.read_only("mart contract checks", run_id=context.run.run_id, log=context.log) as con:
            tables = WarehouseResource.relations(con)
            for key in sorted(context.selected_asset_check_keys, key=str):
                mart = marts[key.asset_key.path[-1]]
                if mart.relation not in tables:
                    yield from recorded(context, dg.AssetCheckResult(
                        asset_key=key.asset_key, check_name=key.name, passed=False,
                        description=f"{mart.relation} does not exist in {warehouse.path}"))
                    continue
                # A partitioned mart: the rows of the run's window; a whole-table mart: all of it.
                checked = window if mart.partitioning != "none" else None
                query = window_query(mart, checked)
                tests, tests_passed = dbt_tests.get(mart.name, (0, False))
                beyond_dbt = tests > 0 and tests_passed  # else: every rule here, to name the rows
                if beyond_dbt and not any(r.kind == "great-expectations" for r in mart.rules):
                    rows = con.sql(f"select count(*) from ({query})").fetchone()[0]
                    result = MartValidation(passed=True, rows_checked=rows, contract=mart.name)
                    message = f"every rule is dbt's: its {tests} tests passed in this run"
                else:
                    result = validate_mart(mart, con.sql(query).df(), only_beyond_dbt=beyond_dbt)
                    message = result.message + (f"; dbt's {tests} tests passed in this run" if beyond_dbt else "")
                yield from recorded(context, dg.AssetCheckResult(
                    asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                    description=message[:2000],
                    metadata={"rows_checked": result.rows_checked, "rules_broken": len(result.failures),
                              "dbt_tests_passed": tests if beyond_dbt else 0,
                              "window": "whole mart" if checked is None else f"[{format_hour(checked[0])}, {format_hour(checked[1])})"},
                ))

    return mart_contracts
