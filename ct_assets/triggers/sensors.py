"""Retraining triggers as Dagster sensors: metric, volume and staleness (in days of data),
and the promotion follow-up sensor. The model's wall-clock age is declarative automation
(``ct_assets.triggers.automation``).

Each is a thin wrapper: it reads observations (lake, registry, instance), builds the
candidate requests with the pure functions in ``ct_assets.triggers.policy``, and lets the
one arbiter (``policy.choose_request``: policy, cooldown, in-flight cap, priority) decide.
A skip says, in the figures each cause was judged by, why nothing ran. A run is a
RunRequest for the training chain with ``ct/trigger``, ``ct/reason`` and ``ct/training``
tags and a run_key that makes each cause fire once. All start RUNNING.
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
from ct_assets.triggers.automation import CHAIN, PROMOTION
from ct_assets.triggers.observations import (
    labelled_rows_since,
    latest_day,
    recent_observations,
)
from ct_assets.triggers.policy import (
    NO_CHAMPION,
    accuracy_request,
    accuracy_skip_reason,
    choose_request,
    drift_request,
    drift_skip_reason,
    staleness_request,
    staleness_skip_reason,
    volume_request,
    volume_skip_reason,
)

CHAIN_KEYS = [AssetKey(a) for a in CHAIN]
# canary_report first: the day's canary verdict (and a withdrawal) is in before champion counts days.
PROMOTION_KEYS = [AssetKey(a) for a in PROMOTION]
NO_DRIFT_REPORT = "no drift report yet: the retrain sensors judge the newest day whose data half ran"
ACTIVE = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def last_training_day(instance) -> dt.date | None:
    event = instance.get_latest_materialization_event(AssetKey("lora_adapter"))
    partition = event.asset_materialization.partition if event and event.asset_materialization else None
    return dt.date.fromisoformat(partition) if partition else None


def decide(candidates, instance, settings: Settings, today: dt.date, quiet: str = "") -> RunRequest | SkipReason:
    """The arbiter's answer for these candidates, as a RunRequest or a SkipReason that says
    why each candidate was not run, followed by ``quiet``: why the causes that did not fire
    did not (the figures they were judged by)."""
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
        return SkipReason("; ".join([*skipped, quiet] if quiet else skipped) or "nothing to do")
    return RunRequest(run_key=chosen.run_key, partition_key=chosen.partition_key,
                      asset_selection=CHAIN_KEYS, tags=chosen.tags)


def build_sensors(settings: Settings) -> list:
    tg = settings.triggers

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain on drift ({tg.drift_k} of {tg.drift_n} days) or accuracy < {tg.min_accuracy}")
    def metric_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason(NO_DRIFT_REPORT)
        obs = recent_observations(lake, today, tg.drift_n)
        window = registry.champion_window()
        after = window[1] if window else None
        accuracy = {"min_accuracy": tg.min_accuracy, "use_estimated": tg.use_estimated_accuracy, "today": today}
        drift = {"k": tg.drift_k, "n": tg.drift_n, "today": today, "after": after}
        # The reason quotes the thresholds each day was judged by (its drift_report row).
        candidates = {"accuracy": accuracy_request(obs, **accuracy), "drift": drift_request(obs, **drift)}
        quiet = {"drift": drift_skip_reason(obs, **drift),
                 "accuracy": accuracy_skip_reason(obs, **accuracy) if window else NO_CHAMPION}
        return decide(list(candidates.values()), context.instance, settings, today,
                      "; ".join(quiet[c] for c in quiet if candidates[c] is None))

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain after more than {tg.volume_rows} new clean labelled rows")
    def volume_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason(NO_DRIFT_REPORT)
        window = registry.champion_window()
        end = window[1] if window else None
        rows = labelled_rows_since(lake, end, today, settings.partitions.start_date)
        request = volume_request(rows, volume_rows=tg.volume_rows, window_end=end, today=today)
        return decide([request], context.instance, settings, today,
                      "" if request else volume_skip_reason(rows, volume_rows=tg.volume_rows, window_end=end))

    @sensor(asset_selection=CHAIN_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description=f"retrain when the champion's newest training day is more than {tg.staleness_days} days "
                        "of data old (partition-aware, so a backfill ages it too; the wall-clock age of the model "
                        "is model_automation_sensor's)")
    def freshness_retrain_sensor(context: SensorEvaluationContext, lake: Lake, registry: ModelRegistryResource):
        today = latest_day(lake)
        if today is None:
            return SkipReason(NO_DRIFT_REPORT)
        window = registry.champion_window()
        end = window[1] if window else None
        days = (today - end).days if end else None
        request = staleness_request(days, staleness_days=tg.staleness_days, window_end=end, today=today)
        return decide([request], context.instance, settings, today,
                      "" if request else staleness_skip_reason(days, staleness_days=tg.staleness_days, window_end=end))

    @sensor(asset_selection=PROMOTION_KEYS, default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=300,
            description="runs the canary and shadow reports and the promotion decision daily while a gated "
                        "challenger waits (canary days, shadow days, human approval)")
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
                  REASON_TAG: f"canary, shadow and promotion check of waiting challenger v{challenger} on {today}"},
        )

    return [metric_retrain_sensor, volume_retrain_sensor, freshness_retrain_sensor, promotion_sensor]
