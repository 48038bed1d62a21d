"""What the triggers look at, read from the lake and the registry (no Dagster imports).

Partition-aware on purpose: "today" is the newest day with a drift report, not the
wall clock, so a replay or a backfill sees the calendar of the data it is about.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ct_assets.core.schema import DayObservation
from ct_assets.core.time import days_between, labels_as_of


def latest_day(lake, asset: str = "drift_report") -> dt.date | None:
    keys = lake.partitions(asset)
    return dt.date.fromisoformat(keys[-1]) if keys else None


def recent_observations(lake, today: dt.date, n: int) -> list[DayObservation]:
    days = [(today - dt.timedelta(days=i)).isoformat() for i in range(n)]
    return [DayObservation.from_frame(f) for f in lake.read_many("drift_report", days).values()]


def labelled_rows_since(lake, after: dt.date | None, today: dt.date, first_day: dt.date) -> int:
    """Clean rows labelled as of today whose event day is after ``after`` (the end of the
    champion's training window; None = since the first partition)."""
    start = (after + dt.timedelta(days=1)) if after is not None else first_day
    days = [d.isoformat() for d in days_between(start, today)]
    total = 0
    for frame in lake.read_many("validated_window", days).values():
        total += labels_as_of(frame, today).filter(pl.col("label").is_not_null()).height
    return total
