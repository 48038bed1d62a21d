"""Challenger vs champion on the golden set and the recent holdout -> the gate.

Framework-free: takes predictors (anything with ``predict(texts)``), returns metrics,
the gate decision, the Markdown report and the plot, and the challenger's confidence
calibration for the label-free accuracy estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ct_assets.evaluation.calibration import Calibration, fit_calibration
from ct_assets.evaluation.gate import GateDecision, GateInput, decide_gate_from_settings
from ct_assets.evaluation.metrics import classification_metrics, paired_bootstrap_diff
from ct_assets.evaluation.report import recall_plot_png, render_eval_markdown

# Calibration is stored as an MLflow tag (<= 5,000 chars): keep a coarse map.
CALIBRATION_POINTS = 20
# drift_report row columns read by ``concept_changes``. CONCEPT_CLASS is concept_shift's
# detail["class"]: the class whose precision fell, i.e. whose old golden labels the new
# labels contradict.
CONCEPT_FLAG, CONCEPT_SCORE, CONCEPT_THRESHOLD = "flag_concept_shift", "score_concept_shift", "threshold_concept_shift"
CONCEPT_CLASS, CONCEPT_CONFUSED = "concept_class", "concept_confused_label"


@dataclass(frozen=True)
class ConceptChanges:
    """The classes treated as concept changes by the gate, and the evidence for each."""

    # One per flagged day that names its class: day, class, score, threshold, confused_label.
    evidence: tuple[dict, ...] = ()
    # Flagged days whose row names no class (written before the column existed): nothing
    # can be left out for them, so their drop still counts as forgetting.
    unattributed: tuple[str, ...] = ()
    missing_days: tuple[str, ...] = ()  # window days with no drift_report row

    @property
    def classes(self) -> frozenset[str]:
        return frozenset(e["class"] for e in self.evidence)

    def to_metadata(self) -> dict:
        return {"changed_classes": sorted(self.classes), "evidence": list(self.evidence),
                "unattributed_days": list(self.unattributed), "missing_drift_days": list(self.missing_days)}


def concept_changes(drift_rows: Mapping[str, Mapping], days: Sequence[str]) -> ConceptChanges:
    """The classes whose concept_shift flagged on any of ``days`` (the training window),
    from the drift_report rows by day. Only a flag counts, never a score under its
    threshold: the threshold is the one the day was judged by, kept in the row."""
    evidence, unattributed, missing = [], [], []
    for day in days:
        row = drift_rows.get(day)
        if row is None:
            missing.append(day)
            continue
        if not row.get(CONCEPT_FLAG):
            continue
        label = row.get(CONCEPT_CLASS)
        if label is None:
            unattributed.append(day)
            continue
        evidence.append({"day": day, "class": str(label), "score": row.get(CONCEPT_SCORE),
                         "threshold": row.get(CONCEPT_THRESHOLD), "confused_label": row.get(CONCEPT_CONFUSED)})
    return ConceptChanges(tuple(evidence), tuple(unattributed), tuple(missing))


@dataclass(frozen=True)
class EvalOutcome:
    gate_input: GateInput
    decision: GateDecision
    markdown: str
    png: bytes
    calibration: Calibration | None
    # Golden accuracy per slice (rows: slice, n, challenger, champion); empty without slices.
    slices: list[dict]


def slice_accuracy(truth: Sequence[str], challenger: Sequence[str], champion: Sequence[str] | None,
                   slices: Sequence[str]) -> list[dict]:
    """Golden accuracy per slice for both models, slices in first-seen order."""
    rows: dict[str, dict] = {}
    for i, name in enumerate(slices):
        r = rows.setdefault(name, {"slice": name, "n": 0, "challenger": 0, "champion": 0 if champion else None})
        r["n"] += 1
        r["challenger"] += challenger[i] == truth[i]
        if champion is not None:
            r["champion"] += champion[i] == truth[i]
    for r in rows.values():
        r["challenger"] = r["challenger"] / r["n"]
        if champion is not None:
            r["champion"] = r["champion"] / r["n"]
    return list(rows.values())


def _coarse(cal: Calibration, points: int = CALIBRATION_POINTS) -> Calibration:
    if len(cal.x) <= points:
        return cal
    grid = np.linspace(min(cal.x), max(cal.x), points)
    return Calibration(tuple(float(v) for v in grid), tuple(float(v) for v in np.interp(grid, cal.x, cal.y)))


def evaluate_challenger(
    challenger,
    champion,
    *,
    holdout_texts: Sequence[str],
    holdout_labels: Sequence[str],
    golden_texts: Sequence[str],
    golden_labels: Sequence[str],
    golden_slices: Sequence[str] | None = None,
    labels: Sequence[str],
    gate_settings,
    title: str,
    challenger_name: str,
    champion_name: str | None,
    seed: int = 0,
    changed_classes: frozenset[str] = frozenset(),
    concept_evidence: Sequence[Mapping] = (),
) -> EvalOutcome:
    """``changed_classes``: classes whose golden labels recent labels contradict (see
    ``gate``); ``concept_evidence``: why (``ConceptChanges.evidence``), for the report."""
    if not holdout_texts:
        raise ValueError("the recent holdout is empty: nothing to evaluate the challenger on")
    labels = list(labels)
    ch_hold = challenger.predict(list(holdout_texts))
    ch_gold = challenger.predict(list(golden_texts))
    ch_hold_m = classification_metrics(holdout_labels, ch_hold.labels, ch_hold.probs, labels)
    ch_gold_m = classification_metrics(golden_labels, ch_gold.labels, ch_gold.probs, labels)
    champ_hold_m = champ_gold_m = boot = cp_gold = None
    if champion is not None:
        cp_hold = champion.predict(list(holdout_texts))
        cp_gold = champion.predict(list(golden_texts))
        champ_hold_m = classification_metrics(holdout_labels, cp_hold.labels, cp_hold.probs, labels)
        champ_gold_m = classification_metrics(golden_labels, cp_gold.labels, cp_gold.probs, labels)
        boot = paired_bootstrap_diff(
            holdout_labels, ch_hold.labels, cp_hold.labels, metric="accuracy",
            samples=gate_settings.bootstrap_samples, confidence=gate_settings.confidence, seed=seed,
        )
    inp = GateInput(ch_hold_m, ch_gold_m, champ_hold_m, champ_gold_m, boot, gate_settings.confidence,
                    changed_classes=frozenset(changed_classes))
    decision = decide_gate_from_settings(inp, gate_settings)
    slices = (slice_accuracy(golden_labels, ch_gold.labels, cp_gold.labels if cp_gold else None, golden_slices)
              if golden_slices is not None else [])
    png = recall_plot_png(inp, min_class_recall=gate_settings.min_class_recall)
    md = render_eval_markdown(inp, decision, title=title, challenger_name=challenger_name,
                              champion_name=champion_name, png=png, slices=slices,
                              concept_evidence=list(concept_evidence))
    correct = np.array([p == t for p, t in zip(ch_hold.labels, holdout_labels)], dtype=float)
    calibration = _coarse(fit_calibration(ch_hold.confidence, correct)) if len(correct) >= 10 else None
    return EvalOutcome(inp, decision, md, png, calibration, slices)
