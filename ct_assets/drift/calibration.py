"""Drift thresholds calibrated on the reference itself (pure, no Dagster).

A fixed threshold is tuned on one stream; on another (real text: names, numbers, events)
an ordinary day scores far above it and drift fires on every stable day. So each metric
whose threshold is ``"auto"`` gets one from a *null distribution*: the scores that days
*without* drift get, built from the reference period:

* leave-one-day-out: each reference day is scored against the rest of the reference.
  This captures the real day-to-day variation (news, campaigns, weekdays), which is what
  a stable day after the reference looks like;
* when that gives fewer than ``drift.calibration_samples`` scores (a short reference),
  day-sized random resamples of the reference are added (seeded, so deterministic),
  each scored against the rest. They add sampling noise only, no day effect, so they
  can only make the null narrower than leave-one-day-out: the tail estimate below is
  what keeps a short null honest.

The held-out rows keep only the labels known by the end of their own day, as a current
day's rows do when drift_report scores it (labels arrive late), so the label scores of
the null see as many labels as a real day's. The null is scored with the day's caps
(``drift.sample_rows``, ``drift.max_rows``, both in the cache key), so a large day's
sampled scores are judged against sampled null scores, never against whole-frame ones.

Budget -> threshold (``per_day_flag_rate`` and ``per_metric_alpha``). The drift trigger
fires when ``k`` of the last ``n`` days flag, and a day flags when *any* metric exceeds its
threshold. With a per-day flag probability p on stable days (days taken as independent):

    P(trigger on a day) = P(Binomial(n, p) >= k)      (k=2, n=3: 3p^2(1-p) + p^3 ~ 3p^2)

Setting that to ``false_alarms_per_60_days / 60`` (default 1/60) and solving for p gives,
for k=2, n=3: 3p^2 ~ 1/60 -> p ~ 0.0745 (exactly 0.0765 with the p^3 terms). The p of a
day is split over the m calibrated metrics by Sidak: 1 - p = (1 - alpha)^m, so
alpha = 1 - (1 - p)^(1/m) (m = 6: alpha = 0.0132). Sidak takes the metrics as
independent; JS and PSI measure the same label shift, so the split is conservative (fewer
false flags than budgeted, as measured). Each threshold is the (1 - alpha) quantile of
its null. A null of ~20 scores cannot show a 98.7% quantile (its empirical
quantile is simply its maximum, which a new draw exceeds with probability 1/(N+1) ~ 5%),
so the threshold is ``max(empirical quantile, mean + t * sd * sqrt(1 + 1/N))`` with t
the Student-t (N-1 degrees of freedom) quantile at 1 - alpha: the prediction bound for
one new draw from a normal whose mean and sd are estimated from the same N scores (t and
the sqrt widen it for small N: 2.47 sd at N=20, 3.13 at N=7, against z=2.22). The
empirical quantile is kept as a floor because JS, PSI and OOV are bounded below and
skewed right, where the normal tail can fall below what the null itself showed.

That tail is taken twice and the larger one kept: over the whole null (many scores: the
sampling noise is well estimated) and over the leave-one-day-out scores alone when there
are at least ``MIN_DAY_SCORES`` of them (few scores, but they carry the day-to-day
variation the resamples lack). Measured on the airline tweets (reference Feb 17-19,
1,400 tweets a day): text_auc scores 0.50 +- 0.014 over resamples but 0.53-0.60 left out
by day, so a pooled null alone put the threshold at ~0.55 and flagged ordinary days. With
3 reference days the day tail is wide (t at 2 degrees of freedom: 7 sd): three days
cannot tell a new day from day-to-day variation, and the threshold says so; a week or
more of reference narrows it (7 days: 3.1 sd).

``label_psi`` is a squared-scale divergence (about chi^2 / rows under the null, while
``label_js`` is already a distance, the square root of a divergence), so its tail is
estimated on sqrt(PSI) and squared back. On the raw scale the normal tail sat too low:
on the simulator 4 of the 6 calibrated false flags in 180 stable days were PSI (on the
sqrt scale: 2 flags, none PSI), and on the airline tweets PSI flagged a day whose JS (the
same label shift) stayed below its own threshold.

A null without spread (a closed vocabulary whose OOV is always 0) puts the threshold at
what the reference showed; only a day above it flags (the comparison is strict).

A metric whose null cannot be computed (fewer than ``MIN_NULL_SCORES`` samples with a
score: too few rows or labels) stays uncalibrated: no threshold, it never flags, and its
note says why. An explicit number in ``drift.thresholds`` overrides calibration for that
metric (it then uses no share of the alpha budget; it still gets a p-value).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
from scipy.stats import binom
from scipy.stats import t as student_t

from ct_assets.core.settings import DriftSettings
from ct_assets.drift.scores import METRICS, score_drift

# Bump when the null or the threshold rule changes: cached calibrations of an older rule
# are then never read (the version is part of the cache key).
CALIBRATION_VERSION = 1
# Below this many null scores a sd is not an estimate; better "uncalibrated" than a guess.
MIN_NULL_SCORES = 5
# The day tail needs at least 3 left-out days (t with 2 degrees of freedom); with 2 only the
# pooled tail is used.
MIN_DAY_SCORES = 3
_BISECTION_STEPS = 80  # p to ~1e-24: far below any budget anyone sets
_CONTENT_COLUMNS = ("event_id", "event_ts", "text", "label", "label_ts")
# Metric -> (to the scale the tail is estimated on, and back); monotone, so the empirical
# quantile and the p-values are unchanged by it. PSI is never negative (each term of
# sum (q - p) ln(q / p) is >= 0), so its square root is defined.
TAIL_SCALE = {"label_psi": (np.sqrt, np.square)}


def _same(x):
    return x


@dataclass(frozen=True)
class Threshold:
    """One metric's threshold: the number, where it came from, and its null (if any)."""

    value: float | None  # None: uncalibrated, the metric never flags
    source: str  # "calibrated" | "fixed" | "uncalibrated"
    null: tuple[float, ...] = ()  # null scores, for the p-value
    alpha: float | None = None  # per-metric false-flag rate the value was set for
    note: str | None = None  # why uncalibrated

    def p_value(self, score: float | None) -> float | None:
        return empirical_p_value(self.null, score) if self.null and score is not None else None


