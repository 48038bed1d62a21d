"""Edges of the trigger policy that mutation testing found unpinned (docs/mutation.md).

The reason is the run's ``ct/reason`` tag, so its text is asserted whole: which metric is
named dominant (count, then excess over that day's threshold, then DRIFT_METRICS order),
the value beside its threshold, and the metrics listed after it. Boundaries: the ``after``
day itself, an estimate exactly at the minimum, a cooldown of 0 and of 1 day; and the skip
reasons' edges (several flagged days, the latest day's figures, an unknown champion).
"""

from __future__ import annotations

import datetime as dt

import pytest

from ct_assets.core.schema import DayObservation
from ct_assets.triggers.policy import (
    NO_CHAMPION,
    TriggerRequest,
    accuracy_request,
    accuracy_skip_reason,
    choose_request,
    cooldown_blocks,
    drift_request,
    drift_skip_reason,
    schedule_request,
    staleness_request,
    staleness_skip_reason,
    volume_request,
)

TODAY = dt.date(2026, 9, 21)
LIMITS = {"label_js": 0.10, "label_psi": 0.25, "oov_rate": 0.08}


def day(offset: int) -> dt.date:
    return TODAY + dt.timedelta(days=offset)


def flagged(offset: int, scores: dict[str, float | None], limits: dict | None = None) -> DayObservation:
    """A day on which every metric in ``scores`` is flagged with that score."""
    return DayObservation(day(offset), dict(scores), dict.fromkeys(scores, True), 0.9, 100, 0.9,
                          thresholds=LIMITS if limits is None else limits)


@pytest.mark.parametrize(
    ("days", "reason"),
    [
        # The most-flagged metric wins even against a larger excess earlier in the order.
        ([flagged(-1, {"oov_rate": 0.09}), flagged(0, {"oov_rate": 0.09, "label_js": 0.5})],
         "drift OOV=0.09 > 0.08 on 2 of the last 2 days (also JS)"),
        # Tied counts: the larger excess (0.24/0.08 = 3 over 0.11/0.10 = 1.1) wins, though later in the order.
        ([flagged(0, {"label_js": 0.11, "oov_rate": 0.24})], "drift OOV=0.24 > 0.08 on 1 of the last 1 days (also JS)"),
        # Excess is value / threshold, not value * threshold (5.0 > 1.2, but 0.05 < 0.075).
        ([flagged(0, {"label_js": 0.5, "oov_rate": 0.30}, {"label_js": 0.1, "oov_rate": 0.25})],
         "drift JS=0.50 > 0.10 on 1 of the last 1 days (also OOV)"),
        # A full tie (excess 2.0 each) goes to DRIFT_METRICS order.
        ([flagged(0, {"oov_rate": 0.16, "label_js": 0.2})], "drift JS=0.20 > 0.10 on 1 of the last 1 days (also OOV)"),
        # No threshold recorded: excess 0, below a metric exactly at its threshold (excess 1).
        ([flagged(0, {"label_js": 0.5, "oov_rate": 0.08}, {"oov_rate": 0.08})],
         "drift OOV=0.080 > 0.080 on 1 of the last 1 days (also JS)"),
        # Two decimals that print equal get a third.
        ([flagged(0, {"oov_rate": 0.081})], "drift OOV=0.081 > 0.080 on 1 of the last 1 days"),
        # The latest value is from the latest day the metric *flagged*, not the latest day with a score.
        ([flagged(-1, {"label_js": 0.21}),
          DayObservation(day(0), {"label_js": 0.01, "oov_rate": 0.09}, {"label_js": False, "oov_rate": True},
                         0.9, 100, 0.9, thresholds=LIMITS)],
         "drift JS=0.21 > 0.10 on 2 of the last 2 days (also OOV)"),
        # Flagged without a score: n/a.
        ([flagged(0, {"label_js": None})], "drift JS=n/a on 1 of the last 1 days"),
        # A metric with no short name is named as it is; every other metric is listed.
        ([flagged(0, {"label_js": 0.3, "label_psi": 0.3, "my_metric": 0.9})],
         "drift JS=0.30 > 0.10 on 1 of the last 1 days (also PSI, my_metric)"),
        ([flagged(0, {"my_metric": 0.9, "zz_metric": 0.1})], "drift my_metric=0.90 on 1 of the last 1 days (also zz_metric)"),
    ],
)
def test_drift_reason_names_the_dominant_metric(days, reason):
    req = drift_request(days, k=1, n=3, today=TODAY)
    assert req is not None and req.reason == reason
    assert req.run_key == "drift:" + ",".join(o.day.isoformat() for o in days)


def test_drift_ignores_the_after_day_itself():
    days = [flagged(-1, {"label_js": 0.2}), flagged(0, {"label_js": 0.2})]
    assert drift_request(days, k=2, n=3, today=TODAY, after=day(-1)) is None
    assert drift_request(days, k=2, n=3, today=TODAY, after=day(-2)).run_key == "drift:2026-09-20,2026-09-21"


