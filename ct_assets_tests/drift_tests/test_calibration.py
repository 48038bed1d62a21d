"""Tests for ct_assets.drift.calibration: thresholds set on the reference's own null.

The maths first (budget -> per-day rate -> per-metric alpha -> tail threshold, p-values),
each on numbers whose answer is known; then calibration on synthetic multi-day frames
built so the outcome is obvious (a reference-like day must not flag, a shifted one must;
too few labels leaves the label metrics uncalibrated and silent); then the cache, which
must never hand back a null computed on different rows.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import polars as pl
import pytest
from scipy.stats import binom

from ct_assets.core.settings import DriftSettings, DriftThresholds
from ct_assets.drift.calibration import (
    MIN_NULL_SCORES,
    Calibration,
    Threshold,
    cache_key,
    cached_calibration,
    calibrate,
    empirical_p_value,
    null_splits,
    per_day_flag_rate,
    per_metric_alpha,
    same_day_labels,
    tail_threshold,
)
from ct_assets.drift.scores import METRICS
from ct_assets.drift.statistics import compute_drift

LABELS = ["billing", "refund", "shipping", "account_access"]
START = dt.datetime(2026, 9, 1, tzinfo=dt.timezone.utc)
LABEL_WORDS = {label: [f"{label[:4]}{i}" for i in range(30)] for label in LABELS}
SHARED = [f"word{i}" for i in range(80)]
AUTO = DriftThresholds().model_dump()
# Small null for speed; the rule is the same at the default 20.
DRIFT = DriftSettings(calibration_samples=12, sample_rows=400)


# --- the budget arithmetic ------------------------------------------------------------------

def test_per_day_rate_meets_the_k_of_n_budget_exactly():
    p = per_day_flag_rate(1.0, 2, 3)
    # P(>= 2 of 3) = 3p^2(1-p) + p^3 = 1/60; the 3p^2 approximation gives 0.0745.
    assert 3 * p**2 * (1 - p) + p**3 == pytest.approx(1 / 60, rel=1e-9)
    assert p == pytest.approx(0.0765, abs=5e-4) and math.sqrt(1 / 180) == pytest.approx(0.0745, abs=5e-4)
    assert per_day_flag_rate(1.0, 1, 1) == pytest.approx(1 / 60)  # every flagged day triggers
    assert per_day_flag_rate(1.0, 3, 3) == pytest.approx((1 / 60) ** (1 / 3))
    assert per_day_flag_rate(2.0, 2, 3) > p > per_day_flag_rate(0.5, 2, 3)  # more budget, more flags
    assert binom.sf(1, 5, per_day_flag_rate(3.0, 2, 5)) == pytest.approx(3 / 60, rel=1e-9)
    with pytest.raises(ValueError, match="k <= n"):
        per_day_flag_rate(1.0, 4, 3)


def test_sidak_split_over_the_calibrated_metrics():
    p = per_day_flag_rate(1.0, 2, 3)
    alpha = per_metric_alpha(p, 6)
    assert alpha == pytest.approx(0.0132, abs=1e-4)
    assert 1 - (1 - alpha) ** 6 == pytest.approx(p)  # any of 6 independent metrics: p
    assert per_metric_alpha(p, 1) == pytest.approx(p)
    with pytest.raises(ValueError):
        per_metric_alpha(p, 0)


def test_tail_threshold_is_the_larger_of_the_quantile_and_the_t_bound():
    alpha = 0.0132
    normal = np.random.default_rng(0).normal(0.5, 0.02, size=20)
    bound = normal.mean() + 2.4668 * normal.std(ddof=1)  # t_19 at 1-alpha, times sqrt(1 + 1/20)
    # 20 scores cannot show a 98.7% quantile: the t bound lies beyond the sample's max.
    assert tail_threshold(normal, alpha) == pytest.approx(bound, rel=1e-3) and bound > normal.max()
    # A skewed null (one outlier): the empirical quantile (its max) is the floor.
    skewed = [0.0] * 19 + [1.0]
    assert tail_threshold(skewed, alpha) == 1.0
    # Fewer scores, a wider bound in sds: t_5 * sqrt(1 + 1/6) = 3.36 against 2.47 at 20.
    def width(x):
        return (tail_threshold(x, alpha) - x.mean()) / x.std(ddof=1)
    assert width(normal[:6]) == pytest.approx(3.365, abs=1e-3) and width(normal) == pytest.approx(2.467, abs=1e-3)
    with pytest.raises(ValueError, match=f">= {MIN_NULL_SCORES}"):
        tail_threshold(normal[:MIN_NULL_SCORES - 1], alpha)


def test_empirical_p_value():
    null = [0.1, 0.2, 0.3, 0.4]
    assert empirical_p_value(null, 0.25) == pytest.approx(3 / 5)  # 0.3, 0.4 and the day itself
    assert empirical_p_value(null, 0.4) == pytest.approx(2 / 5)  # ties count as "at least as extreme"
    assert empirical_p_value(null, 9.0) == pytest.approx(1 / 5)  # never 0: 1/(N+1) at best
    assert empirical_p_value(null, 0.0) == 1.0
    assert Threshold(0.3, "fixed").p_value(0.5) is None  # no null, no p-value
    assert Threshold(0.3, "calibrated", tuple(null)).p_value(None) is None


# --- calibration on frames -----------------------------------------------------------------

def make_day(index: int, n: int, seed: int, *, prior=(0.25,) * 4, new_words: int = 0,
             labelled: float = 1.0) -> pl.DataFrame:
    """One day: texts carry their label (label words + shared words), event_ts on the day,
    labels known the same minute (a share ``labelled`` of them)."""
    rng = np.random.default_rng([seed, index])
    labels = rng.choice(LABELS, size=n, p=prior)
    texts = []
    for label in labels:
        tokens = [*rng.choice(LABEL_WORDS[label], size=int(rng.integers(5, 9))),
                  *rng.choice(SHARED, size=int(rng.integers(2, 8)))]
        tokens += [f"launch{rng.integers(new_words)}" for _ in range(2)] if new_words else []
        texts.append(" ".join(tokens))
    ts = [START + dt.timedelta(days=index, minutes=int(m)) for m in np.sort(rng.integers(0, 1400, size=n))]
    keep = rng.random(n) < labelled
    return pl.DataFrame(
        {"event_id": [f"d{index}-s{seed}-{i:04d}" for i in range(n)], "event_ts": ts, "text": texts,
         "label": [lb if k else None for lb, k in zip(labels.tolist(), keep)],
         "label_ts": [t if k else None for t, k in zip(ts, keep)]},
        schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "label_ts": pl.Datetime("us", "UTC")},
    )


def reference(days: int = 7, n: int = 150, **kw) -> pl.DataFrame:
    return pl.concat([make_day(i, n, 1, **kw) for i in range(days)])


@pytest.fixture(scope="module")
def calibrated():
    ref = reference()
    cal = calibrate(ref, labels=LABELS, drift=DRIFT)
    return ref, cal, cal.thresholds(AUTO, false_alarms_per_60_days=1.0, k=2, n=3)


def judge(ref: pl.DataFrame, day: pl.DataFrame, thresholds):
    return compute_drift(ref, day, labels=LABELS, thresholds=thresholds, sample_rows=DRIFT.sample_rows, seed=3)


def test_null_is_leave_one_day_out_then_resamples(calibrated):
    ref, cal, _ = calibrated
    assert (cal.samples, cal.leave_one_out, cal.reference_days, cal.reference_rows) == (12, 7, 7, 1050)
    pairs, loo = null_splits(ref, 12)
    assert loo == 7 and len(pairs) == 12
    for rest, held in pairs[:7]:  # each day held out once, against the other six
        assert held.select(pl.col("event_ts").dt.date().n_unique()).item() == 1 and rest.height == 900
    for rest, held in pairs[7:]:  # day-sized resamples, disjoint from their rest
        assert held.height == 150 and rest.height == 900
        assert not set(held["event_id"]) & set(rest["event_id"])
    assert all(len(cal.null[m]) == 12 for m in METRICS)
    assert cal.day_scores == {m: 7 for m in METRICS}
    # Deterministic, and independent of the frame's row order.
    again = calibrate(ref.sample(fraction=1.0, shuffle=True, seed=5), labels=LABELS, drift=DRIFT)
    assert again.to_json() == cal.to_json()
    assert Calibration.from_json(json.loads(json.dumps(cal.to_json()))) == cal


def test_every_auto_metric_is_calibrated_with_the_split_alpha(calibrated):
    _, cal, thresholds = calibrated
    alpha = per_metric_alpha(per_day_flag_rate(1.0, 2, 3), 6)
    for m in METRICS:
        t = thresholds[m]
        assert t.source == "calibrated" and t.alpha == pytest.approx(alpha), (m, t)
        assert t.value >= max(cal.null[m]), m  # beyond everything a stable day showed
    # An explicit number stays fixed, keeps its null for the p-value, and frees its share.
    mixed = cal.thresholds({**AUTO, "oov_rate": 0.5}, false_alarms_per_60_days=1.0, k=2, n=3)
    assert mixed["oov_rate"].source == "fixed" and mixed["oov_rate"].value == 0.5 and mixed["oov_rate"].null
    assert mixed["label_js"].alpha == pytest.approx(per_metric_alpha(per_day_flag_rate(1.0, 2, 3), 5))
    assert mixed["label_js"].value < thresholds["label_js"].value  # a larger alpha, a lower threshold
    # This closed vocabulary never shows an unseen word: a null without spread puts the
    # threshold at what the reference showed (0), and only a day above it flags.
    assert set(cal.null["oov_rate"]) == {0.0} and thresholds["oov_rate"].value == 0.0


def test_reference_like_day_does_not_flag_and_shifted_days_do(calibrated):
    ref, _, thresholds = calibrated
    ordinary = judge(ref, make_day(8, 150, 2), thresholds)
    assert ordinary.verdict == "stable", ordinary.to_markdown()
    assert all(p is not None and 0 < p <= 1 for p in ordinary.p_values.values()), ordinary.p_values
    vocabulary = judge(ref, make_day(8, 150, 2, new_words=6), thresholds)
    assert {"oov_rate", "text_auc"} <= set(vocabulary.drifted_metrics), vocabulary.to_markdown()
    prior = judge(ref, make_day(8, 150, 2, prior=(0.7, 0.1, 0.1, 0.1)), thresholds)
    assert {"label_js", "label_psi"} <= set(prior.drifted_metrics), prior.to_markdown()
    # A flagged score is more extreme than every null score: the smallest p-value there is.
    assert prior.p_values["label_js"] == pytest.approx(1 / 13)
    md = prior.to_markdown()
    assert "| label_js | " in md and "| calibrated | 0.077 | DRIFT |" in md


def test_insufficient_data_stays_uncalibrated_and_never_flags():
    # 3% of the reference labelled: ~5 labels a day, below drift.min_labelled_rows (20).
    ref = reference(labelled=0.03)
    cal = calibrate(ref, labels=LABELS, drift=DRIFT)
    thresholds = cal.thresholds(AUTO, false_alarms_per_60_days=1.0, k=2, n=3)
    for m in ("label_js", "label_psi", "concept_shift"):
        t = thresholds[m]
        assert t.source == "uncalibrated" and t.value is None and "insufficient data" in t.note, (m, t)
    assert thresholds["oov_rate"].source == "calibrated"
    # Even a day whose label prior is wildly off (and fully labelled) cannot flag them.
    result = judge(ref, make_day(8, 300, 2, prior=(0.97, 0.01, 0.01, 0.01)), thresholds)
    assert result.scores["label_js"] is not None and not result.flags["label_js"]
    assert result.threshold_sources["label_js"] == "uncalibrated" and "uncalibrated" in result.notes["label_js"]
    assert result.thresholds["label_js"] is None
    json.dumps(result.to_metadata())
    # No reference at all: nothing can be calibrated, nothing flags, and it says why.
    empty = calibrate(ref.clear(), labels=LABELS, drift=DRIFT)
    none = empty.thresholds(AUTO, false_alarms_per_60_days=1.0, k=2, n=3)
    assert all(t.value is None and "the reference is empty" in t.note for t in none.values())


def test_same_day_labels_keeps_only_labels_known_on_the_rows_own_day():
    day = make_day(0, 4, 1)
    late = day.with_columns(pl.Series("label_ts", [
        day["event_ts"][0], day["event_ts"][1] + dt.timedelta(days=1), None, day["event_ts"][3]]))
    out = same_day_labels(late)
    assert out["label"].is_null().to_list() == [False, True, True, False]


# --- the cache -------------------------------------------------------------------------------

def test_cache_hits_on_the_same_content_and_misses_on_any_change(tmp_path):
    ref = reference(days=3, n=60)
    first, hit = cached_calibration(ref, labels=LABELS, drift=DRIFT, cache_dir=tmp_path)
    assert not hit and len(list(tmp_path.glob("*.json"))) == 1
    again, hit = cached_calibration(ref.reverse(), labels=LABELS, drift=DRIFT, cache_dir=tmp_path)
    assert hit and again == first  # row order is not content
    # A rematerialized partition (one text changed) or a late label is a new key.
    edited = ref.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("changed text"))
                              .otherwise(pl.col("text")).alias("text"))
    relabelled = ref.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(None)
                                  .otherwise(pl.col("label")).alias("label"))
    keys = {cache_key(f, labels=LABELS, drift=DRIFT) for f in (ref, edited, relabelled)}
    assert len(keys) == 3
    # So is a setting the null depends on.
    assert cache_key(ref, labels=LABELS, drift=DRIFT) != cache_key(
        ref, labels=LABELS, drift=DRIFT.model_copy(update={"min_rows": 30}))
    _, hit = cached_calibration(edited, labels=LABELS, drift=DRIFT, cache_dir=tmp_path)
    assert not hit and len(list(tmp_path.glob("*.json"))) == 2


def test_unreadable_cache_file_is_a_loud_error(tmp_path):
    ref = reference(days=2, n=40)
    (tmp_path / f"{cache_key(ref, labels=LABELS, drift=DRIFT)}.json").write_text("{not json")
    with pytest.raises(ValueError, match="unreadable.*delete it"):
        cached_calibration(ref, labels=LABELS, drift=DRIFT, cache_dir=tmp_path)
