"""Shadow: the challenger runs beside the champion on the day's traffic.

Two sources, one verdict (``_judged``): served pairs, when ``ct serve`` mirrored the day's
champion traffic to the challenger (``served_shadow_pairs``; the served columns are in
docs/CONTRACTS.md), else both models scored offline on the day's texts (``shadow_compare``).
Served pairs are what users actually sent, answered by the models actually deployed; the
offline comparison stays for days without that traffic.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import polars as pl

from ct_assets.core.time import labels_as_of

# Labelled rows needed before accuracy may fail a comparison (shadow, and canary per arm):
# below it, one or two unlucky rows would decide.
MIN_LABELLED = 30


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
    min_labelled: int = MIN_LABELLED,
) -> dict:
    """Agreement, prediction mixes, confidence, latency and accuracy where labels exist.

    Passes when agreement >= min_agreement and, with enough labels, the challenger is not
    worse than the champion by more than max_accuracy_drop.
    """
    if not texts:
        raise ValueError("shadow: no traffic on this day to compare on")
    ch_labels, ch_conf, ch_lat = _timed_predict(challenger, texts, batch_size)
    cp_labels, cp_conf, cp_lat = _timed_predict(champion, texts, batch_size)
    report = _judged(ch_labels, cp_labels, ch_conf, cp_conf, truth, min_agreement=min_agreement,
                     max_accuracy_drop=max_accuracy_drop, min_labelled=min_labelled)
    return {"source": "offline", **report,
            "challenger_ms_per_batch": round(float(np.mean(ch_lat)), 2),
            "champion_ms_per_batch": round(float(np.mean(cp_lat)), 2)}


def served_shadow_pairs(frame: pl.DataFrame, day: dt.date, *, champion: int, challenger: int) -> pl.DataFrame:
    """The day's rows the champion served with the challenger's shadow prediction beside them,
    labels cut as of the end of ``day``; no rows when the day had no such traffic."""
    needed = ("arm", "served_version", "prediction", "confidence", "latency_ms",
              "shadow_version", "shadow_prediction", "shadow_confidence")
    if any(c not in frame.columns for c in needed):
        return frame.head(0)
    pairs = frame.filter(
        (pl.col("arm") == "champion") & (pl.col("served_version") == champion)
        & (pl.col("shadow_version").cast(pl.Int64, strict=False) == challenger)
        & pl.col("shadow_prediction").is_not_null())
    return labels_as_of(pairs, day)


def shadow_compare_served(pairs: pl.DataFrame, *, min_agreement: float, max_accuracy_drop: float = 0.02,
                          min_labelled: int = MIN_LABELLED) -> dict:
    """The shadow verdict from served pairs (``served_shadow_pairs``); the same rules as offline."""
    if pairs.height == 0:
        raise ValueError("shadow: no served shadow pairs to compare on")
    report = _judged(pairs["shadow_prediction"].to_list(), pairs["prediction"].to_list(),
                     pairs["shadow_confidence"].cast(pl.Float64).drop_nulls().to_numpy(),
                     pairs["confidence"].cast(pl.Float64).drop_nulls().to_numpy(), pairs["label"].to_list(),
                     min_agreement=min_agreement, max_accuracy_drop=max_accuracy_drop, min_labelled=min_labelled)
    latency = pairs["latency_ms"].cast(pl.Float64)
    # The shadow's own latency is off the response path and not logged: the champion's is.
    return {"source": "served", "served_pairs": pairs.height, **report,
            "champion_latency_p50_ms": round(float(latency.quantile(0.5, "linear")), 3),
            "champion_latency_p99_ms": round(float(latency.quantile(0.99, "linear")), 3)}


def _judged(ch_labels, cp_labels, ch_conf, cp_conf, truth, *, min_agreement: float, max_accuracy_drop: float,
            min_labelled: int) -> dict:
    agreement = float(np.mean([a == b for a, b in zip(ch_labels, cp_labels)]))
    ch_acc, n_lab = _accuracy(ch_labels, truth)
    cp_acc, _ = _accuracy(cp_labels, truth)
    reasons = []
    if agreement < min_agreement:
        reasons.append(f"agreement {agreement:.3f} < min_shadow_agreement {min_agreement}")
    if n_lab >= min_labelled and ch_acc is not None and cp_acc is not None and ch_acc < cp_acc - max_accuracy_drop:
        reasons.append(f"challenger accuracy {ch_acc:.3f} < champion {cp_acc:.3f} - {max_accuracy_drop} on {n_lab} labelled rows")
    return {
        "rows": len(ch_labels),
        "agreement": round(agreement, 4),
        "challenger_mix": dict(Counter(ch_labels)),
        "champion_mix": dict(Counter(cp_labels)),
        "challenger_confidence": round(float(np.mean(ch_conf)), 4) if len(ch_conf) else None,
        "champion_confidence": round(float(np.mean(cp_conf)), 4) if len(cp_conf) else None,
        "labelled_rows": n_lab,
        "challenger_accuracy": None if ch_acc is None else round(ch_acc, 4),
        "champion_accuracy": None if cp_acc is None else round(cp_acc, 4),
        "passed": not reasons,
        "reasons": reasons,
    }
