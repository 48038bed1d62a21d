"""Drift thresholds calibrated on the reference vs the old fixed ones: false alarms and
detection delay, on the simulator and on real tweets.

    python -m bench.drift_calibration [--tiny] [--out bench/results]

Every day is scored once, as drift_report scores it (``ct_assets.drift.daily.drift_of_day``:
landing file -> read_landing_day -> split_rows -> labels as of the day -> calibrated
thresholds, cached per reference content), and judged twice on the same scores: by the
calibrated thresholds (``drift.thresholds: auto``, ``false_alarms_per_60_days`` 1) and by
the old fixed ones (FIXED). So the two columns differ only in the thresholds.

* verdict level: a day flags when any metric is above its threshold;
* trigger level: the drift trigger's rule, ``drift_k`` of the last ``drift_n`` days flag
  (2 of 3), counted on every day it holds (an upper bound on distinct retrains: the
  trigger's run_key dedupes a repeat on the same flagged days).

Simulator (``ct_assets.sim``, the demo's 200 rows a day, same-day labels only as in
drift_report): a 7-day reference, then a long stable stream for false alarms, and each
scenario alone starting on day 10 (3 stable days after the reference) for the detection
delay (days from the scenario's first day to its first flag / first trigger; 0 = same
day). Real: the US airline tweets of February 2015 (Feb 17-21 ordinary, Feb 22-23 a
winter-storm shift), the full file and the 200-a-day test fixture. The reference stays
fixed (no retrain moves it), which is what a false-alarm count needs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

from bench.common import REPO, machine_info, write_result

NAME = "drift_calibration"
FIXED = {"label_js": 0.15, "label_psi": 0.25, "length_ks": 0.2, "oov_rate": 0.08, "text_auc": 0.75,
         "concept_shift": 0.18}
# name -> last day offset from its start (None: stays on); label_shift lasts 5 days as in the demo.
SCENARIOS = {"product_launch": None, "slang_shift": None, "label_shift": 4, "concept_change": None}
SIM_LABELS = ("billing", "refund", "shipping", "account_access", "technical_issue", "cancellation")
FULL = {"seeds": (7, 8, 9), "stable_days": 60, "scenario_days": 14, "rows_per_day": 200, "tweets": True}
TINY = {"seeds": (7,), "stable_days": 6, "scenario_days": 3, "rows_per_day": 120, "tweets": False}
REFERENCE_DAYS = 7
SCENARIO_START = 10
SIM_START = dt.date(2026, 9, 1)
TWEETS = Path("/work/shared/data/airline-tweets-2015/Tweets.csv")
FIXTURE = REPO / "ct_assets_tests" / "fixtures" / "airline_tweets_2015" / "tweets_sample.csv"
TWEET_LABELS = ("negative", "neutral", "positive")
K, N = 2, 3


def _settings(labels, start: dt.date, ref_end: dt.date):
    from ct_assets.core.settings import Settings

    return Settings.model_validate({
        "labels": list(labels), "partitions": {"start_date": start.isoformat()},
        "reference": {"start": start.isoformat(), "end": ref_end.isoformat()},
        "triggers": {"drift_k": K, "drift_n": N},
    })


class Stream:
    """Days of one landing zone through the ingest path, scored as drift_report does."""

    def __init__(self, landing: Path, settings, cache: Path):
        self.landing, self.settings, self.cache = landing, settings, cache
        self._days: dict[dt.date, object] = {}

    def day(self, day: dt.date):
        from ct_assets.ingest.contract import read_landing_day
        from ct_assets.ingest.quality import split_rows

        if day not in self._days:
            q = self.settings.quality
            self._days[day] = split_rows(read_landing_day(self.landing, day).frame, day=day,
                                         labels=list(self.settings.labels), max_text_chars=q.max_text_chars,
                                         reject_text_chars=q.reject_text_chars, mask_emails=q.mask_emails,
                                         mask_phones=q.mask_phones)
        return self._days[day]

    def judge(self, day: dt.date, reference_days: list[dt.date]) -> dict:
        from ct_assets.core.time import labels_as_of
        from ct_assets.drift.daily import drift_of_day

        ref = labels_as_of(pl.concat([self.day(d).clean for d in reference_days], how="diagonal_relaxed"), day)
        today = self.day(day)
        result = drift_of_day(ref, labels_as_of(today.clean, day), quarantine=today.quarantine, day=day,
                              labels=list(self.settings.labels), drift=self.settings.drift, k=K, n=N,
                              cache_dir=self.cache)
        fixed = [m for m, limit in FIXED.items() if result.scores[m] is not None and result.scores[m] > limit]
        return {"day": day.isoformat(), "calibrated": result.drifted_metrics, "fixed": fixed,
                "scores": {m: result.scores[m] for m in FIXED}, "thresholds": result.thresholds}


def trigger_days(flagged: list[bool], k: int = K, n: int = N) -> list[bool]:
    """Whether the k-of-n rule holds on each day (only days of this stretch count)."""
    return [sum(flagged[max(0, i - n + 1):i + 1]) >= k for i in range(len(flagged))]


def _first(values: list[bool]) -> int | None:
    return next((i for i, v in enumerate(values) if v), None)


def sim_run(seed: int, scenario: str | None, days: int, rows: int, work: Path) -> list[dict]:
    from ct_assets.sim.simulator import Scenario, SimulatorConfig, write_day

    labels = SIM_LABELS
    scenarios = ()
    if scenario is not None:
        length = SCENARIOS[scenario]
        scenarios = (Scenario(scenario, SCENARIO_START, None if length is None else SCENARIO_START + length),)
    config = SimulatorConfig(labels=labels, seed=seed, rows_per_day=rows, scenarios=scenarios)
    landing = work / f"{seed}-{scenario or 'stable'}"
    all_days = [SIM_START + dt.timedelta(days=i) for i in range(REFERENCE_DAYS + days)]
    for d in all_days:
        write_day(config, SIM_START, d, landing)
    ref = all_days[:REFERENCE_DAYS]
    stream = Stream(landing, _settings(labels, SIM_START, ref[-1]), work / "cache")
    return [stream.judge(d, ref) for d in all_days[REFERENCE_DAYS:]]


def summarize_stable(runs: list[list[dict]]) -> dict:
    out = {}
    days = sum(len(r) for r in runs)
    for kind in ("calibrated", "fixed"):
        flagged = [[bool(d[kind]) for d in r] for r in runs]
        fired = sum(sum(trigger_days(f)) for f in flagged)
        per_metric: dict[str, int] = {}
        for r in runs:
            for d in r:
                for m in d[kind]:
                    per_metric[m] = per_metric.get(m, 0) + 1
        out[kind] = {"flagged_days": sum(map(sum, flagged)), "trigger_days": fired, "days": days,
                     "verdict_per_60": 60 * sum(map(sum, flagged)) / days, "trigger_per_60": 60 * fired / days,
                     "per_metric": per_metric}
    return out


def summarize_scenario(runs: list[list[dict]]) -> dict:
    out = {}
    before = SCENARIO_START - REFERENCE_DAYS  # evaluated days before the scenario starts
    for kind in ("calibrated", "fixed"):
        flags = [[bool(d[kind]) for d in r] for r in runs]
        out[kind] = {
            "flag_delay": [_first(f[before:]) for f in flags],
            "trigger_delay": [_first(trigger_days(f)[before:]) for f in flags],
            "pre_start_flags": sum(sum(f[:before]) for f in flags),
            "metrics": sorted({m for r in runs for d in r[before:] for m in d[kind]}),
        }
    return out


def write_tweets(source: Path, landing: Path) -> list[dt.date]:
    """The tweets as contract files, one CSV per day (label known when tweeted)."""
    raw = pl.read_csv(source, infer_schema=False)
    ts = pl.col("tweet_created").str.to_datetime("%m/%d/%Y %H:%M", time_zone="UTC")
    rows = raw.select(pl.col("tweet_id").alias("event_id"), ts.alias("ts"), "text",
                      pl.col("airline_sentiment").alias("label"))
    days = sorted(rows.get_column("ts").dt.date().unique().to_list())
    for d in days:
        part = rows.filter(pl.col("ts").dt.date() == d)
        iso = pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S+00:00")
        out = landing / f"dt={d.isoformat()}"
        out.mkdir(parents=True, exist_ok=True)
        part.select("event_id", iso.alias("event_ts"), "text", "label", iso.alias("label_ts")).write_csv(
            out / "tweets.csv")
    return days


def tweets_run(source: Path, work: Path, reference: tuple[int, int]) -> list[dict]:
    landing = work / f"tweets-{source.stem}"
    if not landing.exists():
        write_tweets(source, landing)
    ref = [dt.date(2015, 2, d) for d in range(reference[0], reference[1] + 1)]
    evaluated = [dt.date(2015, 2, d) for d in range(reference[1] + 1, 25)]
    stream = Stream(landing, _settings(TWEET_LABELS, ref[0], ref[-1]), work / "cache")
    return [stream.judge(d, ref) for d in evaluated]


def run(tiny: bool) -> dict:
    size = TINY if tiny else FULL
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_drift_") as tmp:
        work = Path(tmp)
        stable = [sim_run(s, None, size["stable_days"], size["rows_per_day"], work) for s in size["seeds"]]
        log(f"stable streams done in {time.perf_counter() - t0:.0f} s")
        scenario_days = SCENARIO_START - REFERENCE_DAYS + size["scenario_days"]
        scenarios = {}
        for name in SCENARIOS:
            runs = [sim_run(s, name, scenario_days, size["rows_per_day"], work) for s in size["seeds"]]
            scenarios[name] = summarize_scenario(runs)
            log(f"{name} done at {time.perf_counter() - t0:.0f} s")
        tweets = {}
        if size["tweets"]:
            for label, source, ref in (("full, reference Feb 17-19", TWEETS, (17, 19)),
                                       ("full, reference Feb 17-20", TWEETS, (17, 20)),
                                       ("fixture (200/day), reference Feb 17-19", FIXTURE, (17, 19))):
                tweets[label] = tweets_run(source, work, ref)
                log(f"tweets {label} done at {time.perf_counter() - t0:.0f} s")
    return {"name": NAME, "tiny": tiny, "size": {k: list(v) if isinstance(v, tuple) else v for k, v in size.items()},
            "stable": summarize_stable(stable), "stable_thresholds": [r[-1]["thresholds"] for r in stable],
            "scenarios": scenarios, "tweets": tweets, "seconds": round(time.perf_counter() - t0, 1),
            "machine": machine_info()}


def log(message: str) -> None:
    print(f"[drift_calibration] {message}", file=sys.stderr, flush=True)


def _delays(values: list[int | None]) -> str:
    return ", ".join("-" if v is None else str(v) for v in values)


def markdown(result: dict) -> str:
    st, size = result["stable"], result["size"]
    stable_head = (f"Simulator, {size['rows_per_day']} rows a day, 7-day reference, {len(size['seeds'])} seeds x "
                   f"{size['stable_days']} stable days ({st['calibrated']['days']} days):")
    lines = [stable_head, "",
             ("| thresholds | flagged days | per 60 days (verdict) | trigger days (2 of 3) | per 60 days (trigger) "
              "| flags by metric |"),
             "|---|---|---|---|---|---|"]
    for kind in ("calibrated", "fixed"):
        s = st[kind]
        by = ", ".join(f"{m} {n}" for m, n in sorted(s["per_metric"].items())) or "-"
        lines.append(f"| {kind} | {s['flagged_days']} | {s['verdict_per_60']:.2f} | {s['trigger_days']} "
                     f"| {s['trigger_per_60']:.2f} | {by} |")
    delay_head = (f"Detection delay in days from the scenario's first day, one value per seed (- = not within "
                  f"{size['scenario_days']} days); flags on the 3 stable days before it in brackets:")
    lines += ["", delay_head, "",
              ("| scenario | calibrated: first flag | calibrated: first trigger | fixed: first flag "
               "| fixed: first trigger | metrics that flagged (calibrated / fixed) |"),
              "|---|---|---|---|---|---|"]
    for name, s in result["scenarios"].items():
        c, f = s["calibrated"], s["fixed"]
        lines.append(f"| {name} | {_delays(c['flag_delay'])} [{c['pre_start_flags']}] | {_delays(c['trigger_delay'])} "
                     f"| {_delays(f['flag_delay'])} [{f['pre_start_flags']}] | {_delays(f['trigger_delay'])} "
                     f"| {', '.join(c['metrics']) or '-'} / {', '.join(f['metrics']) or '-'} |")
    for label, days_ in result["tweets"].items():
        lines += ["", f"Airline tweets, {label} (Feb 22-23: winter storm):", "",
                  ("| day | calibrated flags | fixed flags | scores (label_js, label_psi, length_ks, oov_rate, "
                   "text_auc, concept_shift) | calibrated thresholds |"),
                  "|---|---|---|---|---|"]
        for d in days_:
            scores = ", ".join("-" if d["scores"][m] is None else f"{d['scores'][m]:.3f}" for m in FIXED)
            limits = ", ".join("-" if d["thresholds"][m] is None else f"{d['thresholds'][m]:.3f}" for m in FIXED)
            lines.append(f"| {d['day']} | {', '.join(d['calibrated']) or '-'} | {', '.join(d['fixed']) or '-'} "
                         f"| {scores} | {limits} |")
        for kind in ("calibrated", "fixed"):
            fired = [d["day"] for d, t in zip(days_, trigger_days([bool(d[kind]) for d in days_])) if t]
            lines.append(f"\n{kind}: 2-of-3 trigger on {', '.join(fired) or 'no day'}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = parser.parse_args(argv)
    result = run(args.tiny)
    path = write_result(Path(args.out) / ("tiny" if args.tiny else ""), NAME, result)
    log(f"wrote {path} in {result['seconds']} s")
    print(markdown(result))
    json.dumps(result, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
