"""Tests for ct_assets.triggers.policy: which cause retrains, once, and why.

A retrain trigger has two ways to fail: it stays silent on a real cause, or it fires on
noise / fires twice on the same cause (the run_key). So every trigger is tested both on
its cause and just short of it, k-of-n is pinned at its boundaries, and the run_key is
checked for stability (same evidence -> same key, which Dagster dedupes) and for change
(new evidence -> new key). The policy/cooldown/priority table shows the one place where
several causes meet.
"""

from __future__ import annotations

import datetime as dt

import pytest

from ct_assets.triggers.policy import (
    NO_CHAMPION,
    POLICY_TRIGGERS,
    DayObservation,
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
    volume_skip_reason,
)

TODAY = dt.date(2026, 9, 21)
# The thresholds each observed day was judged by (recorded in its drift_report row).
THRESHOLDS = {"label_js": 0.10, "label_psi": 0.25, "length_ks": 0.2, "oov_rate": 0.08, "text_auc": 0.75}


def day(offset: int) -> dt.date:
    """offset 0 = TODAY, -1 = yesterday."""
    return TODAY + dt.timedelta(days=offset)


def obs(
    offset: int,
    *,
    drift: dict[str, float] | None = None,
    acc: float | None = 0.9,
    rows: int = 100,
    est: float | None = 0.9,
    thresholds: dict[str, float | None] | None = None,
) -> DayObservation:
    """A day whose `drift` metrics are flagged with the given scores; the rest are calm."""
    drift = drift or {}
    scores = {m: drift.get(m, 0.01 if m != "text_auc" else 0.5) for m in THRESHOLDS}
    flags = {m: m in drift for m in THRESHOLDS}
    return DayObservation(day(offset), scores, flags, acc, rows, est, thresholds=thresholds or THRESHOLDS)


JS = {"label_js": 0.21}


@pytest.mark.parametrize(
    ("flagged_offsets", "k", "n", "fires"),
    [
        ([-1, 0], 2, 3, True),  # exactly k of n: fires
        ([0], 2, 3, False),  # k-1 of n: silent
        ([-3, 0], 2, 3, False),  # second flag is one day outside the window of 3
        ([-2, 0], 2, 3, True),  # flags need not be consecutive
        ([], 1, 1, False),  # calm day: silent
        ([0], 1, 1, True),  # k=n=1: any single flagged day
        ([-2, -1, 0], 3, 3, True),  # every day of the window
        ([-4, -3, -2, -1], 2, 3, True),  # today calm but 2 of the last 3 flagged
    ],
)
def test_drift_k_of_n_boundaries(flagged_offsets, k, n, fires):
    observations = [obs(o, drift=JS if o in flagged_offsets else None) for o in range(-5, 1)]
    req = drift_request(observations, k=k, n=n, today=TODAY)
    assert (req is not None) == fires


def test_drift_reason_names_dominant_metric_latest_value_threshold_and_count():
    observations = [
        obs(-2),
        obs(-1, drift={"label_js": 0.15, "oov_rate": 0.09}),
        obs(0, drift={"label_js": 0.21}),
    ]
    req = drift_request(observations, k=2, n=3, today=TODAY)
    assert req is not None and req.trigger == "drift"
    # JS was flagged on both days (OOV on one), and 0.21 is its latest value.
    assert req.reason.startswith("drift JS=0.21 > 0.10 on 2 of the last 3 days")
    assert "OOV" in req.reason
    assert req.run_key == "drift:2026-09-20,2026-09-21"
    assert req.partition_key == "2026-09-21"


def test_drift_reason_uses_each_days_own_threshold():
    # Calibrated thresholds move with the reference: the value is shown against the
    # threshold of the day it comes from; a day recorded without one shows the value only.
    observations = [obs(-1, drift={"oov_rate": 0.30}, thresholds={**THRESHOLDS, "oov_rate": 0.2}),
                    obs(0, drift={"oov_rate": 0.27}, thresholds={**THRESHOLDS, "oov_rate": 0.25})]
    req = drift_request(observations, k=2, n=3, today=TODAY)
    assert req is not None and req.reason.startswith("drift OOV=0.27 > 0.25 on 2 of the last 2 days")
    legacy = [DayObservation(day(o), {"oov_rate": 0.3}, {"oov_rate": True}, 0.9, 100, 0.9) for o in (-1, 0)]
    assert drift_request(legacy, k=2, n=3, today=TODAY).reason.startswith("drift OOV=0.30 on 2 of")


