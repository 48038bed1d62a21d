from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, recall_score

from ct_assets.evaluation.metrics import (
    classification_metrics,
    expected_calibration_error,
    paired_bootstrap_diff,
)

LABELS = ["a", "b", "c", "d", "e"]


def _noisy(y_true: np.ndarray, p_correct: float, rng: np.random.Generator, pool=LABELS) -> np.ndarray:
    return np.where(rng.random(len(y_true)) < p_correct, y_true, rng.choice(pool, len(y_true)))


def test_metrics_match_sklearn():
    rng = np.random.default_rng(0)
    # "e" has no support; "d" is never predicted (recall 0, F1 0).
    y_true = rng.choice(["a", "b", "c", "d"], 500)
    y_pred = _noisy(y_true, 0.7, rng, pool=["a", "b", "c", "e"])
    y_pred = np.where(y_pred == "d", "a", y_pred)
    m = classification_metrics(list(y_true), list(y_pred), None, LABELS)
    assert m["n"] == 500
    assert m["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    # sklearn's default label set: labels present in y_true or y_pred ("e" is predicted).
    assert m["macro_f1"] == pytest.approx(f1_score(y_true, y_pred, average="macro", zero_division=0))
    recalls = recall_score(y_true, y_pred, labels=["a", "b", "c", "d"], average=None, zero_division=0)
    for label, r in zip(["a", "b", "c", "d"], recalls):
        assert m["per_class_recall"][label] == pytest.approx(r)
    assert m["per_class_recall"]["d"] == 0.0
    assert m["per_class_recall"]["e"] is None
    assert m["support"]["e"] == 0 and sum(m["support"].values()) == 500
    assert m["ece"] is None


def test_macro_f1_ignores_labels_neither_true_nor_predicted():
    m = classification_metrics(["a", "a", "b"], ["a", "a", "b"], None, LABELS)
    assert m["macro_f1"] == 1.0


def test_probs_give_argmax_predictions_and_ece():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    m = classification_metrics(["x", "y", "y"], None, probs, ["x", "y"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["ece"] is not None


def test_ece_perfectly_calibrated_is_zero():
    # Confidence 0.8 on 100 rows of which 80 are right, 0.6 on 50 of which 30 are right.
    probs = np.array([[0.8, 0.2]] * 100 + [[0.6, 0.4]] * 50)
    y_true = ["x"] * 80 + ["y"] * 20 + ["x"] * 30 + ["y"] * 20
    assert classification_metrics(y_true, None, probs, ["x", "y"])["ece"] == pytest.approx(0.0, abs=1e-12)


def test_ece_overconfident():
    probs = np.array([[0.99, 0.01]] * 100)
    y_true = ["x"] * 50 + ["y"] * 50  # right half the time at 99 % confidence
    assert classification_metrics(y_true, None, probs, ["x", "y"])["ece"] == pytest.approx(0.49)


def test_ece_matches_loop_reference():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.2, 1.0, 1000)
    correct = rng.random(1000) < conf**2
    ref = 0.0
    edges = np.linspace(0, 1, 16)
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            ref += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    assert expected_calibration_error(correct, conf) == pytest.approx(ref)


def test_input_errors():
    with pytest.raises(ValueError, match="'zzz'"):
        classification_metrics(["a", "zzz"], ["a", "a"], None, LABELS)
    with pytest.raises(ValueError, match="shape"):
        classification_metrics(["a"], ["a"], np.ones((1, 2)), LABELS)
    with pytest.raises(ValueError, match="empty"):
        classification_metrics([], [], None, LABELS)


def test_bootstrap_point_estimate_and_determinism():
    rng = np.random.default_rng(1)
    y = rng.choice(LABELS, 600)
    a, b = _noisy(y, 0.85, rng), _noisy(y, 0.75, rng)
    diff, lo, hi = paired_bootstrap_diff(list(y), list(a), list(b), seed=5)
    assert diff == pytest.approx(accuracy_score(y, a) - accuracy_score(y, b))
    assert lo < diff < hi
    assert paired_bootstrap_diff(list(y), list(a), list(b), seed=5) == (diff, lo, hi)
    assert paired_bootstrap_diff(list(y), list(a), list(b), seed=6) != (diff, lo, hi)
    assert paired_bootstrap_diff(list(y), list(a), list(a)) == (0.0, 0.0, 0.0)


def test_bootstrap_interval_covers_true_difference():
    """Over many independent test sets the 90 % interval contains the true gain ~90 % of the time."""
    rng = np.random.default_rng(2)
    true_diff, covered, reps = 0.05, 0, 200
    for rep in range(reps):
        y = rng.choice(LABELS, 400)
        a = np.where(rng.random(400) < 0.85, y, "wrong")  # exact accuracy rates 0.85 vs 0.80
        b = np.where(rng.random(400) < 0.80, y, "wrong")
        _, lo, hi = paired_bootstrap_diff(list(y), list(a), list(b), samples=400, confidence=0.9, seed=rep)
        covered += lo <= true_diff <= hi
    assert 0.82 <= covered / reps <= 0.97


def test_bootstrap_macro_f1_matches_sklearn_loop():
    rng = np.random.default_rng(4)
    y = rng.choice(LABELS, 300)
    a, b = _noisy(y, 0.8, rng), _noisy(y, 0.7, rng)
    diff, lo, hi = paired_bootstrap_diff(list(y), list(a), list(b), metric="macro_f1", samples=200, seed=9)
    assert diff == pytest.approx(f1_score(y, a, average="macro") - f1_score(y, b, average="macro"))
    # White-box: the same generator draws one (samples, n) index matrix when it fits one chunk.
    idx = np.random.default_rng(9).integers(0, 300, size=(200, 300))
    def f1(pred, i):
        return f1_score(y[i], pred[i], average="macro", zero_division=0)

    ref = [f1(a, i) - f1(b, i) for i in idx]
    ref_lo, ref_hi = np.quantile(ref, [0.025, 0.975])
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi))


def test_bootstrap_rejects_bad_arguments():
    with pytest.raises(ValueError, match="metric"):
        paired_bootstrap_diff(["a"], ["a"], ["a"], metric="auc")
    with pytest.raises(ValueError, match="lengths"):
        paired_bootstrap_diff(["a", "b"], ["a"], ["a", "b"])