def test_an_estimate_exactly_at_the_minimum_is_not_below_it():
    at = DayObservation(TODAY, {}, {}, None, 0, 0.8, thresholds={})
    assert accuracy_request([at], min_accuracy=0.8, use_estimated=True, today=TODAY) is None


@pytest.mark.parametrize(
    ("request_", "trigger", "run_key", "reason"),
    [
        (lambda: accuracy_request([DayObservation(day(-1), {}, {}, 0.5, 100, None)], min_accuracy=0.8,
                                  use_estimated=False, today=TODAY),
         "accuracy", "accuracy:2026-09-20", "accuracy 0.50 < 0.80 on 100 labelled rows of 2026-09-20"),
        (lambda: accuracy_request([DayObservation(day(-1), {}, {}, None, 0, 0.5)], min_accuracy=0.8,
                                  use_estimated=True, today=TODAY),
         "accuracy", "accuracy:2026-09-20", "estimated accuracy (label-free) 0.50 < 0.80 on 2026-09-20"),
        (lambda: volume_request(12_345, volume_rows=10_000, window_end=None, today=TODAY),
         "volume", "volume:no-champion", "12,345 clean labelled rows with no champion yet > 10,000"),
        (lambda: volume_request(12_345, volume_rows=10_000, window_end=day(-3), today=TODAY),
         "volume", "volume:2026-09-18",
         "12,345 clean labelled rows since 2026-09-18 (end of the champion's training window) > 10,000"),
        (lambda: staleness_request(20, staleness_days=14, window_end=None, today=TODAY),
         "freshness", "freshness:no-champion", "champion trained on data up to an unknown day: 20 days of newer data > 14"),
        (lambda: staleness_request(20, staleness_days=14, window_end=day(-20), today=TODAY),
         "freshness", "freshness:2026-09-01", "champion trained on data up to 2026-09-01: 20 days of newer data > 14"),
        (lambda: schedule_request(TODAY, "nightly"), "schedule", "schedule:2026-09-21", "nightly"),
    ],
)
def test_each_request_whole(request_, trigger, run_key, reason):
    # The partition is today's even when the evidence is older (accuracy of yesterday's row).
    assert request_() == TriggerRequest(trigger, reason, "2026-09-21", run_key)


@pytest.mark.parametrize(
    ("last", "cooldown", "reason"),
    [
        (day(0), 1, "cooldown: last training run on 2026-09-21, 0 day(s) ago < 1 days"),
        (day(-1), 1, None),
        (day(1), 0, None),  # disabled means disabled, even for a training day after today (a replay)
        (day(1), 2, "cooldown: last training run on 2026-09-22, -1 day(s) ago < 2 days"),
    ],
)
def test_cooldown_edges(last, cooldown, reason):
    assert cooldown_blocks(last, TODAY, cooldown) == reason


DRIFT = TriggerRequest("drift", "drifted", "2026-09-21", "drift:x")
VOL = TriggerRequest("volume", "many rows", "2026-09-21", "volume:x")


def test_nothing_in_flight_by_default():
    chosen, skipped = choose_request([DRIFT], policy="drift", last_training_day=None, today=TODAY,
                                     cooldown_days=0, max_in_flight=1)
    assert chosen == DRIFT and skipped == []


def test_a_blocked_choice_keeps_the_policy_skips():
    chosen, skipped = choose_request([VOL, DRIFT], policy="drift", last_training_day=day(0), today=TODAY,
                                     cooldown_days=2)
    assert chosen is None
    assert skipped == [
        "volume: many rows (skipped: policy 'drift' does not use volume)",
        "drift: drifted (skipped: cooldown: last training run on 2026-09-21, 0 day(s) ago < 2 days)",
    ]


@pytest.mark.parametrize(
    ("skip_reason", "expected"),
    [
        # Every flagged day (still fewer than k), in day order, "; " between them.
        (lambda: drift_skip_reason([flagged(-1, {"oov_rate": 0.09}), flagged(0, {"oov_rate": 0.09, "label_js": 0.2})],
                                   k=3, n=3, today=TODAY),
         "drift on 2 of the last 2 days (need 3): oov_rate on 2026-09-20; label_js, oov_rate on 2026-09-21"),
        # The latest day's figures; exactly min_labelled_rows rows is measured, as in accuracy_request.
        (lambda: accuracy_skip_reason([DayObservation(day(-1), {}, {}, 0.95, 500, None),
                                       DayObservation(day(0), {}, {}, 0.90, 30, None)],
                                      min_accuracy=0.8, use_estimated=False, today=TODAY),
         "accuracy 0.90 >= 0.80 on 30 labelled rows of 2026-09-21"),
        # Either figure unknown: there is no champion to be stale.
        (lambda: staleness_skip_reason(None, staleness_days=14, window_end=day(-3)), NO_CHAMPION),
        (lambda: staleness_skip_reason(5, staleness_days=14, window_end=None), NO_CHAMPION),
    ],
)
def test_skip_reasons_at_their_edges(skip_reason, expected):
    assert skip_reason() == expected
