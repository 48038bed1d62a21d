"""The data half: a single-run Dagster backfill vs the same computations in a plain script.

Both paths read the same pre-simulated landing files (simulated once, untimed) and do
the same per-day work: read_landing_day -> split_rows -> GX validate_clean (with its
Data Docs) -> drift (drift_of_day) against the configured reference days -> Parquet for raw,
clean, quarantined rows and the drift row. Each path runs in its own subprocess, so both
pay the lazy GX import and their own caches.

(a) Dagster: raw_window, validated_window, quarantined_rows, drift_report over the whole
    range in one run (materialize_range -> a single-run backfill) on instance_for_test()
    through the real Definitions (build_definitions is untimed: it is the code location
    loading once). Per-step durations come from the run's event log.
(b) Plain: a loop a person would write by hand; the reference frame is kept in memory
    instead of being re-read from Parquet per day, as a hand-written script would.

Settings: the embedded demo ct.yaml (all drift scenarios on) with source.kind
landing_zone and rows_per_day overridden, and quality.max_bad_fraction raised to 0.5 on
both paths: the day-24 quality incident quarantines ~30% of its rows, and in a
single-run backfill one failing blocking check blocks the downstream step for the whole
range, so Dagster would skip drift_report for all days and do less work than the script.
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

NAME = "data_path"
FULL = {"days": 90, "rows_per_day": 2000}
TINY = {"days": 5, "rows_per_day": 200}
DATA_ASSETS = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
TARGET_TIME_RATIO = 1.5


def start_date(days: int) -> dt.date:
    """A start that leaves ``days`` complete daily partitions before today: Dagster's daily
    partitions end at the last finished day, so the demo's fixed 2026-09-01 would not
    hold 90 days on most dates. Scenario days count from this start, as in the demo."""
    return dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=days + 1)


def bench_settings(landing: Path, rows_per_day: int, start: dt.date):
    import yaml

    from ct_assets.core.settings import default_config_text, parse_settings

    raw = yaml.safe_load(default_config_text())
    raw["partitions"]["start_date"] = start.isoformat()
    raw["reference"] = {"start": start.isoformat(), "end": (start + dt.timedelta(days=6)).isoformat()}
    raw["source"]["kind"] = "landing_zone"
    raw["source"]["path"] = str(landing)
    raw["source"]["simulator"]["rows_per_day"] = rows_per_day
    raw["quality"]["max_bad_fraction"] = 0.5
    return parse_settings(raw, "bench data_path settings")


def simulate(landing: Path, days: int, rows_per_day: int, start: dt.date) -> int:
    """Write the landing zone once (untimed); returns the number of rows written."""
    from ct_assets.sim.simulator import Scenario, SimulatorConfig, write_day

    settings = bench_settings(landing, rows_per_day, start)
    sim = settings.source.simulator
    config = SimulatorConfig(labels=settings.labels, seed=sim.seed, rows_per_day=rows_per_day,
                             same_day_label_share=sim.same_day_label_share,
                             max_label_delay_days=sim.max_label_delay_days,
                             never_labelled_share=sim.never_labelled_share,
                             scenarios=tuple(Scenario(**s.model_dump()) for s in sim.scenarios))
    rows = 0
    for i in range(days):
        path = write_day(config, start, start + dt.timedelta(days=i), landing)
        with path.open("rb") as fh:  # JSON Lines: one row per non-empty line
            rows += sum(1 for line in fh if line.strip())
    return rows


def _days(settings, n: int) -> list[dt.date]:
    return [settings.partitions.start_date + dt.timedelta(days=i) for i in range(n)]


# ---- child (a): Dagster ----------------------------------------------------------------

def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Per-step wall time from the run's event log (STEP_START -> STEP_SUCCESS/FAILURE)."""
    starts, out = {}, {}
    for event in instance.all_logs(run_id):
        if not event.is_dagster_event:
            continue
        kind, step = event.dagster_event.event_type_value, event.step_key
        if kind == "STEP_START":
            starts[step] = event.timestamp
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and step in starts:
            out[step] = round(event.timestamp - starts[step], 3)
    return out


