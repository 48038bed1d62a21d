"""The main job behind `make demo` / `ct demo`: the CT replay and its report.

Default: the configured policy on the embedded scenario mix for 60 days, beside the
static model, on the real MiniLM base, into CT_HOME (so `make dev` shows every run,
trigger, check and alias move afterwards). `--compare-policies` replays every policy on
the same stream, each into its own CT_HOME/policies/<name>.
"""

from __future__ import annotations

import datetime as dt

from tqdm import tqdm

from ct_assets.core.home import CtHome
from ct_assets.core.settings import Settings
from ct_assets.demo.data_demo import run_data_demo
from ct_assets.demo.replay import ReplayResult, run_replay
from ct_assets.demo.served_traffic import ServedTraffic
from ct_assets.demo.timeline import (
    format_table,
    served_lines,
    policy_metrics,
    render_timeline_html,
    render_timeline_png,
)
from ct_assets.evaluation.ledger import ledger_by_version, ledger_drops

DEFAULT_DAYS = 60
POLICIES = ("static", "weekly", "drift", "volume", "combined")
# Half the traffic: at the demo's 150-200 rows a day with ~60% labelled the same day, a 20%
# canary gets ~18 labelled rows a day, under the 30 canary_report needs to judge (measured: a
# 60-day --fast run never judged a canary at 20%). A real deployment has more traffic.
SERVE_CANARY_PERCENT = 50.0


def fast_settings(settings: Settings) -> Settings:
    """--fast: half the rows, a one-week window, three epochs."""
    sim = settings.source.simulator.model_copy(update={"rows_per_day": 150})
    tr = settings.training.model_copy(update={"window_days": 7, "max_epochs": 3, "min_rows": 100})
    return settings.model_copy(update={
        "source": settings.source.model_copy(update={"simulator": sim}),
        "training": tr,
    })


def served_settings(settings: Settings) -> Settings:
    """--serve: a canary share and one passing canary day before promotion, unless ct.yaml
    already sets them, so the timeline shows the canary at work."""
    serving = settings.serving.model_copy(update={"canary_percent": settings.serving.canary_percent or SERVE_CANARY_PERCENT})
    promotion = settings.promotion.model_copy(update={"canary_days": settings.promotion.canary_days or 1})
    return settings.model_copy(update={"serving": serving, "promotion": promotion})


def _approval(settings: Settings, auto_approve: bool | None) -> tuple[Settings, bool]:
    return settings, bool(auto_approve) if auto_approve is not None else settings.promotion.require_approval


def summary_row(result: ReplayResult) -> dict:
    m = policy_metrics(result.records, drift_start_day=result.drift_start, golden_accuracies=result.golden_accuracies)
    return {
        "policy": result.policy,
        "mean acc after drift": m["mean_accuracy_after_drift"],
        "static acc after drift": m["static_mean_accuracy_after_drift"],
        "gain vs static": (None if m["mean_accuracy_after_drift"] is None or m["static_mean_accuracy_after_drift"] is None
                           else round(m["mean_accuracy_after_drift"] - m["static_mean_accuracy_after_drift"], 4)),
        "days to recover": m["days_to_recover"],
        "retrains": m["retrains"],
        "promotions": m["promotions"],
        "golden forgetting": m["golden_forgetting"],
        # The per-class view the single golden number hides (evaluation/ledger.py).
        "worst class forgetting": max((v for c, v in ledger_drops(ledger_by_version(result.ledger)).items()
                                       if c.startswith("label:")), default=None),
        "auto-approved": m["auto_approved_promotions"],
    }


def write_report(result: ReplayResult, home: CtHome, settings: Settings, policy_rows: list[dict] | None,
                 notes: list[str]) -> tuple[str, str]:
    # Scores are shown against the threshold each day was judged by (in the records, from
    # its drift_report row), not the settings: an "auto" threshold moves with the reference.
    name = f"timeline_{result.policy}"
    png = render_timeline_png(result.records, home.reports / f"{name}.png",
                              f"CT replay: policy '{result.policy}' vs static model")
    html = render_timeline_html(result.records, home.reports / f"{name}.html", f"CT replay: {result.policy}",
                                png.name, [summary_row(result)], policy_rows, notes,
                                ledger=result.ledger)
    return str(html), str(png)


