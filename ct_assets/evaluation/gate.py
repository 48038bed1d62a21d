"""The promotion gate: may a challenger adapter replace the champion?

Inputs are the dicts produced by ``metrics.classification_metrics``. Rules:

With a champion
  * holdout_improvement: challenger - champion holdout accuracy >= min_improvement.
  * holdout_ci_lower (only when require_ci_above_zero): the lower bound of the paired
    bootstrap interval of that difference is > 0, i.e. the gain is not noise.
  * golden_forgetting: champion - challenger golden accuracy <= max_forgetting.
  * class_forgetting:<label>: champion - challenger golden recall <= max_class_forgetting,
    for every class both models have golden support for. The overall figure averages over
    classes, so one class can be forgotten (recall 0.9 -> 0.7 on a 5-class golden set costs
    overall accuracy only 0.04) while golden_forgetting passes: the promise is "no
    promotion of a challenger that is worse on classes that did not change". A class with
    fewer golden rows than 1 / max_class_forgetting is not judged: one row flipping there
    is already more than the bound (a user's golden set may hold a rare class only a few
    times); class_recall still catches its collapse.
First model (no champion)
  * first_model_accuracy / first_model_macro_f1: holdout values >= the absolute floors.
Always
  * class_recall:<label>: on the GOLDEN set, every class with support has challenger
    recall >= min_class_recall. Golden, not holdout, because the golden set is curated to
    cover every class with a stable mix, while the recent holdout follows the traffic and
    can hold one or two examples of a class (recall 0 or 1 from noise). Classes with no
    golden support cannot be judged; they are listed in ``notes`` and do not block.

Concept changes (``GateInput.changed_classes``)
  A class whose recent labels contradict its golden labels (the caller decides which:
  ``challenger.concept_changes`` takes the classes whose concept_shift flagged in the
  training window) makes the golden set wrong about that class, so a challenger that
  learnt the new meaning *loses* golden accuracy there. That drop is not forgetting:
  * golden_forgetting is computed on the golden rows whose label is NOT changed (from
    per-class recall x support of both models); its check records the accuracies used and
    ``excluded_classes``. A drop on an unchanged class still blocks.
  * class_recall:<changed> and class_forgetting:<changed> are not judged (listed in
    ``not_judged``), and each changed class with golden support gets the note "golden set
    disagrees with recent labels on class 'X'; carve or relabel a new golden version".
  * if the changed classes cover every golden row, forgetting cannot be judged at all: it
    is listed in ``not_judged`` and a note says so; it is never reported as 0 forgetting,
    and the holdout checks alone decide.

Comparisons allow 1e-9 of float slack so that e.g. a difference computed as 0.0199999...
is not reported as failing "0.020 >= 0.020".
"""

from __future__ import annotations

from dataclasses import dataclass, field

_EPS = 1e-9


@dataclass(frozen=True)
class GateInput:
    challenger_holdout: dict
    challenger_golden: dict
    champion_holdout: dict | None = None
    champion_golden: dict | None = None
    # Paired bootstrap of holdout accuracy, challenger - champion: (diff, lo, hi).
    bootstrap: tuple[float, float, float] | None = None
    confidence: float = 0.95
    # Classes whose recent labels contradict the golden labels (a concept change).
    changed_classes: frozenset[str] = frozenset()

    @property
    def has_champion(self) -> bool:
        return self.champion_holdout is not None


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]  # one sentence per failed check; empty when passed
    checks: dict[str, dict]  # name -> {"passed": bool, "value": float, "threshold": float}
    notes: list[str] = field(default_factory=list)  # non-blocking observations
    # Checks that could not be judged, name -> why: neither passed nor failed, so they are
    # kept out of ``checks`` (and out of its pass count) but still shown.
    not_judged: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        n_ok = sum(c["passed"] for c in self.checks.values())
        unjudged = f"; not judged: {', '.join(self.not_judged)}" if self.not_judged else ""
        if self.passed:
            return f"PASSED: {n_ok}/{len(self.checks)} checks passed{unjudged}"
        return "BLOCKED: " + "; ".join(self.reasons) + unjudged


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def disagreement_note(label: str) -> str:
    return f"golden set disagrees with recent labels on class {label!r}; carve or relabel a new golden version"


