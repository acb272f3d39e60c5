"""Schedules: keep the latest arrival hours current."""


from datetime import timedelta, timezone

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.jobs import LAND_JOB, PULL_DAY_JOB, PULL_JOB
from orchestration.contracts import SourceContract
from orchestration.settings import Settings, format_hour
from orchestration.partitions import range_tags


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

    schedules = [hourly_landing]
    if PULL_JOB in jobs:
        configured = bool(settings.atomic_api_url and settings.atomic_environment_id and settings.atomic_api_token)

        @dg.schedule(
            name="hourly_pull", cron_schedule="15 * * * *", execution_timezone="UTC", job=jobs[PULL_JOB],
            default_status=dg.DefaultScheduleStatus.RUNNING if configured else dg.DefaultScheduleStatus.STOPPED,
            description="At a quarter past each hour, pulls the vendors' batches of the three hours that ended "
                        "(a batch comes at most an hour after its period; hours not processed yet are asked "
                        "again); the landing_files_sensor then lands them. Running once the vendor's "
                        "credentials are set.",
        )
        def hourly_pull(context: dg.ScheduleEvaluationContext):
            hour = context.scheduled_execution_time.replace(minute=0, second=0, microsecond=0)
            first, last = max(hour - timedelta(hours=3), settings.start), hour - timedelta(hours=1)
            if last < first:
                return dg.SkipReason("before the first partition")
            return dg.RunRequest(run_key=f"pull|{format_hour(last)}", tags=range_tags(format_hour(first), format_hour(last)))

        schedules.append(hourly_pull)
    if PULL_DAY_JOB in jobs:
        altis_configured = bool(settings.altis_url and settings.altis_username and settings.altis_app_password)

        @dg.schedule(
            name="daily_pull", cron_schedule="20 0 * * *", execution_timezone="UTC", job=jobs[PULL_DAY_JOB],
            default_status=dg.DefaultScheduleStatus.RUNNING if altis_configured else dg.DefaultScheduleStatus.STOPPED,
            description="At 00:20 UTC, pulls the vendors' daily exports of the day that ended (Altis); the "
                        "landing_files_sensor then lands them. Running once the vendor's credentials are set.",
        )
        def daily_pull(context: dg.ScheduleEvaluationContext):
            day = context.scheduled_execution_time.astimezone(timezone.utc).date() - timedelta(days=1)
            if day < settings.start.date():
                return dg.SkipReason("before the first partition")
            return dg.RunRequest(run_key=f"pull|{day.isoformat()}", partition_key=day.isoformat())

        schedules.append(daily_pull)
    return schedules