def child_dagster(args) -> dict:
    from dagster import instance_for_test

    from ct_assets.core.home import CtHome
    from ct_assets.definitions import build_definitions
    from ct_assets.orchestration.runner import materialize_range

    settings = bench_settings(Path(args.landing), args.rows_per_day, dt.date.fromisoformat(args.start))
    home = CtHome(Path(args.work) / "ct_home").ensure()
    defs = build_definitions(settings, home)
    days = _days(settings, args.days)
    with instance_for_test() as instance:
        t0 = time.perf_counter()
        result = materialize_range(defs, instance, DATA_ASSETS, days[0].isoformat(), days[-1].isoformat(),
                                   console_level="WARNING")
        wall = time.perf_counter() - t0
        steps = step_seconds(instance, result.run_id)
    return {"wall_seconds": wall, "success": result.success, "steps": steps,
            "step_total_seconds": sum(steps.values()), "peak_rss_mb": peak_rss_mb()}


# ---- child (b): plain script -------------------------------------------------------------

def child_plain(args) -> dict:
    import polars as pl

    from ct_assets.core.schema import drift_columns
    from ct_assets.core.time import labels_as_of
    from ct_assets.drift.daily import drift_of_day
    from ct_assets.drift.reference import reference_days
    from ct_assets.ingest.contract import read_landing_day
    from ct_assets.ingest.expectations import validate_clean, warm_up_in_background
    from ct_assets.ingest.quality import split_rows

    settings = bench_settings(Path(args.landing), args.rows_per_day, dt.date.fromisoformat(args.start))
    q, d = settings.quality, settings.drift
    labels = list(settings.labels)
    out = Path(args.work) / "lake"
    for sub in ("raw", "clean", "quarantine", "drift"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    docs = Path(args.work) / "data_docs"
    timings = {"read": 0.0, "split": 0.0, "gx": 0.0, "drift": 0.0, "write": 0.0}
    gx_first_call = None
    clean_by_day: dict[dt.date, pl.DataFrame] = {}
    rows = 0
    t_start = time.perf_counter()
    # As the asset does: the GX import overlaps the first day's read and split.
    warm_up_in_background(docs, labels=labels, max_text_chars=q.max_text_chars)
    for day in _days(settings, args.days):
        key = day.isoformat()
        t = time.perf_counter()
        raw = read_landing_day(Path(args.landing), day).frame
        t1 = time.perf_counter()
        result = split_rows(raw, day=day, labels=labels, max_text_chars=q.max_text_chars,
                            reject_text_chars=q.reject_text_chars, mask_emails=q.mask_emails,
                            mask_phones=q.mask_phones)
        t2 = time.perf_counter()
        gx = validate_clean(result.clean, labels=labels, max_text_chars=q.max_text_chars, docs_dir=docs,
                            run_name=f"validated_window-{key}", sample_rows=q.gx_sample_rows)
        t3 = time.perf_counter()
        gx_first_call = gx_first_call if gx_first_call is not None else t3 - t2
        if not gx.success:
            raise RuntimeError(f"{key}: the GX suite failed on clean rows: {gx.results}")
        clean_by_day[day] = result.clean
        ref_days, _ = reference_days(day, None, settings.reference.days())
        current = labels_as_of(result.clean, day)
        ref_frames = [clean_by_day[r] for r in ref_days if r in clean_by_day]
        reference = labels_as_of(pl.concat(ref_frames, how="diagonal_relaxed"), day) if ref_frames else current.clear()
        # The production path: thresholds resolved (calibrated on the reference when "auto").
        drift = drift_of_day(reference, current, quarantine=result.quarantine, day=day, labels=labels, drift=d,
                             k=settings.triggers.drift_k, n=settings.triggers.drift_n, cache_dir=out / "cache")
        t4 = time.perf_counter()
        meta = drift.to_metadata()
        raw.write_parquet(out / "raw" / f"{key}.parquet")
        result.clean.write_parquet(out / "clean" / f"{key}.parquet")
        result.quarantine.write_parquet(out / "quarantine" / f"{key}.parquet")
        pl.DataFrame([{"partition": key, "verdict": drift.verdict,
                       **drift_columns(meta["scores"], meta["flags"], meta["thresholds"], meta["p_values"])}]).write_parquet(
            out / "drift" / f"{key}.parquet")
        t5 = time.perf_counter()
        for name, seconds in (("read", t1 - t), ("split", t2 - t1), ("gx", t3 - t2), ("drift", t4 - t3),
                              ("write", t5 - t4)):
            timings[name] += seconds
        rows += raw.height
    wall = time.perf_counter() - t_start
    return {"wall_seconds": wall, "rows": rows, "stages": timings, "gx_first_call_seconds": gx_first_call,
            "peak_rss_mb": peak_rss_mb()}


# ---- parent ------------------------------------------------------------------------------

def run(tiny: bool, timeout: float = 900) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        return _run(tiny, Path(tmp), timeout)


def _run(tiny: bool, work: Path, timeout: float) -> dict:
    size = TINY if tiny else FULL
    landing = work / "landing"
    start = start_date(size["days"])  # once, in the parent: both children must agree on it
    t0 = time.perf_counter()
    rows = simulate(landing, size["days"], size["rows_per_day"], start)
    simulate_seconds = time.perf_counter() - t0
    common = ["--landing", str(landing), "--days", str(size["days"]), "--rows-per-day", str(size["rows_per_day"]),
              "--start", start.isoformat()]
    dag = run_child("bench.data_path", ["--child", "dagster", "--work", str(work / "dagster"), *common],
                    timeout=timeout)
    plain = run_child("bench.data_path", ["--child", "plain", "--work", str(work / "plain"), *common],
                      timeout=timeout)
    if not dag["success"]:
        raise RuntimeError(f"the Dagster backfill failed: {dag}")
    if plain["rows"] != rows:
        raise RuntimeError(f"plain path read {plain['rows']} rows, {rows} were simulated")
    stages = plain["stages"]
    validation = stages["split"] + stages["gx"]
    return {
        "name": NAME,
        "tiny": tiny,
        "days": size["days"], "rows_per_day": size["rows_per_day"], "rows": rows, "start_date": start.isoformat(),
        "simulate_seconds_untimed": round(simulate_seconds, 3),
        "dagster": {**dag, "rows_per_second": rows / dag["wall_seconds"],
                    "run_overhead_seconds": dag["wall_seconds"] - dag["step_total_seconds"]},
        "plain": {**plain, "rows_per_second": rows / plain["wall_seconds"]},
        "ratios": {
            "time_dagster_vs_plain": ratio(dag["wall_seconds"], plain["wall_seconds"]),
            "rows_per_second_dagster_vs_plain": ratio(rows / dag["wall_seconds"], rows / plain["wall_seconds"]),
            "gx_share_of_validation": ratio(stages["gx"], validation),
            "gx_share_of_plain_path": ratio(stages["gx"], plain["wall_seconds"]),
        },
        "targets": {"time_dagster_vs_plain": f"<= {TARGET_TIME_RATIO}"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--child", choices=("dagster", "plain"))
    parser.add_argument("--landing")
    parser.add_argument("--work")
    parser.add_argument("--days", type=int)
    parser.add_argument("--rows-per-day", type=int)
    parser.add_argument("--start")
    parser.add_argument("--result-file")
    args = parser.parse_args(argv)
    if args.child:
        quiet_child()
        write_child_result(args.result_file, child_dagster(args) if args.child == "dagster" else child_plain(args))
        return 0
    json.dump(run(args.tiny), sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
