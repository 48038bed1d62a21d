"""The figures of `make bench-quality` from one stream's records (bench.quality_sweep).

Accuracy is per day on the rows that ever get a label; "after drift" is the scenario's
days (``start_day``..``end_day``, or to the end when it never ends). Definitions:

* recovery ratio: (CT - static) / (pre-drift - static), over the days after drift; None
  when the scenario cost the static model under ``MIN_LOSS`` (nothing to recover).
* days to recover: from the first retrain after drift to the first day d whose 3-day mean
  [d, d+2] is back within 20% of the static model's loss (CT >= pre - 0.2 * (pre - static)).
* golden forgetting: the largest drop of a promoted champion's golden accuracy (and,
  per class, golden recall) below the first champion's.
* worse on unchanged classes: promotions whose golden recall fell by more than
  gate.max_forgetting, against the champion they replaced, on a class the gate did not
  treat as changed: the promotions the gate should have stopped. Stricter than the gate's
  own per-class bound (gate.max_class_forgetting, 0.10 by default, looser because one
  class's recall rests on few golden rows), so a drop between the two shows up here.
"""

from __future__ import annotations

import re
from collections import Counter
from statistics import mean

MIN_LOSS = 0.02
RECOVERED_SHARE = 0.8


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return mean(values) if values else None


def _acc(records, lo: int, hi: int, key: str) -> float | None:
    return _mean(r[key] for r in records if lo <= r["index"] <= hi)


def _reason_kind(reason: str) -> str:
    """A gate reason without its figures, so the same check counts once however it scored."""
    head = reason.split(":")[0].split(" (")[0]
    return " ".join(re.sub(r"[-+]?\d[\d.]*%?", " ", head).split())


def stream_metrics(run: dict, *, drift_day: int) -> dict:
    records, versions, spec = run["records"], run["versions"], run["spec"]
    last = records[-1]["index"]
    end = spec.get("end_day") if spec.get("end_day") is not None else last
    pre = _acc(records, 0, drift_day - 1, "static_accuracy")
    static, ct = _acc(records, drift_day, end, "static_accuracy"), _acc(records, drift_day, end, "champion_accuracy")
    loss = pre - static if pre is not None and static is not None else None
    recovery = (ct - static) / loss if loss is not None and loss >= MIN_LOSS and ct is not None else None
    retrains = [r for r in records if r.get("trained") and r.get("trigger") != "bootstrap"]
    first_trigger = next((r["index"] for r in retrains if r["index"] >= drift_day), None)
    days_to_recover = None
    if first_trigger is not None and pre is not None:
        for d in range(first_trigger, end - 1):
            ct3, st3 = _acc(records, d, d + 2, "champion_accuracy"), _acc(records, d, d + 2, "static_accuracy")
            if ct3 is not None and st3 is not None and ct3 >= pre - (1 - RECOVERED_SHARE) * max(0.0, pre - st3):
                days_to_recover = d - first_trigger
                break
    promoted = [v for v in versions if v["promoted"]]
    first = promoted[0] if promoted else None
    blocked = [v for v in versions if not v["promoted"]]
    changed = sorted({c for v in versions for c in v["changed_classes"]})
    class_drop: dict[str, float] = {}
    worse = []
    for prev, v in zip(promoted, promoted[1:]):
        for label, recall in v["golden_recall"].items():
            if recall is None or first["golden_recall"].get(label) is None:
                continue
            class_drop[label] = max(class_drop.get(label, 0.0), first["golden_recall"][label] - recall)
            before = prev["golden_recall"].get(label)
            if (before is not None and before - recall > run["max_forgetting"] and label not in v["changed_classes"]):
                worse.append({"version": v["number"], "class": label, "drop": round(before - recall, 3)})
    after_end = None
    if spec.get("end_day") is not None and end < last:
        after_end = {"static": _acc(records, end + 1, last, "static_accuracy"),
                     "ct": _acc(records, end + 1, last, "champion_accuracy")}
    lora_or_full = [v for v in versions if v["trigger"] != "bootstrap"] or versions
    return {
        "pre_drift_accuracy": pre, "static_after_drift": static, "ct_after_drift": ct,
        "ct_minus_static": ct - static if ct is not None and static is not None else None,
        "static_loss": loss, "recovery_ratio": recovery,
        "first_trigger_day": first_trigger, "days_to_recover": days_to_recover,
        "retrains": len(retrains), "promotions": sum(1 for v in promoted if v is not first),
        "blocked": len(blocked),
        "blocked_reasons": dict(Counter(_reason_kind(r) for v in blocked for r in v["blocked_reasons"])),
        "golden_forgetting": max((first["golden_accuracy"] - v["golden_accuracy"] for v in promoted), default=None)
        if first else None,
        "worst_class_forgetting": max(class_drop.items(), key=lambda kv: kv[1]) if class_drop else None,
        # A changed class's golden drop is the golden set disagreeing, not forgetting (the gate's rule).
        "changed_classes": changed,
        "worst_unchanged_class_forgetting": max(((c, d) for c, d in class_drop.items() if c not in changed),
                                                key=lambda kv: kv[1], default=None),
        "promotions_worse_on_unchanged_classes": worse,
        "after_scenario_end": after_end,
        "train_seconds_per_version": _mean(v["train_seconds"] for v in lora_or_full),
        "bytes_per_version": _mean(v["bytes_stored"] for v in lora_or_full),
        "trainable_params": versions[0]["trainable_params"] if versions else None,
        "stream_seconds": run["seconds"],
    }


