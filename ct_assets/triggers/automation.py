"""Declarative automation and freshness policies for the asset graph.

- The data half follows ``raw_window`` eagerly: when a day lands, validation and drift
  run for it, also a day that lands late (up to LATE_DAY_LOOKBACK back). Older days are a
  backfill. ``canary_report`` follows ``validated_window`` the same way (SERVED_FOLLOWERS):
  a canary that answers users worse is withdrawn the day its served rows land, not when a
  retrain or the promotion sensor next runs. The automation-condition sensors are declared
  RUNNING, because Dagster creates its default one STOPPED.
- A challenger waiting for shadow or canary days is re-judged by ``promotion_sensor``
  (triggers/sensors.py), which runs PROMOTION for the newest validated day once per day;
  ``champion`` reads shadow_report and canary_report over trailing days and counts the
  passing ones. The chain's ``follow_root`` follows the chain only, so canary_report's daily
  runs do not drag ``champion`` along.
- Freshness uses the 1.13 ``FreshnessPolicy.time_window``: on ``raw_window`` for data
  arrival, on the model assets for model age. Dagster's freshness daemon records each
  asset's state; when ``lora_adapter``'s turns FAIL, ``model_automation_sensor`` requests the
  training chain for the latest day. It is wall-clock based (a backfill makes an asset look
  fresh), so staleness counted in days of data stays a sensor (``freshness_retrain_sensor``).
"""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    FreshnessPolicy,
)

from ct_assets.core.schema import REASON_TAG, TRAINING_TAG, TRIGGER_TAG
from ct_assets.core.settings import Settings

DATA_FOLLOWERS = ("validated_window", "quarantined_rows", "drift_report")
CHAIN = ("training_dataset", "lora_adapter", "eval_report", "shadow_report", "champion")
SERVED_FOLLOWERS = ("canary_report",)
# What a waiting challenger's daily re-judgement runs, in dependency order: canary_report
# first, so the day's canary verdict (and a withdrawal) is in before champion counts days.
PROMOTION = ("canary_report", "shadow_report", "champion")
# A module constant, not a setting: settings.py is at its size limit, and a week covers a
# source that delivers a day late or re-delivers a weekend; anything older is a backfill.
LATE_DAY_LOOKBACK = dt.timedelta(days=7)
# The model's age is the age of its newest training (champion also materializes when a
# promotion decision only re-runs, so its age is not the model's).
MODEL_AGE_ASSET = "lora_adapter"


def late_day_eager() -> AutomationCondition:
    """``eager()`` over the last LATE_DAY_LOOKBACK of days instead of only the latest one."""
    window = AutomationCondition.in_latest_time_window(lookback_delta=LATE_DAY_LOOKBACK)
    return AutomationCondition.eager().replace("in_latest_time_window", window).with_label(
        f"eager, days up to {LATE_DAY_LOOKBACK.days} back")


def retrain_when_model_stale() -> AutomationCondition:
    """The chain's root (``training_dataset``): its latest day, while ``lora_adapter``'s
    FreshnessPolicy fails. The rest of the chain follows it in the same run (``follow_root``).

    - once per day at most: the trigger is "stale became true for this day's partition, and
      it was not requested or updated since" (the ``eager()`` pattern), so a failed retrain is
      retried with the next day's partition, not on every tick;
    - after a retrain (any trigger's) the policy passes again for ``staleness_days``: that is
      this path's cooldown; the partition-aware sensors keep the arbiter's cooldown;
    - in flight: nothing while any chain asset of that day is in a run or backfill, whoever
      launched it; across days Dagster's run queue limits the ``ct/training`` runs;
    - data: only once the day's drift_report exists (its data half ran).
    """
    stale = AutomationCondition.asset_matches(MODEL_AGE_ASSET, AutomationCondition.freshness_failed()).with_label(
        f"{MODEL_AGE_ASSET} freshness failed")
    # From the root every other chain asset maps day to day (no partition mapping between them
    # but the default), so "this day of the chain is running" reads the same day everywhere.
    chain_busy = AutomationCondition.in_progress()
    for asset in CHAIN[1:]:
        chain_busy = chain_busy | AutomationCondition.asset_matches(asset, AutomationCondition.in_progress())
    day_checked = ~AutomationCondition.asset_matches("drift_report", AutomationCondition.missing())
    return (
        AutomationCondition.in_latest_time_window()
        & stale
        & stale.newly_true().since_last_handled()
        & day_checked.with_label("the day's drift_report exists")
        & ~chain_busy.with_label("a chain asset of the day is in progress")
        & ~AutomationCondition.any_deps_in_progress()
    ).with_label("retrain when the model is stale")


def follow_root() -> AutomationCondition:
    """The chain below the root: requested with it, for the same day, in the same run."""
    # Only chain deps: champion also reads canary_report, which runs daily on its own.
    requested = AutomationCondition.any_deps_match(AutomationCondition.will_be_requested()).allow(
        AssetSelection.assets(*CHAIN))
    return (AutomationCondition.in_latest_time_window() & requested).with_label("with the training chain")


def automation_for(settings: Settings) -> dict:
    """Keyword pieces the asset factories attach: conditions and freshness policies."""
    model_age = dt.timedelta(days=settings.triggers.staleness_days)
    return {
        "validated_window": late_day_eager(),
        "drift_report": late_day_eager(),
        **{asset: late_day_eager() for asset in SERVED_FOLLOWERS},
        CHAIN[0]: retrain_when_model_stale(),
        **{asset: follow_root() for asset in CHAIN[1:]},
        # A day's files are expected daily; warn after a day, fail after a day and two hours.
        "raw_window_freshness": FreshnessPolicy.time_window(
            fail_window=dt.timedelta(hours=26), warn_window=dt.timedelta(hours=24)
        ),
        # Warn at 80% of the allowed model age, fail past it.
        "model_freshness": FreshnessPolicy.time_window(fail_window=model_age, warn_window=model_age * 0.8),
    }


def data_automation_sensor() -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        "data_automation_sensor",
        target=AssetSelection.assets(*DATA_FOLLOWERS, *SERVED_FOLLOWERS),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description=f"validates, drift-checks and canary-checks each day when its raw_window lands, also a day "
                    f"that lands late (up to {LATE_DAY_LOOKBACK.days} days back; older days: a backfill)",
    )


def model_automation_sensor(settings: Settings) -> AutomationConditionSensorDefinition:
    days = settings.triggers.staleness_days
    return AutomationConditionSensorDefinition(
        "model_automation_sensor",
        target=AssetSelection.assets(*CHAIN),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=300,
        # Every run it launches is a retrain: labelled like the sensors' runs, and counted by
        # the run queue's ct/training limit.
        run_tags={TRIGGER_TAG: "freshness", TRAINING_TAG: "true",
                  REASON_TAG: f"{MODEL_AGE_ASSET} last materialized more than {days} days ago (wall clock): "
                              f"its FreshnessPolicy failed"},
        description=f"retrains the latest day when {MODEL_AGE_ASSET}'s FreshnessPolicy fails "
                    f"(older than {days} days, wall clock)",
    )
