"""BENCHMARKS.md section 5: quality under drift (bench/quality.py, the end-to-end replays)."""

from __future__ import annotations

from bench.report import _f, _status, _table, _x


def _quality_rows(q: dict) -> list[list[str]]:
    if q.get("status") != "measured":
        return [["5 quality", "CT vs static accuracy after drift; forgetting with/without replay, EWC",
                 "-", "-", "-", "-", f"not measured: {q.get('reason', q.get('status'))}"]]
    rows = []
    for key, run in q["runs"].items():
        scenario, variant = key.split("/")
        if variant != "replay":
            continue
        rows.append(["5 quality", f"mean accuracy after drift, CT vs static ({scenario})",
                     _f(run["mean_accuracy_after_drift"], 3), _f(run["static_mean_accuracy_after_drift"], 3),
                     _x(q["ratios"].get(f"{scenario}_ct_vs_static_accuracy_after_drift")),
                     ">= 1.0x (never worse)",
                     _status(None if q["ratios"].get(f"{scenario}_ct_vs_static_accuracy_after_drift") is None
                             else q["ratios"][f"{scenario}_ct_vs_static_accuracy_after_drift"] >= 1.0)])
    return rows


def _quality_detail(q: dict) -> list[str]:
    lines = ["## 5. Quality under drift", ""]
    if q.get("status") != "measured":
        return lines + [f"Not measured in this report: {q.get('reason', q.get('status'))}. "
                        "`--only quality --quality` regenerates this file with the other results kept."]
    rows = []
    for key, r in q["runs"].items():
        rows.append([key, _f(r["mean_accuracy_after_drift"], 3), _f(r["static_mean_accuracy_after_drift"], 3),
                     _f(r["days_to_recover"]), _f(r["static_days_to_recover"]), _f(r["retrains"]),
                     _f(r["promotions"]), _f(r["golden_forgetting"], 3), _f(r["seconds"] / 60, 1),
                     str(len(r["failed_runs"]))])
    lines += [
        f"{q['settings']}; {q['days']} days, drift from day {q['drift_day']}, policy {q['policy']}. "
        f"Sweep time {q['seconds'] / 60:.1f} min"
        + (f" (measured {q['measured_at']}, in a separate run)." if "measured_at" in q else "."),
        "",
        *_table(["scenario/variant", "CT acc after drift", "static acc after drift", "days to recover (CT)",
                 "days to recover (static)", "retrains", "promotions", "golden forgetting", "minutes",
                 "runs stopped (gate or error)"], rows),
        "",
        f"Forgetting, no replay minus replay 0.1: {_f(q['ratios']['forgetting_no_replay_minus_replay'], 3)}; "
        f"EWC minus no EWC: {_f(q['ratios']['forgetting_ewc_minus_replay'], 3)} (differences, not ratios: "
        "forgetting is often exactly 0).",
        "",
        "* One replay per row: a gate decision going the other way on one day moves a row's after-drift "
        "mean by about a point, so differences of that size between rows are not findings.",
        "* \"days to recover\" is n/a when the champion's accuracy never came back to within 2 points of its "
        "pre-drift mean for two measured days inside the replay (timeline.policy_metrics).",
    ]
    for key, r in q["runs"].items():
        scenario, variant = key.split("/")
        gain = q["ratios"].get(f"{scenario}_ct_vs_static_accuracy_after_drift")
        if variant == "replay" and gain is not None and gain <= 1.0:
            lines += ["", f"**{scenario}: CT no better than static ({_x(gain)}):** {r['retrains']} retrains "
                      f"(bootstrap included), {r['promotions']} promotion(s); {len(r['failed_runs'])} retrain runs "
                      "ended without a promotion (stopped by a blocking check, in this sweep the promotion "
                      "gate: the challenger did not beat the champion as required; run ids in the result "
                      "file), so the model serving after the drift was mostly the static one. The scenario "
                      "did not hurt the first model enough for a retrain to win (static accuracy after drift "
                      f"{_f(r['static_mean_accuracy_after_drift'], 3)})."]
    forgetting = [r["golden_forgetting"] for r in q["runs"].values() if r["golden_forgetting"] is not None]
    if forgetting and max(forgetting) == 0:
        lines += ["", "**No forgetting to reduce:** in every replay each later champion scored at least the first "
                  "champion's golden-set accuracy, so this sweep cannot rank replay or EWC on forgetting; that "
                  "needs a longer stream or a stronger concept change than 20 days of the --fast demo give."]
    return lines
