"""Event-log write cost per event: Dagster's SQLite storage vs Postgres (dagster-postgres).

Every step of every run writes its events (step start and success, log lines,
materializations) through the instance's event-log storage, one commit each. This prices
that write for the two storages the profiles use, each built from the dagster.yaml that
ct_assets writes (ct_assets.core.home: SQLITE_STORAGE for CT_PROFILE=local,
POSTGRES_STORAGE for CT_PROFILE=server), loaded with DagsterInstance.from_config:

- sqlite: a temp DAGSTER_HOME; one SQLite file per run plus the shared asset index.
- postgres: the throwaway cluster of ct_assets.stack (stock settings, fsync and
  synchronous_commit on) over TCP on 127.0.0.1, i.e. without a network's round trip.

Scenarios, each with fresh runs: one writer; two writer processes on one run (the
multiprocess executor: two steps of one run, so for SQLite the same file); two writer
processes on two runs (two concurrent runs). Writers are spawned once and reused; each
builds its instance and writes one untimed event per run (which creates the run's SQLite
file) before a shared start time. The event mix repeats what one step writes:
STEP_START, two log lines, ASSET_MATERIALIZATION (one of ten assets: the asset index is
updated too), STEP_SUCCESS. The peer is the SQLite storage as Dagster configures it by
default (the best-configured SQLite is the default: Dagster sets its own pragmas).
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.common import ratio

NAME = "event_log"
# 400 events = 80 steps per writer: ~40 s for all six measurements on a 2-core machine.
FULL = {"events_per_writer": 400}
TINY = {"events_per_writer": 50}
ASSETS = 10
STEP_EVENTS = 5  # STEP_START, 2 log lines, ASSET_MATERIALIZATION, STEP_SUCCESS
START_DELAY_S = 1.0  # writers build their instance, then all start at the same moment
SCENARIOS = {  # name -> (writers, runs they share)
    "one_writer": (1, 1),
    "two_writers_one_run": (2, 1),
    "two_writers_two_runs": (2, 2),
}


def storage_yaml(backend: str, base_dir: Path) -> str:
    from ct_assets.core.home import POSTGRES_STORAGE, SQLITE_STORAGE

    if backend == "sqlite":
        return SQLITE_STORAGE.format(base_dir=base_dir)
    return POSTGRES_STORAGE


def step_events(run_id: str, step: str, asset: str) -> list:
    """What one step writes, built the way Dagster's own storage tests build events."""
    from dagster import AssetMaterialization, DagsterEvent, DagsterEventType, EventLogEntry
    # Private: the payload types these event kinds require (DagsterEvent validates them);
    # the public constructors need a live step context, which a storage benchmark lacks.
    from dagster._core.events import StepMaterializationData, StepSuccessData

    job = "bench_event_log"

    def entry(message: str, event=None) -> EventLogEntry:
        return EventLogEntry(error_info=None, level=logging.INFO if event is None else logging.DEBUG,
                             user_message=message, run_id=run_id, timestamp=time.time(), step_key=step,
                             job_name=job, dagster_event=event)

    def dagster_event(kind: DagsterEventType, data=None) -> DagsterEvent:
        return DagsterEvent(kind.value, job, event_specific_data=data, step_key=step, message=f"{kind.value} {step}")

    return [
        entry("", dagster_event(DagsterEventType.STEP_START)),
        entry(f"{step}: read 2000 rows from the landing zone"),
        entry(f"{step}: 1994 clean rows, 6 quarantined"),
        entry("", dagster_event(DagsterEventType.ASSET_MATERIALIZATION, StepMaterializationData(
            AssetMaterialization(asset_key=asset, partition="2026-09-02", metadata={"rows": 1994})))),
        entry("", dagster_event(DagsterEventType.STEP_SUCCESS, StepSuccessData(duration_ms=12.5))),
    ]


