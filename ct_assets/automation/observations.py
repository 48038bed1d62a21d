"""What the triggers look at, read from the lake and the registry (no Dagster imports).

Partition-aware on purpose: "today" is the newest day with a drift report, not the
wall clock, so a replay or a backfill sees the calendar of the data it is about.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from ct_assets.data.pit import labels_as_of
from ct_assets.triggers.policy import DayObservation

SCORES = ("label_js", "label_psi", "length_ks", "oov_rate", "text_auc", "concept_shift")


def latest_day(lake, asset: str = "drift_report") -> dt.date | None:
    keys = lake.partitions(asset)
    return dt.date.fromisoformat(keys[-1]) if keys else None


def observation_from_row(row: dict) -> DayObservation:
    scores = {k.removeprefix("score_"): v for k, v in row.items() if k.startswith("score_")}
    flags = {k.removeprefix("flag_"): bool(v) for k, v in row.items() if k.startswith("flag_")}
    return DayObservation(
        day=dt.date.fromisoformat(row["partition"]),
        scores=scores,
        flags=flags,
        champion_accuracy=row.get("champion_accuracy"),
        champion_labelled_rows=int(row.get("champion_labelled_rows") or 0),
        champion_estimated_accuracy=row.get("champion_estimated_accuracy"),
    )


def recent_observations(lake, today: dt.date, n: int) -> list[DayObservation]:
    days = [(today - dt.timedelta(days=i)).isoformat() for i in range(n)]
    frames = lake.read_many("drift_report", days)
    return [observation_from_row(f.to_dicts()[0]) for f in frames.values()]


def labelled_rows_since(lake, after: dt.date | None, today: dt.date, first_day: dt.date) -> int:
    """Clean rows labelled as of today whose event day is after ``after`` (the end of the
    champion's training window; None = since the first partition)."""
    start = (after + dt.timedelta(days=1)) if after is not None else first_day
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range((today - start).days + 1)]
    total = 0
    for frame in lake.read_many("validated_window", days).values():
        total += labels_as_of(frame, today).filter(pl.col("label").is_not_null()).height
    return total
