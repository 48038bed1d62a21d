"""How the model in production does on a day: measured where labels exist, estimated
(label-free, CBPE-style) everywhere, plus its prediction mix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from ct_assets.evaluation.calibration import Calibration, estimate_accuracy


def day_performance(
    predicted: Sequence[str],
    confidence: np.ndarray,
    truth: Sequence[str | None],
    calibration: Calibration | None = None,
) -> dict:
    if len(predicted) != len(truth):
        raise ValueError(f"{len(predicted)} predictions for {len(truth)} rows")
    labelled = [i for i, t in enumerate(truth) if t is not None]
    correct = sum(1 for i in labelled if predicted[i] == truth[i])
    return {
        "accuracy": round(correct / len(labelled), 4) if labelled else None,
        "labelled_rows": len(labelled),
        "estimated_accuracy": round(estimate_accuracy(confidence, calibration), 4) if len(predicted) else None,
        "mean_confidence": round(float(np.mean(confidence)), 4) if len(predicted) else None,
        "prediction_mix": dict(Counter(predicted)),
    }
