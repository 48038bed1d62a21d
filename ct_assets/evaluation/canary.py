"""Canary: the challenger's arm against the champion's arm on a day's served traffic (pure).

``ct serve`` answers a share of requests with the challenger (arm ``canary``) and the rest
with the champion (arm ``champion``), and logs each answer as a landing-zone row with the
served columns (docs/CONTRACTS.md, "Served rows"). Served rows are the rows whose ``arm`` is
set; a day without the column had no served traffic. Feedback is the row's own late label,
so accuracy is measured on the labels known by the end of the day (``labels_as_of``), the
same cut every other consumer applies.

The verdict: ``failed`` when, with at least ``MIN_LABELLED`` labelled rows on each arm, the
canary's accuracy is more than ``max_accuracy_drop`` below the champion arm's (the asset then
withdraws the challenger); ``passed`` when it is not; ``insufficient`` when there is no canary
traffic or too little feedback to judge, which neither passes a day nor withdraws anything.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import asdict, dataclass

import polars as pl

from ct_assets.core.time import labels_as_of
from ct_assets.evaluation.shadow import MIN_LABELLED

CANARY, CHAMPION = "canary", "champion"
# What the report reads of a served row (the landing contract's served columns).
SERVED_COLUMNS = ("arm", "served_version", "prediction", "latency_ms", "shadow_version", "shadow_prediction")
PASSED, FAILED, INSUFFICIENT = "passed", "failed", "insufficient"


@dataclass(frozen=True)
class ArmStats:
    rows: int
    versions: tuple[int, ...]
    labelled: int
    accuracy: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None


@dataclass(frozen=True)
class CanaryReport:
    day: dt.date
    canary_version: int | None  # the version the canary arm is judged as (see canary_compare)
    champion: ArmStats
    canary: ArmStats
    agreement: float | None  # canary vs champion prediction, on rows carrying the other's shadow
    agreement_rows: int
    verdict: str
    reason: str

    def row(self) -> dict:
        """Flat columns for the one-row frame canary_report stores."""
        out = {"partition": self.day.isoformat(), "canary_version": self.canary_version, "verdict": self.verdict,
               "reason": self.reason, "agreement": self.agreement, "agreement_rows": self.agreement_rows}
        for arm, stats in ((CHAMPION, self.champion), (CANARY, self.canary)):
            for name, value in asdict(stats).items():
                out[f"{arm}_{name}"] = ",".join(map(str, value)) if name == "versions" else value
        return out


def served_rows(frame: pl.DataFrame, day: dt.date) -> pl.DataFrame | None:
    """The rows ct serve logged (``arm`` set); None when the day has no ``arm`` column."""
    if "arm" not in frame.columns:
        return None
    missing = [c for c in SERVED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"partition {day}: rows carry `arm` but not the served column(s) {missing} "
                         "(docs/CONTRACTS.md, served rows)")
    return frame.filter(pl.col("arm").is_not_null())


def _stats(rows: pl.DataFrame) -> ArmStats:
    if rows.height == 0:
        return ArmStats(0, (), 0, None, None, None)
    labelled = rows.filter(pl.col("label").is_not_null())
    accuracy = float((labelled["prediction"] == labelled["label"]).mean()) if labelled.height else None
    latency = rows["latency_ms"].drop_nulls().cast(pl.Float64)
    p50, p99 = ((round(float(latency.quantile(q, "linear")), 3) for q in (0.5, 0.99)) if latency.len()
                else (None, None))
    return ArmStats(rows.height, tuple(sorted(set(rows["served_version"].drop_nulls().to_list()))),
                    labelled.height, None if accuracy is None else round(accuracy, 4), p50, p99)


def _canary_version(canary: pl.DataFrame, challenger: int | None) -> int | None:
    versions = Counter(canary["served_version"].drop_nulls().to_list())
    if challenger in versions or not versions:
        return challenger if versions else None
    # The challenger served no canary traffic that day: judge the version that served most
    # (ties: the newer), so the report still says how that arm did; it cannot count.
    return max(versions, key=lambda v: (versions[v], v))


def _agreement(served: pl.DataFrame, canary_version: int | None, champion_versions: tuple[int, ...]) -> tuple:
    """Agreement on rows that carry the other arm's model as their shadow, and how many."""
    if canary_version is None:
        return None, 0
    other = pl.col("shadow_version").cast(pl.Int64, strict=False)
    pairs = served.filter(
        pl.col("shadow_prediction").is_not_null()
        & (((pl.col("arm") == CHAMPION) & (other == canary_version))
           | ((pl.col("arm") == CANARY) & (pl.col("served_version") == canary_version)
              & other.is_in(list(champion_versions)))))
    if pairs.height == 0:
        return None, 0
    return round(float((pairs["prediction"] == pairs["shadow_prediction"]).mean()), 4), pairs.height


