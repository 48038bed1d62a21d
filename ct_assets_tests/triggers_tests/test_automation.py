"""Declarative automation, evaluated by Dagster itself on a real instance.

- A late day: ``eager()`` alone acts on the latest daily partition only; the data half's
  condition looks LATE_DAY_LOOKBACK back, so a day that lands 3 days late is validated,
  and one older than the lookback is left to a backfill.
- The model's wall-clock age: the freshness daemon records ``lora_adapter``'s
  FreshnessPolicy state, and the chain's conditions (which ``model_automation_sensor``
  evaluates) request the training chain for the latest day once, not while that day's chain
  is in progress; the sensor tags every run it launches like every retrain.
"""

from __future__ import annotations

import datetime as dt

from dagster import (
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    evaluate_automation_conditions,
    instance_for_test,
)
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange

from ct_assets.triggers.automation import CHAIN, LATE_DAY_LOOKBACK
from ct_assets_tests.triggers_tests.sensor_daemon import freeze_time, sensor_daemon
from ct_assets_tests.triggers_tests.test_sensors import World, day

DATA_FOLLOWERS = ("validated_window", "quarantined_rows", "drift_report")
# What the freshness daemon writes when lora_adapter's policy fails (the first test runs the daemon itself).
FRESHNESS_FAILED = FreshnessStateChange(key=AssetKey("lora_adapter"), previous_state=FreshnessState.UNKNOWN,
                                        new_state=FreshnessState.FAIL, state_change_timestamp=0.0)


def _requested(result, assets) -> dict[str, list[str]]:
    return {a: sorted(result.get_requested_partitions(AssetKey(a))) for a in assets}


def test_a_late_day_within_the_lookback_is_validated_and_an_older_one_is_not(tmp_path):
    w = World(tmp_path)
    assert LATE_DAY_LOOKBACK == dt.timedelta(days=7)
    now = dt.datetime.combine(day(20), dt.time(6), tzinfo=dt.UTC)  # the latest partition is day 19
    with instance_for_test() as instance:
        cursor = evaluate_automation_conditions(w.defs, instance, evaluation_time=now).cursor
        for late in (day(16), day(10)):  # 3 days back; 9 days back
            instance.report_runless_asset_event(AssetMaterialization("raw_window", partition=late.isoformat()))
        result = evaluate_automation_conditions(w.defs, instance, evaluation_time=now + dt.timedelta(minutes=1),
                                                cursor=cursor)
    assert _requested(result, DATA_FOLLOWERS) == {a: [day(16).isoformat()] for a in DATA_FOLLOWERS}


def test_a_stale_model_requests_the_chain_once_and_a_fresh_one_does_not(tmp_path, monkeypatch):
    w = World(tmp_path)  # triggers.staleness_days 14: the FreshnessPolicy's fail window
    trained = dt.datetime.combine(day(5), dt.time(12), tzinfo=dt.UTC)
    chain = AssetSelection.assets(*CHAIN)
    with sensor_daemon(w.home, w.settings, monkeypatch) as daemon:
        instance = daemon.instance
        with freeze_time(trained):
            instance.report_runless_asset_event(AssetMaterialization("lora_adapter", partition=day(5).isoformat()))
        for i in range(25):  # the data half ran for every day
            instance.report_runless_asset_event(AssetMaterialization("drift_report", partition=day(i).isoformat()))

        def evaluate(at, cursor):
            # The freshness daemon records lora_adapter's state as of `at`; Dagster evaluates the chain.
            daemon.evaluate_freshness(at)
            return evaluate_automation_conditions(w.defs, instance, asset_selection=chain, evaluation_time=at,
                                                  cursor=cursor)

        fresh = evaluate(trained + dt.timedelta(days=2), None)
        assert fresh.total_requested == 0, "a model trained 2 days ago is fresh"
        stale_at = trained + dt.timedelta(days=15)  # day 20 noon: the latest partition is day 19
        stale = evaluate(stale_at, fresh.cursor)
        assert _requested(stale, CHAIN) == {a: [day(19).isoformat()] for a in CHAIN}
        # Requested once: the next tick (same evidence) requests nothing.
        assert evaluate(stale_at + dt.timedelta(minutes=10), stale.cursor).total_requested == 0


def test_a_day_whose_chain_is_in_progress_is_not_requested_again(tmp_path):
    w = World(tmp_path)
    at = dt.datetime.combine(day(20), dt.time(12), tzinfo=dt.UTC)
    chain = AssetSelection.assets(*CHAIN)
    with instance_for_test() as instance:
        for i in range(21):
            instance.report_runless_asset_event(AssetMaterialization("drift_report", partition=day(i).isoformat()))
        cursor = evaluate_automation_conditions(w.defs, instance, asset_selection=chain, evaluation_time=at).cursor
        # A retrain of day 19 (e.g. a drift trigger's) is running: its planned materializations are recorded.
        job = w.defs.resolve_implicit_global_asset_job_def()
        instance.create_run_for_job(job, asset_selection=frozenset(AssetKey(a) for a in CHAIN),
                                    tags={"dagster/partition": day(19).isoformat()}, status=DagsterRunStatus.STARTED)
        instance.report_runless_asset_event(FRESHNESS_FAILED)
        busy = evaluate_automation_conditions(w.defs, instance, asset_selection=chain,
                                              evaluation_time=at + dt.timedelta(minutes=5), cursor=cursor)
    assert busy.total_requested == 0


def test_every_run_of_the_model_automation_sensor_is_a_tagged_retrain(tmp_path):
    defs = World(tmp_path).defs
    sensor = defs.resolve_sensor_def("model_automation_sensor")
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.run_tags == {
        "ct/trigger": "freshness", "ct/training": "true",
        "ct/reason": "lora_adapter last materialized more than 14 days ago (wall clock): its FreshnessPolicy failed"}
    targeted = sensor.asset_selection.resolve(defs.resolve_asset_graph())
    assert sorted(k.to_user_string() for k in targeted) == sorted(CHAIN)
