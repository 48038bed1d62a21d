"""The drift scores between a reference frame and a current frame (pure, no Dagster).

Six scores, each answering a different "what changed?" question:

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
  precision of a proxy classifier fitted on the reference (``drift.text_models``), with
  the class and the (predicted, labelled) pair it confuses most in ``concept_detail``.

Only the configured labels feed the label scores: a label outside ``labels`` cannot be
learnt by a retrain, so it is counted apart (``unknown_labels``) and reported as a new
class, never as drift. A score that cannot be computed honestly (too few rows or labels)
is ``None`` with a note saying why. Judging a score (thresholds, flags) is
``drift.statistics``; this module only measures, so calibration can reuse it.

Cost: a side larger than ``drift.max_rows`` is scored on seeded samples (``score_drift``),
so a 200k-row day costs about what a 10k-row one does (~1 s instead of ~6 s); the label
scores always count every row, and days at or below the cap are scored whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp, wasserstein_distance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from ct_assets.core.schema import DRIFT_METRICS
from ct_assets.core.settings import DriftSettings
from ct_assets.drift.text_models import CONCEPT_MIN_ROWS, concept_shift, tfidf

METRICS = DRIFT_METRICS
TEXT_METRICS = ("length_ks", "length_wasserstein", "oov_rate", "text_auc")
# Defaults of the minimum sizes are the settings' own (drift.min_rows, drift.min_labelled_rows).
_DEFAULTS = DriftSettings()
# PSI is infinite when a label is absent on one side; clipping shares at this floor (and
# renormalising) keeps it finite while a vanished/new label still scores high
# (a 30% -> 0% move gives ~2.4, far above the usual 0.25 alarm level).
PSI_EPSILON = 1e-4
# Word tokens for the vocabulary; Unicode letters so accented words are not split.
TOKEN_PATTERN = r"[\p{L}\p{N}']+"
_HAS_LETTER = r"\p{L}"


@dataclass(frozen=True)
class DriftScores:
    scores: dict[str, float | None]  # METRICS plus "length_wasserstein"
    notes: dict[str, str]  # metric -> why it is None, e.g. "insufficient labels (...)"
    new_terms: list[tuple[str, int]]
    reference_labels: dict[str, int]  # configured label -> labelled rows
    current_labels: dict[str, int]
    unknown_labels: dict[str, int]  # labels outside `labels` in the current frame -> rows
    extras: dict[str, float] = field(default_factory=dict)  # mean lengths
    concept_detail: dict = field(default_factory=dict)


def score_drift(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    labels: Sequence[str],
    min_rows: int = _DEFAULTS.min_rows,
    min_labelled_rows: int = _DEFAULTS.min_labelled_rows,
    top_new_terms: int = _DEFAULTS.top_new_terms,
    min_term_count: int = _DEFAULTS.min_term_count,
    sample_rows: int = _DEFAULTS.sample_rows,
    max_rows: int = _DEFAULTS.max_rows,
    seed: int = 0,
    concept_min_rows: int = CONCEPT_MIN_ROWS,
) -> DriftScores:
    """The scores of ``current`` against ``reference``. ``max_rows`` (``drift.max_rows``)
    caps the rows each side contributes to ``concept_shift`` (current side, stratified by
    label), ``oov_rate`` and ``length_ks``: a larger side is scored on a seeded sample
    (``seed``; the caller passes the day), a side at or below it whole, so small days score
    exactly as without a cap. ``text_auc`` samples ``sample_rows`` per side as before."""
    scores: dict[str, float | None] = {}
    notes: dict[str, str] = {}
    reference, _ = _known_labels(reference, labels)
    current, unknown = _known_labels(current, labels)
    ref_counts, cur_counts = _label_counts(reference, labels), _label_counts(current, labels)
    smaller = min(sum(ref_counts.values()), sum(cur_counts.values()))
    if smaller < min_labelled_rows:
        scores["label_js"] = scores["label_psi"] = None
        notes["label_js"] = notes["label_psi"] = (
            f"insufficient data ({smaller} labelled rows on the smaller side < drift.min_labelled_rows "
            f"{min_labelled_rows})")
    else:
        p, q = _shares(ref_counts), _shares(cur_counts)
        scores["label_js"] = float(jensenshannon(p, q, base=2))
        scores["label_psi"] = _psi(p, q)
    # Sorted once per side (event_id, text), so no sample depends on frame row order.
    reference, current = _sorted(reference), _sorted(current)
    concept = concept_shift(*_labelled(reference), *_labelled(current), min_labelled=min_labelled_rows,
                            min_rows=concept_min_rows, sample_rows=sample_rows, max_rows=max_rows, seed=seed)
    scores["concept_shift"] = concept.score
    if concept.note:
        notes["concept_shift"] = concept.note

    ref_texts = _texts(reference)
    cur_texts = _texts(current)
    extras: dict[str, float] = {}
    new_terms: list[tuple[str, int]] = []
    smaller = min(ref_texts.len(), cur_texts.len())
    if smaller < min_rows:
        for name in TEXT_METRICS:
            scores[name] = None
            notes[name] = f"insufficient data ({smaller} texts on the smaller side < drift.min_rows {min_rows})"
    else:
        # Streams of their own, so neither sample moves the concept or domain samples. KS
        # over 10,000 rows per side has a standard error ~0.014 against a 0.2 threshold; an
        # OOV rate over ~10^5 token occurrences one of ~0.001. The reference vocabulary is
        # then that of a same-sized sample, so the rate no longer grows with the length of
        # the reference window (calibration scores its null with the same cap).
        ref_sample = _capped(ref_texts, max_rows, [seed, 2])
        cur_sample = _capped(cur_texts, max_rows, [seed, 3])
        ref_len = ref_sample.str.count_matches(r"\S+").to_numpy()
        cur_len = cur_sample.str.count_matches(r"\S+").to_numpy()
        scores["length_ks"] = float(ks_2samp(ref_len, cur_len).statistic)
        scores["length_wasserstein"] = float(wasserstein_distance(ref_len, cur_len))
        extras["reference_mean_words"] = float(ref_len.mean())
        extras["current_mean_words"] = float(cur_len.mean())
        scores["oov_rate"], new_terms = _oov(ref_sample, cur_sample, top_new_terms, min_term_count)
        scores["text_auc"] = _domain_auc(ref_texts, cur_texts, sample_rows, seed)
        if scores["oov_rate"] is None:
            notes["oov_rate"] = "insufficient data (no word tokens in the current texts)"
    return DriftScores(scores=scores, notes=notes, new_terms=new_terms, reference_labels=ref_counts,
                       current_labels=cur_counts, unknown_labels=unknown, extras=extras,
                       concept_detail=concept.detail)


def _known_labels(frame: pl.DataFrame, labels: Sequence[str]) -> tuple[pl.DataFrame, dict[str, int]]:
    """The frame with labels outside ``labels`` nulled (the row's text still counts), and
    those labels' row counts. The clean frame never has any (validated_window quarantines
    them); a frame built by hand might."""
    if frame.height == 0:
        return frame, {}
    known = pl.col("label").is_in(pl.Series(list(labels), dtype=pl.Utf8))
    other = frame.filter(pl.col("label").is_not_null() & ~known).get_column("label").value_counts()
    counts = {str(k): int(n) for k, n in other.iter_rows()}
    return frame.with_columns(pl.when(known).then(pl.col("label")).otherwise(None).alias("label")), counts


def _label_counts(frame: pl.DataFrame, labels: Sequence[str]) -> dict[str, int]:
    if frame.height == 0:
        return {k: 0 for k in labels}
    vc = frame.get_column("label").drop_nulls().value_counts()
    counts = dict(zip(vc[:, 0].to_list(), vc[:, 1].to_list()))
    return {k: int(counts.get(k, 0)) for k in labels}


def _shares(counts: dict[str, int]) -> np.ndarray:
    arr = np.array(list(counts.values()), dtype=float)
    return arr / arr.sum()


def _psi(p: np.ndarray, q: np.ndarray) -> float:
    p = np.clip(p, PSI_EPSILON, None)
    q = np.clip(q, PSI_EPSILON, None)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    """The columns the text scores read, in (event_id, text) order: the one sort of a side
    (``_texts`` and ``_labelled`` filter it, which keeps the order)."""
    if frame.height == 0:
        return frame
    return frame.select("event_id", "text", "label").sort(["event_id", "text"], nulls_last=True)


def _texts(frame: pl.DataFrame) -> pl.Series:
    """The non-null texts of a ``_sorted`` frame."""
    if frame.height == 0:
        return pl.Series("text", [], dtype=pl.String)
    return frame.get_column("text").drop_nulls()


def _capped(texts: pl.Series, max_rows: int, seed: list[int]) -> pl.Series:
    """``texts`` itself when it has at most ``max_rows`` rows, else a seeded sample of that
    many in their original (sorted) order."""
    if texts.len() <= max_rows:
        return texts
    return texts.gather(np.sort(np.random.default_rng(seed).choice(texts.len(), max_rows, replace=False)))


def _labelled(frame: pl.DataFrame) -> tuple[list[str], list[str]]:
    """Texts and labels of the labelled rows of a ``_sorted`` frame, in its order."""
    if frame.height == 0:
        return [], []
    rows = frame.filter(pl.col("label").is_not_null() & pl.col("text").is_not_null())
    return rows.get_column("text").to_list(), rows.get_column("label").to_list()


def _tokens(texts: pl.Series) -> pl.Series:
    """Lowercased word tokens; pure numbers are ignored (order ids are not vocabulary)."""
    tokens = texts.str.to_lowercase().str.extract_all(TOKEN_PATTERN).explode().str.strip_chars("'")
    return tokens.filter(tokens.str.contains(_HAS_LETTER).fill_null(False))


def _vocabulary(texts: pl.Series) -> pl.Series:
    """The distinct tokens of ``texts``, as ``_tokens(texts).unique()``: deduplicating the
    raw matches first leaves the strip and the letter test only the distinct strings."""
    raw = texts.str.to_lowercase().str.extract_all(TOKEN_PATTERN).explode().unique().str.strip_chars("'")
    return raw.filter(raw.str.contains(_HAS_LETTER).fill_null(False)).unique()


def _oov(
    ref_texts: pl.Series, cur_texts: pl.Series, top_n: int, min_count: int
) -> tuple[float | None, list[tuple[str, int]]]:
    """Share of current token occurrences not in the reference vocabulary, and the most
    frequent such terms (at least ``min_count`` occurrences)."""
    vocab = _vocabulary(ref_texts)
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
