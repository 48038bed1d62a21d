"""The contracts every stage shares, each stated once (pure, no Dagster).

- the landing row contract and the raw frame (docs/CONTRACTS.md);
- the clean frame that validated_window writes and training reads;
- the drift metric names, and the drift_report row: its writer and its one reader;
- the Dagster run tag keys that carry a run's story (trigger, reason, training).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

# -- landing row contract / raw frame --------------------------------------------------
REQUIRED_COLUMNS: tuple[str, ...] = ("event_id", "event_ts", "text", "label", "label_ts")
STRING_COLUMNS: tuple[str, ...] = ("event_id", "text", "label")
TIMESTAMP_COLUMNS: tuple[str, ...] = ("event_ts", "label_ts")
TS = pl.Datetime("us", "UTC")
# The five contract columns with their types: the core of every frame after the reader.
CONTRACT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.Utf8(),
    "event_ts": TS,
    "text": pl.Utf8(),
    "label": pl.Utf8(),
    "label_ts": TS,
}
# Reader bookkeeping: where a row came from and what it looked like before coercion.
SOURCE_COLUMNS: tuple[str, ...] = ("_source_file", "_line")
RAW_SCHEMA: dict[str, pl.DataType] = {
    **CONTRACT_SCHEMA,
    "_raw_event_ts": pl.Utf8(),
    "_raw_label_ts": pl.Utf8(),
    "_source_file": pl.Utf8(),
    "_line": pl.Int64(),
    "_type_errors": pl.Utf8(),
}

# -- clean frame (validated_window) ----------------------------------------------------
# Leading columns, in this order; the extras of the landing files follow untouched.
CLEAN_COLUMNS: tuple[str, ...] = (*CONTRACT_SCHEMA, *SOURCE_COLUMNS)

# -- drift ---------------------------------------------------------------------------------
# Order is the tie-break when two metrics are equally "dominant" in a trigger reason.
DRIFT_METRICS: tuple[str, ...] = ("label_js", "label_psi", "length_ks", "oov_rate", "text_auc", "concept_shift")
METRIC_SHORT_NAMES: dict[str, str] = {
    "label_js": "JS",
    "label_psi": "PSI",
    "length_ks": "length KS",
    "oov_rate": "OOV",
    "text_auc": "text AUC",
    "concept_shift": "concept shift",
}
_SCORE, _FLAG, _THRESHOLD, _PVALUE = "score_", "flag_", "threshold_", "pvalue_"

# -- Dagster run tags ------------------------------------------------------------------
TRIGGER_TAG = "ct/trigger"
REASON_TAG = "ct/reason"
TRAINING_TAG = "ct/training"  # "true" on every retrain: the concurrency limit keys on it
MANUAL = "manual"


def run_story(tags: Mapping[str, str]) -> tuple[str, str]:
    """(trigger, reason) of a run. Our sensors, schedule, jobs and CLI tag their runs; a run
    they did not tag is told from Dagster's own tags: a backfill, an automation sensor's
    request, or else a person's launch from the UI or CLI."""
    if TRIGGER_TAG in tags:
        return tags[TRIGGER_TAG], tags.get(REASON_TAG, "")
    if "dagster/backfill" in tags:
        return MANUAL, f"backfill {tags['dagster/backfill']} launched from the UI or CLI"
    if "dagster/sensor_name" in tags:
        return "automation", f"requested by {tags['dagster/sensor_name']}"
    if "dagster/schedule_name" in tags:
        return "schedule", f"requested by {tags['dagster/schedule_name']}"
    return MANUAL, "materialized from the Dagster UI or CLI"


def drift_columns(
    scores: Mapping[str, float | None],
    flags: Mapping[str, bool],
    thresholds: Mapping[str, float | None] | None = None,
    p_values: Mapping[str, float | None] | None = None,
) -> dict:
    """The score_/flag_/threshold_/pvalue_ columns of a drift_report row. A threshold is
    the one the day was judged by (calibrated thresholds move with the reference, so a
    reader must not assume today's settings); None = uncalibrated, it did not flag."""
    return {
        **{_SCORE + k: v for k, v in scores.items()},
        **{_FLAG + k: bool(v) for k, v in flags.items()},
        **{_THRESHOLD + k: (None if v is None else float(v)) for k, v in (thresholds or {}).items()},
        **{_PVALUE + k: (None if v is None else float(v)) for k, v in (p_values or {}).items()},
    }


@dataclass(frozen=True)
class DayObservation:
    """One drift_report row as the triggers, the replay and the demo read it."""

    day: dt.date
    scores: dict[str, float | None]
    flags: dict[str, bool]
    champion_accuracy: float | None
    champion_labelled_rows: int
    champion_estimated_accuracy: float | None
    verdict: str = ""
    # The thresholds the day was judged by (empty for rows written before they were kept).
    thresholds: dict[str, float | None] = field(default_factory=dict)

    @property
    def drifted(self) -> bool:
        return any(self.flags.values())

    @property
    def drifted_metrics(self) -> list[str]:
        return [m for m, flagged in self.flags.items() if flagged]

    @classmethod
    def from_row(cls, row: Mapping) -> "DayObservation":
        return cls(
            day=dt.date.fromisoformat(row["partition"]),
            scores={k.removeprefix(_SCORE): v for k, v in row.items() if k.startswith(_SCORE)},
            flags={k.removeprefix(_FLAG): bool(v) for k, v in row.items() if k.startswith(_FLAG)},
            champion_accuracy=row.get("champion_accuracy"),
            champion_labelled_rows=int(row.get("champion_labelled_rows") or 0),
            champion_estimated_accuracy=row.get("champion_estimated_accuracy"),
            verdict=row.get("verdict") or "",
            thresholds={k.removeprefix(_THRESHOLD): v for k, v in row.items() if k.startswith(_THRESHOLD)},
        )

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> "DayObservation":
        if frame.height != 1:
            raise ValueError(f"a drift_report partition holds one row, got {frame.height}")
        return cls.from_row(frame.to_dicts()[0])