def empirical_p_value(null: Sequence[float], score: float) -> float:
    """(1 + #null >= score) / (1 + N): never 0, and 1/(N+1) at best, honest for small N."""
    return (1 + sum(1 for v in null if v >= score)) / (1 + len(null))


def per_day_flag_rate(false_alarms_per_60_days: float, k: int, n: int) -> float:
    """The per-day flag probability p with P(Binomial(n, p) >= k) = budget / 60 (bisection;
    the left side rises with p)."""
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    target = false_alarms_per_60_days / 60
    if not 0 < target <= 1:
        raise ValueError(f"false_alarms_per_60_days must be in (0, 60], got {false_alarms_per_60_days}")
    lo, hi = 0.0, 1.0
    for _ in range(_BISECTION_STEPS):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if binom.sf(k - 1, n, mid) > target else (mid, hi)
    return lo


def per_metric_alpha(per_day_rate: float, metrics: int) -> float:
    """Sidak: m independent metrics each at alpha flag a day with 1 - (1 - alpha)^m."""
    if metrics < 1:
        raise ValueError(f"need at least one calibrated metric, got {metrics}")
    return 1 - (1 - per_day_rate) ** (1 / metrics)


def tail_threshold(null: Sequence[float], alpha: float, *, minimum: int = MIN_NULL_SCORES) -> float:
    """max(empirical 1-alpha quantile, Student-t prediction bound); see the module doc."""
    x = np.asarray(null, dtype=float)
    if x.size < minimum:
        raise ValueError(f"a tail estimate needs >= {minimum} null scores, got {x.size}")
    empirical = float(np.quantile(x, 1 - alpha, method="higher"))
    bound = float(x.mean() + student_t.ppf(1 - alpha, df=x.size - 1) * x.std(ddof=1) * math.sqrt(1 + 1 / x.size))
    return max(empirical, bound)