def test_drift_ignores_days_after_today_and_before_after():
    future = [obs(0), obs(1, drift=JS), obs(2, drift=JS)]  # flags only in the future
    assert drift_request(future, k=2, n=3, today=TODAY) is None
    # Days up to the champion's window end were already trained on: they do not count.
    trained_on = [obs(-2, drift=JS), obs(-1, drift=JS), obs(0)]
    assert drift_request(trained_on, k=2, n=3, today=TODAY, after=day(-1)) is None
    assert drift_request(trained_on, k=2, n=3, today=TODAY) is not None


def test_drift_run_key_stable_for_same_cause_new_for_new_cause():
    base = [obs(-2), obs(-1, drift=JS), obs(0, drift=JS)]
    first = drift_request(base, k=2, n=3, today=TODAY)
    # Re-evaluated (e.g. the sensor ticks again, input order shuffled): same key.
    again = drift_request(list(reversed(base)), k=2, n=3, today=TODAY)
    # A day later with a new flagged day: a new cause, a new key.
    later = drift_request([*base, obs(1, drift=JS)], k=2, n=3, today=day(1))
    assert first is not None and again is not None and later is not None
    assert first.run_key == again.run_key
    assert later.run_key != first.run_key


def test_drift_rejects_k_above_n():
    with pytest.raises(ValueError, match="k <= n"):
        drift_request([], k=3, n=2, today=TODAY)


@pytest.mark.parametrize(
    ("acc", "rows", "est", "use_estimated", "expected_reason"),
    [
        # Enough labels: the measured figure decides and is named with its row count.
        (0.71, 158, 0.95, True, "accuracy 0.71 < 0.80 on 158 labelled rows of 2026-09-21"),
        # Enough labels and fine: the pessimistic estimate must not override the measurement.
        (0.85, 158, 0.50, True, None),
        # Too few labels: the label-free estimate stands in.
        (0.50, 10, 0.74, True, "estimated accuracy (label-free) 0.74 < 0.80 on 2026-09-21"),
        # No labels at all: estimate again.
        (None, 0, 0.74, True, "estimated accuracy (label-free) 0.74 < 0.80 on 2026-09-21"),
        # Estimate not allowed and too few labels: nothing to go on, silent.
        (0.50, 10, 0.74, False, None),
        # Estimate fine: silent.
        (None, 0, 0.90, True, None),
        # Exactly at the threshold is not "below".
        (0.80, 100, None, True, None),
        # Boundary of min_labelled_rows (30): 30 rows counts as measured.
        (0.70, 30, 0.95, False, "accuracy 0.70 < 0.80 on 30 labelled rows of 2026-09-21"),
    ],
)
def test_accuracy_measured_vs_estimated(acc, rows, est, use_estimated, expected_reason):
    observations = [obs(-1, acc=0.2, rows=500), obs(0, acc=acc, rows=rows, est=est)]
    req = accuracy_request(observations, min_accuracy=0.8, use_estimated=use_estimated, today=TODAY)
    if expected_reason is None:
        assert req is None
    else:
        assert req is not None and req.trigger == "accuracy"
        assert req.reason == expected_reason
        assert req.run_key == "accuracy:2026-09-21"


def test_accuracy_no_observations_is_silent():
    assert accuracy_request([], min_accuracy=0.8, use_estimated=True, today=TODAY) is None


@pytest.mark.parametrize(
    ("rows", "fires"),
    [
        (10_001, True),  # one over: fires
        (10_000, False),  # exactly the threshold: "more than" is not met
        (0, False),  # nothing new
    ],
)
def test_volume_threshold(rows, fires):
    req = volume_request(rows, volume_rows=10_000, window_end=day(-7), today=TODAY)
    assert (req is not None) == fires
    if fires:
        assert "10,001 clean labelled rows since 2026-09-14" in req.reason


def test_volume_and_freshness_keys_are_per_champion_window():
    a = volume_request(20_000, volume_rows=10_000, window_end=day(-7), today=TODAY)
    b = volume_request(30_000, volume_rows=10_000, window_end=day(-7), today=day(1))
    c = volume_request(30_000, volume_rows=10_000, window_end=day(-1), today=day(1))
    assert a is not None and b is not None and c is not None
    assert a.run_key == b.run_key == "volume:2026-09-14"  # same window: fires once
    assert c.run_key != a.run_key  # new champion re-arms
    f1 = staleness_request(15, staleness_days=14, window_end=day(-15), today=TODAY)
    f2 = staleness_request(16, staleness_days=14, window_end=day(-15), today=day(1))
    assert f1 is not None and f2 is not None and f1.run_key == f2.run_key == "freshness:2026-09-06"


