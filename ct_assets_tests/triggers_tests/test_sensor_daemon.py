"""One retrain per cause, as Dagster enforces it: the sensor daemon submits the first
RunRequest of a cause and skips a later one with the same run_key.

The sensors are ticked by Dagster's own daemon iteration (``sensor_daemon``), so what is
checked is what the instance did with the request, not only what the sensor returned.
"""

from __future__ import annotations

import datetime as dt

from dagster import DagsterRunStatus, RunsFilter

from ct_assets_tests.triggers_tests.sensor_daemon import sensor_daemon
from ct_assets_tests.triggers_tests.test_sensors import World, day

RETRAIN_SENSORS = ("metric_retrain_sensor", "volume_retrain_sensor", "freshness_retrain_sensor")
SENSOR_TAG = "dagster/sensor_name"  # Dagster's tag on every run a sensor requested


def test_the_daemon_runs_each_cause_once_and_skips_its_repeated_run_key(tmp_path, monkeypatch):
    # Each retrain trigger has its cause at day 19 against a champion trained up to day 12:
    # drift on 3 of 3 days, 7 x 200 labelled rows > 500, 7 days of newer data > 5. The cap
    # on runs in flight is high, so only the run_key can stop the second request (the
    # first runs stay QUEUED: no run queue daemon here).
    w = World(tmp_path, **{"triggers.volume_rows": 500, "triggers.staleness_days": 5,
                           "triggers.max_concurrent_training_runs": 10})
    w.champion(tmp_path, window_end=day(12))
    for i in range(13, 20):
        w.drift(day(i), drifted=("text_auc",) if i >= 17 else ())
        w.clean(day(i), 200)
    expected = {
        "metric_retrain_sensor": ("drift", f"drift:{day(17)},{day(18)},{day(19)}"),
        "volume_retrain_sensor": ("volume", f"volume:{day(12)}"),
        "freshness_retrain_sensor": ("freshness", f"freshness:{day(12)}"),
    }
    first_tick = dt.datetime.now(dt.UTC)
    with sensor_daemon(w.home, w.settings, monkeypatch) as daemon:
        daemon.tick_all(first_tick)
        # Past minimum_interval_seconds (300): the daemon evaluates every sensor again,
        # on the same evidence, so each returns the same RunRequest.
        daemon.tick_all(first_tick + dt.timedelta(seconds=301))
        for name in RETRAIN_SENSORS:
            trigger, run_key = expected[name]
            runs = daemon.instance.get_runs(filters=RunsFilter(tags={SENSOR_TAG: name}))
            ticks = daemon.ticks(name)
            assert len(ticks) == 2, f"{name}: {len(ticks)} ticks, {[t.status for t in ticks]}"
            assert [len(t.run_ids) for t in ticks] == [1, 0], (
                f"{name}: runs per tick {[len(t.run_ids) for t in ticks]} (a repeated cause must start no run)")
            assert len(runs) == 1, f"{name}: {len(runs)} runs with run_keys {[r.tags.get('dagster/run_key') for r in runs]}"
            (run,) = runs
            assert run.run_id == ticks[0].run_ids[0] and run.status == DagsterRunStatus.QUEUED
            assert run.tags["dagster/run_key"] == run_key
            assert run.tags["ct/trigger"] == trigger and run.tags["ct/reason"], run.tags
            assert ticks[1].status.value == "SKIPPED" and run_key in ticks[1].run_keys, ticks[1]
