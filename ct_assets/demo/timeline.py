"""The continuous-training replay's report: one figure, one HTML page, a few numbers (pure).

Input is one record per simulated day (polars DataFrame or list of dicts) with keys
``day, champion_version, champion_accuracy, static_accuracy, label_js, label_psi,
length_ks, oov_rate, text_auc, threshold_<metric>, drift_verdict, drifted_metrics,
triggers_fired, retrained, promoted, promoted_version, blocked_reasons, scenario_events,
auto_approved``; missing optional keys read as empty. ``threshold_<metric>`` is the
threshold that day was judged by (from its drift_report row): calibrated thresholds move
with the reference, so scores are shown against their own day's threshold, never a
configured number (which may be "auto"). ``champion_accuracy`` is the CT champion on that day's newly labelled
rows; ``static_accuracy`` is the first champion, never retrained - the baseline CT has
to beat for the whole exercise to be worth it.

Plots use matplotlib's object API (``Figure``), never pyplot: no global backend or figure
state, so rendering is safe inside a Dagster run or a test process.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib import dates as mdates
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ct_assets.core.schema import DRIFT_METRICS
from ct_assets.evaluation.ledger import ledger_by_version, ledger_drops, replay_contrast

Records = pl.DataFrame | Sequence[Mapping[str, Any]]

# The three that tell the demo's story (new words, separable texts, moved label prior);
# the other two are in the per-day table.
PLOTTED_DRIFT: tuple[str, ...] = ("oov_rate", "text_auc", "label_js")
TRIGGER_ROWS: tuple[str, ...] = ("schedule", "drift", "accuracy", "volume", "freshness", "manual")
_LIST_KEYS = ("triggers_fired", "blocked_reasons", "scenario_events")


def _rows(records: Records) -> list[dict[str, Any]]:
    rows = records.to_dicts() if isinstance(records, pl.DataFrame) else [dict(r) for r in records]
    for r in rows:
        day = r["day"]
        r["day"] = dt.date.fromisoformat(day) if isinstance(day, str) else day
        for key in _LIST_KEYS:
            r[key] = list(r.get(key) or [])
    return sorted(rows, key=lambda r: r["day"])


def _limit(r: Mapping[str, Any], metric: str) -> float | None:
    """The threshold ``metric`` was judged by on that day (None: none recorded/uncalibrated)."""
    return r.get(f"threshold_{metric}")


def _ratio(r: Mapping[str, Any], metric: str) -> float:
    value, limit = r.get(metric), _limit(r, metric)
    return math.nan if value is None or not limit else float(value) / float(limit)


def _threshold_label(rows: Sequence[Mapping[str, Any]], metric: str) -> str:
    limits = sorted({round(float(v), 4) for r in rows if (v := _limit(r, metric)) is not None})
    if not limits:
        return f"{metric} (no threshold)"
    shown = f"{limits[0]:g}" if len(limits) == 1 else f"{limits[0]:g}-{limits[-1]:g}, per day"
    return f"{metric} (threshold {shown})"


def _nan(value: float | None) -> float:
    # matplotlib breaks a line at NaN, which is what a day without labels should look like.
    return math.nan if value is None else float(value)


def _scenario_spans(rows: list[dict[str, Any]]) -> list[tuple[str, dt.date, dt.date]]:
    """(name, first day, last day) from "<name> starts" / "<name> ends" events."""
    open_: dict[str, dt.date] = {}
    spans = []
    for r in rows:
        for event in r["scenario_events"]:
            name, _, what = event.rpartition(" ")
            if what == "starts" and name:
                open_.setdefault(name, r["day"])
            elif what == "ends" and name in open_:
                spans.append((name, open_.pop(name), r["day"]))
    spans += [(name, start, rows[-1]["day"]) for name, start in open_.items()]
    return sorted(spans, key=lambda s: s[1])


def render_timeline_png(records: Records, path: str | Path, title: str) -> Path:
    rows = _rows(records)
    if not rows:
        raise ValueError("no records to plot")
    days = [r["day"] for r in rows]
    has_drift = any(not math.isnan(_ratio(r, m)) for r in rows for m in PLOTTED_DRIFT)
    ratios = [3.0, 2.0, 1.4] if has_drift else [3.0, 1.4]
    fig = Figure(figsize=(13, 1.8 * sum(ratios)), layout="constrained")
    axes = fig.subplots(len(ratios), 1, sharex=True, height_ratios=ratios)
    acc_ax, strip_ax = axes[0], axes[-1]
    fig.suptitle(title)

    acc_ax.plot(days, [_nan(r.get("champion_accuracy")) for r in rows], marker="o", ms=3,
                color="tab:blue", label="CT champion")
    acc_ax.plot(days, [_nan(r.get("static_accuracy")) for r in rows], marker=".", ms=3, ls="--",
                color="tab:gray", label="static model (never retrained)")
    acc_ax.set_ylabel("accuracy on the day's\nnew labels")
    spans = _scenario_spans(rows)
    for ax in axes:
        for _name, start, end in spans:
            # +1 day so a one-day scenario is a visible band, not a line.
            ax.axvspan(start, end + dt.timedelta(days=1), color="tab:red", alpha=0.08, lw=0)
        for r in rows:
            if r.get("retrained"):
                ax.axvline(r["day"], color="tab:orange", ls="--", lw=1, alpha=0.8)
            if r.get("promoted"):
                ax.axvline(r["day"], color="tab:green", ls="-", lw=1.5, alpha=0.8)
    for name, start, _end in spans:
        acc_ax.annotate(f"{name} starts", (start, 1.0), xycoords=("data", "axes fraction"),
                        xytext=(2, -10), textcoords="offset points", fontsize=8, color="tab:red")
    handles, _ = acc_ax.get_legend_handles_labels()
    handles += [Line2D([], [], color="tab:orange", ls="--", label="retrain"),
                Line2D([], [], color="tab:green", label="promotion")]
    if spans:
        handles.append(Patch(color="tab:red", alpha=0.15, label="scenario active"))
    # Legends sit outside the axes (right) so they never hide a data point.
    acc_ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    acc_ax.grid(alpha=0.3)

    if has_drift:
        # Each score divided by that day's threshold: three different scales share one axis
        # and "crossed its alarm level" is simply "above 1", also when calibration moved it.
        drift_ax = axes[1]
        for metric in PLOTTED_DRIFT:
            values = [_ratio(r, metric) for r in rows]
            drift_ax.plot(days, values, marker=".", ms=3, label=_threshold_label(rows, metric))
        drift_ax.axhline(1.0, color="tab:red", ls=":", lw=1.2, label="threshold")
        drift_ax.set_ylabel("drift score /\nthreshold")
        drift_ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        drift_ax.grid(alpha=0.3)

    # triggers_fired entries read "trigger: reason"; the lane is the part before the colon.
    fired = [(r["day"], t.split(":", 1)[0].strip()) for r in rows for t in r["triggers_fired"]]
    names = [t for t in TRIGGER_ROWS if any(n == t for _, n in fired)]
    names += sorted({n for _, n in fired} - set(TRIGGER_ROWS))
    lanes = [*names, "blocked", "promoted"]
    for d, name in fired:
        strip_ax.scatter([d], [lanes.index(name)], marker="v", s=40, color="tab:blue")
    blocked = [r["day"] for r in rows if r["blocked_reasons"]]
    strip_ax.scatter(blocked, [lanes.index("blocked")] * len(blocked), marker="x", s=40, color="tab:red")
    for r in rows:
        if r.get("promoted"):
            auto = bool(r.get("auto_approved"))
            strip_ax.scatter([r["day"]], [lanes.index("promoted")], marker="*", s=80, color="tab:green",
                             facecolors="none" if auto else "tab:green")
    strip_ax.set_yticks(range(len(lanes)), lanes, fontsize=8)
    strip_ax.set_ylim(-0.7, len(lanes) - 0.3)
    strip_ax.set_title("triggers fired / blocked / promotions (hollow star = auto-approved)", fontsize=9)
    strip_ax.grid(axis="x", alpha=0.3)
    locator = mdates.AutoDateLocator()
    strip_ax.xaxis.set_major_locator(locator)
    strip_ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "; ".join(_fmt(v) for v in value)
    return str(value)


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(k for r in rows for k in r))


def _html_table(rows: Sequence[Mapping[str, Any]]) -> str:
    cols = _columns(rows)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>" for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _drifted(r: Mapping[str, Any]) -> list[str]:
    if r.get("drifted_metrics") is not None:
        return list(r["drifted_metrics"])
    # Same rule as compute_drift: strictly above the day's threshold, None never flags.
    return [m for m in DRIFT_METRICS if r.get(m) is not None and _limit(r, m) is not None and r[m] > _limit(r, m)]


def _score_vs_limit(r: Mapping[str, Any], metric: str) -> str:
    value, limit = r.get(metric), _limit(r, metric)
    if value is None or limit is None:
        return metric
    return f"{metric} {value:.3f} > {limit:.3f}"


def _lines(items: Sequence[str]) -> str:
    return "<br>".join(html.escape(str(i)) for i in items)


def served_lines(r: Mapping[str, Any]) -> list[str]:
    """`ct demo --serve`: what the day's traffic met (arms and versions), the feedback sent
    through the server, and the day's canary verdict."""
    served = r.get("served") or {}
    if not served:
        return []
    arms = ", ".join(f"{arm} v{served.get(f'version_{arm}', '?')}: {served[f'arm_{arm}']}"
                     for arm in ("champion", "canary") if served.get(f"arm_{arm}"))
    lines = [f"served {served['served']}" + (f" ({arms})" if arms else " (no champion yet: landed directly)"),
             f"feedback {served['feedback']}"]
    if served.get("direct"):
        lines.append(f"{served['direct']} rows landed directly")
    if r.get("canary_verdict"):
        lines.append(f"canary {r['canary_verdict']}: {r.get('canary_reason') or ''}".rstrip(": "))
    return lines