@pytest.mark.parametrize(
    ("days_since", "fires"),
    [
        (15, True),  # one day past the limit
        (14, False),  # exactly at the limit
        (None, False),  # no champion: nothing is stale
    ],
)
def test_staleness_threshold(days_since, fires):
    req = staleness_request(days_since, staleness_days=14, window_end=day(-15), today=TODAY)
    assert (req is not None) == fires
    if fires:
        assert req.trigger == "freshness" and "2026-09-06" in req.reason


def test_schedule_request_and_tags():
    req = schedule_request(TODAY)
    assert req.run_key == "schedule:2026-09-21"
    assert req.tags == {
        "ct/trigger": "schedule",
        "ct/reason": "weekly retrain (Sunday 23:00 UTC)",
        "ct/training": "true",
    }
    with pytest.raises(ValueError, match="unknown trigger"):
        TriggerRequest("weather", "rain", "2026-09-21", "weather:1")


@pytest.mark.parametrize(
    ("last", "cooldown", "blocked"),
    [
        (None, 3, False),  # never trained: nothing to cool down from
        (day(-1), 3, True),  # yesterday, 3-day cooldown
        (day(-2), 3, True),  # 2 days < 3
        (day(-3), 3, False),  # exactly the cooldown has passed
        (day(0), 0, False),  # cooldown disabled
    ],
)
def test_cooldown(last, cooldown, blocked):
    reason = cooldown_blocks(last, TODAY, cooldown)
    assert (reason is not None) == blocked
    if blocked:
        assert last.isoformat() in reason  # says when the last training ran


SCHED = schedule_request(TODAY)
DRIFT = TriggerRequest("drift", "drift JS=0.21 > 0.10 on 2 of the last 3 days", "2026-09-21", "drift:x")
ACC = TriggerRequest("accuracy", "accuracy 0.71 < 0.80", "2026-09-21", "accuracy:x")
VOL = TriggerRequest("volume", "12,000 rows", "2026-09-21", "volume:x")
FRESH = TriggerRequest("freshness", "stale", "2026-09-21", "freshness:x")
ALL = [SCHED, VOL, None, FRESH, DRIFT, ACC]


@pytest.mark.parametrize(
    ("policy", "candidates", "expected"),
    [
        ("static", ALL, None),  # static never retrains
        ("weekly", ALL, "schedule"),  # weekly: schedule only
        ("weekly", [DRIFT, ACC], None),  # weekly ignores drift/accuracy
        ("drift", ALL, "accuracy"),  # accuracy outranks drift
        ("drift", [SCHED, VOL, DRIFT], "drift"),  # schedule/volume not in the drift policy
        ("volume", ALL, "volume"),  # volume only
        ("combined", ALL, "accuracy"),  # full priority: accuracy first
        ("combined", [SCHED, VOL, FRESH, DRIFT], "drift"),  # then drift
        ("combined", [SCHED, VOL, FRESH], "freshness"),  # then freshness
        ("combined", [SCHED, VOL], "volume"),  # then volume
        ("combined", [SCHED], "schedule"),  # schedule last
        ("combined", [None, None], None),  # no cause at all
    ],
)
def test_choose_policy_and_priority(policy, candidates, expected):
    chosen, skipped = choose_request(
        candidates, policy=policy, last_training_day=None, today=TODAY, cooldown_days=3
    )
    assert (chosen.trigger if chosen else None) == expected
    present = [c for c in candidates if c is not None]
    # Every present cause is either chosen or explained.
    assert len(skipped) == len(present) - (chosen is not None)


def test_choose_explains_policy_and_priority_skips():
    _, skipped = choose_request([SCHED, DRIFT], policy="drift", last_training_day=None, today=TODAY,
                                cooldown_days=3)
    assert skipped == [f"schedule: {SCHED.reason} (skipped: policy 'drift' does not use schedule)"]
    _, skipped = choose_request([DRIFT, ACC], policy="combined", last_training_day=None, today=TODAY,
                                cooldown_days=3)
    assert skipped == [f"drift: {DRIFT.reason} (skipped: accuracy has priority)"]


def test_choose_cooldown_blocks_everything_and_names_last_training_day():
    chosen, skipped = choose_request([DRIFT, ACC], policy="combined", last_training_day=day(-1),
                                     today=TODAY, cooldown_days=3)
    assert chosen is None
    assert len(skipped) == 2 and all("cooldown" in s and "2026-09-20" in s for s in skipped)


def test_choose_rejects_unknown_policy():
    with pytest.raises(ValueError, match="unknown policy"):
        choose_request([SCHED], policy="sometimes", last_training_day=None, today=TODAY, cooldown_days=0)


