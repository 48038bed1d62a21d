"""Retraining triggers as Dagster objects: metric, volume and freshness sensors, the
weekly schedule, and the promotion follow-up sensor.

Each is a thin wrapper: it reads observations (lake, registry, instance), asks the pure
policy in ``ct_assets.triggers.policy`` whether to fire, and turns the answer into a
RunRequest for the training chain with ``ct/trigger`` and ``ct/reason`` tags and a
run_key that makes each cause fire once. All start RUNNING.
"""

import datetime as dt

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    schedule,
    sensor,
)

from ct_assets.automation.observations import labelled_rows_since, latest_day, recent_observations
from ct_assets.resources.lake import Lake
from ct_assets.resources.registry import ModelRegistryResource
from ct_assets.settings import Settings
from ct_assets.triggers.policy import (
    POLICY_TRIGGERS,
    TriggerRequest,
    accuracy_request,
    cooldown_blocks,
    drift_request,
    schedule_request,
    staleness_request,
    volume_request,
)

CHAIN = ("training_dataset", "lora_adapter", "eval_report", "shadow_report", "champion")
CHAIN_KEYS = [AssetKey(a) for a in CHAIN]
PROMOTION_KEYS = [AssetKey("shadow_report"), AssetKey("champion")]
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def last_training_day(instance) -> dt.date | None:
    event = instance.get_latest_materialization_event(AssetKey("lora_adapter"))
    partition = event.asset_materialization.partition if event and event.asset_materialization else None
    return dt.date.fromisoformat(partition) if partition else None


def guard(request: TriggerRequest | None, instance, settings: Settings, today: dt.date):
    """Policy, cooldown and the in-flight cap, shared by every trigger."""
    if request is None:
        return None
    policy = settings.triggers.policy
    if request.trigger not in POLICY_TRIGGERS[policy]:
        return SkipReason(f"{request.trigger}: {request.reason} (policy '{policy}' does not use {request.trigger})")
    blocked = cooldown_blocks(last_training_day(instance), today, settings.triggers.cooldown_days)
    if blocked:
        return SkipReason(f"{request.trigger}: {request.reason} ({blocked})")
    in_flight = instance.get_runs(filters=RunsFilter(tags={"ct/training": "true"}, statuses=ACTIVE), limit=10)
    if len(in_flight) >= settings.triggers.max_concurrent_training_runs:
        return SkipReason(f"{request.trigger}: {request.reason} ({len(in_flight)} training run(s) in flight)")
    return RunRequest(run_key=request.run_key, partition_key=request.partition_key,
                      asset_selection=CHAIN_KEYS, tags=request.tags)


def build_triggers(settings: Settings) -> tuple[list, list]:
    tg = settings.triggers
    thresholds = settings.drift.thresholds.model_dump()

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain on drift ({tg.drift_k} of {tg.drift_n} days) or accuracy < {tg.min_accuracy}")
    def metric_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason("no drift report yet")
        obs = recent_observations(lake, today, tg.drift_n)
        window = registry.champion_window()
        request = accuracy_request(obs, min_accuracy=tg.min_accuracy, use_estimated=tg.use_estimated_accuracy,
                                   today=today) or drift_request(
            obs, k=tg.drift_k, n=tg.drift_n, thresholds=thresholds, today=today,
            after=window[1] if window else None)
        return guard(request, context.instance, settings, today) or SkipReason(f"no drift or accuracy cause on {today}")

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain after more than {tg.volume_rows} new clean labelled rows")
    def volume_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason("no drift report yet")
        window = registry.champion_window()
        rows = labelled_rows_since(lake, window[1] if window else None, today, settings.partitions.start_date)
        request = volume_request(rows, volume_rows=tg.volume_rows, window_end=window[1] if window else None, today=today)
        return guard(request, context.instance, settings, today) or SkipReason(f"{rows} new labelled rows <= {tg.volume_rows}")

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description="retrain when the model is stale: partition-aware (days of data since the champion's "
                        "window) and wall-clock (the model assets' FreshnessPolicy)")
    def freshness_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason("no drift report yet")
        window = registry.champion_window()
        days = (today - window[1]).days if window else None
        request = staleness_request(days, staleness_days=tg.staleness_days, window_end=window[1] if window else None,
                                    today=today)
        if request is None and window is not None:
            request = _wall_clock_staleness(context.instance, tg.staleness_days, today)
        return guard(request, context.instance, settings, today) or SkipReason(f"model fresh as of {today}")

    @sensor(asset_selection=PROMOTION_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description="runs shadow and the promotion decision daily while a gated challenger waits "
                        "(shadow days, human approval)")
    def promotion_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake, "validated_window")
        challenger = registry.alias_version("challenger")
        if today is None or challenger is None or challenger == registry.champion_version():
            return SkipReason("no challenger waiting")
        tags = registry.registry.version_info(challenger).tags
        if tags.get("ct.gate") != "passed":
            return SkipReason(f"challenger v{challenger} did not pass the gate")
        if tags.get("ct.rolled_back.ts"):
            return SkipReason(f"v{challenger} was rolled back; it is not re-promoted automatically")
        return RunRequest(
            run_key=f"promotion:v{challenger}:{today}", partition_key=today.isoformat(), asset_selection=PROMOTION_KEYS,
            tags={"ct/trigger": tags.get("ct.trigger", "manual"),
                  "ct/reason": f"shadow and promotion check of waiting challenger v{challenger} on {today}"},
        )

    @schedule(cron_schedule=tg.schedule_cron, target=CHAIN_KEYS, execution_timezone="UTC",
              default_status=DefaultScheduleStatus.RUNNING, description="weekly retrain of the training chain")
    def weekly_retrain_schedule(context: ScheduleEvaluationContext, lake: Lake):
        # At Sunday 23:00 Sunday's partition is still open (it closes at midnight), so the
        # retrain is as of the newest complete day with data, normally Saturday.
        scheduled = context.scheduled_execution_time.date()
        days = [k for k in lake.partitions("drift_report") if k < scheduled.isoformat()]
        if not days:
            return SkipReason(f"no data up to {scheduled}")
        today = dt.date.fromisoformat(days[-1])
        result = guard(schedule_request(today), context.instance, settings, today)
        return result or SkipReason("nothing to do")

    return [metric_retrain_sensor, volume_retrain_sensor, freshness_retrain_sensor, promotion_sensor], [
        weekly_retrain_schedule]


def _wall_clock_staleness(instance, staleness_days: int, today: dt.date) -> TriggerRequest | None:
    """The FreshnessPolicy's view: how long ago (wall clock) lora_adapter materialized."""
    event = instance.get_latest_materialization_event(AssetKey("lora_adapter"))
    if event is None:
        return None
    age = dt.datetime.now(dt.timezone.utc).timestamp() - event.timestamp
    if age <= staleness_days * 86400:
        return None
    return TriggerRequest(
        "freshness", f"lora_adapter last materialized {age / 86400:.1f} days ago > FreshnessPolicy fail window "
        f"{staleness_days} days", today.isoformat(), f"freshness-wallclock:{event.run_id}")