def _day_row(r: dict[str, Any], with_served: bool = False) -> str:
    verdict = r.get("drift_verdict") or "-"
    drifted = _drifted(r)
    drift = verdict + (f" ({', '.join(_score_vs_limit(r, m) for m in drifted)})" if drifted else "")
    actions = []
    if r.get("retrained"):
        actions.append("retrained")
    if r.get("promoted"):
        approved = " (auto-approved)" if r.get("auto_approved") else ""
        actions.append(f"promoted {r.get('promoted_version') or ''}".rstrip() + approved)
    cells = [
        html.escape(_fmt(r["day"])), html.escape(_fmt(r.get("champion_version"))),
        html.escape(_fmt(r.get("champion_accuracy"))), html.escape(_fmt(r.get("static_accuracy"))),
        html.escape(drift), _lines(r["triggers_fired"]), _lines(actions),
        _lines(r["blocked_reasons"]), _lines(r["scenario_events"]),
    ]
    if with_served:
        cells.append(_lines(served_lines(r)))
    css = ' class="drift"' if verdict in ("drift", "new_class") else ""
    return f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}tr.drift td{background:#fff4f0}img{max-width:100%}"""
_DAY_HEADERS = ("day", "champion", "CT acc", "static acc", "drift", "triggers", "retrain / promotion",
                "blocked", "scenario")


def render_timeline_html(
    records: Records,
    path: str | Path,
    title: str,
    png_name: str,
    summary_table_rows: Sequence[Mapping[str, Any]],
    policy_table_rows: Sequence[Mapping[str, Any]] | None = None,
    notes: Sequence[str] = (),
    ledger: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """A self-contained page (inline CSS, PNG referenced relative to the page). ``ledger``:
    forgetting-ledger entries (evaluation/ledger.py) of the versions the replay evaluated."""
    rows = _rows(records)
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append(f'<img src="{html.escape(png_name, quote=True)}" alt="{html.escape(title, quote=True)}">')
    parts += ["<h2>Summary</h2>", _html_table(summary_table_rows)]
    if policy_table_rows:
        parts += ["<h2>Policy comparison</h2>", _html_table(policy_table_rows)]
    if ledger:
        by_version = ledger_by_version(ledger)
        drops = {"version": "largest drop", "partition": "below the first", **ledger_drops(by_version)}
        parts += ["<h2>Forgetting ledger</h2>",
                  "<p>Golden accuracy of every evaluated version, per label (its golden recall) and per "
                  "slice; the last row is each column's largest fall below the first version.</p>",
                  _html_table([*by_version, drops])]
        contrast = replay_contrast(ledger)
        if contrast:
            parts += ["<h2>Replay vs forgetting</h2>",
                      "<p>Every version of a class that left the sliding window (its window rows under 10% "
                      "of the most any version had: column 'left the window'). Those versions saw the class "
                      "almost only through replay; without replay their golden recall of it falls "
                      "(measured: BENCHMARKS.md §11, quality sweep).</p>",
                      _html_table(contrast)]
    with_served = any(r.get("served") for r in rows)
    head = "".join(f"<th>{h}</th>" for h in (*_DAY_HEADERS, *(("served traffic",) if with_served else ())))
    body = "".join(_day_row(r, with_served) for r in rows)
    parts += ["<h2>Day by day</h2>", f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"]
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return path


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _days_to_recover(
    rows: list[dict[str, Any]], key: str, drift_start_day: dt.date, margin: float
) -> tuple[int | None, dt.date | None]:
    """(days from drift start, day) when accuracy is back near its pre-drift mean for 2 measured days.

    "Back" means >= pre-drift mean - margin (better than before counts). Only measured
    days count, so a day without labels neither breaks nor makes a recovery. If the
    accuracy never left the band the answer is 0: there was nothing to recover from.
    """
    baseline = _mean([r[key] for r in rows if r["day"] < drift_start_day and r.get(key) is not None])
    after = [(r["day"], r[key]) for r in rows if r["day"] >= drift_start_day and r.get(key) is not None]
    if baseline is None or not after:
        return None, None
    ok = [acc >= baseline - margin for _, acc in after]
    if all(ok):
        return 0, drift_start_day
    first_drop = ok.index(False)
    for i in range(first_drop + 1, len(after) - 1):
        if ok[i] and ok[i + 1]:
            return (after[i][0] - drift_start_day).days, after[i][0]
    return None, None


def policy_metrics(
    records: Records,
    *,
    drift_start_day: dt.date,
    recover_margin: float = 0.02,
    golden_accuracies: Sequence[float] | None = None,
) -> dict[str, Any]:
    rows = _rows(records)
    after = [r for r in rows if r["day"] >= drift_start_day]
    days, recovered_on = _days_to_recover(rows, "champion_accuracy", drift_start_day, recover_margin)
    static_days, _ = _days_to_recover(rows, "static_accuracy", drift_start_day, recover_margin)
    forgetting = None
    if golden_accuracies:
        first = golden_accuracies[0]
        forgetting = max(0.0, max(first - g for g in golden_accuracies))
    return {
        "mean_accuracy_after_drift": _mean([r["champion_accuracy"] for r in after
                                            if r.get("champion_accuracy") is not None]),
        "static_mean_accuracy_after_drift": _mean([r["static_accuracy"] for r in after
                                                   if r.get("static_accuracy") is not None]),
        "days_to_recover": days,
        "recovered_on": recovered_on,
        "static_days_to_recover": static_days,
        "retrains": sum(bool(r.get("retrained")) for r in rows),
        "promotions": sum(bool(r.get("promoted")) for r in rows),
        "auto_approved_promotions": sum(bool(r.get("promoted") and r.get("auto_approved")) for r in rows),
        "golden_forgetting": forgetting,
    }


def format_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Fixed-width text table; numbers right-aligned, None shown as "-"."""
    if not rows:
        return "(no rows)"
    cols = _columns(rows)
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    numeric = [all(isinstance(r.get(c), (int, float)) or r.get(c) is None for r in rows) for c in cols]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(values: Sequence[str]) -> str:
        padded = (v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric))
        return "  ".join(padded).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(row) for row in cells)])
