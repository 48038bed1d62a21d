"""BENCHMARKS.md section 9: cost growth with rows/day (bench/scaling.py), and its plot."""

from __future__ import annotations

from pathlib import Path

from bench.report import _f, _table, _x

DAY_SECONDS = 86400.0


def _per_day(child: dict, days: int) -> float:
    return child["wall_seconds"] / days


def _fits(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return "yes" if seconds < DAY_SECONDS else f"no ({seconds / DAY_SECONDS:.1f} days)"


def scaling_rows(s: dict) -> list[list[str]]:
    """Headline rows: the 200k ratio to the plain script and the speed-up over the old path."""
    rows = []
    for r in s["per_size"]:
        if r["rows_per_day"] != 200000:
            continue
        ok = r["time_dagster_vs_plain"] <= 1.2
        rows.append(["9", "data half at 200k rows/day, Dagster time vs plain polars script",
                     f"{_f(_per_day(r['dagster'], r['days']), 2)} s/day", f"{_f(_per_day(r['plain'], r['days']), 2)} s/day",
                     _x(r["time_dagster_vs_plain"]), "<= 1.2x", "met" if ok else "**missed**"])
        if "speedup_vs_baseline" in r:
            up = r["speedup_vs_baseline"]["dagster"]
            rows.append(["9", "data half at 200k rows/day, speed-up over the pre-#15 code (its plain script)",
                         f"{_f(r['rows'] / r['dagster']['wall_seconds'], 0)} rows/s",
                         f"{_f(r['baseline_plain']['rows_per_second'], 0)} rows/s", _x(up), ">= 5x",
                         "met" if up >= 5 else "**missed**"])
    return rows


def scaling_section(s: dict, plot_name: str = "bench/results/scaling.png") -> list[str]:
    proj = s.get("projections", {})
    rows = []
    for r in s["per_size"]:
        n, days = r["rows_per_day"], r["days"]
        base = r.get("baseline_plain")
        rows.append([
            f"{n:,}", _f(_per_day(r["dagster"], days), 2), _f(_per_day(r["plain"], days), 2),
            _x(r["time_dagster_vs_plain"]), _f(r["dagster"]["rows_per_second"], 0), _f(r["plain"]["rows_per_second"], 0),
            f"{_f(r['dagster']['peak_rss_mb'], 0)} / {_f(r['plain']['peak_rss_mb'], 0)}",
            f"{_f(_per_day(base, days), 2)} ({_x(r['speedup_vs_baseline']['dagster'])})" if base else "-",
            _f(proj.get("scoring_all_rows_seconds", {}).get(str(n)), 0),
            _f(proj.get("scoring_sampled_seconds", {}).get(str(n)), 0),
            _fits(proj.get("retrain_seconds", {}).get(str(n))),
        ])
    lines = [
        "## 9. Cost growth with rows/day",
        "",
        f"`python -m bench.scaling` ({s['measured_at']}): {', '.join(f'{d} days at {int(n):,}' for n, d in s['days_per_size'].items())} rows/day (simulated), the embedded "
        "demo's scenario mix; the data half (raw_window, validated_window, quarantined_rows, drift_report) as a "
        "single-run Dagster backfill vs the same calls in a plain script, each in its own process, one after the "
        "other. Peak RSS is each process's own. The old-code column is the plain script of the code before this "
        "change (a git worktree of it) on the same files.",
        "",
        *_table(["rows/day", "Dagster s/day", "plain s/day", "Dagster / plain", "Dagster rows/s", "plain rows/s",
                 "peak RSS MB Dagster / plain", "old code plain s/day (speed-up of Dagster)",
                 "scoring all rows s/day (projected)", "scoring the monitoring sample s/day (projected)",
                 "one retrain fits in a day (projected)"], rows),
        "",
        f"![cost growth]({plot_name})",
        "",
    ]
    for what, source in proj.get("source", {}).items():
        lines.append(f"* Projected {what}: {source}; linear in rows by construction.")
    return lines


def plot(s: dict, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["rows_per_day"] for r in s["per_size"]]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(sizes, [_per_day(r["dagster"], r["days"]) for r in s["per_size"]], "o-", label="data half, Dagster")
    left.plot(sizes, [_per_day(r["plain"], r["days"]) for r in s["per_size"]], "s--", label="data half, plain script")
    base = [(r["rows_per_day"], _per_day(r["baseline_plain"], r["days"])) for r in s["per_size"] if "baseline_plain" in r]
    if base:
        left.plot(*zip(*base), "x", markersize=9, label="data half, old code (plain)")
    proj = s.get("projections", {})
    for key, label, style in (("scoring_all_rows_seconds", "score every row, 1 model (proj.)", ":"),
                              ("scoring_sampled_seconds", "score the monitoring sample (proj.)", "-."),
                              ("retrain_seconds", "one retrain, 14-day window (proj.)", "--")):
        if key in proj:
            left.plot(sizes, [proj[key][str(n)] for n in sizes], style, label=label)
    left.axhline(DAY_SECONDS, color="grey", linewidth=0.8)
    left.text(sizes[0], DAY_SECONDS * 1.2, "one day", color="grey")
    left.set(xscale="log", yscale="log", xlabel="rows/day", ylabel="seconds per day", title="time")
    left.legend(fontsize=7, loc="center right")
    right.plot(sizes, [r["dagster"]["peak_rss_mb"] for r in s["per_size"]], "o-", label="Dagster")
    right.plot(sizes, [r["plain"]["peak_rss_mb"] for r in s["per_size"]], "s--", label="plain script")
    right.set(xscale="log", xlabel="rows/day", ylabel="peak RSS MB", title="memory (data half)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