def canary_compare(frame: pl.DataFrame, day: dt.date, *, challenger: int | None, max_accuracy_drop: float,
                   min_labelled: int = MIN_LABELLED) -> CanaryReport:
    """The day's canary report from its validated rows (served rows only are read).

    The canary arm is judged as one version: ``challenger`` when it served canary traffic
    that day, else the version that served most of it (a day the challenger changed).
    """
    served = served_rows(frame, day)
    if served is None:
        return blocked_report(day, "no served traffic on this day")
    served = labels_as_of(served, day)
    champion_rows = served.filter(pl.col("arm") == CHAMPION)
    version = _canary_version(served.filter(pl.col("arm") == CANARY), challenger)
    # No canary version (no canary rows): no row is the canary's (a null comparison would warn).
    is_version = pl.col("served_version") == version if version is not None else pl.lit(False)
    canary_rows = served.filter((pl.col("arm") == CANARY) & is_version)
    champ, can = _stats(champion_rows), _stats(canary_rows)
    agreement, agreement_rows = _agreement(served, version, champ.versions)
    verdict, reason = _verdict(champ, can, version, max_accuracy_drop, min_labelled)
    return CanaryReport(day, version, champ, can, agreement, agreement_rows, verdict, reason)


def blocked_report(day: dt.date, reason: str) -> CanaryReport:
    """A day with nothing to judge (no served rows, or its validated rows were blocked)."""
    empty = ArmStats(0, (), 0, None, None, None)
    return CanaryReport(day, None, empty, empty, None, 0, INSUFFICIENT, reason)


def _verdict(champ: ArmStats, can: ArmStats, version: int | None, drop: float, min_labelled: int) -> tuple[str, str]:
    if can.rows == 0:
        return INSUFFICIENT, "no canary traffic on this day"
    if champ.rows == 0:
        return INSUFFICIENT, f"canary v{version} served {can.rows} rows but the champion arm none: nothing to compare"
    if can.labelled < min_labelled or champ.labelled < min_labelled:
        return INSUFFICIENT, (f"too little feedback: {can.labelled} labelled canary rows and {champ.labelled} "
                              f"labelled champion rows (>= {min_labelled} on each arm to judge)")
    failed = can.accuracy < champ.accuracy - drop
    figures = (f"canary v{version} accuracy {can.accuracy:.3f} {'<' if failed else '>='} champion "
               f"{champ.accuracy:.3f} - {drop} on {can.labelled} and {champ.labelled} labelled rows")
    return (FAILED, f"{figures} (max_canary_accuracy_drop)") if failed else (PASSED, figures)


def canary_counts(report: CanaryReport, *, challenger: int | None, window_end: dt.date | None) -> bool:
    """Whether the day can count towards canary_days: the canary served the current challenger,
    after its training window (its own training days say nothing about new data)."""
    return (challenger is not None and report.canary_version == challenger and window_end is not None
            and report.day > window_end)
