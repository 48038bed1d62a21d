"""Run the benchmarks, write bench/results/<name>.json and BENCHMARKS.md.

    python -m bench.run_all [--tiny] [--out bench/results] [--only NAME ...] [--quality] [--report-only]

A full run writes BENCHMARKS.md at the repo root; --tiny (the CI smoke size) writes its
results and its BENCHMARKS.md under bench/results/tiny (or --out), so a smoke run never
overwrites the real numbers.
Benchmarks not run in this invocation keep their earlier result file (if any), and the
report is built from every result present, so e.g. the long quality sweep can be run on
its own with `--only quality --quality` and the report regenerated around it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time
import warnings
from pathlib import Path

from bench import ct_cycle, data_path, inference, quality, report, scaling, serve_load, storage, train_throughput
from bench.common import REPO, child_env, machine_info, write_result

ORDER = ("train_throughput", "inference", "data_path", "ct_cycle", "serve_load", "storage", "quality", "scaling")
MEASURED = {"train_throughput": train_throughput.run, "inference": inference.run, "data_path": data_path.run, "ct_cycle": ct_cycle.run,
            "serve_load": serve_load.run}


def _log(message: str) -> None:
    print(f"[bench {dt.datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


class LoadSampler:
    """1-minute load average every few seconds while the benchmarks run: the report must
    say whether the machine was busy with something else while the numbers were taken."""

    def __init__(self, every_s: float = 5.0) -> None:
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        return {"min": min(self.samples), "mean": sum(self.samples) / len(self.samples), "max": max(self.samples)}


def history_row(summary: dict, results: dict) -> dict:
    """One line of bench/results/history.jsonl: the headline ratios of a full run and how
    busy the machine was, so the report can show run-to-run variation, not one sample."""
    t, d, c = (results.get(n) or {} for n in ("train_throughput", "data_path", "ct_cycle"))
    return {
        "date": summary["machine"]["date"], "load_average": summary["load_average"],
        "total_seconds": summary["total_seconds"],
        "train_vs_trainer": (t.get("ratios") or {}).get("samples_per_second_vs_trainer"),
        "train_vs_trainer_grouped": (t.get("ratios") or {}).get("samples_per_second_vs_trainer_grouped"),
        "train_rounds": t.get("rounds", 1),
        "data_time_ratio": (d.get("ratios") or {}).get("time_dagster_vs_plain"),
        "data_split": {"dagster_steps": (d.get("dagster") or {}).get("steps"),
                       "dagster_run_overhead": (d.get("dagster") or {}).get("run_overhead_seconds"),
                       "plain_stages": (d.get("plain") or {}).get("stages")},
        "cycle_seconds": (c.get("chain") or {}).get("wall_seconds"),
        "cycle_train_rows": (c.get("chain") or {}).get("train_rows"),  # the demo's window may change
    }


def load_history(out: Path) -> list[dict]:
    path = out / "history.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _load(out: Path, name: str) -> dict | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the ct_assets benchmarks.")
    parser.add_argument("--tiny", action="store_true", help="smoke sizes (CI): tiny base, few days, ~1 minute")
    parser.add_argument("--out", type=Path, help="default bench/results (bench/results/tiny with --tiny)")
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run only these (others keep earlier results)")
    parser.add_argument("--quality", action="store_true",
                        help="also run the quality-under-drift sweep (MiniLM replays; far beyond 20 minutes)")
    parser.add_argument("--scaling", action="store_true",
                        help="also run the cost-growth sizes (2k to 1M rows/day; ~15 minutes, most of it simulating)")
    parser.add_argument("--markdown", type=Path, help="where to write BENCHMARKS.md")
    parser.add_argument("--report-only", action="store_true",
                        help="run nothing: rebuild BENCHMARKS.md from the result files in --out")
    args = parser.parse_args(argv)
    # Dagster's beta/preview notices are repeated per definition; they are not results.
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    # The parent builds the tiny base and simulates data: same quiet, offline settings as a child.
    os.environ.update({k: v for k, v in child_env(Path(os.environ.get("CT_HOME", ".ct_home"))).items()
                       if k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TRANSFORMERS_VERBOSITY",
                                "HF_HUB_DISABLE_PROGRESS_BARS", "TOKENIZERS_PARALLELISM")})
    # Tiny results go to their own folder by default: `make bench-smoke` must never
    # overwrite the real numbers that BENCHMARKS.md is built from.
    out = (args.out or REPO / "bench" / "results" / ("tiny" if args.tiny else "")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    md_path = args.markdown or ((out / "BENCHMARKS.md") if args.tiny else REPO / "BENCHMARKS.md")
    if args.report_only:
        summary = _load(out, "summary")
        if summary is None:
            raise SystemExit(f"no summary.json in {out}: run the benchmarks first")
        results = {n: r for n in ORDER if (r := _load(out, n)) is not None}
        report.write(md_path, results, summary, load_history(out))
        _log(f"report {md_path} rebuilt from {sorted(results)}")
        return 0
    selected = set(args.only or ORDER)
    started = time.perf_counter()
    machine = machine_info()
    sampler = LoadSampler()
    results: dict[str, dict] = {}

    def record(name: str, result: dict, seconds: float) -> None:
        result.update({"bench_seconds": round(seconds, 1), "measured_at": machine["date"],
                       "load_average_after": os.getloadavg()[0]})
        write_result(out, name, result)
        results[name] = result
        _log(f"{name}: {seconds:.1f} s, ratios {json.dumps(result.get('ratios'), default=str)}")

    for name, fn in MEASURED.items():
        if name in selected:
            _log(f"{name} ...")
            t0 = time.perf_counter()
            record(name, fn(args.tiny), time.perf_counter() - t0)
        elif (previous := _load(out, name)) is not None:
            results[name] = previous
    if "storage" in selected:
        record("storage", storage.run(results.get("train_throughput"), results.get("ct_cycle")), 0.0)
    elif (previous := _load(out, "storage")) is not None:
        results["storage"] = previous
    if "quality" in selected and args.quality and not args.tiny:
        _log("quality (replay sweep) ...")
        t0 = time.perf_counter()
        record("quality", quality.run(cache_dir=out / "quality_runs"), time.perf_counter() - t0)
    elif (previous := _load(out, "quality")) is not None and previous.get("status") == "measured" and not args.tiny:
        results["quality"] = previous  # an earlier separate sweep: kept, with its own date
    else:
        reason = ("the tiny smoke run never replays" if args.tiny else
                  "not run by default: the replay sweep trains MiniLM many times and does not fit the "
                  "20-minute budget; run `python -m bench.run_all --only quality --quality`")
        if not quality.replay_available():
            reason = "replay not available (ct_assets.demo.replay is missing)"
        record("quality", quality.skipped(reason), 0.0)

    if "scaling" in selected and (args.scaling or args.tiny):
        _log("scaling ...")
        t0 = time.perf_counter()
        sizes = scaling.TINY_SIZES if args.tiny else scaling.SIZES
        record("scaling", scaling.run(sizes, results=out) | {"tiny": args.tiny}, time.perf_counter() - t0)
        if not args.tiny:
            from bench.report_scaling import plot

            plot(results["scaling"], out / "scaling.png")
    elif (previous := _load(out, "scaling")) is not None:
        results["scaling"] = previous

    total = time.perf_counter() - started
    summary = {"machine": machine, "tiny": args.tiny, "total_seconds": round(total, 1),
               "load_average": sampler.stop(), "partial_runs": []}
    previous = _load(out, "summary")
    if args.only and previous is not None and previous.get("tiny") == args.tiny:
        # A partial rerun: the machine/runtime header stays that of the last full run.
        summary = {**previous, "partial_runs": [*previous.get("partial_runs", []),
                                                {"only": sorted(selected), "date": machine["date"],
                                                 "seconds": round(total, 1)}]}
    summary["ratios"] = {name: r.get("ratios") for name, r in results.items()}
    write_result(out, "summary", summary)
    if not args.only and not args.tiny:
        with (out / "history.jsonl").open("a") as fh:
            fh.write(json.dumps(history_row(summary, results), default=str) + "\n")
    report.write(md_path, results, summary, load_history(out))
    _log(f"done in {total / 60:.1f} min; results in {out}, report {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
