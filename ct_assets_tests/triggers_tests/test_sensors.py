"""Each retraining trigger fires on its cause and not otherwise, once per cause, and
respects the cooldown; a stale model (freshness) leads to a request for the chain.

Sensor ticks are evaluated with build_sensor_context on a real instance, over a real
Parquet lake and a real MLflow registry (SQLite); only the drift reports are written
directly, as rows with the schema drift_report stores.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from dagster import (
    AssetMaterialization,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
)
from upath import UPath

from ct_assets.core.schema import drift_columns
from ct_assets.definitions import build_definitions
from ct_assets.lake.parquet import partition_path, write_parquet_atomic
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.triggers.policy import NO_CHAMPION
from ct_assets.triggers.sensors import CHAIN
from ct_assets_tests.helpers import START, make_home, small_settings

# The thresholds a day was judged by, as drift_report records them in its row (calibrated
# ones differ per reference, so the sensor must read them from the row, not the settings).
THRESHOLDS = {"label_js": 0.15, "label_psi": 0.25, "length_ks": 0.2, "oov_rate": 0.08, "text_auc": 0.75,
              "concept_shift": 0.18}


def _drift_row(day: dt.date, *, drifted=(), accuracy=0.9, labelled=150, estimated=0.9, thresholds=None) -> dict:
    limits = thresholds or THRESHOLDS
    row = {"partition": day.isoformat(), "verdict": "drift" if drifted else "stable",
           "champion_accuracy": accuracy, "champion_labelled_rows": labelled,
           "champion_estimated_accuracy": estimated}
    scores = {metric: limit * (2 if metric in drifted else 0.5) for metric, limit in limits.items()}
    return row | drift_columns(scores, {metric: metric in drifted for metric in limits}, limits)


class World:
    """A CT_HOME with a lake of drift reports and clean rows, and a champion in MLflow."""

    def __init__(self, tmp_path, **overrides):
        self.settings = small_settings(**overrides)
        self.home = make_home(tmp_path)
        self.defs = build_definitions(self.settings, self.home)
        self.lake = UPath(str(self.home.lake))

    def drift(self, day: dt.date, **kw) -> None:
        write_parquet_atomic(pl.DataFrame([_drift_row(day, **kw)]), partition_path(self.lake, ["drift_report"], day.isoformat()))

    def clean(self, day: dt.date, labelled: int) -> None:
        ts = dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)
        frame = pl.DataFrame({
            "event_id": [f"{day}-{i}" for i in range(labelled)], "event_ts": [ts] * labelled,
            "text": ["x"] * labelled, "label": ["billing"] * labelled, "label_ts": [ts] * labelled,
        })
        write_parquet_atomic(frame, partition_path(self.lake, ["validated_window"], day.isoformat()))

    def champion(self, tmp_path, window_end: dt.date) -> None:
        reg = AdapterRegistry(self.home.mlflow_tracking_uri, self.home.mlflow_artifact_root)
        adapter = tmp_path / "adapter"
        adapter.mkdir(exist_ok=True)
        (adapter / "adapter_model.safetensors").write_bytes(b"weights")
        start = window_end - dt.timedelta(days=13)
        info = reg.register_adapter(reg.create_run("test"), adapter, {
            "ct.window_start": start.isoformat(), "ct.window_end": window_end.isoformat(), "ct.gate": "passed"})
        reg.promote(info.version, reason="test", approver="test")

    def tick(self, instance, name: str):
        sensor = self.defs.resolve_sensor_def(name)
        return sensor.evaluate_tick(build_sensor_context(
            instance=instance, definitions=self.defs, sensor_name=name, resources=self.defs.resources))


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


@pytest.mark.parametrize(
    "flagged_days, expect",
    [
        # 2 of the last 3 days drifted (k=2, n=3): fires, naming the metric
        ([18, 19], "drift OOV"),
        # a single drifted day is noise: no retrain
        ([19], None),
        # drift only on days the champion already trained on: nothing new
        ([10, 11], None),
    ],
)
def test_drift_fires_on_k_of_n(tmp_path, flagged_days, expect):
    w = World(tmp_path)
    w.champion(tmp_path, window_end=day(12))
    for i in range(10, 20):
        w.drift(day(i), drifted=("oov_rate",) if i in flagged_days else ())
    with instance_for_test() as instance:
        data = w.tick(instance, "metric_retrain_sensor")
    if expect is None:
        assert not data.run_requests, data.run_requests
    else:
        (req,) = data.run_requests
        assert req.tags["ct/trigger"] == "drift" and req.tags["ct/reason"].startswith(expect)
        assert req.run_key == "drift:" + ",".join(day(i).isoformat() for i in flagged_days)
        assert req.partition_key == day(19).isoformat()
        assert [k.to_user_string() for k in req.asset_selection] == list(CHAIN)


def test_drift_reason_quotes_the_threshold_each_day_was_judged_by(tmp_path):
    # Every threshold "auto" in the settings: the numbers exist only in the drift rows,
    # and they moved between the two days (a new reference was calibrated).
    w = World(tmp_path, **{"drift.thresholds": {}})
    assert set(w.settings.drift.thresholds.model_dump().values()) == {"auto"}
    w.champion(tmp_path, window_end=day(12))
    w.drift(day(18), drifted=("oov_rate",), thresholds={**THRESHOLDS, "oov_rate": 0.21})
    w.drift(day(19), drifted=("oov_rate",), thresholds={**THRESHOLDS, "oov_rate": 0.31})
    with instance_for_test() as instance:
        (req,) = w.tick(instance, "metric_retrain_sensor").run_requests
    # The latest flagged day's value (2 x 0.31) against that day's own threshold.
    assert req.tags["ct/reason"].startswith("drift OOV=0.62 > 0.31 on 2 of the last 2 days")


@pytest.mark.parametrize(
    "accuracy, labelled, estimated, trigger",
    [
        # measured accuracy below min_accuracy (0.8) on enough labels
        (0.7, 150, 0.9, "accuracy"),
        # few labels yet: the label-free estimate decides, and it is low
        (None, 5, 0.7, "accuracy"),
        # healthy on both
        (0.92, 150, 0.9, None),
    ],
)
def test_accuracy_fires_on_measured_or_estimated_accuracy(tmp_path, accuracy, labelled, estimated, trigger):
    w = World(tmp_path)
    w.champion(tmp_path, window_end=day(12))
    w.drift(day(15), accuracy=accuracy, labelled=labelled, estimated=estimated)
    with instance_for_test() as instance:
        data = w.tick(instance, "metric_retrain_sensor")
    assert [r.tags["ct/trigger"] for r in data.run_requests] == ([trigger] if trigger else [])
    # One key per day, whichever figure (measured or estimated) fired.
    assert [r.run_key for r in data.run_requests] == ([f"accuracy:{day(15)}"] if trigger else [])


def test_volume_fires_once_past_the_setting(tmp_path):
    w = World(tmp_path, **{"triggers.volume_rows": 500})
    w.champion(tmp_path, window_end=day(12))
    w.drift(day(15))
    for i in range(10, 16):
        w.clean(day(i), 200)  # 3 days after the window end: 600 rows > 500
    with instance_for_test() as instance:
        (req,) = w.tick(instance, "volume_retrain_sensor").run_requests
        assert req.tags["ct/trigger"] == "volume" and "600" in req.tags["ct/reason"]
        assert req.run_key == f"volume:{day(12).isoformat()}"
    w2 = World(tmp_path / "few", **{"triggers.volume_rows": 500})
    w2.champion(tmp_path / "few", window_end=day(14))
    w2.drift(day(15))
    for i in range(10, 16):
        w2.clean(day(i), 200)  # only 1 day after the window end: 200 rows
    with instance_for_test() as instance:
        assert not w2.tick(instance, "volume_retrain_sensor").run_requests


def test_freshness_failure_requests_the_downstream_chain(tmp_path):
    w = World(tmp_path, **{"triggers.staleness_days": 5})
    w.champion(tmp_path, window_end=day(10))
    w.drift(day(16))  # 6 days of data since the window end > 5
    with instance_for_test() as instance:
        (req,) = w.tick(instance, "freshness_retrain_sensor").run_requests
    assert req.tags["ct/trigger"] == "freshness" and req.run_key == f"freshness:{day(10)}"
    assert [k.to_user_string() for k in req.asset_selection] == list(CHAIN)
    assert req.partition_key == day(16).isoformat()


def test_skips_say_what_each_trigger_measured(tmp_path):
    """Nothing fires, and each sensor says why in its own figures (champion trained up to day 12)."""
    w = World(tmp_path, **{"triggers.volume_rows": 500})
    w.champion(tmp_path, window_end=day(12))
    for i in range(13, 20):
        w.drift(day(i), drifted=("oov_rate", "text_auc") if i == 19 else ())
        w.clean(day(i), 50)
    with instance_for_test() as instance:
        skips = {name: w.tick(instance, name).skip_message
                 for name in ("metric_retrain_sensor", "volume_retrain_sensor", "freshness_retrain_sensor")}
    assert skips == {
        "metric_retrain_sensor": f"drift on 1 of the last 3 days after the champion's window (ended {day(12)}) "
                                 f"(need 2): oov_rate, text_auc on {day(19)}; "
                                 f"accuracy 0.90 >= 0.80 on 150 labelled rows of {day(19)}",
        "volume_retrain_sensor": f"350 new labelled rows since {day(12)} <= 500",
        "freshness_retrain_sensor": f"7 days of data since the champion's window ended {day(12)} <= 14",
    }


def test_with_no_champion_the_skips_say_how_the_first_model_is_trained(tmp_path):
    w = World(tmp_path, **{"triggers.volume_rows": 500})
    w.drift(day(3))
    w.clean(day(3), 40)
    with instance_for_test() as instance:
        skips = {name: w.tick(instance, name).skip_message
                 for name in ("metric_retrain_sensor", "volume_retrain_sensor", "freshness_retrain_sensor")}
    assert skips == {
        "metric_retrain_sensor": f"drift on 0 of the last 1 days (need 2); {NO_CHAMPION}",
        "volume_retrain_sensor": f"{NO_CHAMPION}; 40 labelled rows so far <= 500",
        "freshness_retrain_sensor": NO_CHAMPION,
    }


def test_cooldown_and_policy_block_and_say_why(tmp_path):
    # Accuracy fires but the cooldown blocks it; drift did not fire: both are said.
    w = World(tmp_path, **{"triggers.cooldown_days": 3})
    w.champion(tmp_path, window_end=day(12))
    w.drift(day(15), accuracy=0.5)
    with instance_for_test() as instance:
        instance.report_runless_asset_event(AssetMaterialization("lora_adapter", partition=day(14).isoformat()))
        data = w.tick(instance, "metric_retrain_sensor")
    assert not data.run_requests
    assert data.skip_message == (
        f"accuracy: accuracy 0.50 < 0.80 on 150 labelled rows of {day(15)} (skipped: cooldown: last training run on "
        f"{day(14)}, 1 day(s) ago < 3 days); drift on 0 of the last 1 days after the champion's window (ended "
        f"{day(12)}) (need 2)")
    w2 = World(tmp_path / "static", **{"triggers.policy": "static"})
    w2.champion(tmp_path / "static", window_end=day(12))
    w2.drift(day(15), accuracy=0.5)
    with instance_for_test() as instance:
        data = w2.tick(instance, "metric_retrain_sensor")
        assert not data.run_requests and "policy 'static'" in data.skip_message


def test_the_same_cause_has_the_same_run_key(tmp_path):
    """The key is the cause (the drifted days), not the tick: the same evidence gives the
    same key, which the daemon then drops (test_sensor_daemon); a new drifted day is a new
    cause with a new key."""
    w = World(tmp_path)
    w.champion(tmp_path, window_end=day(12))
    for i in range(17, 20):
        w.drift(day(i), drifted=("text_auc",))
    with instance_for_test() as instance:
        first = w.tick(instance, "metric_retrain_sensor").run_requests[0].run_key
        again = w.tick(instance, "metric_retrain_sensor").run_requests[0].run_key
        w.drift(day(20), drifted=("text_auc",))
        next_day = w.tick(instance, "metric_retrain_sensor").run_requests[0].run_key
    assert first == again == f"drift:{day(17)},{day(18)},{day(19)}"
    assert next_day == f"drift:{day(18)},{day(19)},{day(20)}"


def test_weekly_schedule_retrains_as_of_the_newest_complete_day(tmp_path):
    w = World(tmp_path, **{"triggers.policy": "weekly"})
    w.drift(day(3))
    w.drift(day(4))
    w.drift(day(5))  # Sunday's own report may exist early; its partition is still open
    sunday = dt.datetime.combine(day(5), dt.time(23), tzinfo=dt.UTC)
    assert sunday.weekday() == 6
    sched = w.defs.resolve_schedule_def("weekly_retrain_schedule")
    with instance_for_test() as instance:
        data = sched.evaluate_tick(build_schedule_context(instance=instance, scheduled_execution_time=sunday,
                                                          resources=w.defs.resources,
                                                          repository_def=w.defs.get_repository_def()))
    (req,) = data.run_requests
    assert req.tags["ct/trigger"] == "schedule" and req.partition_key == day(4).isoformat()


def test_triggers_start_running_by_default(tmp_path):
    from dagster import DefaultScheduleStatus, DefaultSensorStatus

    w = World(tmp_path)
    for sensor in w.defs.sensors:
        assert sensor.default_status == DefaultSensorStatus.RUNNING, sensor.name
    for schedule in w.defs.schedules:
        assert schedule.default_status == DefaultScheduleStatus.RUNNING, schedule.name
