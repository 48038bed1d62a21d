"""Edges of the promotion gate that mutation testing found unpinned (docs/mutation.md).

Thresholds are inclusive with 1e-9 of float slack: values chosen so that ``x - 1e-9`` is
exact (threshold 1e-9, value 0.0) pin the inclusive side; values 5e-10 over a threshold pin
the direction of the slack. The check table, the notes and the summary are asserted whole.
"""

from __future__ import annotations

import re

import pytest

from ct_assets.core.settings import AbsoluteGate, GateSettings
from ct_assets.evaluation.gate import GateInput, decide_gate, decide_gate_from_settings

EPS = 1e-9
HALF_EPS = 5e-10
THRESHOLDS = {"min_improvement": 0.01, "require_ci_above_zero": True, "max_forgetting": 0.03,
              "max_class_forgetting": 0.10, "min_class_recall": 0.3, "first_model_min_accuracy": 0.6,
              "first_model_min_macro_f1": 0.5}


def m(acc: float, f1: float | None = None, recall: dict | None = None) -> dict:
    """A metrics dict shaped like classification_metrics' output (recall per class a, b)."""
    recall = recall if recall is not None else {"a": acc, "b": acc}
    return {"accuracy": acc, "macro_f1": acc if f1 is None else f1, "per_class_recall": recall,
            "support": {k: 0 if v is None else 50 for k, v in recall.items()}}


def champion_gate(holdout: tuple[float, float], golden: tuple[float, float], **overrides) -> dict:
    """The checks for (challenger, champion) accuracies on holdout and golden."""
    inp = GateInput(m(holdout[0]), m(golden[0]), m(holdout[1]), m(golden[1]), bootstrap=(0.1, 0.5, 0.6))
    return decide_gate(inp, **{**THRESHOLDS, **overrides}).checks


@pytest.mark.parametrize(
    ("check", "gate", "passed"),
    [
        # gain == threshold - eps exactly (0.0 - 0.0 == 1e-9 - 1e-9): still passes.
        ("holdout_improvement", lambda: champion_gate((0.0, 0.0), (0.9, 0.9), min_improvement=EPS), True),
        # within the slack below the threshold: passes; further below: fails.
        ("holdout_improvement", lambda: champion_gate((0.75 - HALF_EPS, 0.5), (0.9, 0.9), min_improvement=0.25),
         True),
        ("holdout_improvement", lambda: champion_gate((0.75 - 1e-6, 0.5), (0.9, 0.9), min_improvement=0.25),
         False),
        # forgetting == threshold + eps exactly (1e-9 - 0.0 == 0.0 + 1e-9): still passes.
        ("golden_forgetting", lambda: champion_gate((0.9, 0.8), (0.0, EPS), max_forgetting=0.0), True),
        ("golden_forgetting", lambda: champion_gate((0.9, 0.8), (0.5, 0.75 + HALF_EPS), max_forgetting=0.25), True),
        ("golden_forgetting", lambda: champion_gate((0.9, 0.8), (0.5, 0.75 + 1e-6), max_forgetting=0.25), False),
    ],
)
def test_champion_thresholds_are_inclusive_with_float_slack(check, gate, passed):
    assert gate()[check]["passed"] is passed


def first_model(acc: float, f1: float, recall: dict | None = None, **overrides):
    return decide_gate(GateInput(m(acc, f1), m(0.9, recall=recall)), **{**THRESHOLDS, **overrides})


@pytest.mark.parametrize(
    ("check", "decision", "passed"),
    [
        ("first_model_accuracy", lambda: first_model(0.0, 0.9, first_model_min_accuracy=EPS), True),
        ("first_model_accuracy", lambda: first_model(0.6 - HALF_EPS, 0.9, first_model_min_accuracy=0.6), True),
        ("first_model_accuracy", lambda: first_model(0.6 - 1e-6, 0.9, first_model_min_accuracy=0.6), False),
        ("first_model_macro_f1", lambda: first_model(0.9, 0.0, first_model_min_macro_f1=EPS), True),
        ("first_model_macro_f1", lambda: first_model(0.9, 0.5 - HALF_EPS, first_model_min_macro_f1=0.5), True),
        ("first_model_macro_f1", lambda: first_model(0.9, 0.5 - 1e-6, first_model_min_macro_f1=0.5), False),
        ("class_recall:a", lambda: first_model(0.9, 0.9, {"a": 0.0}, min_class_recall=EPS), True),
        ("class_recall:a", lambda: first_model(0.9, 0.9, {"a": 0.3 - HALF_EPS}, min_class_recall=0.3), True),
        ("class_recall:a", lambda: first_model(0.9, 0.9, {"a": 0.3 - 1e-6}, min_class_recall=0.3), False),
    ],
)
def test_first_model_and_recall_thresholds_are_inclusive_with_float_slack(check, decision, passed):
    d = decision()
    assert d.checks[check]["passed"] is passed
    assert d.passed is passed  # every other check of these inputs passes


