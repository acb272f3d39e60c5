"""Schedules: keep the latest arrival hours current."""


from datetime import timedelta, timezone

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.jobs import LAND_JOB, PULL_DAY_JOB, PULL_JOB
from orchestration.contracts import SourceContract
from orchestration.settings import Settings, format_hour
from orchestration.partitions import range_tags
from orchestration.pullers import NotConfigured
from orchestration.pullers.altis import AltisConfig
from orchestration.pullers.atomic import AtomicConfig


def build_schedules(contracts: dict[str, SourceContract], settings: Settings,
                    jobs: dict[str, UnresolvedAssetJobDefinition]) -> list[dg.ScheduleDefinition]:
    @dg.schedule(
        name="hourly_landing", cron_schedule="5 * * * *", execution_timezone="UTC",
        job=jobs[LAND_JOB], default_status=dg.DefaultScheduleStatus.STOPPED,
        description="At five past each hour, lands the hour that ended and the one before, as one run "
                    "(the late_events_sensor then rebuilds the event hours they affect).",
    )
    def hourly_landing(context: dg.ScheduleEvaluationContext):
        hour = context.scheduled_execution_time.replace(minute=0, second=0, microsecond=0)
        first, last = hour - timedelta(hours=2), hour - timedelta(hours=1)
        first = max(first, settings.start)
        if last < first:
            return dg.SkipReason("before the first partition")
        return dg.RunRequest(run_key=format_hour(last), tags=range_tags(format_hour(first), format_hour(last)))

    def pull_schedule(name: str, cron: str, job: str, config, description: str):
        """A pull schedule: running by default once its vendor's credentials are set (its config
        builds from the settings), stopped otherwise."""
        try:
            config.from_settings(settings)
            status = dg.DefaultScheduleStatus.RUNNING
        except NotConfigured:  # it names what is missing when run
            status = dg.DefaultScheduleStatus.STOPPED
        return dg.schedule(name=name, cron_schedule=cron, execution_timezone="UTC", job=jobs[job],
                           default_status=status, description=description)

    schedules = [hourly_landing]
    if PULL_JOB in jobs:
        @pull_schedule("hourly_pull", "15 * * * *", PULL_JOB, AtomicConfig,
                       "At a quarter past each hour, pulls the vendors' batches of the three hours that ended "
                       "(a batch comes at most an hour after its period; hours not processed yet are asked "
                       "again); the landing_files_sensor then lands them. Running once the vendor's "
                       "credentials are set.")
        def hourly_pull(context: dg.ScheduleEvaluationContext):
            hour = context.scheduled_execution_time.replace(minute=0, second=0, microsecond=0)
            first, last = max(hour - timedelta(hours=3), settings.start), hour - timedelta(hours=1)
            if last < first:
                return dg.SkipReason("before the first partition")
            return dg.RunRequest(run_key=f"pull|{format_hour(last)}", tags=range_tags(format_hour(first), format_hour(last)))

        schedules.append(hourly_pull)
    if PULL_DAY_JOB in jobs:
        @pull_schedule("daily_pull", "20 0 * * *", PULL_DAY_JOB, AltisConfig,
                       "At 00:20 UTC, pulls the vendors' daily exports of the day that ended (Altis); the "
                       "landing_files_sensor then lands them. Running once the vendor's credentials are set.")
        def daily_pull(context: dg.ScheduleEvaluationContext):
            day = context.scheduled_execution_time.astimezone(timezone.utc).date() - timedelta(days=1)
            if day < settings.start.date():
                return dg.SkipReason("before the first partition")
            return dg.RunRequest(run_key=f"pull|{day.isoformat()}", partition_key=day.isoformat())

        schedules.append(daily_pull)
    return schedules
