"""Shadow: the challenger runs beside the champion on the day's traffic."""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import polars as pl

from ct_assets.core.time import labels_as_of


def shadow_traffic(frame: pl.DataFrame, day: dt.date) -> tuple[list[str], list[str | None]]:
    """The day's texts and, beside each, its label if known by the end of ``day`` (else
    None): every text is shadowed, but accuracy is measured on the known labels only."""
    traffic = labels_as_of(frame, day)
    return traffic["text"].to_list(), traffic["label"].to_list()


def _timed_predict(predictor, texts: Sequence[str], batch_size: int):
    """Predictions plus wall-clock latency per batch of ``batch_size`` texts."""
    latencies, labels, conf = [], [], []
    for i in range(0, len(texts), batch_size):
        chunk = list(texts[i:i + batch_size])
        t0 = time.perf_counter()
        pred = predictor.predict(chunk)
        latencies.append((time.perf_counter() - t0) * 1000)
        labels += pred.labels
        conf.append(pred.confidence)
    return labels, (np.concatenate(conf) if conf else np.zeros(0)), latencies


def _accuracy(pred: Sequence[str], truth: Sequence[str | None]) -> tuple[float | None, int]:
    idx = [i for i, t in enumerate(truth) if t is not None]
    return (sum(pred[i] == truth[i] for i in idx) / len(idx) if idx else None), len(idx)


def shadow_compare(
    challenger,
    champion,
    texts: Sequence[str],
    truth: Sequence[str | None],
    *,
    batch_size: int = 64,
    min_agreement: float,
    max_accuracy_drop: float = 0.02,
    min_labelled: int = 30,
) -> dict:
    """Agreement, prediction mixes, confidence, latency and accuracy where labels exist.

    Passes when agreement >= min_agreement and, with enough labels, the challenger is not
    worse than the champion by more than max_accuracy_drop.
    """
    if not texts:
        raise ValueError("shadow: no traffic on this day to compare on")
    ch_labels, ch_conf, ch_lat = _timed_predict(challenger, texts, batch_size)
    cp_labels, cp_conf, cp_lat = _timed_predict(champion, texts, batch_size)
    agreement = float(np.mean([a == b for a, b in zip(ch_labels, cp_labels)]))
    ch_acc, n_lab = _accuracy(ch_labels, truth)
    cp_acc, _ = _accuracy(cp_labels, truth)
    reasons = []
    if agreement < min_agreement:
        reasons.append(f"agreement {agreement:.3f} < min_shadow_agreement {min_agreement}")
    if n_lab >= min_labelled and ch_acc is not None and cp_acc is not None and ch_acc < cp_acc - max_accuracy_drop:
        reasons.append(f"challenger accuracy {ch_acc:.3f} < champion {cp_acc:.3f} - {max_accuracy_drop} on {n_lab} labelled rows")
    return {
        "rows": len(texts),
        "agreement": round(agreement, 4),
        "challenger_mix": dict(Counter(ch_labels)),
        "champion_mix": dict(Counter(cp_labels)),
        "challenger_confidence": round(float(ch_conf.mean()), 4),
        "champion_confidence": round(float(cp_conf.mean()), 4),
        "challenger_ms_per_batch": round(float(np.mean(ch_lat)), 2),
        "champion_ms_per_batch": round(float(np.mean(cp_lat)), 2),
        "labelled_rows": n_lab,
        "challenger_accuracy": None if ch_acc is None else round(ch_acc, 4),
        "champion_accuracy": None if cp_acc is None else round(cp_acc, 4),
        "passed": not reasons,
        "reasons": reasons,
    }
