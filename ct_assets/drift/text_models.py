"""Text classifiers behind the drift scores (pure, no Dagster): the shared TF-IDF settings
and the label proxy behind ``concept_shift``.

Concept shift is a change in P(label | text) with P(text) unchanged (the same tickets are
now labelled differently), so input-drift scores cannot see it. A cheap proxy classifier
(TF-IDF + one-vs-rest logistic regression) learns text -> label on the reference's
labelled rows; its cross-validated predictions give the reference precision per
*predicted* class, its predictions on the current labelled rows give the current one.
The score is the largest drop, precision_ref(c) - precision_cur(c), over classes c the
proxy predicts at least ``min_rows`` times today: when tickets that used to be labelled c
are now labelled l, the proxy still predicts c for them and c's precision falls, and the
(predicted c, labelled l) pair names the new concept.

Only confident predictions count (normalised probability >= ``CONCEPT_MIN_CONFIDENCE``):
texts the proxy cannot read (vague "please call me back", slang, new products) would
otherwise lower precision too, so a vocabulary change (covariate shift, already scored by
``oov_rate``/``text_auc``) would pass for a concept change, and the vague ~5% of tickets
would double the day-to-day noise. Measured on the simulator (7 reference days, 300 rows
a day, same-day labels): the proxy is confident on ~95% of ordinary rows and of the
relabelled sub-intent, and on few vague or slang rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.multiclass import OneVsRestClassifier

# Proxy settings, chosen on the simulator: C=10 gives confident probabilities on
# learnable templates, 0.7 keeps those and drops vague/unreadable texts.
CONCEPT_C = 10.0
CONCEPT_MIN_CONFIDENCE = 0.7
CONCEPT_FOLDS = 5
# A precision over fewer predictions is mostly noise: at 15 rows one extra annotator slip
# moves it by 0.07. Measured on the simulator (300 rows/day, 6 seeds x 60 stable days,
# concept_change days scored with same-day labels): 15 flags 88% of concept days at the
# default threshold 0.18 with 1 false alarm in 360 stable days; 20 cuts detection to 60%
# (the cancellation class often has < 20 same-day labelled predictions) for no fewer
# false alarms.
CONCEPT_MIN_ROWS = 15


def tfidf() -> TfidfVectorizer:
    """The vectorizer both drift classifiers use (word uni- and bigrams)."""
    return TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)


@dataclass(frozen=True)
class ConceptShift:
    score: float | None
    note: str | None = None  # why score is None
    # class, predictions, reference_precision, current_precision, confused_label, confused_rows
    detail: dict = field(default_factory=dict)


def concept_shift(
    ref_texts: Sequence[str],
    ref_labels: Sequence[str],
    cur_texts: Sequence[str],
    cur_labels: Sequence[str],
    *,
    min_labelled: int,
    min_rows: int = CONCEPT_MIN_ROWS,
    sample_rows: int = 2000,
    max_rows: int | None = None,
    seed: int = 0,
) -> ConceptShift:
    """Largest per-predicted-class precision drop of a proxy fitted on the reference.

    Inputs are labelled rows only, in a fixed order (the caller sorts them), so the
    result does not depend on frame row order. The reference is capped at ``sample_rows``
    rows (seeded sample) to bound the cost for long champion windows. The current side is
    capped at ``max_rows`` (``drift.max_rows``; None: no cap) by a seeded sample stratified
    by label, so every label keeps its share: transforming and predicting all of a 200k-row
    day cost ~4 s, and the cap is enough because the score is a difference of precisions,
    and a precision over n predictions has a standard error of sqrt(p(1-p)/n) <= 0.5/sqrt(n).
    At the default 10,000 rows a class predicted for 5% of them has 500 predictions, an
    error <= 0.022 (0.013 at precision 0.9), far below the 0.18 threshold and below the
    noise the score already accepts at ``min_rows`` = 15 predictions (up to 0.13). A
    side at or below the cap is used whole, so small days score exactly as before.
    """
    if min(len(ref_texts), len(cur_texts)) < min_labelled:
        return ConceptShift(None, f"insufficient data (< {min_labelled} labelled rows per side, "
                                  "drift.min_labelled_rows)")
    cur_y = np.asarray(cur_labels, dtype=object)
    cur_keep = None
    if max_rows is not None and len(cur_y) > max_rows:
        # Its own stream ([seed, 1]): the reference sample below stays what it was.
        cur_keep = stratified_sample(cur_y, max_rows, np.random.default_rng([seed, 1]))
        cur_y = cur_y[cur_keep]
    x_text, y = np.asarray(ref_texts, dtype=object), np.asarray(ref_labels, dtype=object)
    if len(y) > sample_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(y), sample_rows, replace=False))
        x_text, y = x_text[keep], y[keep]
    # A label with fewer rows than folds cannot be cross-validated (nor learnt): drop it
    # from training; its current rows still count as errors of whatever class is predicted.
    names, counts = np.unique(y, return_counts=True)
    trainable = names[counts >= CONCEPT_FOLDS]
    if len(trainable) < 2:
        return ConceptShift(None, f"insufficient data (< 2 labels with {CONCEPT_FOLDS}+ reference rows)")
    mask = np.isin(y, trainable)
    x_text, y = x_text[mask], y[mask]
    vectorizer = tfidf()
    try:
        x_ref = vectorizer.fit_transform(x_text.tolist())
    except ValueError:  # no term occurs twice: nothing to learn from
        return ConceptShift(None, "insufficient data (no reference term occurs twice)")
    model = OneVsRestClassifier(LogisticRegression(C=CONCEPT_C, solver="liblinear"))
    cv = StratifiedKFold(n_splits=CONCEPT_FOLDS, shuffle=True, random_state=seed % 2**32)
    ref_proba = cross_val_predict(model, x_ref, y, cv=cv, method="predict_proba")
    model.fit(x_ref, y)
    classes = model.classes_
    cur_x = list(cur_texts) if cur_keep is None else [cur_texts[i] for i in cur_keep]
    cur_proba = model.predict_proba(vectorizer.transform(cur_x))

    ref_pred, ref_ok = _confident(ref_proba, classes)
    cur_pred, cur_ok = _confident(cur_proba, classes)
    best: dict | None = None
    for c in classes:
        ref_hit = ref_ok & (ref_pred == c)
        cur_hit = cur_ok & (cur_pred == c)
        if cur_hit.sum() < min_rows or not ref_hit.any():
            continue
        p_ref = float(np.mean(y[ref_hit] == c))
        p_cur = float(np.mean(cur_y[cur_hit] == c))
        if best is None or p_ref - p_cur > best["drop"]:
            best = {"drop": p_ref - p_cur, "class": str(c), "predictions": int(cur_hit.sum()),
                    "reference_precision": p_ref, "current_precision": p_cur, "hit": cur_hit}
    if best is None:
        return ConceptShift(None, f"insufficient data (no class with >= {min_rows} confident predictions)")
    wrong = cur_y[best.pop("hit") & (cur_y != best["class"])]
    confused, confused_rows = None, 0
    if len(wrong):
        labels, counts = np.unique(wrong, return_counts=True)  # sorted: ties go to the first name
        confused, confused_rows = str(labels[np.argmax(counts)]), int(counts.max())
    score = best.pop("drop")
    return ConceptShift(score, None, {**best, "confused_label": confused, "confused_rows": confused_rows})


def _confident(proba: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted class and whether its (normalised one-vs-rest) probability is high enough."""
    proba = proba / proba.sum(axis=1, keepdims=True)
    return classes[proba.argmax(axis=1)], proba.max(axis=1) >= CONCEPT_MIN_CONFIDENCE


def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of ``n`` of ``labels``'s rows, each label keeping its share.

    Quotas are the shares times ``n`` rounded down, the rows left over going to the largest
    remainders (ties to the first label in sorted order), so they sum to ``n`` and a label
    never gets more than it has; rows within a label are drawn by ``rng`` without
    replacement. Deterministic for a given generator state and input order."""
    if n >= len(labels):
        return np.arange(len(labels))
    # As fixed-width strings: np.unique on an object array compares Python objects (~0.3 s
    # at 120k rows), on "<U" it is a C sort, same code-point order.
    names, inverse, counts = np.unique(np.asarray(labels, dtype=str), return_inverse=True, return_counts=True)
    exact = counts * (n / len(labels))
    quota = np.floor(exact).astype(int)
    short = n - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    picks = [np.flatnonzero(inverse == k) for k in range(len(names))]
    chosen = [rows[rng.choice(len(rows), q, replace=False)] for rows, q in zip(picks, quota) if q]
    return np.sort(np.concatenate(chosen))
