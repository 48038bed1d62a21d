"""Tests for ct_assets.drift.statistics.compute_drift (scores from drift.scores, judged
by thresholds; here fixed numbers, the calibrated ones are tested in test_calibration).

Each drift score answers one question (did the label prior move? did texts get longer?
are there new words? can a classifier tell the days apart?), so the main table below
builds synthetic reference/current frames that change exactly one property and states
which flags must fire - no more, no fewer. That catches both a blind metric and one that
cries wolf on an unrelated change. Frames are built here (not with the simulator) so the
expected outcome is obvious from the case alone.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from ct_assets.drift.statistics import METRICS, compute_drift

LABELS = ["billing", "refund", "shipping", "account_access"]
THRESHOLDS = {"label_js": 0.1, "label_psi": 0.25, "length_ks": 0.2, "oov_rate": 0.08, "text_auc": 0.75,
              "concept_shift": 0.15}
TS = dt.datetime(2026, 9, 1, 12, tzinfo=dt.timezone.utc)
# Two disjoint topic vocabularies; texts are label-independent so that a label-prior shift
# does not also move the text statistics (that would blur which metric reacts to what).
TOPIC_A = [f"{w}{i}" for w in ("order", "charge", "parcel", "login") for i in range(40)]
TOPIC_B = [f"{w}{i}" for w in ("gadget", "firmware", "pairing", "battery") for i in range(40)]
UNIFORM = (0.25, 0.25, 0.25, 0.25)


def make_frame(
    n: int,
    seed: int,
    *,
    label_p: tuple[float, ...] = UNIFORM,
    words: tuple[int, int] = (5, 15),
    vocab: list[str] = TOPIC_A,
    new_words: tuple[str, ...] = (),
    labelled_share: float = 1.0,
    prefix: str = "e",
) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(n):
        tokens = list(rng.choice(vocab, size=int(rng.integers(words[0], words[1] + 1))))
        if new_words:
            tokens.append(str(rng.choice(new_words)))
        texts.append(" ".join(tokens))
    labels = rng.choice(LABELS, size=n, p=label_p).tolist()
    labels = [lb if rng.random() < labelled_share else None for lb in labels]
    return pl.DataFrame(
        {
            "event_id": [f"{prefix}{seed}-{i:05d}" for i in range(n)],
            "event_ts": [TS] * n,
            "text": texts,
            "label": labels,
            "label_ts": [TS] * n,
        },
        schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "label_ts": pl.Datetime("us", "UTC")},
    )


def drift(reference: pl.DataFrame, current: pl.DataFrame, **kwargs):
    return compute_drift(reference, current, labels=LABELS, thresholds=THRESHOLDS, **kwargs)


CASES = [
    # Same generator, different seed: sampling noise only, nothing may flag.
    ("identical", {}, {}, set()),
    # Label prior moves from uniform to 70% billing; texts unchanged.
    ("label_prior_shift", {}, {"label_p": (0.7, 0.1, 0.1, 0.1)}, {"label_js", "label_psi"}),
    # Texts ~50% longer, same words: the length test sees it, the domain classifier barely
    # does (TF-IDF rows are length-normalised; at 3x longer it would also separate them).
    ("longer_texts", {}, {"words": (10, 20)}, {"length_ks"}),
    # Every current text gains one of five unseen product words: OOV rises, and those words
    # also make the days trivially separable for the domain classifier.
    ("unseen_words", {}, {"new_words": ("zephyrphone", "zx9", "holo", "quantix", "nebula")},
     {"oov_rate", "text_auc"}),
    # A completely different topic: every text metric except length fires.
    ("different_topic", {}, {"vocab": TOPIC_B}, {"oov_rate", "text_auc"}),
]


@pytest.mark.parametrize(("case", "ref_kw", "cur_kw", "expected"), CASES, ids=[c[0] for c in CASES])
def test_each_change_flags_exactly_its_metrics(case, ref_kw, cur_kw, expected):
    result = drift(make_frame(2000, 1, **ref_kw), make_frame(600, 2, prefix="c", **cur_kw))
    assert set(result.drifted_metrics) == expected, result.to_markdown()
    assert result.verdict == ("drift" if expected else "stable")
    assert all(result.scores[m] is not None for m in METRICS if m != "concept_shift")
    # These texts carry no label signal, so the label proxy is never confident and
    # concept_shift honestly says "don't know" (its own cases are below).
    assert result.scores["concept_shift"] is None
    assert "confident predictions" in result.notes["concept_shift"]


def test_text_auc_is_high_for_different_topics_and_near_chance_for_identical():
    same = drift(make_frame(1000, 1), make_frame(500, 2, prefix="c"))
    other = drift(make_frame(1000, 1), make_frame(500, 2, prefix="c", vocab=TOPIC_B))
    assert 0.35 < same.scores["text_auc"] < 0.65
    assert other.scores["text_auc"] > 0.95


def test_new_terms_sorted_by_count_with_min_count_and_numbers_ignored():
    reference = make_frame(200, 1)
    current = make_frame(200, 2, prefix="c")
    extra = {"gizmo": 9, "widget": 5, "doohickey": 3, "rare": 2, "12345": 10}
    texts = current.get_column("text").to_list()
    i = 0
    for word, count in extra.items():
        for _ in range(count):
            texts[i] = f"{texts[i]} {word}"
            i += 1
    # Mixed case and quotes must not create separate terms.
    texts[i] = texts[i] + " 'Gizmo'"
    current = current.with_columns(pl.Series("text", texts))
    result = drift(reference, current, top_new_terms=15, min_term_count=3)
    # rare (2 < 3) is filtered; 12345 is a pure number, not vocabulary.
    assert result.new_terms == [("gizmo", 10), ("widget", 5), ("doohickey", 3)]
    assert drift(reference, current, top_new_terms=1).new_terms == [("gizmo", 10)]
    assert 0 < result.scores["oov_rate"] < 0.05


SMALL = [
    # 19 current rows: below the minimum for every score.
    (2000, 19, 1.0, set(METRICS)),
    # 500 current rows but only ~2% labelled (feedback still pending).
    (2000, 500, 0.02, {"label_js", "label_psi", "concept_shift"}),
    # 10 reference rows: nothing can be computed.
    (10, 500, 1.0, set(METRICS)),
    # Empty current day.
    (2000, 0, 1.0, set(METRICS)),
]


@pytest.mark.parametrize(("n_ref", "n_cur", "labelled", "unknown"), SMALL)
def test_small_samples_give_none_and_never_flag(n_ref, n_cur, labelled, unknown):
    # The current side is wildly different, so any computed score would flag.
    current = make_frame(n_cur, 2, prefix="c", label_p=(0.97, 0.01, 0.01, 0.01), vocab=TOPIC_B,
                         labelled_share=labelled)
    result = drift(make_frame(n_ref, 1), current)
    assert {m for m in METRICS if result.scores[m] is None} == unknown
    assert not any(result.flags[m] for m in unknown)
    assert all("insufficient" in result.notes[m] for m in unknown)
    json.dumps(result.to_metadata())
    assert "n/a (insufficient" in result.to_markdown()


def test_vanished_label_gives_finite_psi():
    current = make_frame(500, 2, prefix="c", label_p=(0.5, 0.5, 0.0, 0.0))
    result = drift(make_frame(2000, 1), current)
    assert np.isfinite(result.scores["label_psi"]) and result.flags["label_psi"]
    assert result.current_labels == {"billing": result.current_labels["billing"],
                                     "refund": result.current_labels["refund"],
                                     "shipping": 0, "account_access": 0}


def test_unknown_label_is_counted_apart_and_never_feeds_the_flags():
    # A label outside `labels` cannot be learnt by a retrain: it is reported (a new class
    # emerging), not scored as drift, and its rows' texts still count as texts.
    current = make_frame(600, 2, prefix="c").with_columns(
        pl.when(pl.int_range(pl.len()) < 180).then(pl.lit("other")).otherwise(pl.col("label")).alias("label"))
    result = drift(make_frame(2000, 1), current)
    assert list(result.reference_labels) == LABELS and "other" not in result.current_labels
    assert sum(result.current_labels.values()) == 420
    assert result.unknown_labels == {"other": 180} and result.rows_read == 600
    assert not result.drifted_metrics, result.to_markdown()  # the other 420 are the reference's world
    assert result.verdict == "new_class" and result.new_classes == [("other", 180)]
    assert "new class emerging: 'other' (180 rows); add it to `labels` to train it" in result.to_markdown()
    # At or below the share it is listed but is no new class.
    known = current.filter(pl.col("label") != "other")
    few = drift(make_frame(2000, 1), known, unknown_labels={"other": 21}, rows_read=441, max_unknown_label_share=0.05)
    assert few.unknown_labels == {"other": 21} and few.verdict == "stable"
    assert "| other | 21 | 4.8% |" in few.to_markdown()
    json.dumps(few.to_metadata())


def test_deterministic_and_independent_of_row_order():
    reference, current = make_frame(3000, 1), make_frame(400, 2, prefix="c", vocab=TOPIC_A[:100])
    first = drift(reference, current, sample_rows=300, seed=3)
    again = drift(reference, current, sample_rows=300, seed=3)
    shuffled = drift(reference.sample(fraction=1.0, shuffle=True, seed=9),
                     current.sample(fraction=1.0, shuffle=True, seed=4), sample_rows=300, seed=3)
    assert first.to_metadata() == again.to_metadata() == shuffled.to_metadata()


def test_report_formats():
    result = drift(make_frame(500, 1), make_frame(300, 2, prefix="c", new_words=("zorblax",)))
    meta = result.to_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["verdict"] == "drift" and meta["oov_rate"] == result.scores["oov_rate"]
    assert meta["new_terms"][0] == ["zorblax", 300]
    md = result.to_markdown()
    assert md.startswith("**Verdict: drift**")
    assert "| metric | score | threshold | source | p-value | flag |" in md
    assert "| oov_rate | " in md and " | 0.08 | fixed | - | DRIFT |" in md
    assert meta["threshold_sources"]["oov_rate"] == "fixed" and meta["p_values"]["oov_rate"] is None
    assert "| label | reference | current |" in md
    assert "| zorblax | 300 |" in md


@pytest.mark.parametrize("key", ["text_auc", "concept_shift"])
def test_missing_threshold_is_an_error(key):
    with pytest.raises(ValueError, match=key):
        compute_drift(make_frame(50, 1), make_frame(50, 2), labels=LABELS,
                      thresholds={k: v for k, v in THRESHOLDS.items() if k != key})


def test_auto_threshold_without_calibration_is_an_error():
    # "auto" needs a null; compute_drift never guesses one.
    with pytest.raises(ValueError, match=r"thresholds\['label_js'\] is 'auto': calibrate"):
        compute_drift(make_frame(50, 1), make_frame(50, 2), labels=LABELS, thresholds={**THRESHOLDS, "label_js": "auto"})


def test_minimum_sizes_come_from_the_caller():
    # drift.min_rows / drift.min_labelled_rows decide "insufficient data", not constants.
    reference, current = make_frame(500, 1), make_frame(60, 2, prefix="c")
    assert drift(reference, current).scores["label_js"] is not None
    strict = drift(reference, current, min_rows=61, min_labelled_rows=61)
    assert strict.scores["label_js"] is None and strict.scores["oov_rate"] is None
    assert "drift.min_labelled_rows 61" in strict.notes["label_js"] and "drift.min_rows 61" in strict.notes["oov_rate"]
    assert not any(strict.flags[m] for m in ("label_js", "label_psi", "length_ks", "oov_rate", "text_auc"))


# --- concept_shift: texts that carry their label --------------------------------------
# Each label has its own words, and a quarter of billing texts are about "renewals" (a
# sub-topic with words of its own, like the simulator's "cancel and refund me" tickets).
LABEL_WORDS = {label: [f"{label[:4]}{i}" for i in range(30)] for label in LABELS}
RENEWAL_WORDS = [f"renewal{i}" for i in range(15)]


def make_labelled_frame(
    n: int,
    seed: int,
    *,
    label_p: tuple[float, ...] = UNIFORM,
    renewal_label: str = "billing",
    vocab_shift: bool = False,
    prefix: str = "e",
) -> pl.DataFrame:
    """Texts: 6-10 words of the row's label plus 2 shared words; ``renewal_label`` is the
    label the renewal sub-topic gets (the concept); ``vocab_shift`` swaps every word for an
    unseen one of the same label (new wording, same meaning)."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(LABELS, size=n, p=label_p).tolist()
    texts, out_labels = [], []
    for label in labels:
        words = RENEWAL_WORDS if label == "billing" and rng.random() < 1 / 4 else LABEL_WORDS[label]
        tokens = list(rng.choice(words, size=int(rng.integers(6, 11)))) + list(rng.choice(TOPIC_A, size=2))
        if vocab_shift:
            tokens = [f"new{t}" for t in tokens]
        texts.append(" ".join(tokens))
        out_labels.append(renewal_label if words is RENEWAL_WORDS else label)
    return pl.DataFrame(
        {"event_id": [f"{prefix}{seed}-{i:05d}" for i in range(n)], "event_ts": [TS] * n, "text": texts,
         "label": out_labels, "label_ts": [TS] * n},
        schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "label_ts": pl.Datetime("us", "UTC")},
    )


