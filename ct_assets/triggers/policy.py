"""Retraining trigger decisions as pure functions (no Dagster), so sensors stay thin.

Each ``*_request`` function looks at one cause (drift, accuracy, data volume, staleness,
the weekly schedule) and returns a :class:`TriggerRequest` or ``None``. A request carries
a human sentence (``reason``, shown as the ``ct/reason`` run tag) and a deterministic
``run_key`` built from the *cause*, not the clock: Dagster drops a second RunRequest
with a run_key it has already seen, so re-evaluating a sensor on the same evidence can
never launch a second retrain. :func:`choose_request` then applies the policy, the
cooldown, the in-flight cap and a fixed priority, and says why everything it did not
pick was skipped. It is the one arbiter: every sensor, the schedule and the replay call it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from ct_assets.core.schema import (
    DRIFT_METRICS,
    MANUAL,
    METRIC_SHORT_NAMES,
    REASON_TAG,
    TRAINING_TAG,
    TRIGGER_TAG,
    DayObservation,
)

TRIGGERS: tuple[str, ...] = ("schedule", "drift", "accuracy", "volume", "freshness", "manual")
# A fast-moving quality problem outranks a statistical warning, which outranks the slow
# causes; manual (a human asked) outranks everything. Only the label of the run changes:
# whichever cause wins, the same chain retrains.
PRIORITY: tuple[str, ...] = ("manual", "accuracy", "drift", "freshness", "volume", "schedule")

POLICY_TRIGGERS: dict[str, frozenset[str]] = {
    "static": frozenset(),
    "weekly": frozenset({"schedule"}),
    "drift": frozenset({"drift", "accuracy"}),
    "volume": frozenset({"volume"}),
    "combined": frozenset({"schedule", "drift", "accuracy", "volume", "freshness"}),
}

DEFAULT_SCHEDULE_REASON = "weekly retrain (Sunday 23:00 UTC)"


@dataclass(frozen=True)
class TriggerRequest:
    trigger: str
    reason: str
    partition_key: str
    run_key: str

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {self.trigger!r}; expected one of {list(TRIGGERS)}")

    @property
    def tags(self) -> dict[str, str]:
        return {TRIGGER_TAG: self.trigger, REASON_TAG: self.reason, TRAINING_TAG: "true"}


def _recent(observations: Sequence[DayObservation], today: dt.date, n: int) -> list[DayObservation]:
    """The n latest observed days on or before today, oldest first (one per day)."""
    by_day = {o.day: o for o in observations if o.day <= today}  # last one wins on duplicates
    return [by_day[d] for d in sorted(by_day)[-n:]]


def _value_vs_limit(value: float | None, limit: float | None) -> str:
    """Render "0.21 > 0.10"; one more decimal where two would print "0.08 > 0.08"."""
    if value is None:
        return "n/a"
    if limit is None:
        return f"{value:.2f}"
    digits = 3 if f"{value:.2f}" == f"{limit:.2f}" else 2
    return f"{value:.{digits}f} > {limit:.{digits}f}"


NO_CHAMPION = ("no champion yet: train the first model with `ct bootstrap` (the model group for the newest "
               "drift-checked day), or run `ct demo`")


def _drift_window(observations: Sequence[DayObservation], *, k: int, n: int, today: dt.date,
                  after: dt.date | None) -> tuple[list[DayObservation], list[DayObservation]]:
    """(the last n observed days after ``after``, those of them with a drift flag)."""
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    window = _recent([o for o in observations if after is None or o.day > after], today, n)
    return window, [o for o in window if o.drifted]


def drift_request(
    observations: Sequence[DayObservation],
    *,
    k: int,
    n: int,
    today: dt.date,
    after: dt.date | None = None,
) -> TriggerRequest | None:
    """Fire when at least k of the last n observed days carry any drift flag.

    ``after`` (optional, e.g. the champion's training-window end) ignores days the
    champion was already trained on: otherwise a persistent shift against a fixed
    reference would re-trigger after every retrain, spaced only by the cooldown.
    The reason quotes each value beside the threshold *that day* was judged by (recorded
    in its drift_report row): calibrated thresholds move with the reference, and the
    settings may only say "auto".
    """
    window, flagged = _drift_window(observations, k=k, n=n, today=today, after=after)
    if len(flagged) < k:
        return None
    # Dominant metric: flagged on the most days; ties go to the larger latest excess
    # over its threshold, then to DRIFT_METRICS order.
    names = {m for o in flagged for m, f in o.flags.items() if f}
    metrics = [m for m in DRIFT_METRICS if m in names] + sorted(names - set(DRIFT_METRICS))
    count_of = {m: sum(bool(o.flags.get(m)) for o in flagged) for m in metrics}

    def latest(metric: str) -> tuple[float | None, float | None]:
        """(value, that day's threshold) on the latest day the metric flagged with a value."""
        days = [o for o in flagged if o.flags.get(metric) and o.scores.get(metric) is not None]
        return (days[-1].scores[metric], days[-1].thresholds.get(metric)) if days else (None, None)

    def excess(metric: str) -> float:
        value, limit = latest(metric)
        return value / limit if value is not None and limit else 0.0

    dominant = max(metrics, key=lambda m: (count_of[m], excess(m), -metrics.index(m)))
    name = METRIC_SHORT_NAMES.get(dominant, dominant)
    shown = _value_vs_limit(*latest(dominant))
    reason = f"drift {name}={shown} on {len(flagged)} of the last {len(window)} days"
    others = [METRIC_SHORT_NAMES.get(m, m) for m in metrics if m != dominant]
    if others:
        reason += f" (also {', '.join(others)})"
    days = ",".join(o.day.isoformat() for o in flagged)
    return TriggerRequest("drift", reason, today.isoformat(), f"drift:{days}")


def accuracy_request(
    observations: Sequence[DayObservation],
    *,
    min_accuracy: float,
    use_estimated: bool,
    min_labelled_rows: int = 30,
    today: dt.date,
) -> TriggerRequest | None:
    """Fire when the latest day's accuracy is below min_accuracy.

    Measured accuracy wins when the day has enough labelled rows; a handful of labels
    is noisier than the confidence-based estimate, so below min_labelled_rows the
    label-free estimate is used instead (when allowed).
    """
    window = _recent(observations, today, 1)
    if not window:
        return None
    latest = window[0]
    day = latest.day.isoformat()
    # One key per day whichever figure fired: when late labels turn an estimate into a
    # measurement for the same day, that is the same cause, not a new one.
    run_key = f"accuracy:{day}"
    measured = latest.champion_accuracy
    if measured is not None and latest.champion_labelled_rows >= min_labelled_rows:
        if measured >= min_accuracy:
            return None
        reason = (
            f"accuracy {measured:.2f} < {min_accuracy:.2f} on "
            f"{latest.champion_labelled_rows} labelled rows of {day}"
        )
        return TriggerRequest("accuracy", reason, today.isoformat(), run_key)
    estimate = latest.champion_estimated_accuracy
    if not use_estimated or estimate is None or estimate >= min_accuracy:
        return None
    reason = f"estimated accuracy (label-free) {estimate:.2f} < {min_accuracy:.2f} on {day}"
    return TriggerRequest("accuracy", reason, today.isoformat(), run_key)


def _window_key(window_end: dt.date | None) -> str:
    # No champion yet: one bootstrap key, so the very first model is requested once.
    return window_end.isoformat() if window_end is not None else "no-champion"


def volume_request(
    rows_since_window_end: int,
    *,
    volume_rows: int,
    window_end: dt.date | None,
    today: dt.date,
) -> TriggerRequest | None:
    """Fire when more than volume_rows clean labelled rows arrived after the champion's window.

    Keyed on window_end: one request per champion window; a new champion (new window
    end) re-arms it. A candidate that is trained but not promoted does not re-arm it.
    """
    if rows_since_window_end <= volume_rows:
        return None
    if window_end is not None:
        since = f"since {window_end.isoformat()} (end of the champion's training window)"
    else:
        since = "with no champion yet"
    reason = f"{rows_since_window_end:,} clean labelled rows {since} > {volume_rows:,}"
    return TriggerRequest("volume", reason, today.isoformat(), f"volume:{_window_key(window_end)}")


def staleness_request(
    days_since_window_end: int | None,
    *,
    staleness_days: int,
    window_end: dt.date | None,
    today: dt.date,
) -> TriggerRequest | None:
    """Fire when the champion's newest training data is more than staleness_days old.

    Staleness is counted in days of data (partitions), not wall-clock time, so a
    backfill or replay ages the champion exactly as production would. ``None`` means
    no champion: nothing is stale, the first training is someone else's job.
    """
    if days_since_window_end is None or days_since_window_end <= staleness_days:
        return None
    end = window_end.isoformat() if window_end is not None else "an unknown day"
    reason = (
        f"champion trained on data up to {end}: {days_since_window_end} days of newer data "
        f"> {staleness_days}"
    )
    return TriggerRequest("freshness", reason, today.isoformat(), f"freshness:{_window_key(window_end)}")


def schedule_request(today: dt.date, reason: str = DEFAULT_SCHEDULE_REASON) -> TriggerRequest:
    return TriggerRequest("schedule", reason, today.isoformat(), f"schedule:{today.isoformat()}")


def cooldown_blocks(last_training_day: dt.date | None, today: dt.date, cooldown_days: int) -> str | None:
    """The reason a retrain is blocked by the cooldown, or None when it may go ahead."""
    if last_training_day is None or cooldown_days <= 0:
        return None
    elapsed = (today - last_training_day).days
    if elapsed >= cooldown_days:
        return None
    return (
        f"cooldown: last training run on {last_training_day.isoformat()}, "
        f"{elapsed} day(s) ago < {cooldown_days} days"
    )


def choose_request(
    candidates: Sequence[TriggerRequest | None],
    *,
    policy: str,
    last_training_day: dt.date | None,
    today: dt.date,
    cooldown_days: int,
    in_flight: int = 0,
    max_in_flight: int | None = None,
) -> tuple[TriggerRequest | None, list[str]]:
    """Pick at most one request; return it with one sentence per candidate not picked.

    In order: the policy (manual requests are exempt: a human asked), the cooldown and
    the in-flight cap (which bind manual requests too, so a click cannot pile runs onto a
    running one), then PRIORITY among what is left.
    """
    if policy not in POLICY_TRIGGERS:
        raise ValueError(f"unknown policy {policy!r}; expected one of {sorted(POLICY_TRIGGERS)}")
    enabled = POLICY_TRIGGERS[policy] | {MANUAL}
    present = sorted((c for c in candidates if c is not None), key=lambda c: PRIORITY.index(c.trigger))
    skipped: list[str] = []
    allowed: list[TriggerRequest] = []
    for c in present:
        if c.trigger in enabled:
            allowed.append(c)
        else:
            skipped.append(f"{c.trigger}: {c.reason} (skipped: policy '{policy}' does not use {c.trigger})")
    if not allowed:
        return None, skipped
    blocked = cooldown_blocks(last_training_day, today, cooldown_days)
    if blocked is None and max_in_flight is not None and in_flight >= max_in_flight:
        blocked = f"{in_flight} training run(s) in flight, at the cap of {max_in_flight}"
    if blocked is not None:
        skipped += [f"{c.trigger}: {c.reason} (skipped: {blocked})" for c in allowed]
        return None, skipped
    chosen, rest = allowed[0], allowed[1:]
    skipped += [f"{c.trigger}: {c.reason} (skipped: {chosen.trigger} has priority)" for c in rest]
    return chosen, skipped


# Why a cause did not fire, in the figures it was judged by: the SkipReason a person reads
# in the UI. Each mirrors the *_request function of the same cause.


def drift_skip_reason(observations: Sequence[DayObservation], *, k: int, n: int, today: dt.date,
                      after: dt.date | None = None) -> str:
    """E.g. "drift on 1 of the last 3 days (need 2): oov_rate, text_auc on 2026-11-30"."""
    window, flagged = _drift_window(observations, k=k, n=n, today=today, after=after)
    since = f" after the champion's window (ended {after.isoformat()})" if after is not None else ""
    if not window:
        return f"no drift report{since} up to {today.isoformat()}"
    counted = f"{len(flagged)} of the last {len(window)} days{since} (need {k})"
    if not flagged:
        return f"drift on {counted}"
    days = "; ".join(f"{', '.join(sorted(m for m, f in o.flags.items() if f))} on {o.day.isoformat()}"
                     for o in flagged)
    return f"drift on {counted}: {days}"


def accuracy_skip_reason(observations: Sequence[DayObservation], *, min_accuracy: float, use_estimated: bool,
                         min_labelled_rows: int = 30, today: dt.date) -> str:
    """The figure accuracy_request judged (measured, or the estimate) against min_accuracy."""
    window = _recent(observations, today, 1)
    if not window:
        return f"no drift report up to {today.isoformat()}"
    latest = window[0]
    day, rows = latest.day.isoformat(), latest.champion_labelled_rows
    measured, estimate = latest.champion_accuracy, latest.champion_estimated_accuracy
    if measured is not None and rows >= min_labelled_rows:
        return f"accuracy {measured:.2f} >= {min_accuracy:.2f} on {rows} labelled rows of {day}"
    few = f"{rows} labelled rows < {min_labelled_rows}"
    if not use_estimated:
        return f"no accuracy for {day}: {few} and the label-free estimate is off"
    if estimate is None:
        return f"no accuracy for {day}: {few} and no label-free estimate"
    return f"estimated accuracy (label-free) {estimate:.2f} >= {min_accuracy:.2f} on {day} ({few})"


def volume_skip_reason(rows_since_window_end: int, *, volume_rows: int, window_end: dt.date | None) -> str:
    """E.g. "3,210 new labelled rows since 2026-11-18 <= 10,000"."""
    if window_end is None:
        return f"{NO_CHAMPION}; {rows_since_window_end:,} labelled rows so far <= {volume_rows:,}"
    return f"{rows_since_window_end:,} new labelled rows since {window_end.isoformat()} <= {volume_rows:,}"


def staleness_skip_reason(days_since_window_end: int | None, *, staleness_days: int,
                          window_end: dt.date | None) -> str:
    """E.g. "12 days of data since the champion's window ended 2026-11-18 <= 14"."""
    if days_since_window_end is None or window_end is None:
        return NO_CHAMPION
    return (f"{days_since_window_end} days of data since the champion's window ended "
            f"{window_end.isoformat()} <= {staleness_days}")
