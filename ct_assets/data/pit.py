"""Point in time: what was known as of the end of day d.

A label exists as of d only if label_ts is before the end of d; a landing file may carry
labels that arrived later, and every consumer cuts them here, in one place.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import polars as pl

from ct_assets.partitions import end_of_day


def labels_as_of(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """Labels (and label_ts) unknown at the end of ``day`` become null."""
    cutoff = end_of_day(day)
    known = pl.col("label_ts").is_not_null() & (pl.col("label_ts") < cutoff)
    return frame.with_columns(
        pl.when(known).then(pl.col("label")).otherwise(None).alias("label"),
        pl.when(known).then(pl.col("label_ts")).otherwise(None).alias("label_ts"),
    )


def reference_days(
    as_of: dt.date,
    champion_window: tuple[dt.date, dt.date] | None,
    configured: Sequence[dt.date],
) -> tuple[list[dt.date], str]:
    """The drift reference for ``as_of``: the champion's training window once a champion
    exists, else the configured reference range. Days on or after ``as_of`` are dropped
    so a report never reads its own day or the future."""
    if champion_window is not None:
        start, end = champion_window
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        source = f"champion training window {start}..{end}"
    else:
        days = list(configured)
        source = f"configured reference {days[0]}..{days[-1]}" if days else "configured reference (empty)"
    return [d for d in days if d < as_of], source
