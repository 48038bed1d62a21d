"""evaluate_challenger: per-label and per-slice golden accuracy, the forgetting ledger's rows.

Why: a user's golden set has slices (channel, market, product line); a regression that
averages out over the whole set must still show on its slice.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ct_assets.core.settings import GateSettings
from ct_assets.evaluation.challenger import evaluate_challenger, slice_accuracy

LABELS = ["pos", "neg"]


@dataclass
class Fixed:
    """A predictor that answers from a lookup table: the evaluation maths, not a model."""

    answers: dict[str, str]

    def predict(self, texts):
        labels = [self.answers[t] for t in texts]
        probs = np.array([[0.9, 0.1] if y == "pos" else [0.1, 0.9] for y in labels])

        class P:
            pass

        p = P()
        p.labels, p.probs, p.confidence = labels, probs, probs.max(axis=1)
        return p


def test_slice_accuracy_per_model():
    rows = slice_accuracy(["pos", "neg", "pos", "neg"], ["pos", "neg", "neg", "neg"], ["pos", "pos", "pos", "neg"],
                          ["web", "web", "app", "app"])
    assert rows == [{"slice": "web", "n": 2, "challenger": 1.0, "champion": 0.5},
                    {"slice": "app", "n": 2, "challenger": 0.5, "champion": 1.0}]


def test_the_report_shows_per_label_and_per_slice_golden_accuracy():
    golden = {f"g{i}": ("pos" if i % 2 else "neg") for i in range(20)}
    slices = ["web" if i < 10 else "app" for i in range(20)]
    # The challenger is wrong on the app slice only: a regression the overall figure halves.
    challenger = Fixed({t: (y if slices[i] == "web" else "pos") for i, (t, y) in enumerate(golden.items())})
    holdout = {f"h{i}": "pos" if i % 3 else "neg" for i in range(30)}
    challenger.answers.update(holdout)
    outcome = evaluate_challenger(
        challenger, None, holdout_texts=list(holdout), holdout_labels=list(holdout.values()),
        golden_texts=list(golden), golden_labels=list(golden.values()), golden_slices=slices, labels=LABELS,
        gate_settings=GateSettings(min_class_recall=0.0), title="t", challenger_name="v2", champion_name=None)
    assert [(s["slice"], s["challenger"]) for s in outcome.slices] == [("web", 1.0), ("app", 0.5)]
    assert "### Golden accuracy per slice" in outcome.markdown and "| app | 10 | 0.500 |" in outcome.markdown
    assert "### Per-label accuracy (recall)" in outcome.markdown
