"""Drift at scale: ``drift.max_rows`` caps the rows concept_shift (current side, stratified
by label), oov_rate and length_ks score per side. Pinned here: a side at or below the cap
scores exactly as with no cap (so small days, the calibration and the snapshots do not
move), a side above it is sampled (deterministic by seed, labels keeping their shares)
and a real drift is still found on the sample."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from ct_assets.core.settings import DriftSettings
from ct_assets.drift.calibration import cache_key
from ct_assets.drift.scores import score_drift
from ct_assets.drift.text_models import stratified_sample
from ct_assets_tests.drift_tests.test_statistics import LABELS, make_labelled_frame

UNCAPPED = 10**9


def _score(reference, current, **kw):
    return score_drift(reference, current, labels=LABELS, seed=11, **kw)


def _same(a, b) -> bool:
    return (a.scores, a.notes, a.new_terms, a.extras, a.concept_detail) == (
        b.scores, b.notes, b.new_terms, b.extras, b.concept_detail)


def test_at_or_below_the_cap_scores_are_those_without_a_cap():
    reference, current = make_labelled_frame(1200, 1), make_labelled_frame(1000, 2, prefix="c")
    uncapped = _score(reference, current, max_rows=UNCAPPED)
    assert _same(_score(reference, current, max_rows=1200), uncapped)  # both sides at or below
    assert uncapped.scores["concept_shift"] is not None and uncapped.scores["oov_rate"] is not None


def test_above_the_cap_each_side_is_sampled_deterministically_and_still_finds_the_concept():
    reference = make_labelled_frame(2600, 1)
    current = make_labelled_frame(2600, 2, prefix="c", renewal_label="refund")
    full = _score(reference, current, max_rows=UNCAPPED)
    capped = _score(reference, current, max_rows=1000)
    assert _same(capped, _score(reference, current, max_rows=1000))  # same seed, same sample
    other = score_drift(reference, current, labels=LABELS, seed=12, max_rows=1000)
    assert not _same(capped, other)
    assert not _same(capped, full)
    # The proxy's billing predictions come from 1000 current rows, not 2600.
    assert capped.concept_detail["predictions"] < 0.5 * full.concept_detail["predictions"]
    for result in (full, capped, other):
        detail = result.concept_detail
        assert (detail["class"], detail["confused_label"]) == ("billing", "refund")
        assert result.scores["concept_shift"] > 0.15
    # Sampling noise, not a different answer: each sampled score stays near the full one.
    for metric in ("concept_shift", "length_ks", "oov_rate"):
        assert capped.scores[metric] == pytest.approx(full.scores[metric], abs=0.06), metric
    # Label scores and the label counts are never sampled.
    assert capped.current_labels == full.current_labels
    assert capped.scores["label_js"] == full.scores["label_js"]


def test_stratified_sample_keeps_every_labels_share():
    labels = np.array(["b"] * 700 + ["a"] * 250 + ["c"] * 49 + ["d"], dtype=object)
    np.random.default_rng(0).shuffle(labels)
    keep = stratified_sample(labels, 100, np.random.default_rng(5))
    assert len(keep) == 100 and len(set(keep)) == 100 and (np.diff(keep) > 0).all()
    names, counts = np.unique(labels[keep].astype(str), return_counts=True)
    # Quotas 70, 25, 4.9, 0.1: floors 70/25/4/0, the one row left over to the largest remainder.
    assert dict(zip(names, counts)) == {"b": 70, "a": 25, "c": 5}
    assert (stratified_sample(labels, 100, np.random.default_rng(5)) == keep).all()
    assert not (stratified_sample(labels, 100, np.random.default_rng(6)) == keep).all()
    assert (stratified_sample(labels, 1000, np.random.default_rng(5)) == np.arange(1000)).all()


def test_max_rows_setting_and_calibration_key():
    assert DriftSettings().max_rows == 10_000
    with pytest.raises(ValidationError, match="max_rows"):
        DriftSettings(max_rows=999)
    reference = make_labelled_frame(50, 1)
    # The null is scored with the same cap, so a changed cap is a new calibration.
    assert cache_key(reference, labels=LABELS, drift=DriftSettings()) != cache_key(
        reference, labels=LABELS, drift=DriftSettings(max_rows=20_000))
