"""`ct backtest`: replay the user's own landing zone through the real Definitions.

The same replay as `ct demo` (day by day: files land, automation validates and measures
drift, the sensors and the schedule decide, the chain retrains, the gate and promotion
decide), on whatever the configured source holds. Nothing here knows the simulator:
there are no scenarios and no ground truth beyond the labels in the data. Accuracy is
scored on each day's newly labelled rows, for the CT champion and for the static model
(the first champion, never retrained). A person who knows some days were ordinary marks
them with ``--stable``; drift verdicts and drift retrains on those days are false alarms.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

from ct_assets.core.home import CtHome
from ct_assets.core.settings import Settings
from ct_assets.core.time import days_between
from ct_assets.demo.main import POLICIES, daily_table, replay_with_progress, write_report
from ct_assets.demo.replay import ReplayResult
from ct_assets.demo.timeline import format_table, policy_metrics
from ct_assets.ingest.contract import day_dir

DAY_FOLDER_PREFIX = "dt="


class BacktestError(ValueError):
    """The backtest cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class StableDays:
    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, text: str) -> "StableDays":
        first, sep, last = text.partition("..")
        try:
            start = dt.date.fromisoformat(first)
            end = dt.date.fromisoformat(last) if sep else start
        except ValueError:
            raise BacktestError(f"--stable {text!r}: expected D or D1..D2 (ISO dates)") from None
        if end < start:
            raise BacktestError(f"--stable {text!r}: {end} is before {start}")
        return cls(start, end)

    def __contains__(self, day: dt.date) -> bool:
        return self.start <= day <= self.end


def landing_days(landing: Path) -> list[dt.date]:
    """The days the landing zone has a folder for, sorted."""
    if not landing.is_dir():
        return []
    days = []
    for folder in landing.iterdir():
        if folder.is_dir() and folder.name.startswith(DAY_FOLDER_PREFIX):
            try:
                days.append(dt.date.fromisoformat(folder.name[len(DAY_FOLDER_PREFIX):]))
            except ValueError:
                raise BacktestError(f"{folder}: not a dt=YYYY-MM-DD day folder") from None
    return sorted(days)


def pinned(settings: Settings, home: CtHome) -> Settings:
    """Settings whose paths point into ``home`` absolutely, so a per-policy CT_HOME
    replays the same landing zone and golden set instead of empty ones of its own."""
    source = settings.source.model_copy(update={"path": str(home.resolve(settings.source.path, "source.path"))})
    golden = settings.golden
    if golden.path is not None:
        golden = golden.model_copy(update={"path": str(home.resolve(golden.path, "golden.path"))})
    return settings.model_copy(update={"source": source, "golden": golden})


def backtest_metrics(result: ReplayResult, stable: StableDays | None) -> dict:
    """The figures `--json` writes for one policy."""
    first_scored = next((r["day"] for r in result.records if r.get("champion_version") is not None), None)
    m = policy_metrics(result.records, drift_start_day=first_scored or result.drift_start,
                       golden_accuracies=result.golden_accuracies)
    out = {
        "mean_accuracy": m["mean_accuracy_after_drift"],
        "static_mean_accuracy": m["static_mean_accuracy_after_drift"],
        "retrains": m["retrains"],
        "promotions": m["promotions"],
        "golden_forgetting": m["golden_forgetting"],
        "scored_days": sum(r.get("champion_accuracy") is not None for r in result.records),
    }
    if stable is not None:
        on_stable = [r for r in result.records if r["day"] in stable]
        out["stable_days"] = len(on_stable)
        out["false_drift_alarms"] = sum(r.get("drift_verdict") == "drift" for r in on_stable)
        out["false_drift_retrains"] = sum(
            any(t.startswith("drift") for t in r["triggers_fired"]) for r in on_stable)
    return out


def _range(settings: Settings, landing: Path, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
    present = landing_days(landing)
    if not present:
        raise BacktestError(f"no day folders in the landing zone {landing}: bring data in with `ct import` first")
    first = start or max(settings.partitions.start_date, present[0])
    last = end or present[-1]
    if first < settings.partitions.start_date:
        raise BacktestError(f"--start {first} is before partitions.start_date {settings.partitions.start_date}")
    if last < first:
        raise BacktestError(f"--end {last} is before the first day {first}")
    missing = [d for d in days_between(first, last) if not day_dir(landing, d).is_dir()]
    if len(missing) == len(days_between(first, last)):
        raise BacktestError(f"the landing zone {landing} has no folder for any day in {first}..{last}")
    return days_between(first, last)


def run_backtest(settings: Settings, home: CtHome, *, start: dt.date | None = None, end: dt.date | None = None,
                 compare_policies: bool = False, stable: StableDays | None = None,
                 json_path: Path | None = None) -> str:
    settings = pinned(settings, home)
    landing = Path(settings.source.path)
    days = _range(settings, landing, start, end)
    policies = POLICIES if compare_policies else (settings.triggers.policy,)
    notes = [f"backtest of {landing} over {days[0]}..{days[-1]} ({len(days)} days); "
             f"base {settings.training.base.model_id}; accuracy on each day's newly labelled rows"]
    if stable is not None:
        notes.append(f"days marked stable by the user: {stable.start}..{stable.end}")
    if settings.promotion.require_approval:
        notes.append("require_approval is on: the backtest AUTO-APPROVED its promotions, as ct demo does")
    if compare_policies and home.is_server:
        raise BacktestError("--compare-policies needs a home per policy; CT_PROFILE=server has one set of "
                            "engines (one Postgres, one MLflow server). Run it with CT_PROFILE=local")
    results, figures = [], {}
    for policy in policies:
        sub = home if not compare_policies else CtHome(home.root / "backtests" / policy)
        sub.ensure(settings.triggers.max_concurrent_training_runs)
        result = replay_with_progress(settings, sub, len(days), policy, settings.promotion.require_approval,
                                      start=days[0])
        results.append((sub, result))
        figures[policy] = backtest_metrics(result, stable)
    rows = [{"policy": p, **f} for p, f in figures.items()]
    lines = ["Policy table (CT vs static on each day's newly labelled rows):\n" + format_table(rows)]
    main = next(r for _, r in results if r.policy == settings.triggers.policy)
    if compare_policies:
        for sub, result in results:
            write_report(result, sub, settings, rows, notes)
    # The configured policy's report lands in CT_HOME/reports, where `make dev` users look.
    report = write_report(main, home, settings, rows if compare_policies else None, notes)
    lines.append(daily_table(main))
    if main.failed_runs:
        lines.append("Runs that failed (blocked by a check or an error; see the UI):\n  " + "\n  ".join(main.failed_runs))
    lines.append(f"Timeline report: {report[0]}\nTimeline plot:   {report[1]}")
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = json_path.with_name(json_path.name + ".tmp")
        tmp.write_text(json.dumps(figures, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
        tmp.replace(json_path)
        lines.append(f"Figures per policy: {json_path}")
    lines.extend(notes)
    return "\n\n".join(lines)
