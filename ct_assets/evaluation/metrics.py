"""Classification metrics and a paired bootstrap for challenger-vs-champion comparisons.

Plain numpy so the bootstrap stays fast; the unit tests check every number against
scikit-learn. Macro-F1 follows scikit-learn's default label set: the labels present in
y_true or y_pred (a label that is predicted but never true scores F1 = 0, a label that
is neither true nor predicted is left out), zero_division=0.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

ECE_BINS = 15
# Caps the (samples x n) index matrix of the bootstrap at ~16 MB of int64.
_BOOTSTRAP_CELLS = 2_000_000


def _encode(values: Sequence[str], index: dict[str, int], what: str) -> np.ndarray:
    try:
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    except KeyError as err:
        raise ValueError(f"{what}: label {err.args[0]!r} is not one of {list(index)}") from None


def _macro_f1_from_counts(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Macro-F1 over the last axis; F1 = 2tp / (support + predicted) = 2PR / (P + R)."""
    denom = support + predicted
    present = denom > 0
    f1 = np.divide(2.0 * tp, denom, out=np.zeros(denom.shape, dtype=float), where=present)
    return f1.sum(axis=-1) / np.maximum(present.sum(axis=-1), 1)


def expected_calibration_error(correct: np.ndarray, confidence: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| * bin share.

    Bins are right-closed, (k/bins, (k+1)/bins]; a confidence of exactly 0 goes in bin 0.
    """
    idx = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    acc_sum = np.bincount(idx, weights=correct.astype(float), minlength=bins)
    conf_sum = np.bincount(idx, weights=confidence, minlength=bins)
    return float(np.abs(acc_sum - conf_sum).sum() / len(correct))


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str] | None,
    probs: np.ndarray | None,
    labels: Sequence[str],
) -> dict:
    """accuracy, macro_f1, per_class_recall, support, ece and n for one prediction set.

    ``probs`` has one column per entry of ``labels`` (same order). ``y_pred`` may be None
    when ``probs`` is given (argmax). ECE uses the argmax of ``probs`` as the prediction,
    so it describes the probabilities even if ``y_pred`` came from elsewhere; it is None
    without ``probs``. per_class_recall is None for labels with no support.
    """
    labels = list(labels)
    index = {label: i for i, label in enumerate(labels)}
    k = len(labels)
    t = _encode(y_true, index, "y_true")
    n = len(t)
    if n == 0:
        raise ValueError("classification_metrics: empty y_true")
    p_arr = None
    if probs is not None:
        p_arr = np.asarray(probs, dtype=float)
        if p_arr.shape != (n, k):
            raise ValueError(f"probs has shape {p_arr.shape}, expected ({n}, {k})")
    if y_pred is None:
        if p_arr is None:
            raise ValueError("classification_metrics: need y_pred or probs")
        p = p_arr.argmax(axis=1)
    else:
        p = _encode(y_pred, index, "y_pred")
        if len(p) != n:
            raise ValueError(f"y_pred has {len(p)} rows, y_true has {n}")

    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    recall = {
        label: (float(tp[i] / support[i]) if support[i] > 0 else None) for i, label in enumerate(labels)
    }
    ece = None
    if p_arr is not None:
        ece = expected_calibration_error(p_arr.argmax(axis=1) == t, p_arr.max(axis=1))
    return {
        "accuracy": float(tp.sum() / n),
        "macro_f1": float(_macro_f1_from_counts(tp, support, predicted)),
        "per_class_recall": recall,
        "support": {label: int(support[i]) for i, label in enumerate(labels)},
        "ece": ece,
        "n": int(n),
    }


def paired_bootstrap_diff(
    y_true: Sequence[str],
    pred_a: Sequence[str],
    pred_b: Sequence[str],
    metric: Literal["accuracy", "macro_f1"] = "accuracy",
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """metric(pred_a) - metric(pred_b) with a percentile bootstrap interval.

    pred_a is the challenger, pred_b the champion: a positive diff favours the challenger.
    Both are scored on the same resampled rows in every replicate (paired), which removes
    the between-sample noise they share. Returns (point estimate on all rows, lo, hi).
    """
    if metric not in ("accuracy", "macro_f1"):
        raise ValueError(f"metric must be 'accuracy' or 'macro_f1', got {metric!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    universe = sorted(set(y_true) | set(pred_a) | set(pred_b))
    index = {label: i for i, label in enumerate(universe)}
    t = _encode(y_true, index, "y_true")
    a, b = _encode(pred_a, index, "pred_a"), _encode(pred_b, index, "pred_b")
    n = len(t)
    if n == 0 or len(a) != n or len(b) != n:
        raise ValueError(f"need equal, non-empty lengths; got {n}, {len(a)}, {len(b)}")
    k = len(universe)

    def score(rows: np.ndarray) -> np.ndarray:
        """Metric difference for each row of a (m, n) index matrix (or one 1-D index)."""
        if metric == "accuracy":
            d = (a == t).astype(np.int8) - (b == t).astype(np.int8)
            return d[rows].mean(axis=-1)
        out = []
        for pred in (a, b):
            # One bincount for all replicates: offset each replicate's confusion cells.
            flat = t[rows] * k + pred[rows]
            m = flat.shape[0] if flat.ndim == 2 else 1
            flat = flat.reshape(m, -1) + (np.arange(m) * k * k)[:, None]
            cm = np.bincount(flat.ravel(), minlength=m * k * k).reshape(m, k, k)
            tp = np.diagonal(cm, axis1=1, axis2=2)
            out.append(_macro_f1_from_counts(tp, cm.sum(axis=2), cm.sum(axis=1)))
        return (out[0] - out[1]).reshape(np.shape(rows)[:-1])

    diff = float(score(np.arange(n)))
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    diffs = np.concatenate(
        [score(rng.integers(0, n, size=(min(chunk, samples - s), n))) for s in range(0, samples, chunk)]
    )
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(diffs, [alpha, 1.0 - alpha])
    return diff, float(lo), float(hi)