def accuracy_without(m: dict, excluded: frozenset[str]) -> tuple[float | None, int]:
    """(accuracy, rows) over the rows whose true label is not in ``excluded``, rebuilt from
    per-class recall x support (correct counts are integers: rounding undoes float error).
    None when no row is left."""
    rows = correct = 0
    for label, n in m["support"].items():
        if label in excluded or not n:
            continue
        rows += n
        correct += round(m["per_class_recall"][label] * n)
    return (correct / rows if rows else None), rows


def decide_gate(
    inp: GateInput,
    *,
    min_improvement: float,
    require_ci_above_zero: bool,
    max_forgetting: float,
    max_class_forgetting: float,
    min_class_recall: float,
    first_model_min_accuracy: float,
    first_model_min_macro_f1: float,
) -> GateDecision:
    checks: dict[str, dict] = {}
    reasons: list[str] = []
    notes: list[str] = []
    not_judged: dict[str, str] = {}
    changed = inp.changed_classes

    def check(name: str, passed: bool, value: float, threshold: float, failure: str, **extra) -> None:
        checks[name] = {"passed": bool(passed), "value": float(value), "threshold": float(threshold), **extra}
        if not passed:
            reasons.append(failure)

    ch_h, ch_g = inp.challenger_holdout, inp.challenger_golden
    if inp.has_champion:
        if inp.champion_golden is None:
            raise ValueError("GateInput: champion_holdout given without champion_golden")
        gain = ch_h["accuracy"] - inp.champion_holdout["accuracy"]
        check(
            "holdout_improvement",
            gain >= min_improvement - _EPS,
            gain,
            min_improvement,
            f"holdout accuracy {_signed(gain)} < min_improvement {min_improvement:.3f} "
            f"(challenger {ch_h['accuracy']:.3f}, champion {inp.champion_holdout['accuracy']:.3f})",
        )
        if require_ci_above_zero:
            if inp.bootstrap is None:
                raise ValueError("GateInput.bootstrap is required when require_ci_above_zero is set")
            _, lo, hi = inp.bootstrap
            check(
                "holdout_ci_lower",
                lo > _EPS,
                lo,
                0.0,
                f"holdout accuracy gain is not significant: {inp.confidence:.0%} CI "
                f"[{_signed(lo)}, {_signed(hi)}] does not lie above 0",
            )
        _forgetting(inp, max_forgetting, check, notes, not_judged)
        _class_forgetting(inp, max_class_forgetting, check, not_judged)
    else:
        notes.append("no champion: first-model absolute thresholds apply")
        check(
            "first_model_accuracy",
            ch_h["accuracy"] >= first_model_min_accuracy - _EPS,
            ch_h["accuracy"],
            first_model_min_accuracy,
            f"first model holdout accuracy {ch_h['accuracy']:.3f} < minimum {first_model_min_accuracy:.3f}",
        )
        check(
            "first_model_macro_f1",
            ch_h["macro_f1"] >= first_model_min_macro_f1 - _EPS,
            ch_h["macro_f1"],
            first_model_min_macro_f1,
            f"first model holdout macro-F1 {ch_h['macro_f1']:.3f} < minimum {first_model_min_macro_f1:.3f}",
        )

    for label, recall in ch_g["per_class_recall"].items():
        if recall is None:
            if label in changed:
                notes.append(f"class {label!r} changed in recent labels but has no golden rows: nothing left out")
            notes.append(f"class {label!r} has no golden support; its recall was not checked")
            continue
        if label in changed:
            # Golden recall here is measured against the old meaning: a low value is the
            # challenger following the new labels, so it informs and does not block.
            not_judged[f"class_recall:{label}"] = (
                f"concept change: golden recall {recall:.3f} is measured against the old labels")
            notes.append(disagreement_note(label))
            continue
        check(
            f"class_recall:{label}",
            recall >= min_class_recall - _EPS,
            recall,
            min_class_recall,
            f"class {label!r} collapsed: golden recall {recall:.3f} "
            f"< min_class_recall {min_class_recall:.3f}",
        )

    return GateDecision(passed=not reasons, reasons=reasons, checks=checks, notes=notes, not_judged=not_judged)