def test_policy_names_match_settings():
    from typing import get_args

    from ct_assets.core.settings import TriggerSettings

    assert set(POLICY_TRIGGERS) == set(get_args(TriggerSettings.model_fields["policy"].annotation))


@pytest.mark.parametrize(
    ("in_flight", "cap", "runs"),
    [
        (0, 1, True),  # nothing running: the request goes ahead
        (1, 1, False),  # at the cap: blocked, with the count in the reason
        (1, 2, True),  # below a higher cap
        (5, None, True),  # no cap given (the replay runs one day at a time)
    ],
)
def test_choose_in_flight_cap(in_flight, cap, runs):
    chosen, skipped = choose_request([DRIFT, SCHED], policy="combined", last_training_day=None, today=TODAY,
                                     cooldown_days=3, in_flight=in_flight, max_in_flight=cap)
    assert (chosen is not None) == runs
    if not runs:
        assert len(skipped) == 2 and all(f"{in_flight} training run(s) in flight" in s for s in skipped)


def test_the_cap_binds_manual_requests_too():
    manual = TriggerRequest("manual", "a person asked", "2026-09-21", "manual:x")
    chosen, skipped = choose_request([manual], policy="static", last_training_day=None, today=TODAY,
                                     cooldown_days=0, in_flight=1, max_in_flight=1)
    assert chosen is None and "in flight" in skipped[0]


# Skip reasons: what a person reads in the UI when a cause did not fire, in its own figures.


def test_drift_below_k_of_n_names_the_days_and_metrics_that_did_flag():
    observations = [obs(-2), obs(-1), obs(0, drift={"oov_rate": 0.3, "text_auc": 0.9})]
    assert drift_request(observations, k=2, n=3, today=TODAY) is None
    assert drift_skip_reason(observations, k=2, n=3, today=TODAY) == (
        "drift on 1 of the last 3 days (need 2): oov_rate, text_auc on 2026-09-21")
    calm = [obs(-1), obs(0)]
    assert drift_skip_reason(calm, k=2, n=3, today=TODAY) == "drift on 0 of the last 2 days (need 2)"
    # Days the champion trained on do not count, and the reason says from when they do.
    trained_on = [obs(-2, drift=JS), obs(-1, drift=JS), obs(0)]
    assert drift_skip_reason(trained_on, k=2, n=3, today=TODAY, after=day(-1)) == (
        "drift on 0 of the last 1 days after the champion's window (ended 2026-09-20) (need 2)")
    assert drift_skip_reason([obs(-1)], k=2, n=3, today=TODAY, after=day(-1)) == (
        "no drift report after the champion's window (ended 2026-09-20) up to 2026-09-21")


@pytest.mark.parametrize(
    ("acc", "rows", "est", "use_estimated", "expected"),
    [
        (0.92, 150, 0.5, True, "accuracy 0.92 >= 0.80 on 150 labelled rows of 2026-09-21"),
        (None, 5, 0.9, True, "estimated accuracy (label-free) 0.90 >= 0.80 on 2026-09-21 (5 labelled rows < 30)"),
        (0.5, 5, 0.9, False, "no accuracy for 2026-09-21: 5 labelled rows < 30 and the label-free estimate is off"),
        (None, 0, None, True, "no accuracy for 2026-09-21: 0 labelled rows < 30 and no label-free estimate"),
    ],
)
def test_healthy_accuracy_says_the_figure_it_was_judged_by(acc, rows, est, use_estimated, expected):
    observations = [obs(0, acc=acc, rows=rows, est=est)]
    kw = {"min_accuracy": 0.8, "use_estimated": use_estimated, "today": TODAY}
    assert accuracy_request(observations, **kw) is None
    assert accuracy_skip_reason(observations, **kw) == expected
    assert accuracy_skip_reason([], **kw) == "no drift report up to 2026-09-21"


def test_volume_and_staleness_skips_say_what_they_measured():
    assert volume_skip_reason(3_210, volume_rows=10_000, window_end=day(-12)) == (
        "3,210 new labelled rows since 2026-09-09 <= 10,000")
    assert volume_skip_reason(3_210, volume_rows=10_000, window_end=None) == (
        f"{NO_CHAMPION}; 3,210 labelled rows so far <= 10,000")
    assert staleness_skip_reason(12, staleness_days=14, window_end=day(-12)) == (
        "12 days of data since the champion's window ended 2026-09-09 <= 14")
    assert staleness_skip_reason(None, staleness_days=14, window_end=None) == NO_CHAMPION
    assert NO_CHAMPION == ("no champion yet: train the first model with `ct bootstrap` (the model group for the "
                           "newest drift-checked day), or run `ct demo`")
