"""training.window_mode since_change through the real assets: training_dataset reads the
day's drift_report rows from the lake, starts the window at the change point it finds and
records the mode and start in its metadata and in the frame the training process reads."""

from __future__ import annotations

import polars as pl
from dagster import instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.training.window import SPLIT
from ct_assets_tests.helpers import day, make_home
from ct_assets_tests.registry_tests.keyword_world import keyword_base_dir, keyword_world  # noqa: F401

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")


def _dataset_meta(instance, key: str) -> dict:
    from dagster import AssetKey

    event = instance.get_latest_materialization_event(AssetKey("training_dataset"))
    assert event.dagster_event.partition == key
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def test_since_change_starts_at_the_drift_onset_and_says_so(tmp_path, keyword_base_dir):  # noqa: F811
    home = make_home(tmp_path)
    # Days 5-7 carry shifted labels: drift_report flags them, day 5 is the onset, inside day
    # 8's six-day window (days 3-8; holdout 1 day, so the latest start is day 7).
    settings = keyword_world(home.root, keyword_base_dir, range(10), mislabelled=(5, 6, 7),
                             **{"training.window_mode": "since_change", "training.window_days": 6})
    defs, lake = build_definitions(settings, home), Lake(base_path=str(home.lake))
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(9)).success
        verdicts = {day(i): lake.read("drift_report", day(i))["verdict"][0] for i in range(10)}
        onset = next(i for i in range(1, 9) if verdicts[day(i)] in ("drift", "new_class")
                     and verdicts[day(i - 1)] not in ("drift", "new_class"))
        assert materialize_range(defs, instance, ("training_dataset",), day(8), day(8)).success
        meta = _dataset_meta(instance, day(8))
        window = meta["window_mode"]
        assert window["mode"] == "since_change" and window["change_point"] == day(onset), (verdicts, window)
        assert window["start"] == day(min(onset, 7)) and window["clamped"] is (onset > 7)
        assert "replay_contradicted" in meta
        frame = lake.read("training_dataset", day(8))
        assert set(frame["_window_mode"]) == {"since_change"} and set(frame["_window_start"]) == {window["start"]}
        in_window = frame.filter((pl.col("_origin") == "window") & (pl.col(SPLIT) != "holdout"))
        assert str(in_window["_day"].min()) >= window["start"]
