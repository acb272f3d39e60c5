"""Vendors that must be polled, as assets upstream of `<source>_landed`: `<source>_export_files`,
the files a puller copied from the vendor's API into the landing area, by the hour they arrived
(the lineage reads vendor API → export files → landed → events → marts)."""

import dagster as dg

from orchestration.contracts import SourceContract
from orchestration.partitions import day_partitions
from orchestration.pullers import NotConfigured
from orchestration.pullers.altis import AltisApiError, AltisConfig, pull_altis
from orchestration.pullers.atomic import AtomicApiError, AtomicConfig, pull_atomic
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
        except (NotConfigured, AtomicApiError) as exc:  # their messages never hold the token
            raise dg.Failure(description=str(exc)) from None
        if report.failures:  # the files of the other hours are written and land all the same
            raise dg.Failure(description=f"atomic: {len(report.failures)} hours could not be pulled, the next pull "
                                         f"asks again: {report.summary()}", metadata=report.metadata())
        run_ledger = {f"pull_{k}": len(v) if isinstance(v, list) else v for k, v in report.metadata().items()}
        for key in report.hours:  # each hour's own outcome, and the run's counts, in the UI's partition view
            context.add_asset_metadata({**report.metadata_of(key), **run_ledger}, partition_key=key)
        return dg.MaterializeResult()

    return atomic_export_files


def build_altis_export_files(contract: SourceContract, arrival_partitions: dg.PartitionsDefinition,
                             settings: Settings) -> dg.AssetsDefinition:
    """Altis's analytics events API: one file a UTC day, pulled once the day has ended."""

    @dg.asset(
        key=export_files_key(contract.name), partitions_def=day_partitions(settings), group_name=contract.name,
        owners=list(contract.owners), kinds={"api"},
        description="Altis's daily analytics export, pulled from GET {ALTIS_URL}/wp-json/analytics/v1/events/<day> "
                    "(basic auth, application password) once the UTC day has ended, streamed into the landing area "
                    "as altis/{YYYY-MM-DD}.{format}: a timeout or a break is asked again with a smaller chunk_size; "
                    "a re-pull replaces the file (atomically) only when its content changed.",
    )
    def altis_export_files(context: dg.AssetExecutionContext, landing: StorageResource):
        day = context.partition_key
        try:
            config = AltisConfig.from_settings(settings)
            report = pull_altis(config, landing.store(), day, logger=context.log)
        except (NotConfigured, AltisApiError) as exc:  # their messages never hold the password
            raise dg.Failure(description=str(exc)) from None
        if report.not_ended:
            raise dg.Failure(description=f"Altis's export of {day} is pulled once the day has ended (after midnight "
                                         "UTC): not pulled, nothing written")
        return dg.MaterializeResult(metadata=report.metadata())

    return altis_export_files


# A source whose vendor must be polled: its puller asset's builder (the others push their files).
PULLERS = {"atomic": build_atomic_export_files, "altis": build_altis_export_files}


def build_puller_assets(contracts: dict[str, SourceContract], arrival_partitions: dg.PartitionsDefinition,
                        settings: Settings) -> dict[str, dg.AssetsDefinition]:
    return {s: build(contracts[s], arrival_partitions, settings) for s, build in PULLERS.items() if s in contracts}


def landed_dep(puller: dg.AssetsDefinition) -> dg.AssetDep:
    """The puller as a dep of `<source>_landed` (arrival hours). A daily puller's file of day D is
    filed under arrival hour D+1 00 (the landing layout's arrivalShiftHours 24): an arrival hour of
    day D+1 depends on the file of day D."""
    if isinstance(puller.partitions_def, dg.DailyPartitionsDefinition):
        return dg.AssetDep(puller.key, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))
    return dg.AssetDep(puller.key)
