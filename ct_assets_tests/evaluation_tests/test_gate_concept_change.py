"""The gate tells a concept change from forgetting (issue #12, item 4).

Golden set: classes a, b, c with 20 rows each. The recent labels moved some "a" tickets to
"b"; a challenger that learnt this predicts "b" on 15 golden "a" rows. Labels here are
arbitrary names: nothing depends on the simulator's classes.
"""

from __future__ import annotations

from ct_assets.evaluation.challenger import concept_changes
from ct_assets.evaluation.gate import GateInput, decide_gate, disagreement_note
from ct_assets.evaluation.metrics import classification_metrics
from ct_assets.evaluation.report import render_eval_markdown

LABELS = ["a", "b", "c"]
THRESHOLDS = dict(min_improvement=0.01, require_ci_above_zero=True, max_forgetting=0.03, max_class_forgetting=0.10,
                  min_class_recall=0.3,
                  first_model_min_accuracy=0.6, first_model_min_macro_f1=0.5)
TRUTH = ["a"] * 20 + ["b"] * 20 + ["c"] * 20
HOLDOUT_TRUTH = ["a"] * 10 + ["b"] * 10 + ["c"] * 10


def metrics(pred: list[str], truth: list[str] = TRUTH) -> dict:
    return classification_metrics(truth, pred, None, LABELS)


def learnt_new_meaning(wrong_c: int = 0) -> list[str]:
    """Challenger golden predictions: 15 "a" rows now read as "b", ``wrong_c`` "c" rows missed."""
    return ["b"] * 15 + ["a"] * 5 + ["b"] * 20 + ["a"] * wrong_c + ["c"] * (20 - wrong_c)


def gate_input(challenger_golden: list[str], changed: frozenset[str] = frozenset()) -> GateInput:
    # The challenger is better on the recent holdout (it follows the new labels).
    holdout_champion = ["b"] * 4 + HOLDOUT_TRUTH[4:]
    return GateInput(metrics(HOLDOUT_TRUTH, HOLDOUT_TRUTH), metrics(challenger_golden),
                     metrics(holdout_champion, HOLDOUT_TRUTH), metrics(TRUTH),
                     bootstrap=(0.13, 0.03, 0.25), changed_classes=changed)


def test_concept_change_is_a_note_not_forgetting_and_the_test_discriminates():
    blocked = decide_gate(gate_input(learnt_new_meaning()), **THRESHOLDS)
    assert not blocked.passed
    assert not blocked.checks["golden_forgetting"]["passed"]
    assert blocked.checks["golden_forgetting"]["value"] == 0.25
    assert not blocked.checks["class_recall:a"]["passed"]

    d = decide_gate(gate_input(learnt_new_meaning(), frozenset({"a"})), **THRESHOLDS)
    assert d.passed, d.reasons
    forgetting = d.checks["golden_forgetting"]
    assert forgetting["value"] == 0.0 and forgetting["excluded_classes"] == ["a"]
    assert forgetting["scope"] == "unchanged classes" and forgetting["rows"] == 40
    assert "class_recall:a" not in d.checks and "class_recall:a" in d.not_judged
    assert d.checks["class_recall:b"]["passed"] and d.checks["class_recall:c"]["passed"]
    assert disagreement_note("a") in d.notes
    assert disagreement_note("a") == ("golden set disagrees with recent labels on class 'a'; "
                                      "carve or relabel a new golden version")
    assert d.not_judged["class_forgetting:a"].startswith("concept change: golden recall 1.000 -> 0.250")
    assert "not judged: class_forgetting:a, class_recall:a" in d.summary()


def test_regression_on_an_unchanged_class_still_blocks():
    d = decide_gate(gate_input(learnt_new_meaning(wrong_c=4), frozenset({"a"})), **THRESHOLDS)
    assert not d.passed
    forgetting = d.checks["golden_forgetting"]
    assert not forgetting["passed"]
    assert abs(forgetting["value"] - 0.1) < 1e-12  # 40/40 vs 36/40 on b and c
    assert forgetting["challenger"] == 0.9 and forgetting["champion"] == 1.0
    assert any(r.startswith("golden accuracy on unchanged classes dropped by 0.100 > max_forgetting 0.030")
               and "left out as concept changes: 'a'" in r for r in d.reasons)