@dataclass(frozen=True)
class Calibration:
    """The null distribution of every metric on one reference (JSON round-trips)."""

    null: dict[str, list[float]]  # metric -> the null samples that had a score, left-out days first
    day_scores: dict[str, int]  # metric -> how many of its null scores are leave-one-day-out
    samples: int  # null samples drawn
    leave_one_out: int  # of which leave-one-day-out (the rest are resamples)
    reference_days: int
    reference_rows: int
    notes: dict[str, str] = field(default_factory=dict)  # metric -> why no null

    def thresholds(
        self, configured: Mapping[str, float | str], *, false_alarms_per_60_days: float, k: int, n: int
    ) -> dict[str, Threshold]:
        """Each metric's Threshold: explicit numbers stay ("fixed"), ``"auto"`` ones get the
        (1 - alpha) tail of their null, alpha split over the metrics that have one."""
        auto = [m for m in METRICS if configured[m] == "auto"]
        usable = [m for m in auto if len(self.null.get(m, ())) >= MIN_NULL_SCORES]
        p = per_day_flag_rate(false_alarms_per_60_days, k, n)
        alpha = per_metric_alpha(p, len(usable)) if usable else None
        out: dict[str, Threshold] = {}
        for m in METRICS:
            null = tuple(self.null.get(m, ()))
            if m not in auto:
                out[m] = Threshold(float(configured[m]), "fixed", null)
            elif m in usable:
                to_scale, back = TAIL_SCALE.get(m, (_same, _same))
                scaled = to_scale(np.asarray(null, dtype=float))
                value = tail_threshold(scaled, alpha)
                days = self.day_scores.get(m, 0)
                if days >= MIN_DAY_SCORES:
                    value = max(value, tail_threshold(scaled[:days], alpha, minimum=MIN_DAY_SCORES))
                out[m] = Threshold(float(back(value)), "calibrated", null, alpha)
            else:
                why = self.notes.get(m) or f"{len(null)} of {self.samples} null samples had a score"
                out[m] = Threshold(None, "uncalibrated", null, None,
                                   f"uncalibrated ({why}; needs {MIN_NULL_SCORES}), so it does not flag")
        return out

    def summary(self) -> str:
        resampled = self.samples - self.leave_one_out
        return (f"null of {self.samples} samples on {self.reference_days} reference days "
                f"({self.reference_rows} rows): {self.leave_one_out} leave-one-day-out + {resampled} "
                "day-sized resamples")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Calibration:
        return cls(**dict(data))


def same_day_labels(frame: pl.DataFrame) -> pl.DataFrame:
    """Labels known by the end of each row's own event day (as a current day is scored)."""
    end = pl.col("event_ts").dt.truncate("1d") + pl.duration(days=1)
    known = pl.col("label_ts").is_not_null() & (pl.col("label_ts") < end)
    return frame.with_columns(
        pl.when(known).then(pl.col("label")).otherwise(None).alias("label"),
        pl.when(known).then(pl.col("label_ts")).otherwise(None).alias("label_ts"),
    )


def null_splits(
    reference: pl.DataFrame, samples: int, seed: int = 0
) -> tuple[list[tuple[pl.DataFrame, pl.DataFrame]], int]:
    """(rest, held-out) pairs: every day left out once, then day-sized resamples up to
    ``samples`` pairs; and how many are leave-one-day-out."""
    if reference.height == 0:
        return [], 0
    day = pl.col("event_ts").dt.date()
    days = reference.select(day.unique().sort()).to_series().to_list()
    pairs = []
    if len(days) >= 2:
        pairs = [(reference.filter(day != d), reference.filter(day == d)) for d in days]
    loo = len(pairs)
    sizes = reference.group_by(day.alias("_day")).len().get_column("len").to_numpy()
    # A day's rows; with a single reference day half of it, so the rest is not empty.
    size = int(np.median(sizes)) if len(days) >= 2 else reference.height // 2
    ordered = reference.sort(["event_id", "text"], nulls_last=True)  # independent of row order
    for i in range(max(0, samples - loo)):
        if size < 1:
            break
        pick = np.zeros(ordered.height, dtype=bool)
        pick[np.random.default_rng([seed, i]).choice(ordered.height, size, replace=False)] = True
        mask = pl.Series(pick)
        pairs.append((ordered.filter(~mask), ordered.filter(mask)))
    return pairs, loo


