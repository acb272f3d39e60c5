"""Vendors that must be polled, as assets upstream of `<source>_landed`: `<source>_export_files`,
the files a puller copied from the vendor's API into the landing area, by the hour they arrived
(the lineage reads vendor API → export files → landed → events → marts)."""

from dataclasses import asdict

import dagster as dg

from orchestration.contracts import SourceContract
from orchestration.pullers.atomic import AtomicApiError, AtomicConfig, AtomicNotConfigured, pull_atomic
from orchestration.resources import StorageResource
from orchestration.settings import Settings


def export_files_key(source: str) -> dg.AssetKey:
    return dg.AssetKey(f"{source}_export_files")


def build_atomic_export_files(contract: SourceContract, arrival_partitions: dg.PartitionsDefinition,
                              settings: Settings) -> dg.AssetsDefinition:
    """Atomic's batched analytics API: each batch key (the hour a batch ended) is an arrival hour."""

    @dg.asset(
        key=export_files_key(contract.name), partitions_def=arrival_partitions, group_name=contract.name,
        backfill_policy=dg.BackfillPolicy.single_run(), owners=list(contract.owners), kinds={"api"},
        description="Atomic's hourly analytics batches, pulled from its batched analytics API (ATOMIC_API_URL) "
                    "into the landing area as atomic/{batch key}/{name}.{format}: one request per 30 days, "
                    "expired URLs asked again, empty hours recorded, files already there kept.",
    )
    def atomic_export_files(context: dg.AssetExecutionContext, landing: StorageResource):
        start, end = context.partition_time_window
        try:
            config = AtomicConfig.from_settings(settings)
            report = pull_atomic(config, landing.store(), start, end, logger=context.log)
        except (AtomicNotConfigured, AtomicApiError) as exc:  # their messages never hold the token
            raise dg.Failure(description=str(exc)) from None
        for key, hour in report.hours.items():  # each hour's own outcome, in the UI's partition view
            pulled = asdict(hour)
            context.add_asset_metadata({
                "files_written": len(pulled["written"]), "files_already_there": len(pulled["already_there"]),
                "empty": pulled["empty"], "not_processed_yet": pulled["not_processed"],
                "expired_retried": pulled["expired_retried"], "too_old": pulled["too_old"]}, partition_key=key)
        context.log.info(f"atomic: {report.summary()}")
        return dg.MaterializeResult()

    return atomic_export_files


# A source whose vendor must be polled: its puller asset's builder (the others push their files).
PULLERS = {"atomic": build_atomic_export_files}


def build_puller_assets(contracts: dict[str, SourceContract], arrival_partitions: dg.PartitionsDefinition,
                        settings: Settings) -> dict[str, dg.AssetsDefinition]:
    return {s: build(contracts[s], arrival_partitions, settings) for s, build in PULLERS.items() if s in contracts}
