"""Judging the drift scores of a day (pure, no Dagster): thresholds, flags, a verdict.

The scores themselves are ``drift.scores``; where a threshold comes from is
``drift.calibration`` (``"auto"``: calibrated on the reference) or the settings (an
explicit number, "fixed"). A metric flags when its score is strictly above its threshold;
a score of ``None`` (insufficient data) or a metric without a threshold (uncalibrated)
never flags.

Verdict: ``drift`` when a metric flags; else ``new_class`` when a label outside the
configured ``labels`` holds more than ``max_unknown_label_share`` of the day's rows read
(a retrain cannot learn it until it is configured, so it is reported, not scored); else
``insufficient_reference`` when the reference has fewer than ``min_rows`` rows (no metric
could be judged: "stable" would be a guess), naming the reference days that are missing;
else ``insufficient_data`` when the day itself has fewer than ``min_rows`` rows; else
``stable``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from ct_assets.core.settings import DriftSettings
from ct_assets.drift.calibration import Threshold
from ct_assets.drift.scores import METRICS, score_drift

_DEFAULTS = DriftSettings()  # defaults are the settings' own: one source for each number

VERDICTS = ("drift", "new_class", "insufficient_reference", "insufficient_data", "stable")


@dataclass(frozen=True)
class DriftResult:
    scores: dict[str, float | None]  # METRICS plus "length_wasserstein"
    flags: dict[str, bool]  # one per METRICS key
    thresholds: dict[str, float | None]  # None: uncalibrated (never flags)
    threshold_sources: dict[str, str]  # "calibrated" | "fixed" | "uncalibrated"
    p_values: dict[str, float | None]  # empirical, against the metric's null; None without one
    notes: dict[str, str]  # metric -> why its score is None or it has no threshold
    new_terms: list[tuple[str, int]]
    reference_rows: int
    current_rows: int
    reference_labels: dict[str, int]  # configured label -> count of labelled rows
    current_labels: dict[str, int]
    unknown_labels: dict[str, int] = field(default_factory=dict)  # label outside `labels` -> rows today
    rows_read: int = 0  # the day's rows, clean + quarantined: the base of the unknown-label share
    max_unknown_label_share: float = _DEFAULTS.max_unknown_label_share
    calibration: str = ""  # how the calibrated thresholds were obtained, for the report
    extras: dict[str, float] = field(default_factory=dict)  # mean lengths
    # concept_shift's class: predictions, reference/current precision, confused label/rows
    concept_detail: dict = field(default_factory=dict)
    min_rows: int = _DEFAULTS.min_rows  # rows per side below which nothing can be judged
    reference_gap: str = ""  # which expected reference days are missing ("" when none)

    @property
    def drifted_metrics(self) -> list[str]:
        return [m for m in METRICS if self.flags.get(m, False)]

    @property
    def new_classes(self) -> list[tuple[str, int]]:
        """Unknown labels above the share, most rows first."""
        if not self.rows_read:
            return []
        big = [(k, n) for k, n in self.unknown_labels.items() if n / self.rows_read > self.max_unknown_label_share]
        return sorted(big, key=lambda kv: (-kv[1], kv[0]))

    @property
    def verdict(self) -> str:
        if self.drifted_metrics:
            return "drift"
        if self.new_classes:
            return "new_class"
        if self.reference_rows < self.min_rows:
            return "insufficient_reference"
        return "insufficient_data" if self.current_rows < self.min_rows else "stable"

    @property
    def verdict_reason(self) -> str:
        """One sentence on why the verdict is not a judgement ("" when it is one)."""
        if self.verdict == "insufficient_reference":
            gap = self.reference_gap or "its days hold too few rows"
            return f"the reference has {self.reference_rows} rows (< min_rows {self.min_rows}), so nothing was judged: {gap}"
        if self.verdict == "insufficient_data":
            return f"the day has {self.current_rows} clean rows (< min_rows {self.min_rows}), so nothing was judged"
        return ""

    def new_class_message(self) -> str:
        return "; ".join(f"new class emerging: '{label}' ({n} rows); add it to `labels` to train it"
                         for label, n in self.new_classes)

    def to_metadata(self) -> dict:
        """Plain JSON-able values. Scores are also top-level keys so Dagster can plot them."""
        return {
            "verdict": self.verdict,
            "verdict_reason": self.verdict_reason,
            "reference_gap": self.reference_gap,
            "drifted_metrics": self.drifted_metrics,
            **{name: _num(value) for name, value in self.scores.items()},
            "scores": {name: _num(value) for name, value in self.scores.items()},
            "flags": dict(self.flags),
            "thresholds": {k: _num(v) for k, v in self.thresholds.items()},
            "threshold_sources": dict(self.threshold_sources),
            "p_values": {k: _num(v) for k, v in self.p_values.items()},
            "notes": dict(self.notes),
            "calibration": self.calibration,
            "new_terms": [[term, int(count)] for term, count in self.new_terms],
            "reference_rows": int(self.reference_rows),
            "current_rows": int(self.current_rows),
            "rows_read": int(self.rows_read),
            "reference_labels": dict(self.reference_labels),
            "current_labels": dict(self.current_labels),
            "unknown_labels": {k: int(v) for k, v in self.unknown_labels.items()},
            "new_classes": [[k, int(v)] for k, v in self.new_classes],
            "extras": {k: _num(v) for k, v in self.extras.items()},
            "concept_detail": {k: _num(v) if isinstance(v, float) else v for k, v in self.concept_detail.items()},
        }

    def to_markdown(self) -> str:
        drifted = ", ".join(self.drifted_metrics)
        lines = [f"**Verdict: {self.verdict}**" + (f" (drifted: {drifted})" if drifted else "")
                 + (f": {self.verdict_reason}" if self.verdict_reason else "")]
        if self.new_classes:
            lines += ["", f"**{self.new_class_message()}**"]
        lines += [
            "",
            f"Reference rows: {self.reference_rows}, current rows: {self.current_rows}"
            + (f" ({self.reference_gap})" if self.reference_gap else ""),
            *(["", f"Calibration: {self.calibration}"] if self.calibration else []),
            "",
            "| metric | score | threshold | source | p-value | flag |",
            "|---|---|---|---|---|---|",
        ]
        for name in (*METRICS, "length_wasserstein"):
            value = self.scores.get(name)
            shown = f"{value:.4f}" if value is not None else f"n/a ({self.notes.get(name, 'not computed')})"
            limit = self.thresholds.get(name)
            threshold = f"{limit:.4g}" if limit is not None else "-"
            source = self.threshold_sources.get(name, "-")
            if source == "uncalibrated" and value is not None:
                source = f"uncalibrated ({self.notes.get(name, '')})"
            p = self.p_values.get(name)
            flag = ("DRIFT" if self.flags[name] else "ok") if name in self.flags else "-"
            lines.append(f"| {name} | {shown} | {threshold} | {source} | {f'{p:.3f}' if p is not None else '-'} "
                         f"| {flag} |")
        lines += ["", "| label | reference | current |", "|---|---|---|"]
        ref_total, cur_total = sum(self.reference_labels.values()), sum(self.current_labels.values())
        for label in self.reference_labels:
            ref_n, cur_n = self.reference_labels[label], self.current_labels.get(label, 0)
            lines.append(f"| {label} | {_share(ref_n, ref_total)} | {_share(cur_n, cur_total)} |")
        if self.unknown_labels:
            head = (f"Labels not in `labels` today (quarantined as unknown_label, not scored; "
                    f"{self.rows_read} rows read):")
            lines += ["", head, "", "| unknown label | rows | share |", "|---|---|---|"]
            lines += [f"| {k} | {n} | {n / self.rows_read:.1%} |" if self.rows_read else f"| {k} | {n} | - |"
                      for k, n in sorted(self.unknown_labels.items(), key=lambda kv: (-kv[1], kv[0]))]
        if self.concept_detail:
            d = self.concept_detail
            confused = (f"; most often labelled `{d['confused_label']}` ({d['confused_rows']} rows)"
                        if d["confused_label"] else "")
            lines += ["", (f"Concept shift: predicted `{d['class']}` precision {d['reference_precision']:.2f}"
                           f" (reference) -> {d['current_precision']:.2f} on {d['predictions']} current rows"
                           f"{confused}")]
        lines += ["", "| new term | count |", "|---|---|"]
        lines += [f"| {term} | {count} |" for term, count in self.new_terms] or ["| (none) | - |"]
        return "\n".join(lines) + "\n"


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _share(n: int, total: int) -> str:
    return f"{n} ({n / total:.1%})" if total else f"{n}"


def _threshold(metric: str, value: float | str | Threshold) -> Threshold:
    if isinstance(value, Threshold):
        return value
    if value == "auto":
        raise ValueError(f"thresholds[{metric!r}] is 'auto': calibrate on the reference first "
                         "(ct_assets.drift.calibration.calibrate(...).thresholds(...)) and pass the result")
    return Threshold(float(value), "fixed")


def compute_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    labels: Sequence[str],
    thresholds: Mapping[str, float | Threshold],
    unknown_labels: Mapping[str, int] | None = None,
    rows_read: int | None = None,
    max_unknown_label_share: float = _DEFAULTS.max_unknown_label_share,
    calibration: str = "",
    reference_gap: str = "",
    **scoring: int,
) -> DriftResult:
    """Score ``current`` against ``reference`` and judge every metric by its threshold.

    ``thresholds``: a number per metric (fixed) or a calibrated ``Threshold``.
    ``unknown_labels`` / ``rows_read``: the day's rows quarantined for a label outside
    ``labels`` and the day's rows read (clean + quarantined); by default only what
    ``current`` itself holds. ``scoring``: the keyword arguments of
    ``drift.scores.score_drift`` (min_rows, min_labelled_rows, top_new_terms,
    min_term_count, sample_rows, max_rows, seed, concept_min_rows), defaults the settings' own.
    """
    missing = [m for m in METRICS if m not in thresholds]
    if missing:
        raise ValueError(f"thresholds missing keys {missing}; need {list(METRICS)}")
    limits = {m: _threshold(m, thresholds[m]) for m in METRICS}
    s = score_drift(reference, current, labels=labels, **scoring)
    unknown = dict(s.unknown_labels)
    for label, n in (unknown_labels or {}).items():
        unknown[label] = unknown.get(label, 0) + int(n)
    notes = dict(s.notes)
    for m, t in limits.items():
        if t.note and m not in notes:
            notes[m] = t.note
    flags = {m: s.scores[m] is not None and limits[m].value is not None and s.scores[m] > limits[m].value
             for m in METRICS}
    return DriftResult(
        scores=s.scores,
        flags=flags,
        thresholds={m: t.value for m, t in limits.items()},
        threshold_sources={m: t.source for m, t in limits.items()},
        p_values={m: limits[m].p_value(s.scores[m]) for m in METRICS},
        notes=notes,
        new_terms=s.new_terms,
        reference_rows=reference.height,
        current_rows=current.height,
        reference_labels=s.reference_labels,
        current_labels=s.current_labels,
        unknown_labels=unknown,
        rows_read=rows_read if rows_read is not None else current.height,
        max_unknown_label_share=max_unknown_label_share,
        calibration=calibration,
        extras=s.extras,
        concept_detail=s.concept_detail,
        min_rows=scoring.get("min_rows", _DEFAULTS.min_rows),
        reference_gap=reference_gap,
    )
