"""Declarative automation and freshness policies for the asset graph.

- The data half follows ``raw_window`` eagerly: when a day lands, validation and drift
  run for it. The automation-condition sensor that evaluates this is declared RUNNING,
  because Dagster creates its default one STOPPED.
- Freshness uses the 1.13 ``FreshnessPolicy.time_window``: on ``raw_window`` for data
  arrival, on the model assets for model age. It is wall-clock based (a backfill makes an
  asset look fresh), so retraining on staleness also has a partition-aware sensor.
"""

import datetime as dt

from dagster import (
    AssetSelection,
    AutomationCondition,
    AutomationConditionSensorDefinition,
    DefaultSensorStatus,
    FreshnessPolicy,
)

from ct_assets.core.settings import Settings

DATA_FOLLOWERS = ("validated_window", "quarantined_rows", "drift_report")


def automation_for(settings: Settings) -> dict:
    """Keyword pieces the asset factories attach: conditions and freshness policies."""
    model_age = dt.timedelta(days=settings.triggers.staleness_days)
    return {
        "validated_window": AutomationCondition.eager(),
        "drift_report": AutomationCondition.eager(),
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
        target=AssetSelection.assets(*DATA_FOLLOWERS),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=60,
        description="validates and drift-checks each day as soon as its raw_window lands",
    )
