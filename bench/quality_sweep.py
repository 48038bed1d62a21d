"""`make bench-quality`: does continual training measurably work? (issue 12 item 6)

Every stream is a 40-day replay of the simulator (bench.continual: the pure-logic loop of
the product) at the demo's --fast size (150 rows/day, 7-day window, 3 epochs, MiniLM),
one scenario switched on at ``DRIFT_DAY``, the first model trained on day 6. Per
scenario (fixed window, replay 0.1, LoRA, policy combined): pre-drift accuracy, static
and CT accuracy after drift, the recovery ratio (CT - static) / (pre-drift - static),
days to recover, retrains, promotions, blocked retrains and why, golden forgetting.
Variants: since_change on concept_change; on seasonal_class a forced retrain every
``CADENCE`` days (so at least 8 adapters cross the class's absence) in four variants,
neither / replay / EWC / both; full fine-tuning beside LoRA on concept_change and on the
seasonal cadence.

    python -m bench.quality_sweep              # the sweep: two streams at a time, one thread each
    python -m bench.quality_sweep --jobs 1     # one stream at a time at torch's thread count
    python -m bench.quality_sweep --only concept_change/since_change
    python -m bench.quality_sweep --full       # demo size (300 rows/day, 14-day window): GPU

On 2 CPU cores one stream at a time took 65 min and two at a time 56 min (BENCHMARKS.md
§11): one stream's single-threaded Python (simulator, drift, gate) overlaps the other's
training. ``--jobs N`` runs N streams at once in spawned processes at one thread each
(torch, polars, tokenizers), costliest first so the last stream is a short one. The
figures do not depend on it: both ways gave the same tables.

Finished streams are cached in bench/results/quality_sweep_runs/ (one JSON each, keyed by
size): an interrupted sweep resumes; delete the folder to measure afresh. The result is
bench/results/quality_sweep.json and the tables in quality_sweep.md (BENCHMARKS.md §11).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from bench.quality_metrics import forgetting_rows, stream_metrics, tables

NAME = "quality_sweep"
DAYS, DRIFT_DAY = 40, 14
SEASONAL_LABEL, SEASONAL_END = "shipping", 29  # absent on days 14..29 (16 days), back on day 30
LABEL_SHIFT_END = 27  # a two-week outage; the days after it show whether CT comes back
CADENCE = 2
EWC_LAMBDA = 1000.0  # Fisher values of a LoRA adapter are tiny; see ct_assets.training.loop.EwcPenalty
FULL_LEARNING_RATE = 1e-4  # full fine-tuning wants far less than LoRA's 5e-3 (README, training.method)
RESULTS = Path(__file__).resolve().parent / "results"

SCENARIOS = ("product_launch", "slang_shift", "label_shift", "concept_change", "seasonal_class")
# name -> (scenario, training overrides, forced cadence)
VARIANTS: dict[str, tuple[str, dict, int | None]] = {
    **{f"{s}/fixed": (s, {}, None) for s in SCENARIOS},
    "concept_change/since_change": ("concept_change", {"window_mode": "since_change"}, None),
    "concept_change/full": ("concept_change", {"method": "full", "learning_rate": FULL_LEARNING_RATE}, None),
    "seasonal_class/cadence_neither": ("seasonal_class", {"replay_fraction": 0.0}, CADENCE),
    "seasonal_class/cadence_replay": ("seasonal_class", {}, CADENCE),
    "seasonal_class/cadence_ewc": ("seasonal_class", {"replay_fraction": 0.0, "ewc_lambda": EWC_LAMBDA}, CADENCE),
    "seasonal_class/cadence_both": ("seasonal_class", {"ewc_lambda": EWC_LAMBDA}, CADENCE),
    "seasonal_class/cadence_replay_full": ("seasonal_class", {"method": "full", "learning_rate": FULL_LEARNING_RATE},
                                           CADENCE),
}


def scenario_spec(scenario: str) -> dict:
    spec = {"name": scenario, "start_day": DRIFT_DAY}
    if scenario == "label_shift":
        spec["end_day"] = LABEL_SHIFT_END
    if scenario == "seasonal_class":
        spec.update(end_day=SEASONAL_END, label=SEASONAL_LABEL)
    return spec


def sweep_settings(variant: str, *, full_size: bool):
    import yaml

    from ct_assets.core.settings import default_config_text, parse_settings

    scenario, overrides, _ = VARIANTS[variant]
    raw = yaml.safe_load(default_config_text())
    raw["source"]["simulator"]["scenarios"] = [scenario_spec(scenario)]
    start = dt.date.fromisoformat(str(raw["partitions"]["start_date"]))
    raw["reference"] = {"start": start.isoformat(), "end": (start + dt.timedelta(days=5)).isoformat()}
    raw["triggers"].update({"policy": "combined", "cooldown_days": 2})
    if not full_size:  # the demo's --fast size (ct_assets.demo.main.fast_settings)
        raw["source"]["simulator"]["rows_per_day"] = 150
        raw["training"].update({"window_days": 7, "max_epochs": 3, "min_rows": 100})
    raw["training"].update(overrides)
    return parse_settings(raw, f"bench quality_sweep {variant}")


def run_variant(variant: str, *, full_size: bool, days: int) -> dict:
    import torch

    from bench.continual import run_stream

    settings = sweep_settings(variant, full_size=full_size)
    scenario, overrides, cadence = VARIANTS[variant]
    result = run_stream(settings, days, retrain_every=cadence)
    return {"variant": variant, "scenario": scenario, "overrides": overrides, "cadence": cadence,
            "spec": scenario_spec(scenario), "days": days, "full_size": full_size,
            "max_forgetting": settings.gate.max_forgetting,
            "max_class_forgetting": settings.gate.max_class_forgetting, "seconds": result.seconds,
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "torch_threads": torch.get_num_threads(),
            "records": result.days, "versions": [dataclasses.asdict(v) for v in result.versions]}


# Thread pools a worker must not start wider than one core; read when each library loads,
# so they are set in the parent before the workers are spawned and inherited.
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "POLARS_MAX_THREADS": "1",
                  "TOKENIZERS_PARALLELISM": "false"}


def costliest_first(variants) -> list[str]:
    """Full fine-tunes, then forced cadences, then the rest (each keeps its order): a pool
    that takes the next stream when one ends then finishes on a short one, not a long one."""
    def cost(variant: str) -> int:
        _, overrides, cadence = VARIANTS[variant]
        return (overrides.get("method") == "full") * 2 + (cadence is not None)
    return sorted(variants, key=cost, reverse=True)


def _one_thread_worker() -> None:
    import torch

    torch.set_num_threads(1)


def _cache_path(cache: Path | None, variant: str, full_size: bool) -> Path | None:
    return cache / f"{variant.replace('/', '__')}{'_full' if full_size else ''}.json" if cache else None


def _store(path: Path | None, result: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=1, default=str))
    os.replace(tmp, path)  # an interrupted sweep never leaves half a stream to resume from


def _run_streams(todo: list[str], *, full_size: bool, days: int, jobs: int, cache: Path | None,
                 runner=None) -> dict[str, dict]:
    runner = runner or run_variant
    done: dict[str, dict] = {}

    def finished(variant: str, result: dict) -> None:
        done[variant] = result
        print(f"[quality_sweep] {variant}: {result['seconds']:.0f} s", file=sys.stderr, flush=True)
        _store(_cache_path(cache, variant, full_size), result)

    if jobs <= 1:
        for variant in todo:
            print(f"[quality_sweep] {variant} ...", file=sys.stderr, flush=True)
            finished(variant, runner(variant, full_size=full_size, days=days))
        return done
    saved = {name: os.environ.get(name) for name in ONE_THREAD_ENV}
    os.environ.update(ONE_THREAD_ENV)
    context = multiprocessing.get_context("spawn")  # no forked torch or polars thread pools
    try:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=_one_thread_worker) as pool:
            futures = {}
            for variant in costliest_first(todo):
                print(f"[quality_sweep] {variant} queued", file=sys.stderr, flush=True)
                futures[pool.submit(runner, variant, full_size=full_size, days=days)] = variant
            for future in as_completed(futures):
                try:
                    result = future.result()
                except Exception as exc:
                    pool.shutdown(wait=False, cancel_futures=True)  # finished streams stay cached
                    raise RuntimeError(f"quality sweep stream {futures[future]!r} failed: {exc}") from exc
                finished(futures[future], result)
    finally:
        for name, value in saved.items():  # the caller's environment, not the workers'
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return done


def run(variants, *, full_size: bool = False, days: int = DAYS, cache: Path | None = None,
        jobs: int = 1, runner=None) -> dict:
    started = time.perf_counter()
    runs = {}
    for variant in variants:
        path = _cache_path(cache, variant, full_size)
        if path is not None and path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("days") == days:
                runs[variant] = cached
    todo = [v for v in variants if v not in runs]
    runs.update(_run_streams(todo, full_size=full_size, days=days, jobs=jobs, cache=cache, runner=runner))
    runs = {v: runs[v] for v in variants}
    metrics = {v: {**stream_metrics(r, drift_day=DRIFT_DAY), "measured_at": r["measured_at"],
                   "torch_threads": r.get("torch_threads"),
                   "gate_bounds": {k: r.get(k) for k in ("max_forgetting", "max_class_forgetting")}}
               for v, r in runs.items()}
    return {"name": NAME, "days": days, "drift_day": DRIFT_DAY, "full_size": full_size,
            "seasonal": {"label": SEASONAL_LABEL, "absent_days": [DRIFT_DAY, SEASONAL_END], "cadence": CADENCE},
            "stream_seconds": sum(r["seconds"] for r in runs.values()),
            "jobs": jobs, "streams_run_this_call": len(todo),
            "wall_seconds_this_call": time.perf_counter() - started,
            "metrics": metrics,
            "forgetting": {v: forgetting_rows(r, SEASONAL_LABEL, DRIFT_DAY, SEASONAL_END)
                           for v, r in runs.items() if r["scenario"] == "seasonal_class"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--full", action="store_true", help="demo size (300 rows/day, 14-day window); for a GPU")
    parser.add_argument("--jobs", type=int, default=2,
                        help="streams at once, one thread each (default 2: one per core of a 2-core machine); "
                             "1 = one at a time at torch's thread count")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    suffix = "_full" if args.full else ""
    out = run(args.only, full_size=args.full, days=args.days, cache=args.out / f"{NAME}_runs", jobs=args.jobs)
    (args.out / f"{NAME}{suffix}.json").write_text(json.dumps(out, indent=1, default=str))
    (args.out / f"{NAME}{suffix}.md").write_text(tables(out))
    print(tables(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
