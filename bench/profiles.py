"""The same replay on CT_PROFILE=local and CT_PROFILE=server, and what the engines cost.

    python -m bench.profiles [--days 30] [--out bench/results]

local: SQLite event log and run storage, MLflow on SQLite, the lake as a folder. server:
Postgres (dagster-postgres), an MLflow tracking server (Postgres backend, artifacts proxied
to S3) and the lake and landing zone on an S3-protocol server (moto), all started here on
localhost by ct_assets.stack. Both replays run the same days, settings and seed in a
child process each (one at a time: two cores).

The model is the tiny random BERT the tests use, on purpose: this measures what the
profile changes (storage, the registry, the lake), which a real base's training time
would only dilute; the replay's own training and scoring are the same code on both.

Reported per profile: wall time, seconds per replayed day, Dagster runs, and the
orchestration overhead per run = run wall time (Dagster's run stats) minus the time its
steps ran (step stats): launch, storage writes, IO-manager waits between steps.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine_info, quiet_child, ratio, run_child, write_child_result, write_result

NAME = "profiles"
DAYS = 30
HAND_RUN_MD = Path(__file__).resolve().parent / "server_profile_hand_run.md"


def _settings(base_dir: Path):
    from ct_assets.core.settings import get_settings
    from ct_assets.demo.main import fast_settings

    fast = fast_settings(get_settings())
    tr = fast.training.model_copy(update={
        "base": fast.training.base.model_copy(update={"kind": "directory", "name": str(base_dir),
                                                      "model_id": "tiny-bert"}),
        "max_length": 32, "max_epochs": 2})
    # The random tiny model cannot pass the demo's first-model gate; a blocked first model
    # would leave every later day without a chain to measure.
    gate = fast.gate.model_copy(update={
        "first_model": fast.gate.first_model.model_copy(update={"min_accuracy": 0.0, "min_macro_f1": 0.0}),
        "min_class_recall": 0.0})
    return fast.model_copy(update={"training": tr, "gate": gate})


def _tiny_base(directory: Path) -> Path:
    from ct_assets.core.settings import get_settings
    from ct_assets.sim.simulator import SimulatorConfig, generate_day
    from ct_assets.training.base_model import build_tiny_model

    settings = get_settings()
    start = settings.partitions.start_date
    config = SimulatorConfig(labels=tuple(settings.labels), rows_per_day=200)
    texts = [r["text"] for i in range(3) for r in generate_day(config, start, start + dt.timedelta(days=i))
             if isinstance(r["text"], str)]
    return build_tiny_model(directory, texts, vocab_size=800)


def _run_overheads(instance) -> dict:
    """Per Dagster run: wall (run stats) and the part of it no step was running."""
    walls, overheads, events = [], [], 0
    for run in instance.get_runs():
        stats = instance.get_run_stats(run.run_id)
        if stats.start_time is None or stats.end_time is None:
            continue
        wall = stats.end_time - stats.start_time
        steps = sum((s.end_time or s.start_time) - s.start_time
                    for s in instance.get_run_step_stats(run.run_id) if s.start_time is not None)
        walls.append(wall)
        overheads.append(max(0.0, wall - steps))
        events += len(instance.all_logs(run.run_id))
    return {
        "runs": len(walls),
        "events": events,
        "run_wall_seconds_median": round(statistics.median(walls), 3) if walls else None,
        "orchestration_overhead_seconds_median": round(statistics.median(overheads), 3) if overheads else None,
        "orchestration_overhead_seconds_mean": round(statistics.fmean(overheads), 3) if overheads else None,
        "orchestration_overhead_seconds_total": round(sum(overheads), 2),
    }


def child(args) -> dict:
    from dagster import DagsterInstance

    from ct_assets.core.home import ct_home
    from ct_assets.demo.replay import run_replay

    quiet_child()
    home = ct_home()
    settings = _settings(_tiny_base(Path(tempfile.mkdtemp(prefix="ct_bench_tiny_"))))
    home.ensure(settings.triggers.max_concurrent_training_runs)
    started = time.perf_counter()
    result = run_replay(settings, home, args.days)
    wall = time.perf_counter() - started
    instance = DagsterInstance.from_config(str(home.dagster))
    return {
        "profile": "server" if home.is_server else "local",
        "event_log_storage": type(instance.event_log_storage).__name__,
        "days": args.days,
        "wall_seconds": round(wall, 2),
        "seconds_per_day": round(wall / args.days, 3),
        "retrains": sum(1 for r in result.records if r.get("retrained")),
        "failed_runs": result.failed_runs,
        **_run_overheads(instance),
    }


def run(days: int = DAYS, timeout: float = 3600) -> dict:
    from bench import event_log
    from ct_assets.stack import server_stack

    local = run_child("bench.profiles", ["--child", "--days", str(days)], timeout=timeout)
    with server_stack() as servers:
        server = run_child("bench.profiles", ["--child", "--days", str(days)], timeout=timeout,
                           extra_env=servers.env())
    return {
        "name": NAME,
        "days": days,
        "local": local,
        "server": server,
        "ratios": {
            "server_vs_local_wall": ratio(server["wall_seconds"], local["wall_seconds"]),
            "server_vs_local_overhead_per_run": ratio(server["orchestration_overhead_seconds_median"],
                                                      local["orchestration_overhead_seconds_median"]),
        },
        "event_log": event_log.run(),
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result-file", help=argparse.SUPPRESS)
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    if args.child:
        write_child_result(args.result_file, child(args))
        return
    payload = run(args.days)
    print(json.dumps(payload, indent=2, default=str))
    print(f"wrote {write_result(args.out, NAME, payload)}", file=sys.stderr)
    from bench.report_profiles import profiles_section

    HAND_RUN_MD.write_text("\n".join(profiles_section(payload)) + "\n", encoding="utf-8")
    print(f"wrote {HAND_RUN_MD} (appended to BENCHMARKS.md by bench.report)", file=sys.stderr)


if __name__ == "__main__":
    main()
