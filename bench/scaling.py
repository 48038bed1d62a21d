"""Cost growth: the data half at 2k, 20k, 200k and 1M rows/day, Dagster vs a plain script.

    python -m bench.scaling [--sizes 2000 20000 200000 1000000] [--baseline-tree DIR]

Per size, ``days_for(n)`` simulated days (simulated once per size and start date, untimed, cached
under --cache), then the two children of ``bench.data_path`` on them, one after the other
in fresh processes: (a) the Dagster single-run backfill of raw_window, validated_window,
quarantined_rows and drift_report through the real Definitions, (b) the same per-day
calls in a plain script. Each reports its wall time, per-step/per-stage seconds and its
own peak RSS.

``--baseline-tree`` is a checkout of the code before the data path was made native (e.g.
``git worktree add /tmp/ct_baseline <rev>``): its plain child runs on the same files at
the sizes in ``--baseline-sizes``, so "how much faster than before" is a same-run ratio.

Scoring and retraining are not rerun per size: their cost is linear in rows by
construction (batched inference, a fixed number of epochs), so the table projects them
from the throughput measured in bench/results/inference.json and train_throughput.json
and says so. The projection answers where each stage stops fitting in a day on one
machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

from bench.common import REPO, run_child, write_result
from bench.data_path import simulate, start_date

NAME = "scaling"
SIZES = (2000, 20000, 200000, 1000000)
TINY_SIZES = (200,)  # one size: the smoke proves the loop, the report and the projections run
# Days per size: enough that a day's own work, not the process's fixed start-up (imports,
# the GX context, the Definitions), dominates; 1M rows/day gets two (simulating a day of
# it takes ~2 minutes).
MIN_DAYS, DAYS_AT_1M = 4, 2


def days_for(rows_per_day: int) -> int:
    return DAYS_AT_1M if rows_per_day >= 1000000 else MIN_DAYS
DAY_SECONDS = 86400.0


def _landing(cache: Path, rows_per_day: int, days: int, start: dt.date) -> tuple[Path, int, float]:
    """The simulated landing zone for a size, reused when an earlier run wrote it."""
    landing = cache / f"rows{rows_per_day}_days{days}_{start.isoformat()}"
    marker = landing / ".rows"
    if marker.is_file():
        return landing, int(marker.read_text()), 0.0
    t0 = time.perf_counter()
    rows = simulate(landing, days, rows_per_day, start)
    marker.write_text(str(rows))
    return landing, rows, time.perf_counter() - t0


def _child(kind: str, landing: Path, work: Path, rows_per_day: int, start: dt.date, timeout: float,
           tree: Path | None = None) -> dict:
    args = ["--child", kind, "--work", str(work / kind), "--landing", str(landing), "--days", str(days_for(rows_per_day)),
            "--rows-per-day", str(rows_per_day), "--start", start.isoformat()]
    # A baseline tree is imported instead of this one (its bench.data_path has the same CLI).
    env = {"PYTHONPATH": str(tree)} if tree is not None else None
    return run_child("bench.data_path", args, timeout=timeout, extra_env=env, cwd=tree)


def measure_size(rows_per_day: int, cache: Path, work: Path, start: dt.date, timeout: float,
                 baseline: Path | None) -> dict:
    days = days_for(rows_per_day)
    landing, rows, simulated = _landing(cache, rows_per_day, days, start)
    dag = _child("dagster", landing, work / str(rows_per_day), rows_per_day, start, timeout)
    if not dag["success"]:
        raise RuntimeError(f"{rows_per_day} rows/day: the Dagster backfill failed: {dag}")
    plain = _child("plain", landing, work / str(rows_per_day), rows_per_day, start, timeout)
    if plain["rows"] != rows:
        raise RuntimeError(f"{rows_per_day} rows/day: the plain path read {plain['rows']} rows, {rows} were simulated")
    out = {"rows_per_day": rows_per_day, "days": days, "rows": rows, "simulate_seconds_untimed": round(simulated, 1),
           "dagster": {**dag, "rows_per_second": rows / dag["wall_seconds"]},
           "plain": {**plain, "rows_per_second": rows / plain["wall_seconds"]},
           "time_dagster_vs_plain": dag["wall_seconds"] / plain["wall_seconds"]}
    if baseline is not None:
        base = _child("plain", landing, work / f"{rows_per_day}_baseline", rows_per_day, start, timeout, baseline)
        out["baseline_plain"] = {**base, "rows_per_second": rows / base["wall_seconds"]}
        out["speedup_vs_baseline"] = {"plain": base["wall_seconds"] / plain["wall_seconds"],
                                      "dagster": base["wall_seconds"] / dag["wall_seconds"]}
    return out


def _load(results: Path, name: str) -> dict | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def projections(results: Path, sizes, window_days: int = 14) -> dict:
    """Seconds per day of scoring and of one retrain per size (keyed by str(rows/day), as in
    the JSON file), from measured throughput."""
    inference, train = _load(results, "inference"), _load(results, "train_throughput")
    out: dict = {"source": {}}
    if inference and not inference.get("tiny"):
        from ct_assets.core.settings import DriftSettings

        # The default on CPU (training.inference_precision auto = fp32 there).
        rate = inference["variants"]["predictor_fp32"]["samples_per_second"]
        cap = DriftSettings().monitoring_sample_rows
        out["source"]["scoring"] = (f"the fp32 Predictor (the CPU default): {rate:.0f} samples/s "
                                    f"(bench/results/inference.json, {inference['measured_at']}), one model; "
                                    f"the monitoring sample is drift.monitoring_sample_rows = {cap:,}")
        out["scoring_all_rows_seconds"] = {str(n): n / rate for n in sizes}
        out["scoring_sampled_seconds"] = {str(n): min(n, cap) / rate for n in sizes}
        out["monitoring_sample_rows"] = cap
    if train and not train.get("tiny"):
        rate = train["paths"]["project"]["samples_per_second"]
        out["source"]["retrain"] = (f"fit_adapter: {rate:.0f} samples/s (bench/results/train_throughput.json, "
                                    f"{train['measured_at']}), {window_days}-day window, 1 epoch")
        out["retrain_seconds"] = {str(n): n * window_days / rate for n in sizes}
    return out


def run(sizes=SIZES, cache: Path | None = None, baseline: Path | None = None, baseline_sizes=(200000,),
        timeout: float = 3600, results: Path | None = None) -> dict:
    import tempfile

    cache = cache or Path(tempfile.gettempdir()) / "ct_scaling_landing"
    cache.mkdir(parents=True, exist_ok=True)
    start = start_date(max(days_for(n) for n in sizes))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as tmp:
        for n in sizes:
            print(f"[scaling] {n} rows/day ...", file=sys.stderr, flush=True)
            rows.append(measure_size(n, cache, Path(tmp), start, timeout,
                                     baseline if n in baseline_sizes else None))
    return {"name": NAME, "sizes": list(sizes), "days_per_size": {str(n): days_for(n) for n in sizes}, "start_date": start.isoformat(),
            "baseline_tree": str(baseline) if baseline else None, "per_size": rows,
            "projections": projections(results or REPO / "bench" / "results", list(sizes)),
            "ratios": {f"time_dagster_vs_plain_{r['rows_per_day']}": r["time_dagster_vs_plain"] for r in rows}
            | {f"speedup_vs_baseline_{r['rows_per_day']}": r["speedup_vs_baseline"]["dagster"]
               for r in rows if "speedup_vs_baseline" in r},
            "targets": {"time_dagster_vs_plain_200000": "<= 1.2", "speedup_vs_baseline_200000": ">= 5"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--tiny", action="store_true", help=f"sizes {TINY_SIZES} (the CI smoke)")
    parser.add_argument("--cache", type=Path, help="where simulated landing zones are kept between runs")
    parser.add_argument("--baseline-tree", type=Path)
    parser.add_argument("--baseline-sizes", type=int, nargs="*", default=[200000])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args(argv)
    sizes = TINY_SIZES if args.tiny else tuple(args.sizes)
    result = run(sizes, args.cache, args.baseline_tree, tuple(args.baseline_sizes), results=args.out)
    result.update({"tiny": args.tiny, "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
    if not args.tiny:
        write_result(args.out, NAME, result)
        from bench.report_scaling import plot

        plot(result, args.out / "scaling.png")
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
