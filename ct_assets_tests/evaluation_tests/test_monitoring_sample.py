"""Monitoring on a sample: stratified, deterministic, capped; the Wilson interval brackets
the accuracy and narrows with n."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from ct_assets.evaluation.monitoring import day_performance, monitoring_sample, wilson_interval


def _day(n: int, seed: int = 0) -> list[str | None]:
    rng = np.random.default_rng(seed)
    # Unequal classes plus a 30% unlabelled share, so proportional allocation is visible.
    return [None if rng.random() < 0.3 else str(rng.choice(["a", "b", "c"], p=[0.6, 0.3, 0.1])) for _ in range(n)]


def test_a_small_day_is_scored_whole():
    truth = _day(500)
    assert monitoring_sample(truth, 1000).tolist() == list(range(500))
    assert monitoring_sample(truth, None).tolist() == list(range(500))
    assert monitoring_sample(truth, 500).tolist() == list(range(500))


def test_the_sample_is_capped_stratified_and_deterministic():
    truth = _day(20_000)
    rows = monitoring_sample(truth, 2_000, seed="2026-09-01")
    assert len(rows) == 2_000 and len(set(rows.tolist())) == 2_000
    assert rows.tolist() == sorted(rows.tolist()) and rows.min() >= 0 and rows.max() < 20_000
    day, sample = Counter(truth), Counter(truth[i] for i in rows)
    for stratum, count in day.items():  # each stratum, unlabelled included, at its day share (+-1 row)
        assert abs(sample[stratum] - count * 2_000 / 20_000) <= 1, stratum
    assert np.array_equal(rows, monitoring_sample(truth, 2_000, seed="2026-09-01"))
    assert not np.array_equal(rows, monitoring_sample(truth, 2_000, seed="2026-09-02"))


def test_wilson_interval_brackets_the_accuracy_and_narrows_with_n():
    widths = []
    for n in (50, 500, 5_000, 50_000):
        low, high = wilson_interval(int(0.8 * n), n)
        assert low < 0.8 < high
        widths.append(high - low)
    assert widths == sorted(widths, reverse=True) and widths[-1] < 0.01
    # Near 1 the interval keeps a width (a normal interval would collapse to [1, 1]).
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9
    assert wilson_interval(0, 0) is None
    # Known value: 81/100 -> (0.7222, 0.8749) (Wilson 1927; e.g. statsmodels proportion_confint).
    assert wilson_interval(81, 100) == pytest.approx((0.7222, 0.8749), abs=1e-4)


def test_wilson_interval_covers_the_truth_at_about_95_percent():
    rng = np.random.default_rng(0)
    n, p, trials = 200, 0.9, 2_000
    hits = sum(lo <= p <= hi for lo, hi in (wilson_interval(int(rng.binomial(n, p)), n) for _ in range(trials)))
    assert 0.92 <= hits / trials <= 0.98


def test_day_performance_reports_rows_and_interval():
    truth = ["a", "b", None, "a", "b", None, "a", "a"]
    predicted = ["a", "a", "b", "a", "b", "a", "b", "a"]
    perf = day_performance(predicted, np.full(8, 0.7), truth, total_rows=80)
    assert perf["accuracy"] == round(4 / 6, 4) and perf["labelled_rows"] == 6
    assert perf["scored_rows"] == 8 and perf["total_rows"] == 80
    assert perf["accuracy_ci_low"] < perf["accuracy"] < perf["accuracy_ci_high"]
    whole = day_performance(predicted, np.full(8, 0.7), truth)
    assert whole["total_rows"] == 8  # a full day still gets its interval
    assert whole["accuracy_ci_low"] == perf["accuracy_ci_low"]
    unlabelled = day_performance(["a"], np.array([0.9]), [None])
    assert unlabelled["accuracy"] is None and unlabelled["accuracy_ci_low"] is None


def test_sampled_accuracy_lands_in_the_interval_of_the_sample():
    rng = np.random.default_rng(1)
    truth = _day(40_000, seed=1)
    # A model that is right 85% of the time on labelled rows.
    predicted = [t if (t is not None and rng.random() < 0.85) else "x" for t in truth]
    full = day_performance(predicted, np.full(len(truth), 0.8), truth)
    rows = monitoring_sample(truth, 4_000, seed=3)
    sample = day_performance([predicted[i] for i in rows], np.full(len(rows), 0.8), [truth[i] for i in rows],
                             total_rows=len(truth))
    assert sample["scored_rows"] == 4_000 and sample["total_rows"] == 40_000
    assert sample["accuracy_ci_low"] <= full["accuracy"] <= sample["accuracy_ci_high"]
    assert (full["accuracy_ci_high"] - full["accuracy_ci_low"]) < (sample["accuracy_ci_high"]
                                                                    - sample["accuracy_ci_low"])