def test_a_class_forgotten_blocks_where_overall_golden_accuracy_barely_moves():
    """Issue #12 target: no promotion of a challenger worse on a class that did not change.
    3 of 20 "c" rows lost: overall golden accuracy drops by 3/60 = 0.05, within a 0.05
    max_forgetting, while c's recall drops by 0.15 > max_class_forgetting 0.10."""
    challenger = TRUTH[:40] + ["a"] * 3 + ["c"] * 17
    loose = {**THRESHOLDS, "max_forgetting": 0.05}
    d = decide_gate(gate_input(challenger), **loose)
    assert d.checks["golden_forgetting"]["passed"] and d.checks["class_recall:c"]["passed"]
    assert not d.passed
    assert d.reasons == ["class 'c' forgotten: golden recall dropped by 0.150 > max_class_forgetting 0.100 "
                         "(challenger 0.850, champion 1.000)"]
    assert d.checks["class_forgetting:a"]["passed"] and d.checks["class_forgetting:b"]["passed"]
    # The same drop on a class whose recent labels changed is not forgetting.
    changed = decide_gate(gate_input(challenger, frozenset({"c"})), **loose)
    assert changed.passed, changed.reasons
    assert "class_forgetting:c" in changed.not_judged and "class_forgetting:c" not in changed.checks


def test_all_classes_changed_leaves_forgetting_not_judged_and_says_so():
    d = decide_gate(gate_input(learnt_new_meaning(), frozenset(LABELS)), **THRESHOLDS)
    assert "golden_forgetting" not in d.checks
    assert "cannot be measured" in d.not_judged["golden_forgetting"]
    assert any(n.startswith("golden_forgetting not judged") for n in d.notes)
    assert all(disagreement_note(label) in d.notes for label in LABELS)
    # The holdout checks still decide.
    assert d.passed and set(d.checks) == {"holdout_improvement", "holdout_ci_lower"}
    worse = GateInput(metrics(["b"] * 10 + HOLDOUT_TRUTH[10:], HOLDOUT_TRUTH), metrics(TRUTH),
                      metrics(HOLDOUT_TRUTH, HOLDOUT_TRUTH), metrics(TRUTH), bootstrap=(-0.33, -0.5, -0.2),
                      changed_classes=frozenset(LABELS))
    assert not decide_gate(worse, **THRESHOLDS).passed


def test_changed_class_without_golden_rows_leaves_nothing_out():
    d = decide_gate(gate_input(learnt_new_meaning(), frozenset({"zzz"})), **THRESHOLDS)
    assert not d.passed and "excluded_classes" not in d.checks["golden_forgetting"]


def test_concept_changes_from_drift_rows():
    rows = {
        "2024-01-01": {"flag_concept_shift": False, "score_concept_shift": 0.05, "concept_class": "a"},
        "2024-01-02": {"flag_concept_shift": True, "score_concept_shift": 0.31, "threshold_concept_shift": 0.18,
                       "concept_class": "a", "concept_confused_label": "b"},
        "2024-01-03": {"flag_concept_shift": True, "score_concept_shift": 0.25},  # no class column
        "2024-01-09": {"flag_concept_shift": True, "concept_class": "c"},  # outside the window
    }
    ch = concept_changes(rows, ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"])
    assert ch.classes == frozenset({"a"})
    assert ch.evidence == ({"day": "2024-01-02", "class": "a", "score": 0.31, "threshold": 0.18,
                            "confused_label": "b"},)
    assert ch.unattributed == ("2024-01-03",) and ch.missing_days == ("2024-01-04",)
    assert ch.to_metadata()["changed_classes"] == ["a"]


def test_report_shows_changed_classes_and_not_judged_checks():
    inp = gate_input(learnt_new_meaning(), frozenset({"a"}))
    d = decide_gate(inp, **THRESHOLDS)
    evidence = [{"day": "2024-01-02", "class": "a", "score": 0.31, "threshold": 0.18, "confused_label": "b"}]
    md = render_eval_markdown(inp, d, png=b"x", concept_evidence=evidence)
    assert "### Concept changes" in md and "| 2024-01-02 | a | 0.310 | 0.180 | b |" in md
    assert "| golden_forgetting (unchanged classes) | ✅ pass |" in md
    assert "| class_recall:a | ⚪ not judged:" in md
    assert "golden set disagrees with recent labels on class 'a'" in md
