from __future__ import annotations

import numpy as np
import pytest

from ct_assets.core.settings import GateSettings
from ct_assets.evaluation.gate import GateInput, decide_gate, decide_gate_from_settings
from ct_assets.evaluation.metrics import classification_metrics, paired_bootstrap_diff

THRESHOLDS = dict(
    min_improvement=0.01,
    require_ci_above_zero=True,
    max_forgetting=0.03,
    max_class_forgetting=0.10,
    min_class_recall=0.3,
    first_model_min_accuracy=0.6,
    first_model_min_macro_f1=0.5,
)


def m(acc: float, f1: float | None = None, recall: dict | None = None) -> dict:
    """A metrics dict shaped like classification_metrics' output."""
    recall = recall if recall is not None else {"a": acc, "b": acc}
    return {"accuracy": acc, "macro_f1": acc if f1 is None else f1, "per_class_recall": recall,
            "support": {k: 0 if v is None else 50 for k, v in recall.items()}, "ece": None, "n": 100}


def test_better_challenger_passes():
    inp = GateInput(m(0.86), m(0.90), m(0.80), m(0.91), bootstrap=(0.06, 0.02, 0.10))
    d = decide_gate(inp, **THRESHOLDS)
    assert d.passed and d.reasons == []
    assert set(d.checks) == {"holdout_improvement", "holdout_ci_lower", "golden_forgetting",
                             "class_forgetting:a", "class_forgetting:b", "class_recall:a", "class_recall:b"}
    assert d.checks["holdout_improvement"]["value"] == pytest.approx(0.06)
    assert d.summary().startswith("PASSED")


def test_worse_challenger_blocked_with_readable_reason():
    inp = GateInput(m(0.75), m(0.90), m(0.80), m(0.90), bootstrap=(-0.05, -0.09, -0.01))
    d = decide_gate(inp, **THRESHOLDS)
    assert not d.passed
    assert not d.checks["holdout_improvement"]["passed"]
    assert "holdout accuracy -0.050 < min_improvement 0.010" in d.reasons[0]
    assert any("CI [-0.090, -0.010]" in r for r in d.reasons)


def test_gain_that_is_noise_is_blocked_only_when_ci_required():
    inp = GateInput(m(0.83), m(0.90), m(0.80), m(0.90), bootstrap=(0.03, -0.01, 0.07))
    blocked = decide_gate(inp, **THRESHOLDS)
    assert not blocked.passed and len(blocked.reasons) == 1
    assert "not significant" in blocked.reasons[0]
    relaxed = decide_gate(inp, **{**THRESHOLDS, "require_ci_above_zero": False})
    assert relaxed.passed and "holdout_ci_lower" not in relaxed.checks


def test_improvement_exactly_at_threshold_passes():
    # 0.82 - 0.80 is 0.01999999... in floats; the gate must not call that "< 0.02".
    inp = GateInput(m(0.82), m(0.9), m(0.80), m(0.9), bootstrap=(0.02, 0.001, 0.04))
    assert decide_gate(inp, **{**THRESHOLDS, "min_improvement": 0.02}).passed


def test_forgetting_on_golden_blocks():
    inp = GateInput(m(0.90), m(0.85), m(0.80), m(0.90), bootstrap=(0.10, 0.06, 0.14))
    d = decide_gate(inp, **THRESHOLDS)
    assert not d.passed
    assert d.checks["golden_forgetting"] == {"passed": False, "value": pytest.approx(0.05), "threshold": 0.03}
    assert d.reasons == [
        "golden accuracy dropped by 0.050 > max_forgetting 0.030 (challenger 0.850, champion 0.900)"
    ]


def test_class_collapse_on_golden_blocks_and_unsupported_class_is_a_note():
    golden = m(0.9, recall={"a": 0.95, "b": 0.1, "c": None})
    inp = GateInput(m(0.9), golden, m(0.8), m(0.9), bootstrap=(0.1, 0.05, 0.15))
    d = decide_gate(inp, **THRESHOLDS)
    assert not d.passed
    # Against a champion at 0.9 the collapse is also forgetting; both are reported.
    assert d.reasons == ["class 'b' forgotten: golden recall dropped by 0.800 > max_class_forgetting 0.100 "
                         "(challenger 0.100, champion 0.900)",
                         "class 'b' collapsed: golden recall 0.100 < min_class_recall 0.300"]
    assert "class_recall:c" not in d.checks and "class_forgetting:c" not in d.checks
    assert any("'c' has no golden support" in n for n in d.notes)