def write_events(config_dir: str, run_id: str, writer: int, count: int, start_at: float) -> dict:
    """One writer: ``count`` events to ``run_id`` from ``start_at`` (wall clock) on.
    Runs in a spawned worker process; returns its timings."""
    from dagster import DagsterInstance

    instance = DagsterInstance.from_config(config_dir)
    storage = instance.event_log_storage
    try:
        storage.store_event(step_events(run_id, f"warmup_{writer}", "warmup")[1])  # untimed: creates the run's file
        batches = [step_events(run_id, f"w{writer}_step{i}", f"asset_{i % ASSETS}")
                   for i in range(-(-count // STEP_EVENTS))]
        events = [e for batch in batches for e in batch][:count]
        time.sleep(max(0.0, start_at - time.time()))
        began = time.time()
        t0 = time.perf_counter()
        for event in events:
            storage.store_event(event)
        seconds = time.perf_counter() - t0
    finally:
        instance.dispose()
    return {"began": began, "ended": began + seconds, "seconds": seconds, "events": len(events)}


def measure(pool, config_dir: Path, writers: int, runs: int, events_per_writer: int) -> dict:
    run_ids = [str(uuid.uuid4()) for _ in range(runs)]
    start_at = time.time() + START_DELAY_S
    jobs = [pool.apply_async(write_events, (str(config_dir), run_ids[w % runs], w, events_per_writer, start_at))
            for w in range(writers)]
    results = [job.get(timeout=300) for job in jobs]
    wall = max(r["ended"] for r in results) - min(r["began"] for r in results)
    total = sum(r["events"] for r in results)
    return {
        "writers": writers, "runs": runs, "events": total, "wall_seconds": round(wall, 4),
        "events_per_second": total / wall,
        # Throughput view: the wall time the storage needs per event, all writers together.
        "us_per_event": 1e6 * wall / total,
        # Latency view: what one store_event call costs a writer, on average.
        "us_per_call_mean": 1e6 * sum(r["seconds"] for r in results) / total,
    }


def new_connection_ms(pg, samples: int = 20) -> float:
    """What opening one connection costs (TCP, backend start, SCRAM password exchange):
    dagster-postgres opens one per store_event (NullPool: it keeps no connection open)."""
    import psycopg2

    t0 = time.perf_counter()
    for _ in range(samples):
        psycopg2.connect(**pg.connect_kwargs()).close()
    return 1e3 * (time.perf_counter() - t0) / samples


def run(tiny: bool = False) -> dict:
    from ct_assets.core.profile import PG_ENV
    from ct_assets.stack.postgres import postgres_server

    size = TINY if tiny else FULL
    n = size["events_per_writer"]
    t0, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench_event_log_") as tmp, postgres_server(db="dagster") as pg:
        pg_env = {PG_ENV["hostname"]: pg.host, PG_ENV["port"]: str(pg.port), PG_ENV["username"]: pg.user,
                  PG_ENV["password"]: pg.password, PG_ENV["db_name"]: pg.db}
        # POSTGRES_STORAGE names its values as {env: CT_PG_*}; spawned workers inherit these.
        saved = {k: os.environ.get(k) for k in pg_env}
        os.environ.update(pg_env)
        try:
            configs = {}
            for backend in ("sqlite", "postgres"):
                home = Path(tmp) / backend
                home.mkdir()
                (home / "dagster.yaml").write_text(storage_yaml(backend, home / "storage"))
                configs[backend] = home
            results: dict[str, dict] = {"sqlite": {}, "postgres": {}}
            with multiprocessing.get_context("spawn").Pool(2) as pool:
                for scenario, (writers, runs) in SCENARIOS.items():
                    for backend, home in configs.items():
                        results[backend][scenario] = measure(pool, home, writers, runs, n)
            connect_ms = new_connection_ms(pg)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    ratios = {}
    for scenario in SCENARIOS:
        s, p = results["sqlite"][scenario], results["postgres"][scenario]
        ratios[f"us_per_event_postgres_vs_sqlite_{scenario}"] = ratio(p["us_per_event"], s["us_per_event"])
        ratios[f"events_per_second_postgres_vs_sqlite_{scenario}"] = ratio(p["events_per_second"],
                                                                          s["events_per_second"])
    return {
        "name": NAME,
        "tiny": tiny,
        "events_per_writer": n,
        "event_mix": "per step: STEP_START, 2 log lines, ASSET_MATERIALIZATION (10 assets), STEP_SUCCESS",
        "postgres": {"server": "ct_assets.stack (initdb, stock settings, fsync on), TCP 127.0.0.1",
                     "dagster_yaml": "ct_assets.core.home.POSTGRES_STORAGE",
                     "new_connection_ms": connect_ms, **results["postgres"]},
        "sqlite": {"dagster_yaml": "ct_assets.core.home.SQLITE_STORAGE", **results["sqlite"]},
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "cpu_cores": len(os.sched_getaffinity(0)),
        # 1-minute load average around the run: tells a contended measurement from a slow path.
        "load_average": {"before": load_before, "after": os.getloadavg()[0]},
        "ratios": ratios,
        "peer": "sqlite (Dagster's default storage, as dagster.yaml `storage: sqlite` builds it)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    args = parser.parse_args(argv)
    json.dump(run(args.tiny), sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
