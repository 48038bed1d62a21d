"""drift_report through real Dagster: a new class in the feedback, and calibration that
follows the reference.

Why here: the unknown labels reach drift_report only through the graph (validated_window
quarantines them into quarantined_rows, drift_report reads that partition), and the
calibration cache lives in CT_HOME across runs, so a rematerialized reference day must
be seen by the next report. Landing files are written by the test (source.kind
landing_zone) so a day can carry a label nobody configured.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from dagster import AssetCheckKey, AssetKey, instance_for_test

from ct_assets.core.schema import DRIFT_METRICS, DayObservation
from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.sim.simulator import SimulatorConfig, write_day
from ct_assets_tests.helpers import START, day, make_home, small_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
NEW_LABEL, NEW_ROWS = "warranty", 15  # of 120 rows: 12.5% > drift.max_unknown_label_share (5%)


@pytest.fixture
def env(tmp_path):
    landing = tmp_path / "landing"
    settings = small_settings(**{
        "source.kind": "landing_zone", "source.path": str(landing), "source.simulator.scenarios": [],
        "reference.end": day(2),
        "drift.thresholds": {},  # every threshold "auto": calibrated on the reference
    })
    config = SimulatorConfig(labels=settings.labels, rows_per_day=settings.source.simulator.rows_per_day)
    for i in range(4):
        write_day(config, START, START + dt.timedelta(days=i), landing)
    home = make_home(tmp_path)
    with instance_for_test() as instance:
        yield landing, home, build_definitions(settings, home), instance, Lake(base_path=str(home.lake))


def _edit_day(landing, i: int, edit) -> None:
    path = landing / f"dt={day(i)}" / "events.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    path.write_text("".join(json.dumps(edit(n, r)) + "\n" for n, r in enumerate(rows)), encoding="utf-8")


def test_a_new_class_is_reported_not_scored_and_fails_the_warn_check(env):
    landing, _home, defs, instance, lake = env

    def relabel(n: int, row: dict) -> dict:
        # Labelled the moment it happened, so it exists as of the day.
        return {**row, "label": NEW_LABEL, "label_ts": row["event_ts"]} if n < NEW_ROWS else row

    _edit_day(landing, 3, relabel)
    assert materialize_range(defs, instance, DATA, day(0), day(3)).success
    assert lake.read("quarantined_rows", day(3))["reason"].to_list().count("unknown_label") == NEW_ROWS
    row = lake.read("drift_report", day(3)).to_dicts()[0]
    assert row["verdict"] == "new_class" and json.loads(row["unknown_labels"]) == {NEW_LABEL: NEW_ROWS}
    obs = DayObservation.from_row(row)
    assert not obs.drifted  # a class nobody configured is no reason to retrain
    # Recorded per day; at 120 rows a day (72 same-day labels over 6 classes) concept_shift
    # never reaches its 15 confident predictions per class, so it stays uncalibrated (None).
    assert set(obs.thresholds) == set(DRIFT_METRICS)
    assert [m for m, v in obs.thresholds.items() if v is None] == ["concept_shift"]

    meta = instance.get_latest_materialization_event(AssetKey("drift_report")).asset_materialization.metadata
    report = meta["report"].value
    assert f"new class emerging: '{NEW_LABEL}' ({NEW_ROWS} rows); add it to `labels` to train it" in report
    assert "| metric | score | threshold | source | p-value | flag |" in report and "| calibrated |" in report
    assert meta["unknown_labels"].value == {NEW_LABEL: NEW_ROWS}
    # One check result per day, each tied to that day: day 3 fails (WARN) for its new class,
    # and day 0 for having no reference day before it.
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey("drift_report"), "drift_within_policy"), limit=20)
    by_day = {r.partition: r for r in history}
    assert set(by_day) == {day(i) for i in range(4)}, [(r.partition, r.status) for r in history]
    assert by_day[day(3)].status.value == "FAILED"
    evaluation = by_day[day(3)].event.dagster_event.event_specific_data
    assert evaluation.metadata["verdict"].value == "new_class"
    assert evaluation.metadata["new_classes"].value == [[NEW_LABEL, NEW_ROWS]]
    assert evaluation.target_materialization_data is not None  # tied to day 3's own materialization
    first = by_day[day(0)].event.dagster_event.event_specific_data
    assert (by_day[day(0)].status.value, first.metadata["verdict"].value) == ("FAILED", "insufficient_reference")
    # The days without the new class are judged as usual (and the check is WARN, so the
    # run succeeded above).
    assert lake.read("drift_report", day(2))["verdict"][0] in ("stable", "drift")


def test_rematerializing_a_reference_day_recalibrates(env):
    landing, home, defs, instance, lake = env
    assert materialize_range(defs, instance, DATA, day(0), day(3)).success
    cache = home.root / "cache" / "drift_calibration"
    before = set(cache.glob("*.json"))
    first = DayObservation.from_frame(lake.read("drift_report", day(3)))
    # Rerunning on unchanged data reuses the null: no new calibration, same thresholds.
    assert materialize_range(defs, instance, ("drift_report",), day(3), day(3)).success
    assert set(cache.glob("*.json")) == before
    assert DayObservation.from_frame(lake.read("drift_report", day(3))).thresholds == first.thresholds

    # Reference day 1 is corrected (every text longer): its partitions are rematerialized.
    _edit_day(landing, 1, lambda n, r: {**r, "text": f"{r['text']} please help me with this today"})
    assert materialize_range(defs, instance, ("raw_window", "validated_window", "quarantined_rows"),
                             day(1), day(1)).success
    assert materialize_range(defs, instance, ("drift_report",), day(3), day(3)).success
    assert len(set(cache.glob("*.json")) - before) == 1  # a new null for the new reference content
    again = DayObservation.from_frame(lake.read("drift_report", day(3)))
    assert again.thresholds["length_ks"] != first.thresholds["length_ks"]