def test_first_model_absolute_thresholds():
    ok = decide_gate(GateInput(m(0.7, 0.6), m(0.7)), **THRESHOLDS)
    assert ok.passed and {"first_model_accuracy", "first_model_macro_f1"} <= set(ok.checks)
    low_acc = decide_gate(GateInput(m(0.55, 0.6), m(0.7)), **THRESHOLDS)
    assert low_acc.reasons == ["first model holdout accuracy 0.550 < minimum 0.600"]
    low_f1 = decide_gate(GateInput(m(0.7, 0.4), m(0.7)), **THRESHOLDS)
    assert low_f1.reasons == ["first model holdout macro-F1 0.400 < minimum 0.500"]
    collapsed = decide_gate(GateInput(m(0.7), m(0.7, recall={"a": 1.0, "b": 0.0})), **THRESHOLDS)
    assert not collapsed.passed and "class 'b' collapsed" in collapsed.reasons[0]


def test_missing_inputs_are_programming_errors():
    with pytest.raises(ValueError, match="bootstrap"):
        decide_gate(GateInput(m(0.9), m(0.9), m(0.8), m(0.9)), **THRESHOLDS)
    with pytest.raises(ValueError, match="champion_golden"):
        decide_gate(GateInput(m(0.9), m(0.9), m(0.8)), **THRESHOLDS)


def test_end_to_end_with_real_metrics_and_settings():
    """Predictions -> metrics -> bootstrap -> gate, thresholds from GateSettings."""
    rng = np.random.default_rng(0)
    labels = ["x", "y", "z"]
    y = rng.choice(labels, 600)
    golden = rng.choice(labels, 150)

    def model(truth, p):
        return list(np.where(rng.random(len(truth)) < p, truth, rng.choice(labels, len(truth))))

    champ_h, champ_g = model(y, 0.70), model(golden, 0.85)
    better_h, better_g = model(y, 0.85), model(golden, 0.85)
    worse_h = model(y, 0.65)
    settings = GateSettings()

    def holdout(pred):
        return classification_metrics(list(y), pred, None, labels)

    def gold(pred):
        return classification_metrics(list(golden), pred, None, labels)

    def inp(ch_h, ch_g):
        return GateInput(
            holdout(ch_h), gold(ch_g), holdout(champ_h), gold(champ_g),
            bootstrap=paired_bootstrap_diff(list(y), ch_h, champ_h, samples=settings.bootstrap_samples),
        )

    assert decide_gate_from_settings(inp(better_h, better_g), settings).passed
    blocked = decide_gate_from_settings(inp(worse_h, better_g), settings)
    assert not blocked.passed and not blocked.checks["holdout_improvement"]["passed"]


def test_class_forgetting_is_not_judged_where_one_golden_row_exceeds_the_bound():
    """A rare class with 5 golden rows: one flipped row is a 0.2 drop, over the 0.10 bound,
    so it is not judged (class_recall still floors it). From 10 rows it is judged: one row
    is exactly the bound and passes, two rows block."""
    def gate(rows_b: int, missed_b: int):
        truth = ["a"] * 20 + ["b"] * rows_b
        challenger = ["a"] * 20 + ["a"] * missed_b + ["b"] * (rows_b - missed_b)
        golden = classification_metrics(truth, challenger, None, ["a", "b"])
        champion = classification_metrics(truth, truth, None, ["a", "b"])
        inp = GateInput(m(0.9), golden, m(0.8), champion, bootstrap=(0.1, 0.05, 0.15))
        return decide_gate(inp, **{**THRESHOLDS, "max_forgetting": 1.0})

    rare = gate(5, 1)
    assert rare.passed and "class_forgetting:b" not in rare.checks
    assert rare.not_judged["class_forgetting:b"] == ("5 golden rows: one row (0.200 of recall) is more than "
                                                     "max_class_forgetting 0.100 (recall 1.000 -> 0.800)")
    assert rare.checks["class_forgetting:a"]["passed"]
    assert not gate(5, 4).passed  # collapsed: recall 0.2 < min_class_recall 0.3
    assert gate(10, 1).checks["class_forgetting:b"] == {"passed": True, "value": pytest.approx(0.1), "threshold": 0.1}
    assert not gate(10, 2).checks["class_forgetting:b"]["passed"]