def replay_with_progress(settings: Settings, home: CtHome, days: int, policy: str, auto_approve: bool,
                         start: dt.date | None = None, served: ServedTraffic | None = None) -> ReplayResult:
    bar = tqdm(total=days, desc=f"replay [{policy}]", unit="day")

    def progress(done: int, total: int, record: dict) -> None:
        acc = record.get("champion_accuracy")
        bar.set_postfix_str(f"{record['day']} champion v{record['champion_version']} acc {acc if acc is not None else '-'}")
        bar.update(1)

    try:
        return run_replay(settings, home, days, policy=policy, auto_approve=auto_approve, progress=progress,
                          log=bar.write, start=start, served=served)
    finally:
        bar.close()


def run_demo(settings: Settings, home: CtHome, defs, args) -> str:
    days = args.days or DEFAULT_DAYS
    if getattr(args, "data_only", False):
        return run_data_demo(settings, home, defs, days)
    if args.fast:
        settings = fast_settings(settings)
    serve = getattr(args, "serve", False)
    if home.is_server and args.compare_policies:
        # One Postgres and one MLflow server: every policy's runs and versions would mix.
        raise SystemExit("ct demo: --compare-policies needs a home per policy; CT_PROFILE=server has one set of "
                         "engines. Run it with CT_PROFILE=local")
    if serve and args.compare_policies:
        raise SystemExit("ct demo: --serve replays one policy through one server; drop --compare-policies")
    if serve and settings.source.kind != "simulator":
        raise SystemExit("ct demo --serve sends the simulator's traffic through ct serve; source.kind is "
                         f"{settings.source.kind!r} (your own data: run `ct serve` and send it your traffic)")
    if serve:
        settings = served_settings(settings)
    settings, auto_approve = _approval(settings, args.auto_approve)
    notes = [f"{days} simulated days from {settings.partitions.start_date}; base {settings.training.base.model_id}"]
    if serve:
        notes.append(f"Traffic served by a real `ct serve` (canary {settings.serving.canary_percent:g}% to a gated "
                     f"challenger, {settings.promotion.canary_days} passing canary day(s) before promotion); "
                     "predictions and feedback reached the landing zone through it.")
    if settings.promotion.require_approval and auto_approve:
        notes.append("require_approval is on: promotions were AUTO-APPROVED by the demo flag (--auto-approve).")
    lines = []
    if args.compare_policies:
        results = []
        for policy in POLICIES:
            sub = CtHome(home.root / "policies" / policy).ensure(settings.triggers.max_concurrent_training_runs)
            results.append(replay_with_progress(settings, sub, days, policy, auto_approve))
        rows = [summary_row(r) for r in results]
        for r in results:
            write_report(r, CtHome(home.root / "policies" / r.policy), settings, rows, notes)
        main = next(r for r in results if r.policy == settings.triggers.policy)
        html, png = write_report(main, home, settings, rows, notes)
        lines.append("Policy comparison (same stream, same first model):\n" + format_table(rows))
    elif serve:
        with ServedTraffic(settings, home) as served:
            main = replay_with_progress(settings, home, days, settings.triggers.policy, auto_approve, served=served)
        html, png = write_report(main, home, settings, None, notes)
    else:
        main = replay_with_progress(settings, home, days, settings.triggers.policy, auto_approve)
        html, png = write_report(main, home, settings, None, notes)
    lines.append(daily_table(main))
    lines.append("Summary:\n" + format_table([summary_row(main)]))
    if main.failed_runs:
        lines.append("Runs that failed (blocked by a check or an error; see the UI):\n  " + "\n  ".join(main.failed_runs))
    lines.append(f"Timeline report: {html}\nTimeline plot:   {png}")
    lines.extend(notes)
    return "\n\n".join(lines)


def daily_table(result: ReplayResult) -> str:
    rows = []
    for r in result.records:
        rows.append({
            "day": r["day"].isoformat() if isinstance(r["day"], dt.date) else r["day"],
            "champion": r["champion_version"],
            "CT acc": r["champion_accuracy"],
            "static acc": r["static_accuracy"],
            "drift": ",".join(r["drifted_metrics"]) or r["drift_verdict"],
            "trigger": "; ".join(t.split(":", 1)[0] for t in r["triggers_fired"]),
            "promoted": r["promoted_version"] or "",
            "blocked": "; ".join(r["blocked_reasons"])[:50],
            **({"served": "; ".join(served_lines(r))[:70]} if r.get("served") else {}),
        })
    return "Timeline:\n" + format_table(rows)