@pytest.mark.parametrize(("lo", "passed"), [(EPS, False), (2 * EPS, True), (0.0, False), (0.01, True)])
def test_ci_lower_bound_must_lie_above_zero_by_more_than_the_slack(lo, passed):
    inp = GateInput(m(0.9), m(0.9), m(0.8), m(0.9), bootstrap=(0.1, lo, 0.2), confidence=0.9)
    d = decide_gate(inp, **THRESHOLDS)
    assert d.checks["holdout_ci_lower"] == {"passed": passed, "value": lo, "threshold": 0.0}
    assert d.reasons == ([] if passed else [
        f"holdout accuracy gain is not significant: 90% CI [{lo:+.3f}, +0.200] does not lie above 0"])


def test_passing_gate_records_every_check_whole_and_summarises():
    inp = GateInput(m(0.9), m(0.9), m(0.8), m(0.9), bootstrap=(0.1, 0.05, 0.15))
    d = decide_gate(inp, **THRESHOLDS)
    assert d.checks == {
        "holdout_improvement": {"passed": True, "value": pytest.approx(0.1), "threshold": 0.01},
        "holdout_ci_lower": {"passed": True, "value": 0.05, "threshold": 0.0},
        "golden_forgetting": {"passed": True, "value": 0.0, "threshold": 0.03},
        "class_forgetting:a": {"passed": True, "value": 0.0, "threshold": 0.1},
        "class_forgetting:b": {"passed": True, "value": 0.0, "threshold": 0.1},
        "class_recall:a": {"passed": True, "value": 0.9, "threshold": 0.3},
        "class_recall:b": {"passed": True, "value": 0.9, "threshold": 0.3},
    }
    assert all(c["passed"] is True for c in d.checks.values())
    assert d.notes == []
    assert d.summary() == "PASSED: 7/7 checks passed"


def test_blocked_summary_joins_every_reason():
    d = first_model(0.5, 0.4, {"a": 0.1})
    assert d.summary() == (
        "BLOCKED: first model holdout accuracy 0.500 < minimum 0.600; "
        "first model holdout macro-F1 0.400 < minimum 0.500; "
        "class 'a' collapsed: golden recall 0.100 < min_class_recall 0.300"
    )


def test_unsupported_class_is_noted_and_the_classes_after_it_are_still_checked():
    d = first_model(0.9, 0.9, {"a": None, "b": 0.1, "c": 0.9})
    assert d.notes == [
        "no champion: first-model absolute thresholds apply",
        "class 'a' has no golden support; its recall was not checked",
    ]
    assert set(d.checks) == {"first_model_accuracy", "first_model_macro_f1", "class_recall:b", "class_recall:c"}
    assert d.reasons == ["class 'b' collapsed: golden recall 0.100 < min_class_recall 0.300"]


def test_missing_inputs_name_what_is_missing():
    with pytest.raises(ValueError, match="^" + re.escape(
            "GateInput.bootstrap is required when require_ci_above_zero is set") + "$"):
        decide_gate(GateInput(m(0.9), m(0.9), m(0.8), m(0.9)), **THRESHOLDS)
    with pytest.raises(ValueError, match="^" + re.escape("GateInput: champion_holdout given without champion_golden") + "$"):
        decide_gate(GateInput(m(0.9), m(0.9), m(0.8)), **THRESHOLDS)


def test_settings_reach_every_threshold():
    settings = GateSettings(min_improvement=0.02, max_forgetting=0.04, max_class_forgetting=0.15,
                            min_class_recall=0.2,
                            first_model=AbsoluteGate(min_accuracy=0.65, min_macro_f1=0.55))
    first = decide_gate_from_settings(GateInput(m(0.7, 0.6), m(0.9)), settings)
    assert {k: c["threshold"] for k, c in first.checks.items()} == {
        "first_model_accuracy": 0.65, "first_model_macro_f1": 0.55, "class_recall:a": 0.2, "class_recall:b": 0.2}
    champ = GateInput(m(0.9), m(0.9), m(0.8), m(0.9), bootstrap=(0.1, 0.05, 0.15))
    assert {k: c["threshold"] for k, c in decide_gate_from_settings(champ, settings).checks.items()} == {
        "holdout_improvement": 0.02, "holdout_ci_lower": 0.0, "golden_forgetting": 0.04,
        "class_forgetting:a": 0.15, "class_forgetting:b": 0.15, "class_recall:a": 0.2, "class_recall:b": 0.2}
    with pytest.raises(ValueError, match="bootstrap"):  # require_ci_above_zero reaches the gate
        decide_gate_from_settings(GateInput(m(0.9), m(0.9), m(0.8), m(0.9)), settings)