def _forgetting(inp: GateInput, max_forgetting: float, check, notes: list[str],
                not_judged: dict[str, str]) -> None:
    """golden_forgetting: on all golden rows, or on those of unchanged classes (module doc)."""
    ch_g, cp_g = inp.challenger_golden, inp.champion_golden
    excluded = frozenset(label for label in inp.changed_classes if ch_g["support"].get(label))
    if not excluded:
        forgetting = cp_g["accuracy"] - ch_g["accuracy"]
        check(
            "golden_forgetting",
            forgetting <= max_forgetting + _EPS,
            forgetting,
            max_forgetting,
            f"golden accuracy dropped by {forgetting:.3f} > max_forgetting {max_forgetting:.3f} "
            f"(challenger {ch_g['accuracy']:.3f}, champion {cp_g['accuracy']:.3f})",
        )
        return
    left_out = ", ".join(repr(label) for label in sorted(excluded))
    ch_acc, rows = accuracy_without(ch_g, excluded)
    cp_acc, _ = accuracy_without(cp_g, excluded)
    if ch_acc is None or cp_acc is None:
        not_judged["golden_forgetting"] = (f"every golden row is of a changed class ({left_out}): forgetting "
                                           "cannot be measured on this golden set; the holdout checks decide")
        notes.append(f"golden_forgetting not judged: every golden row is of a changed class ({left_out}); "
                     "carve or relabel a new golden version")
        return
    forgetting = cp_acc - ch_acc
    check(
        "golden_forgetting",
        forgetting <= max_forgetting + _EPS,
        forgetting,
        max_forgetting,
        f"golden accuracy on unchanged classes dropped by {forgetting:.3f} > max_forgetting "
        f"{max_forgetting:.3f} (challenger {ch_acc:.3f}, champion {cp_acc:.3f} on {rows} rows; "
        f"left out as concept changes: {left_out})",
        scope="unchanged classes", excluded_classes=sorted(excluded), rows=rows,
        challenger=ch_acc, champion=cp_acc,
    )


def _class_forgetting(inp: GateInput, max_class_forgetting: float, check, not_judged: dict[str, str]) -> None:
    """class_forgetting:<label> for every class with golden support in both models."""
    ch_g, cp_g = inp.challenger_golden, inp.champion_golden
    for label, recall in ch_g["per_class_recall"].items():
        before = cp_g["per_class_recall"].get(label)
        if recall is None or before is None:
            continue  # no golden support: class_recall notes it
        if label in inp.changed_classes:
            not_judged[f"class_forgetting:{label}"] = (
                f"concept change: golden recall {before:.3f} -> {recall:.3f} is measured against the old labels")
            continue
        rows = ch_g["support"][label]
        if rows * max_class_forgetting < 1 - _EPS:
            not_judged[f"class_forgetting:{label}"] = (
                f"{rows} golden rows: one row ({1 / rows:.3f} of recall) is more than max_class_forgetting "
                f"{max_class_forgetting:.3f} (recall {before:.3f} -> {recall:.3f})")
            continue
        drop = before - recall
        check(
            f"class_forgetting:{label}",
            drop <= max_class_forgetting + _EPS,
            drop,
            max_class_forgetting,
            f"class {label!r} forgotten: golden recall dropped by {drop:.3f} > max_class_forgetting "
            f"{max_class_forgetting:.3f} (challenger {recall:.3f}, champion {before:.3f})",
        )


def decide_gate_from_settings(inp: GateInput, gate_settings) -> GateDecision:
    """Convenience for callers holding a ``settings.GateSettings`` (duck-typed: no import)."""
    return decide_gate(
        inp,
        min_improvement=gate_settings.min_improvement,
        require_ci_above_zero=gate_settings.require_ci_above_zero,
        max_forgetting=gate_settings.max_forgetting,
        max_class_forgetting=gate_settings.max_class_forgetting,
        min_class_recall=gate_settings.min_class_recall,
        first_model_min_accuracy=gate_settings.first_model.min_accuracy,
        first_model_min_macro_f1=gate_settings.first_model.min_macro_f1,
    )
