"""Label-free accuracy estimate, in the spirit of NannyML's CBPE.

Labels arrive days late, so the champion's accuracy today is unknown today. If the
model's confidence is calibrated, the expected accuracy of a batch is the mean of its
calibrated max-probabilities. Calibration is fitted where labels exist (the holdout at
evaluation time) with isotonic regression and kept as a small JSON map of breakpoints.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class Calibration:
    x: tuple[float, ...]
    y: tuple[float, ...]

    def apply(self, confidence: np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(confidence, dtype=float), self.x, self.y)

    def to_json(self) -> str:
        return json.dumps({"x": list(self.x), "y": list(self.y)})

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        raw = json.loads(text)
        return cls(tuple(raw["x"]), tuple(raw["y"]))


def fit_calibration(confidence: np.ndarray, correct: np.ndarray) -> Calibration:
    """Isotonic map from confidence to P(correct); needs both outcomes present."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidence.shape != correct.shape or confidence.size < 10:
        raise ValueError(f"fit_calibration needs >= 10 paired values, got {confidence.size} and {correct.size}")
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(confidence, correct)
    return Calibration(tuple(float(v) for v in iso.X_thresholds_), tuple(float(v) for v in iso.y_thresholds_))


def estimate_accuracy(confidence: np.ndarray, calibration: Calibration | None = None) -> float:
    """Expected accuracy of a batch from its confidences; raw confidence when uncalibrated."""
    confidence = np.asarray(confidence, dtype=float)
    if confidence.size == 0:
        raise ValueError("estimate_accuracy: empty batch")
    calibrated = calibration.apply(confidence) if calibration is not None else confidence
    return float(calibrated.mean())