def forgetting_rows(run: dict, label: str, start: int, end: int) -> dict:
    """Golden recall of the absent class per version, and what replay kept of it: the
    reference is the last champion before the class left; "during" is every version
    trained while it was gone."""
    versions = run["versions"]
    index = {r["day"]: r["index"] for r in run["records"]}
    before = [v for v in versions if v["promoted"] and index[v["day"]] < start]
    during = [v for v in versions if start <= index[v["day"]] <= end]
    ref = before[-1]["golden_recall"][label] if before else None
    low = min((v["golden_recall"][label] for v in during), default=None)
    champion_at_return = next((r["champion"] for r in run["records"] if r["index"] == end + 1), None)
    at_return = next((v["golden_recall"][label] for v in versions if v["number"] == champion_at_return), None)
    return {
        "label": label, "recall_before": ref, "min_recall_during": low,
        "last_recall_during": during[-1]["golden_recall"][label] if during else None,
        # The lowest is one adapter's worst day; the mean over every adapter trained while
        # the class was gone is the steadier figure to compare variants by.
        "mean_recall_during": _mean(v["golden_recall"][label] for v in during),
        "kept_share": low / ref if ref and low is not None else None,
        "points_lost": ref - low if ref is not None and low is not None else None,
        "adapters_during_absence": len(during), "champion_recall_at_return": at_return,
        "per_version": [{"version": v["number"], "day": index[v["day"]], "recall": round(v["golden_recall"][label], 3),
                         "promoted": v["promoted"]} for v in versions],
    }


def _f(x, digits: int = 3, signed: bool = False) -> str:
    if x is None:
        return "—"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _pair(pair) -> str:
    return f"{pair[0]} {pair[1]:.2f}" if pair else "—"


def tables(out: dict) -> str:
    m, lines = out["metrics"], []
    lines += ["| stream | pre-drift | static after | CT after | CT − static | recovery | days to recover "
              "| retrains | promotions | blocked (reasons) | golden forgetting | worst class (changed: gate) "
              "| worst unchanged class | worse on unchanged |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v, x in m.items():
        reasons = ", ".join(f"{k} ×{n}" for k, n in x["blocked_reasons"].items()) or "—"
        changed = f" ({', '.join(x['changed_classes'])})" if x["changed_classes"] else ""
        worst = _pair(x["worst_class_forgetting"]) + changed
        lines.append(f"| {v} | {_f(x['pre_drift_accuracy'])} | {_f(x['static_after_drift'])} | {_f(x['ct_after_drift'])} "
                     f"| {_f(x['ct_minus_static'], signed=True)} | {_f(x['recovery_ratio'], 2)} "
                     f"| {x['days_to_recover'] if x['days_to_recover'] is not None else '—'} | {x['retrains']} "
                     f"| {x['promotions']} | {x['blocked']} ({reasons}) | {_f(x['golden_forgetting'])} | {worst} "
                     f"| {_pair(x['worst_unchanged_class_forgetting'])} "
                     f"| {len(x['promotions_worse_on_unchanged_classes'])} |")
    lines += ["", "| stream | train s / version | MB / version | trainable params | stream s | torch threads "
              "| measured (UTC) |", "|---|---|---|---|---|---|---|"]
    for v, x in m.items():
        mb = x["bytes_per_version"] / 1e6 if x["bytes_per_version"] else None
        lines.append(f"| {v} | {_f(x['train_seconds_per_version'], 1)} | {_f(mb, 2)} | {x['trainable_params']} "
                     f"| {x['stream_seconds']:.0f} | {x.get('torch_threads') or '—'} | {x.get('measured_at') or '—'} |")
    if out.get("streams_run_this_call"):  # a call that only read the cache measured no wall time
        lines += ["", f"Sweep: {out['streams_run_this_call']} streams run, {out['jobs']} at a time, in "
                      f"{out['wall_seconds_this_call'] / 60:.1f} min wall ({out['stream_seconds'] / 60:.1f} min of "
                      f"stream time in all)."]
    if out.get("forgetting"):
        lines += ["", f"Golden recall of `{out['seasonal']['label']}` (absent on days "
                      f"{out['seasonal']['absent_days'][0]}..{out['seasonal']['absent_days'][1]}), per version:", "",
                  "| variant | before | lowest while absent | mean while absent | kept (lowest / before) "
                  "| points lost | adapters while absent | champion's at return | per version (day: recall, * promoted) |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for v, f in out["forgetting"].items():
            per = " ".join(f"{p['day']}:{p['recall']:.2f}{'*' if p['promoted'] else ''}" for p in f["per_version"])
            lines.append(f"| {v} | {_f(f['recall_before'], 2)} | {_f(f['min_recall_during'], 2)} "
                         f"| {_f(f['mean_recall_during'], 2)} "
                         f"| {_f(f['kept_share'], 2)} | {_f(f['points_lost'], 2)} | {f['adapters_during_absence']} "
                         f"| {_f(f['champion_recall_at_return'], 2)} | {per} |")
    return "\n".join(lines) + "\n"
