"""Time and point in time (pure): the partition key is the UTC date d.

A label exists as of d only if label_ts is before the end of d; a landing file may carry
labels that arrived later, and every consumer (drift, training, shadow, the volume
trigger, the replay) cuts them here, with this one function.
"""

from __future__ import annotations

import datetime as dt

import polars as pl


def day_of(partition_key: str) -> dt.date:
    return dt.date.fromisoformat(partition_key)


def end_of_day(day: dt.date) -> dt.datetime:
    """Exclusive end of d: everything known as of d happened strictly before this."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    """start..end inclusive; empty when end < start."""
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def labels_as_of(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """Labels (and label_ts) unknown at the end of ``day`` become null."""
    cutoff = end_of_day(day)
    known = pl.col("label_ts").is_not_null() & (pl.col("label_ts") < cutoff)
    return frame.with_columns(
        pl.when(known).then(pl.col("label")).otherwise(None).alias("label"),
        pl.when(known).then(pl.col("label_ts")).otherwise(None).alias("label_ts"),
    )