CONCEPT_CASES = [
    # Same world, different seed: the proxy is as precise today as on the reference.
    ("identical", {}, set()),
    # Renewal tickets are now labelled refund: P(text) is unchanged, so only the labelled
    # metric sees it (the label prior moves a little too: 1/16 of rows change label).
    ("renewals_relabelled", {"renewal_label": "refund"}, {"concept_shift"}),
    # A prior shift with the same P(label | text): per-class precision holds (a milder
    # shift than above: these texts carry their label, so at 70% billing the domain
    # classifier would start to see it too, AUC ~0.73).
    ("label_prior_shift", {"label_p": (0.5, 0.2, 0.15, 0.15)}, {"label_js", "label_psi"}),
    # New wording, same meaning (covariate shift): the proxy cannot read it, so it is not
    # confident and concept_shift has nothing to say - oov_rate and text_auc do.
    ("new_wording", {"vocab_shift": True}, {"oov_rate", "text_auc"}),
]


@pytest.mark.parametrize(("case", "cur_kw", "expected"), CONCEPT_CASES, ids=[c[0] for c in CONCEPT_CASES])
def test_concept_shift_flags_relabelling_only(case, cur_kw, expected):
    result = drift(make_labelled_frame(2000, 1), make_labelled_frame(600, 2, prefix="c", **cur_kw))
    assert set(result.drifted_metrics) == expected, result.to_markdown()
    if case != "new_wording":
        assert result.scores["concept_shift"] is not None
    if case == "renewals_relabelled":
        detail = result.concept_detail
        assert (detail["class"], detail["confused_label"]) == ("billing", "refund")
        assert detail["reference_precision"] > 0.95 and detail["current_precision"] < 0.85
        wrong = detail["predictions"] - round(detail["current_precision"] * detail["predictions"])
        assert detail["confused_rows"] == wrong  # every billing-predicted error is a relabelled renewal
        drop = detail["reference_precision"] - detail["current_precision"]
        assert result.scores["concept_shift"] == pytest.approx(drop)
        meta = result.to_metadata()
        assert json.loads(json.dumps(meta)) == meta
        assert meta["concept_detail"]["confused_label"] == "refund"
        assert "Concept shift: predicted `billing` precision" in result.to_markdown()
        assert "most often labelled `refund`" in result.to_markdown()


def test_concept_shift_needs_labels_and_enough_predictions():
    reference = make_labelled_frame(2000, 1)
    few_labels = make_labelled_frame(300, 2, prefix="c").with_columns(
        pl.when(pl.int_range(pl.len()) < 19).then(pl.col("label")).otherwise(None).alias("label"))
    result = drift(reference, few_labels)
    assert result.scores["concept_shift"] is None and not result.flags["concept_shift"]
    assert "labelled rows per side" in result.notes["concept_shift"]
    # 40 labelled rows over 4 classes: no class reaches the 15 predictions a precision needs.
    result = drift(reference, make_labelled_frame(40, 2, prefix="c"), concept_min_rows=15)
    assert result.scores["concept_shift"] is None
    assert "confident predictions" in result.notes["concept_shift"]
    result = drift(reference, make_labelled_frame(40, 2, prefix="c"), concept_min_rows=5)
    assert result.scores["concept_shift"] is not None
