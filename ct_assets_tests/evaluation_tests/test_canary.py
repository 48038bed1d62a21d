"""The canary verdict on a day's served rows (pure): pass, fail (the asset withdraws on it),
too little feedback, no traffic, agreement, latency, and which days count.

Why: a failed verdict deletes the challenger alias in production and a passing one moves
promotion forward, so each outcome and the figures in its sentence are pinned here on
hand-made served rows, before any Dagster or MLflow is involved.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ct_assets.evaluation.canary import (
    FAILED,
    INSUFFICIENT,
    PASSED,
    canary_compare,
    canary_counts,
)

DAY = dt.date(2026, 9, 10)
T0 = dt.datetime.combine(DAY, dt.time(9), dt.UTC)
SCHEMA = {"event_id": pl.Utf8, "event_ts": pl.Datetime("us", "UTC"), "text": pl.Utf8, "label": pl.Utf8,
          "label_ts": pl.Datetime("us", "UTC"), "arm": pl.Utf8, "served_version": pl.Int64, "prediction": pl.Utf8,
          "confidence": pl.Float64, "latency_ms": pl.Float64, "shadow_version": pl.Int64,
          "shadow_prediction": pl.Utf8, "shadow_confidence": pl.Float64}


def arm_rows(arm: str, version: int, n: int, correct: int, *, labelled: int | None = None, latency: float = 5.0,
             shadow: tuple[int, int] | None = None, label_delay: dt.timedelta = dt.timedelta(hours=1)) -> list[dict]:
    """n served rows of one arm; the first ``labelled`` (default all) have feedback, of which
    the first ``correct`` match the prediction. ``shadow`` = (version, rows agreeing)."""
    labelled = n if labelled is None else labelled
    rows = []
    for i in range(n):
        label = ("billing" if i < correct else "refund") if i < labelled else None
        rows.append({
            "event_id": f"{arm}-{version}-{i}", "event_ts": T0, "text": "t", "label": label,
            "label_ts": T0 + label_delay if label else None, "arm": arm, "served_version": version,
            "prediction": "billing", "confidence": 0.8, "latency_ms": latency + i,
            "shadow_version": shadow[0] if shadow else None,
            "shadow_prediction": ("billing" if i < shadow[1] else "shipping") if shadow else None,
            "shadow_confidence": 0.7 if shadow else None})
    return rows


def frame(*groups: list[dict]) -> pl.DataFrame:
    return pl.DataFrame([r for g in groups for r in g], schema=SCHEMA)


def compare(f: pl.DataFrame, challenger: int | None = 2, drop: float = 0.02):
    return canary_compare(f, DAY, challenger=challenger, max_accuracy_drop=drop)


def test_a_canary_as_good_as_the_champion_passes():
    report = compare(frame(arm_rows("champion", 1, 40, 30), arm_rows("canary", 2, 40, 30)))
    assert report.verdict == PASSED and report.canary_version == 2
    assert report.reason == "canary v2 accuracy 0.750 >= champion 0.750 - 0.02 on 40 and 40 labelled rows"
    assert (report.canary.rows, report.canary.labelled, report.canary.accuracy) == (40, 40, 0.75)
    assert report.champion.versions == (1,) and report.canary.versions == (2,)


def test_a_worse_canary_fails_and_the_figures_say_by_how_much():
    report = compare(frame(arm_rows("champion", 1, 40, 32), arm_rows("canary", 2, 40, 20)))
    assert report.verdict == FAILED
    assert report.reason == ("canary v2 accuracy 0.500 < champion 0.800 - 0.02 on 40 and 40 labelled rows "
                             "(max_canary_accuracy_drop)")
    # Within the allowed drop it passes: 0.78 is not below 0.80 - 0.05.
    assert compare(frame(arm_rows("champion", 1, 50, 40), arm_rows("canary", 2, 50, 39)), drop=0.05).verdict == PASSED


@pytest.mark.parametrize("canary_labelled, champion_labelled", [
    (29, 40),  # one short on the canary arm
    (40, 10),  # the champion arm has too little feedback to compare with
])
def test_too_little_feedback_is_insufficient_not_a_failure(canary_labelled, champion_labelled):
    report = compare(frame(arm_rows("champion", 1, 40, 0, labelled=champion_labelled),
                           arm_rows("canary", 2, 40, 0, labelled=canary_labelled)))
    assert report.verdict == INSUFFICIENT
    assert report.reason == (f"too little feedback: {canary_labelled} labelled canary rows and {champion_labelled} "
                             "labelled champion rows (>= 30 on each arm to judge)")


def test_feedback_that_arrived_after_the_day_does_not_exist_as_of_the_day():
    late = dt.timedelta(days=1)  # the label came the next day: labels_as_of hides it
    report = compare(frame(arm_rows("champion", 1, 40, 40), arm_rows("canary", 2, 40, 0, label_delay=late)))
    assert report.verdict == INSUFFICIENT and report.canary.labelled == 0 and report.canary.accuracy is None


@pytest.mark.parametrize("f, reason", [
    # A day of batch-landed rows only: the arm column does not exist at all.
    (pl.DataFrame({"event_id": ["a"], "label": ["billing"]}), "no served traffic on this day"),
    # Served rows, but canary_percent 0: every row is the champion's.
    (frame(arm_rows("champion", 1, 40, 40)), "no canary traffic on this day"),
    # canary_percent 100: nothing to compare with.
    (frame(arm_rows("canary", 2, 40, 40)), "canary v2 served 40 rows but the champion arm none: nothing to compare"),
])
def test_no_traffic_to_compare_is_insufficient(f, reason):
    report = compare(f)
    assert (report.verdict, report.reason) == (INSUFFICIENT, reason)


def test_agreement_is_measured_on_rows_carrying_the_other_models_shadow():
    report = compare(frame(
        arm_rows("champion", 1, 10, 10, shadow=(2, 6)),  # champion answered, canary v2 shadowed: 6 agree
        arm_rows("canary", 2, 10, 10, shadow=(1, 9)),  # canary answered, champion v1 shadowed: 9 agree
        arm_rows("champion", 1, 5, 5, shadow=(7, 0)),  # a shadow of some other version: not a pair
    ))
    assert (report.agreement, report.agreement_rows) == (0.75, 20)
    assert compare(frame(arm_rows("champion", 1, 10, 10), arm_rows("canary", 2, 10, 10))).agreement is None


def test_latency_percentiles_per_arm():
    report = compare(frame(arm_rows("champion", 1, 101, 0, latency=0.0), arm_rows("canary", 2, 11, 0, latency=10.0)))
    assert (report.champion.latency_p50_ms, report.champion.latency_p99_ms) == (50.0, 99.0)
    assert (report.canary.latency_p50_ms, report.canary.latency_p99_ms) == (15.0, 19.9)


def test_a_day_the_challenger_changed_judges_the_challenger_only():
    # v2 was the canary in the morning and bad; v3 replaced it and is fine.
    f = frame(arm_rows("champion", 1, 40, 30), arm_rows("canary", 2, 40, 0), arm_rows("canary", 3, 40, 30))
    assert (compare(f, challenger=3).verdict, compare(f, challenger=3).canary.rows) == (PASSED, 40)
    # No current challenger (v2 already withdrawn): the most-served canary version is reported.
    assert compare(f.filter(pl.col("served_version") != 3), challenger=None).canary_version == 2


def test_served_rows_without_their_columns_are_an_error_naming_the_day():
    with pytest.raises(ValueError, match=r"partition 2026-09-10: .*\['served_version', 'prediction'"):
        compare(pl.DataFrame({"arm": ["canary"], "label": ["x"], "latency_ms": [1.0], "shadow_version": [None],
                              "shadow_prediction": [None]}))


@pytest.mark.parametrize("challenger, window_end, counts", [
    (2, DAY - dt.timedelta(days=1), True),  # the challenger, on new data
    (2, DAY, False),  # its own last training day says nothing about new data
    (3, DAY - dt.timedelta(days=1), False),  # another version served the canary arm
    (None, None, False),  # no challenger waiting
])
def test_which_days_count_towards_canary_days(challenger, window_end, counts):
    report = compare(frame(arm_rows("champion", 1, 40, 30), arm_rows("canary", 2, 40, 30)), challenger=2)
    assert canary_counts(report, challenger=challenger, window_end=window_end) is counts


def test_the_stored_row_is_flat():
    row = compare(frame(arm_rows("champion", 1, 40, 30), arm_rows("canary", 2, 40, 30))).row()
    assert row["partition"] == DAY.isoformat() and row["verdict"] == PASSED
    assert (row["champion_versions"], row["canary_versions"], row["canary_accuracy"]) == ("1", "2", 0.75)
    assert all(not isinstance(v, (list, tuple, dict)) for v in row.values())
