"""The weekly retrain schedule: a thin wrapper over the one arbiter (triggers.sensors.decide)."""

import datetime as dt

from dagster import (
    DefaultScheduleStatus,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from ct_assets.core.settings import Settings
from ct_assets.lake.resources import Lake
from ct_assets.triggers.policy import schedule_request
from ct_assets.triggers.sensors import CHAIN_KEYS, decide


def build_schedules(settings: Settings) -> list:
    @schedule(cron_schedule=settings.triggers.schedule_cron, target=CHAIN_KEYS, execution_timezone="UTC",
              default_status=DefaultScheduleStatus.RUNNING, description="weekly retrain of the training chain")
    def weekly_retrain_schedule(context: ScheduleEvaluationContext, lake: Lake):
        # At Sunday 23:00 Sunday's partition is still open (it closes at midnight), so the
        # retrain is as of the newest complete day with data, normally Saturday.
        scheduled = context.scheduled_execution_time.date()
        days = [k for k in lake.partitions("drift_report") if k < scheduled.isoformat()]
        if not days:
            return SkipReason(f"no data up to {scheduled}")
        today = dt.date.fromisoformat(days[-1])
        return decide([schedule_request(today)], context.instance, settings, today, "nothing to do")

    return [weekly_retrain_schedule]
