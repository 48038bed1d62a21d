"""Retraining triggers as Dagster sensors: metric, volume and freshness, and the
promotion follow-up sensor.

Each is a thin wrapper: it reads observations (lake, registry, instance), builds the
candidate requests with the pure functions in ``ct_assets.triggers.policy``, and lets the
one arbiter (``policy.choose_request``: policy, cooldown, in-flight cap, priority) decide.
The answer becomes a RunRequest for the training chain with ``ct/trigger`` and
``ct/reason`` tags and a run_key that makes each cause fire once. All start RUNNING.
"""

import datetime as dt

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from ct_assets.core.schema import REASON_TAG, TRAINING_TAG, TRIGGER_TAG
from ct_assets.core.settings import Settings
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.run_sweep import sweep_dead_runs
from ct_assets.registry.resources import ModelRegistryResource
from ct_assets.triggers.observations import (
    labelled_rows_since,
    latest_day,
    recent_observations,
)
from ct_assets.triggers.policy import (
    TriggerRequest,
    accuracy_request,
    choose_request,
    drift_request,
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


def decide(candidates, instance, settings: Settings, today: dt.date, nothing: str) -> RunRequest | SkipReason:
    """The arbiter's answer for these candidates, as a RunRequest or a SkipReason that
    says why each candidate was not run (or ``nothing`` when there was no candidate)."""
    tg = settings.triggers
    # A killed run would otherwise stay STARTED and hold the in-flight cap until run
    # monitoring's max runtime: every tick first fails the runs whose process is gone.
    sweep_dead_runs(instance)
    in_flight = instance.get_runs(filters=RunsFilter(tags={TRAINING_TAG: "true"}, statuses=ACTIVE),
                                  limit=tg.max_concurrent_training_runs + 1)
    chosen, skipped = choose_request(
        candidates, policy=tg.policy, last_training_day=last_training_day(instance), today=today,
        cooldown_days=tg.cooldown_days, in_flight=len(in_flight), max_in_flight=tg.max_concurrent_training_runs)
    if chosen is None:
        return SkipReason("; ".join(skipped) or nothing)
    return RunRequest(run_key=chosen.run_key, partition_key=chosen.partition_key,
                      asset_selection=CHAIN_KEYS, tags=chosen.tags)


def build_sensors(settings: Settings) -> list:
    tg = settings.triggers

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain on drift ({tg.drift_k} of {tg.drift_n} days) or accuracy < {tg.min_accuracy}")
    def metric_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason("no drift report yet")
        obs = recent_observations(lake, today, tg.drift_n)
        window = registry.champion_window()
        candidates = [
            accuracy_request(obs, min_accuracy=tg.min_accuracy, use_estimated=tg.use_estimated_accuracy, today=today),
            # The reason quotes the thresholds each day was judged by (its drift_report row).
            drift_request(obs, k=tg.drift_k, n=tg.drift_n, today=today, after=window[1] if window else None),
        ]
        return decide(candidates, context.instance, settings, today, f"no drift or accuracy cause on {today}")

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain after more than {tg.volume_rows} new clean labelled rows")
    def volume_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason("no drift report yet")
        window = registry.champion_window()
        rows = labelled_rows_since(lake, window[1] if window else None, today, settings.partitions.start_date)
        request = volume_request(rows, volume_rows=tg.volume_rows, window_end=window[1] if window else None, today=today)
        return decide([request], context.instance, settings, today, f"{rows} new labelled rows <= {tg.volume_rows}")

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
        return decide([request], context.instance, settings, today, f"model fresh as of {today}")

    @sensor(asset_selection=PROMOTION_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description="runs shadow and the promotion decision daily while a gated challenger waits "
                        "(shadow days, human approval)")
    def promotion_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake, "validated_window")
        challenger = registry.alias_version("challenger")
        if today is None or challenger is None or challenger == registry.champion_version():
            return SkipReason("no challenger waiting")
        info = registry.version(challenger)
        if info.evaluation is None or not info.evaluation.passed:
            return SkipReason(f"challenger v{challenger} did not pass the gate")
        if info.rolled_back:
            return SkipReason(f"v{challenger} was rolled back; it is not re-promoted automatically")
        return RunRequest(
            run_key=f"promotion:v{challenger}:{today}", partition_key=today.isoformat(), asset_selection=PROMOTION_KEYS,
            tags={TRIGGER_TAG: info.trigger,
                  REASON_TAG: f"shadow and promotion check of waiting challenger v{challenger} on {today}"},
        )

    return [metric_retrain_sensor, volume_retrain_sensor, freshness_retrain_sensor, promotion_sensor]


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
