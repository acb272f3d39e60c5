"""Schedules: keep the latest arrival hours current."""


from datetime import timedelta

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

from orchestration.jobs import LAND_JOB
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

    return [hourly_landing]
