"""How the model in production does on a day: measured where labels exist, estimated
(label-free, CBPE-style) everywhere, plus its prediction mix.

A large day is scored on a seeded, label-stratified sample (``monitoring_sample``):
at 200k rows/day scoring every row cost ~14 min per model per day on CPU, while the
accuracy's 95% interval at 20k labelled rows is already about +-0.6 points.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence

import numpy as np

from ct_assets.evaluation.calibration import Calibration, estimate_accuracy

CI_LEVEL = 0.95
_Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct: int, n: int, z: float = _Z95) -> tuple[float, float] | None:
    """Wilson score interval for a binomial proportion, or None for n == 0.

    Wilson rather than a bootstrap: accuracy on a simple random sample (within strata,
    see ``monitoring_sample``) is a binomial proportion, Wilson has near-nominal coverage
    even at small n and at accuracies near 1 (where the normal interval collapses to
    zero width), and it is closed-form, so it costs nothing on a 200k-row day.
    """
    if n <= 0:
        return None
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _seed_of(seed: int | str) -> int:
    # A string seed (e.g. the partition key) through a stable hash: Python's hash() of a
    # str changes per process, and the sample must be the same on every rematerialization.
    if isinstance(seed, int):
        return seed
    return int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little")


def monitoring_sample(truth: Sequence[str | None], max_rows: int | None, seed: int | str = 0) -> np.ndarray:
    """Sorted row indices to score: all rows when ``max_rows`` is None or the day is not
    larger, else ``max_rows`` rows drawn without replacement, stratified by label.

    Each label is a stratum and unlabelled rows are one stratum of their own, each kept
    at its share of the day (largest-remainder rounding, so the total is exactly
    ``max_rows``). So the labelled part is a proportional sample of the labelled rows
    (the measured accuracy, with the day's class mix) and the whole sample is one of the
    day (the label-free estimate and the prediction mix). Deterministic in ``seed``.
    """
    n = len(truth)
    if max_rows is None or n <= max_rows:
        return np.arange(n)
    if max_rows < 1:
        raise ValueError(f"max_rows must be >= 1, got {max_rows}")
    strata: dict[str | None, list[int]] = {}
    for i, label in enumerate(truth):
        strata.setdefault(label, []).append(i)
    # Fixed stratum order (unlabelled first, then labels sorted) so the draw is reproducible.
    keys = sorted(strata, key=lambda k: (k is not None, "" if k is None else str(k)))
    exact = np.array([len(strata[k]) * max_rows / n for k in keys])
    take = np.floor(exact).astype(int)
    for j in np.argsort(-(exact - take), kind="stable")[: max_rows - int(take.sum())]:
        take[j] += 1
    rng = np.random.default_rng(_seed_of(seed))
    chosen = [rng.choice(np.asarray(strata[k]), size=int(t), replace=False) for k, t in zip(keys, take, strict=True)]
    return np.sort(np.concatenate(chosen)) if chosen else np.arange(0)


def day_performance(
    predicted: Sequence[str],
    confidence: np.ndarray,
    truth: Sequence[str | None],
    calibration: Calibration | None = None,
    total_rows: int | None = None,
) -> dict:
    """Performance on the scored rows. ``total_rows``: the day's row count when the rows
    are a ``monitoring_sample`` of it (default: the rows given are the whole day)."""
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} rows")
    labelled = [i for i, t in enumerate(truth) if t is not None]
    correct = sum(1 for i in labelled if predicted[i] == truth[i])
    # Also on a full day: the interval says how much a day's accuracy move can be noise.
    ci = wilson_interval(correct, len(labelled))
    return {
        "accuracy": round(correct / len(labelled), 4) if labelled else None,
        "accuracy_ci_low": round(ci[0], 4) if ci else None,
        "accuracy_ci_high": round(ci[1], 4) if ci else None,
        "accuracy_ci_method": f"wilson {CI_LEVEL:.0%}",
        "labelled_rows": len(labelled),
        "scored_rows": len(predicted),
        "total_rows": len(predicted) if total_rows is None else total_rows,
        "estimated_accuracy": round(estimate_accuracy(confidence, calibration), 4) if len(predicted) else None,
        "mean_confidence": round(float(np.mean(confidence)), 4) if len(predicted) else None,
        "prediction_mix": dict(Counter(predicted)),
    }
