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

    python -m bench.quality_sweep              # the sweep, ~45 min on 2 CPU cores
    python -m bench.quality_sweep --only concept_change/since_change
    python -m bench.quality_sweep --full       # demo size (300 rows/day, 14-day window): GPU

Finished streams are cached in bench/results/quality_sweep_runs/ (one JSON each, keyed by
size): an interrupted sweep resumes; delete the folder to measure afresh. The result is
bench/results/quality_sweep.json and the tables in quality_sweep.md (BENCHMARKS.md §11).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
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
    from bench.continual import run_stream

    settings = sweep_settings(variant, full_size=full_size)
    scenario, overrides, cadence = VARIANTS[variant]
    result = run_stream(settings, days, retrain_every=cadence)
    return {"variant": variant, "scenario": scenario, "overrides": overrides, "cadence": cadence,
            "spec": scenario_spec(scenario), "days": days, "full_size": full_size,
            "max_forgetting": settings.gate.max_forgetting,
            "max_class_forgetting": settings.gate.max_class_forgetting, "seconds": result.seconds,
            "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "records": result.days, "versions": [dataclasses.asdict(v) for v in result.versions]}


def run(variants, *, full_size: bool = False, days: int = DAYS, cache: Path | None = None) -> dict:
    started = time.perf_counter()
    runs = {}
    for variant in variants:
        path = cache / f"{variant.replace('/', '__')}{'_full' if full_size else ''}.json" if cache else None
        if path is not None and path.is_file():
            cached = json.loads(path.read_text())
            if cached.get("days") == days:
                runs[variant] = cached
                continue
        print(f"[quality_sweep] {variant} ...", file=sys.stderr, flush=True)
        runs[variant] = run_variant(variant, full_size=full_size, days=days)
        print(f"[quality_sweep] {variant}: {runs[variant]['seconds']:.0f} s", file=sys.stderr, flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(runs[variant], indent=1, default=str))
    metrics = {v: {**stream_metrics(r, drift_day=DRIFT_DAY), "measured_at": r["measured_at"],
                   "gate_bounds": {k: r.get(k) for k in ("max_forgetting", "max_class_forgetting")}}
               for v, r in runs.items()}
    return {"name": NAME, "days": days, "drift_day": DRIFT_DAY, "full_size": full_size,
            "seasonal": {"label": SEASONAL_LABEL, "absent_days": [DRIFT_DAY, SEASONAL_END], "cadence": CADENCE},
            "stream_seconds": sum(r["seconds"] for r in runs.values()),
            "wall_seconds_this_call": time.perf_counter() - started,
            "metrics": metrics,
            "forgetting": {v: forgetting_rows(r, SEASONAL_LABEL, DRIFT_DAY, SEASONAL_END)
                           for v, r in runs.items() if r["scenario"] == "seasonal_class"}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--full", action="store_true", help="demo size (300 rows/day, 14-day window); for a GPU")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    suffix = "_full" if args.full else ""
    out = run(args.only, full_size=args.full, days=args.days, cache=args.out / f"{NAME}_runs")
    (args.out / f"{NAME}{suffix}.json").write_text(json.dumps(out, indent=1, default=str))
    (args.out / f"{NAME}{suffix}.md").write_text(tables(out))
    print(tables(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
