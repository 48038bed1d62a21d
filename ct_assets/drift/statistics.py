"""Drift statistics between a reference frame and the current day's frame (pure, no Dagster).

Six thresholded scores, each answering a different "what changed?" question:

* ``label_js`` / ``label_psi`` - the label prior (labelled rows only; the caller has
  already applied the point-in-time cut, so labels not yet known are null).
* ``length_ks`` - text length in words (two-sample KS); ``length_wasserstein`` is
  reported alongside for scale but not thresholded.
* ``oov_rate`` - share of current token occurrences unseen in the reference vocabulary,
  with the most frequent new terms listed so a human can see *what* is new.
* ``text_auc`` - cross-validated ROC AUC of a domain classifier (TF-IDF + logistic
  regression) telling reference from current texts, the approach Evidently uses for
  text drift: 0.5 = indistinguishable, 1.0 = trivially separable.
* ``concept_shift`` - the same texts labelled differently (P(label | text) moved, P(text)
  did not, so the scores above cannot see it): the largest drop in per-predicted-class
  precision of a proxy classifier fitted on the reference (``drift_text``), with the
  class and the (predicted, labelled) pair it confuses most in ``concept_detail``.

A score that cannot be computed honestly (too few rows or labels) is ``None``, carries a
note saying why, and never flags.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from ct_assets.core.schema import DRIFT_METRICS
from ct_assets.drift.text_models import CONCEPT_MIN_ROWS, concept_shift, tfidf

METRICS = DRIFT_METRICS
# Below these sizes the statistics are mostly noise; better say "don't know" than flag.
MIN_LABELLED_ROWS = 20
MIN_TEXT_ROWS = 20
# PSI is infinite when a label is absent on one side; clipping shares at this floor (and
# renormalising) keeps it finite while a vanished/new label still scores high
# (a 30% -> 0% move gives ~2.4, far above the usual 0.25 alarm level).
PSI_EPSILON = 1e-4
# Word tokens for the vocabulary; Unicode letters so accented words are not split.
TOKEN_PATTERN = r"[\p{L}\p{N}']+"
_HAS_LETTER = r"\p{L}"


@dataclass(frozen=True)
class DriftResult:
    scores: dict[str, float | None]  # METRICS plus "length_wasserstein"
    flags: dict[str, bool]  # one per METRICS key
    thresholds: dict[str, float]
    notes: dict[str, str]  # metric -> why it is None, e.g. "insufficient labels"
    new_terms: list[tuple[str, int]]
    reference_rows: int
    current_rows: int
    reference_labels: dict[str, int]  # label -> count of labelled rows
    current_labels: dict[str, int]
    extras: dict[str, float] = field(default_factory=dict)  # mean lengths, token counts
    # concept_shift's class: predictions, reference/current precision, confused label/rows
    concept_detail: dict = field(default_factory=dict)

    @property
    def drifted_metrics(self) -> list[str]:
        return [m for m in METRICS if self.flags.get(m, False)]

    @property
    def verdict(self) -> str:
        return "drift" if self.drifted_metrics else "stable"

    def to_metadata(self) -> dict:
        """Plain JSON-able values. Scores are also top-level keys so Dagster can plot them."""
        return {
            "verdict": self.verdict,
            "drifted_metrics": self.drifted_metrics,
            **{name: _num(value) for name, value in self.scores.items()},
            "scores": {name: _num(value) for name, value in self.scores.items()},
            "flags": dict(self.flags),
            "thresholds": dict(self.thresholds),
            "notes": dict(self.notes),
            "new_terms": [[term, int(count)] for term, count in self.new_terms],
            "reference_rows": int(self.reference_rows),
            "current_rows": int(self.current_rows),
            "reference_labels": dict(self.reference_labels),
            "current_labels": dict(self.current_labels),
            "extras": {k: _num(v) for k, v in self.extras.items()},
            "concept_detail": {k: _num(v) if isinstance(v, float) else v for k, v in self.concept_detail.items()},
        }

    def to_markdown(self) -> str:
        drifted = ", ".join(self.drifted_metrics)
        lines = [
            f"**Verdict: {self.verdict}**" + (f" (drifted: {drifted})" if drifted else ""),
            "",
            f"Reference rows: {self.reference_rows}, current rows: {self.current_rows}",
            "",
            "| metric | value | threshold | flag |",
            "|---|---|---|---|",
        ]
        for name in (*METRICS, "length_wasserstein"):
            value = self.scores.get(name)
            shown = f"{value:.4f}" if value is not None else f"n/a ({self.notes.get(name, 'not computed')})"
            threshold = f"{self.thresholds[name]:g}" if name in self.thresholds else "-"
            flag = ("DRIFT" if self.flags[name] else "ok") if name in self.flags else "-"
            lines.append(f"| {name} | {shown} | {threshold} | {flag} |")
        ref_total = sum(self.reference_labels.values())
        cur_total = sum(self.current_labels.values())
        lines += ["", "| label | reference | current |", "|---|---|---|"]
        for label in self.reference_labels:
            ref_n, cur_n = self.reference_labels[label], self.current_labels.get(label, 0)
            lines.append(f"| {label} | {_share(ref_n, ref_total)} | {_share(cur_n, cur_total)} |")
        if self.concept_detail:
            d = self.concept_detail
            confused = (f"; most often labelled `{d['confused_label']}` ({d['confused_rows']} rows)"
                        if d["confused_label"] else "")
            lines += ["", f"Concept shift: predicted `{d['class']}` precision {d['reference_precision']:.2f}"
                      f" (reference) -> {d['current_precision']:.2f} on {d['predictions']} current rows{confused}"]
        lines += ["", "| new term | count |", "|---|---|"]
        lines += [f"| {term} | {count} |" for term, count in self.new_terms] or ["| (none) | - |"]
        return "\n".join(lines) + "\n"


def _num(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _share(n: int, total: int) -> str:
    return f"{n} ({n / total:.1%})" if total else f"{n}"


def compute_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    labels: Sequence[str],
    thresholds: Mapping[str, float],
    top_new_terms: int = 15,
    min_term_count: int = 3,
    sample_rows: int = 2000,
    seed: int = 0,
    concept_min_rows: int = CONCEPT_MIN_ROWS,
) -> DriftResult:
    missing = [m for m in METRICS if m not in thresholds]
    if missing:
        raise ValueError(f"thresholds missing keys {missing}; need {list(METRICS)}")
    limits = {m: float(thresholds[m]) for m in METRICS}
    scores: dict[str, float | None] = {}
    notes: dict[str, str] = {}

    ref_counts, cur_counts = _label_counts(reference, current, labels)
    if min(sum(ref_counts.values()), sum(cur_counts.values())) < MIN_LABELLED_ROWS:
        scores["label_js"] = scores["label_psi"] = None
        notes["label_js"] = notes["label_psi"] = f"insufficient labels (< {MIN_LABELLED_ROWS} per side)"
    else:
        p, q = _shares(ref_counts), _shares(cur_counts)
        scores["label_js"] = float(jensenshannon(p, q, base=2))
        scores["label_psi"] = _psi(p, q)
    concept = concept_shift(*_labelled(reference), *_labelled(current), min_labelled=MIN_LABELLED_ROWS,
                            min_rows=concept_min_rows, sample_rows=sample_rows, seed=seed)
    scores["concept_shift"] = concept.score
    if concept.note:
        notes["concept_shift"] = concept.note

    # Sorted so the domain-classifier sample does not depend on frame row order.
    ref_texts = _texts(reference)
    cur_texts = _texts(current)
    extras: dict[str, float] = {}
    if min(ref_texts.len(), cur_texts.len()) < MIN_TEXT_ROWS:
        for name in ("length_ks", "length_wasserstein", "oov_rate", "text_auc"):
            scores[name] = None
            notes[name] = f"insufficient rows (< {MIN_TEXT_ROWS} texts per side)"
        new_terms: list[tuple[str, int]] = []
    else:
        ref_len = ref_texts.str.count_matches(r"\S+").to_numpy()
        cur_len = cur_texts.str.count_matches(r"\S+").to_numpy()
        scores["length_ks"] = float(ks_2samp(ref_len, cur_len).statistic)
        scores["length_wasserstein"] = float(wasserstein_distance(ref_len, cur_len))
        extras["reference_mean_words"] = float(ref_len.mean())
        extras["current_mean_words"] = float(cur_len.mean())
        scores["oov_rate"], new_terms = _oov(ref_texts, cur_texts, top_new_terms, min_term_count)
        scores["text_auc"] = _domain_auc(ref_texts, cur_texts, sample_rows, seed)

    flags = {m: scores[m] is not None and scores[m] > limits[m] for m in METRICS}
    return DriftResult(
        scores=scores,
        flags=flags,
        thresholds=limits,
        notes=notes,
        new_terms=new_terms,
        reference_rows=reference.height,
        current_rows=current.height,
        reference_labels=ref_counts,
        current_labels=cur_counts,
        extras=extras,
        concept_detail=concept.detail,
    )


def _label_counts(
    reference: pl.DataFrame, current: pl.DataFrame, labels: Sequence[str]
) -> tuple[dict[str, int], dict[str, int]]:
    """Counts over the configured labels plus any unexpected ones (which are drift too)."""

    def counts(frame: pl.DataFrame) -> dict[str, int]:
        if frame.height == 0:
            return {}
        vc = frame.get_column("label").drop_nulls().value_counts()
        return dict(zip(vc[:, 0].to_list(), vc[:, 1].to_list()))

    ref, cur = counts(reference), counts(current)
    extra = sorted((set(ref) | set(cur)) - set(labels))
    order = [*labels, *extra]
    return {k: int(ref.get(k, 0)) for k in order}, {k: int(cur.get(k, 0)) for k in order}


def _shares(counts: dict[str, int]) -> np.ndarray:
    arr = np.array(list(counts.values()), dtype=float)
    return arr / arr.sum()


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.clip(p, PSI_EPSILON, None)
    q = np.clip(q, PSI_EPSILON, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def _texts(frame: pl.DataFrame) -> pl.Series:
    if frame.height == 0:
        return pl.Series("text", [], dtype=pl.String)
    return frame.sort(["event_id", "text"], nulls_last=True).get_column("text").drop_nulls()


def _labelled(frame: pl.DataFrame) -> tuple[list[str], list[str]]:
    """Texts and labels of the labelled rows, in a fixed order (as ``_texts``)."""
    if frame.height == 0:
        return [], []
    rows = frame.filter(pl.col("label").is_not_null() & pl.col("text").is_not_null())
    rows = rows.sort(["event_id", "text"], nulls_last=True)
    return rows.get_column("text").to_list(), rows.get_column("label").to_list()


def _tokens(texts: pl.Series) -> pl.Series:
    """Lowercased word tokens; pure numbers are ignored (order ids are not vocabulary)."""
    tokens = texts.str.to_lowercase().str.extract_all(TOKEN_PATTERN).explode().str.strip_chars("'")
    return tokens.filter(tokens.str.contains(_HAS_LETTER).fill_null(False))


def _oov(
    ref_texts: pl.Series, cur_texts: pl.Series, top_n: int, min_count: int
) -> tuple[float | None, list[tuple[str, int]]]:
    vocab = _tokens(ref_texts).unique()
    cur = _tokens(cur_texts)
    if cur.len() == 0:
        return None, []
    unseen = cur.filter(~cur.is_in(vocab.implode()))
    counts = (
        unseen.value_counts(name="count")
        .filter(pl.col("count") >= min_count)
        .sort(["count", unseen.name], descending=[True, False])
        .head(top_n)
    )
    terms = [(str(t), int(c)) for t, c in counts.iter_rows()]
    return unseen.len() / cur.len(), terms


def _domain_auc(ref_texts: pl.Series, cur_texts: pl.Series, sample_rows: int, seed: int) -> float:
    """Cross-validated AUC of a reference-vs-current classifier on a balanced sample.

    The TF-IDF vocabulary is fitted on the whole sample once (it never sees the domain
    label, so the out-of-fold predictions stay honest) - this keeps it well under a second.
    """
    n = min(ref_texts.len(), cur_texts.len(), sample_rows)
    rng = np.random.default_rng(seed)
    ref = ref_texts.gather(np.sort(rng.choice(ref_texts.len(), n, replace=False))).to_list()
    cur = cur_texts.gather(np.sort(rng.choice(cur_texts.len(), n, replace=False))).to_list()
    y = np.repeat([0, 1], n)
    try:
        x = tfidf().fit_transform(ref + cur)
    except ValueError:
        # No term occurs twice across both samples: nothing shared to learn from, so the
        # classifier would be guessing. Report chance level rather than fail the day.
        return 0.5
    folds = 5 if n >= 50 else 3
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    model = LogisticRegression(C=1.0, max_iter=1000, solver="liblinear")
    proba = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, proba))