def calibrate(reference: pl.DataFrame, *, labels: Sequence[str], drift: DriftSettings, seed: int = 0) -> Calibration:
    """The null distribution of every metric on ``reference`` (see the module doc)."""
    pairs, loo = null_splits(reference, drift.calibration_samples, seed)
    null: dict[str, list[float]] = {m: [] for m in METRICS}
    day_scores = {m: 0 for m in METRICS}
    last_note: dict[str, str] = {}
    for i, (rest, held) in enumerate(pairs):
        result = score_drift(rest, same_day_labels(held), labels=labels, min_rows=drift.min_rows,
                             min_labelled_rows=drift.min_labelled_rows, sample_rows=drift.sample_rows,
                             max_rows=drift.max_rows, seed=seed + i)
        for m in METRICS:
            if result.scores[m] is not None:
                null[m].append(float(result.scores[m]))
                day_scores[m] += i < loo
            elif m in result.notes:
                last_note[m] = result.notes[m]
    days = reference.select(pl.col("event_ts").dt.date().n_unique()).item() if reference.height else 0
    if not pairs:
        notes = {m: "the reference is empty" for m in METRICS}
    else:
        notes = {m: f"{len(null[m])} of {len(pairs)} null samples had a score"
                 + (f", e.g. {last_note[m]}" if m in last_note else "")
                 for m in METRICS if len(null[m]) < MIN_NULL_SCORES}
    return Calibration(null=null, day_scores=day_scores, samples=len(pairs), leave_one_out=loo,
                       reference_days=int(days), reference_rows=reference.height, notes=notes)


def cache_key(reference: pl.DataFrame, *, labels: Sequence[str], drift: DriftSettings, seed: int = 0) -> str:
    """sha256 of the reference's content (rows in a fixed order, labels as given) and of
    every setting the null depends on: a rematerialized partition, a late label or a
    changed setting is a new key, so a cached null is never stale."""
    digest = hashlib.sha256()
    params = {"version": CALIBRATION_VERSION, "labels": list(labels), "seed": seed,
              "min_rows": drift.min_rows, "min_labelled_rows": drift.min_labelled_rows,
              "sample_rows": drift.sample_rows, "max_rows": drift.max_rows,
              "calibration_samples": drift.calibration_samples}
    digest.update(json.dumps(params, sort_keys=True).encode())
    if reference.height:
        rows = reference.select(_CONTENT_COLUMNS).sort(["event_id", "text"], nulls_last=True)
        digest.update(rows.write_csv().encode())
    return digest.hexdigest()


def cached_calibration(
    reference: pl.DataFrame, *, labels: Sequence[str], drift: DriftSettings, cache_dir: Path | None, seed: int = 0
) -> tuple[Calibration, bool]:
    """(calibration, whether it came from the cache): ``<cache_dir>/<key>.json``, written
    atomically (a reader never sees half a file). ``cache_dir=None`` always computes."""
    if cache_dir is None:
        return calibrate(reference, labels=labels, drift=drift, seed=seed), False
    path = Path(cache_dir) / f"{cache_key(reference, labels=labels, drift=drift, seed=seed)}.json"
    if path.exists():
        try:
            return Calibration.from_json(json.loads(path.read_text(encoding="utf-8"))), True
        except (ValueError, TypeError) as err:
            raise ValueError(f"drift calibration cache {path} is unreadable ({err}); delete it to recompute") from err
    calibration = calibrate(reference, labels=labels, drift=drift, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(calibration.to_json(), fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # no half file left behind; the error still propagates
        raise
    return calibration, False
