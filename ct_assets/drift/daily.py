"""One day's drift as drift_report computes it (pure, no Dagster): the thresholds (the
configured numbers, or calibrated on this reference, cached), the day's unknown labels
from its quarantine, and the judged result. The benchmark and the tests call this too,
so what they measure is what the asset does."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from ct_assets.core.settings import DriftSettings
from ct_assets.core.time import end_of_day
from ct_assets.drift.calibration import Threshold, cached_calibration
from ct_assets.drift.statistics import DriftResult, compute_drift

UNKNOWN_LABEL = "unknown_label"  # the quarantine reason code (ingest.quality.REASON_CODES)


def unknown_label_counts(quarantine: pl.DataFrame, day: dt.date) -> dict[str, int]:
    """Rows quarantined with a label outside ``labels``, per label (among all of a row's
    reasons, not only the first). Point in time: a label whose ``label_ts`` is after the
    end of ``day`` does not exist yet; one without a usable ``label_ts`` is counted (it is
    in the day's files, only its arrival time is unknown)."""
    if quarantine.height == 0:
        return {}
    has_reason = pl.col("reasons").str.split(",").list.contains(UNKNOWN_LABEL)
    known = pl.col("label_ts").is_null() | (pl.col("label_ts") < end_of_day(day))
    counts = quarantine.filter(has_reason & known & pl.col("label").is_not_null()).get_column("label").value_counts()
    return {str(label): int(n) for label, n in counts.iter_rows()}


def resolve_thresholds(
    reference: pl.DataFrame, *, labels: Sequence[str], drift: DriftSettings, k: int, n: int,
    cache_dir: Path | None,
) -> tuple[dict[str, float | Threshold], str]:
    """Each metric's threshold and a sentence on the calibration ("" when none was needed).
    Only when some threshold is "auto" is the reference's null computed (or read from the
    cache): explicit numbers alone need no null."""
    configured = drift.thresholds.model_dump()
    if not any(v == "auto" for v in configured.values()):
        return configured, ""
    # Whether it came from the cache is left out of the text on purpose: a day's report must
    # not depend on what ran before it (a backfill equals day-by-day runs).
    calibration, _ = cached_calibration(reference, labels=labels, drift=drift, cache_dir=cache_dir)
    thresholds = calibration.thresholds(configured, false_alarms_per_60_days=drift.false_alarms_per_60_days,
                                        k=k, n=n)
    alphas = {t.alpha for t in thresholds.values() if t.alpha is not None}
    text = calibration.summary()
    if alphas:
        text += (f"; per-metric alpha {alphas.pop():.4f}, for {drift.false_alarms_per_60_days:g} false drift "
                 f"trigger(s) per 60 stable days at {k} of {n} days")
    return thresholds, text


def drift_of_day(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    *,
    quarantine: pl.DataFrame,
    day: dt.date,
    labels: Sequence[str],
    drift: DriftSettings,
    k: int,
    n: int,
    cache_dir: Path | None,
    reference_gap: str = "",
) -> DriftResult:
    """``reference`` and ``current`` with the point-in-time cut already applied (labels as
    of ``day``); ``quarantine``: the day's quarantined rows; ``reference_gap``: which
    expected reference days are missing (``drift.reference.reference_gap``)."""
    thresholds, calibration = resolve_thresholds(reference, labels=labels, drift=drift, k=k, n=n,
                                                 cache_dir=cache_dir)
    return compute_drift(
        reference, current,
        labels=labels,
        thresholds=thresholds,
        unknown_labels=unknown_label_counts(quarantine, day),
        rows_read=current.height + quarantine.height,
        max_unknown_label_share=drift.max_unknown_label_share,
        calibration=calibration,
        reference_gap=reference_gap,
        min_rows=drift.min_rows,
        min_labelled_rows=drift.min_labelled_rows,
        top_new_terms=drift.top_new_terms,
        min_term_count=drift.min_term_count,
        sample_rows=drift.sample_rows,
        max_rows=drift.max_rows,
        seed=day.toordinal(),
    )
