"""A check's result as Dagster records it, for checks that run in a step of their own.

Dagster ties each evaluation to the materialisation it checked. In a run over a range of
partitions it finds that one through the checked asset's data version as the check step's input,
which lists every partition of the asset first (~0.15 s a check at two years of hours, for each
hourly run: bench/README.md, "seventeenth"). The target is the asset's latest materialisation
(of the run's partition, in a run of one), read here from its index instead."""

from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (
    AssetCheckEvaluationTargetMaterializationData,
)


def recorded(context: dg.AssetCheckExecutionContext, result: dg.AssetCheckResult) -> Iterator[dg.Output | dg.AssetCheckEvaluation]:
    """What Dagster makes of `result` (which names its asset and check): the check's output, then
    its evaluation with the target materialisation."""
    key = dg.AssetCheckKey(result.asset_key, result.check_name)
    assets_def = context.op_execution_context.assets_def
    spec = assets_def.get_spec_for_check_key(key)
    partitions = [context.partition_key] if context.has_partition_key else None
    latest = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key.asset_key, asset_partitions=partitions), limit=1).records
    target = (AssetCheckEvaluationTargetMaterializationData(
        run_id=latest[0].run_id, storage_id=latest[0].storage_id, timestamp=latest[0].timestamp) if latest else None)
    yield dg.Output(None, output_name=assets_def.get_output_name_for_asset_check_key(key))
    yield dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name, passed=result.passed,
                                  metadata=result.metadata, target_materialization_data=target,
                                  severity=result.severity, description=result.description, blocking=spec.blocking)
