"""Quality under drift: the CT replay (ct_assets.demo.replay.run_replay) per scenario.

Each replay plays ``DAYS`` simulated days through the real Definitions, sensors and
registry on the MiniLM base with the demo's --fast settings (150 rows/day, 7-day
window, one epoch), one drift scenario switched on at day ``DRIFT_DAY``, policy
"combined". The static model (the first champion, never retrained) is scored on the
same days inside the same replay, so "CT vs static" is a same-run ratio.

Variants (forgetting, on the concept_change stream by default):
* ``replay``: training.replay_fraction 0.1 (the default) — the per-scenario runs;
* ``no_replay``: replay_fraction 0.0;
* ``ewc``: replay 0.1 plus EWC (ewc_lambda EWC_LAMBDA, which needs warm_start: true).
Golden-set forgetting = the largest drop of a later champion's golden accuracy below
the first champion's (timeline.policy_metrics).

Each replay runs in its own subprocess with its own CT_HOME. A replay trains MiniLM
several times, so the sweep takes far longer than the 20-minute `make bench` budget:
run_all only runs it with --quality (or run `python -m bench.quality`). If
ct_assets.demo.replay is not importable the result says "replay not available".
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
from pathlib import Path

from bench.common import quiet_child, ratio, run_child, write_child_result

NAME = "quality"
SCENARIOS = ("product_launch", "slang_shift", "label_shift", "concept_change")
VARIANTS = ("replay", "no_replay", "ewc")
ABLATION_SCENARIO = "concept_change"
DAYS, DRIFT_DAY, LABEL_SHIFT_DAYS = 20, 9, 5
EWC_LAMBDA = 1000.0  # Fisher values of a LoRA adapter are tiny; see ct_assets.training.loop.EwcPenalty
POLICY = "combined"


def replay_available() -> bool:
    """Whether ct_assets.demo.replay exists. Found, not imported: importing it builds the
    default Definitions (under the caller's CT_HOME), which the parent must not do; the
    child imports it for real and fails loudly if run_replay is missing."""
    return importlib.util.find_spec("ct_assets.demo.replay") is not None


def quality_settings(scenario: str, variant: str):
    import yaml

    from ct_assets.core.settings import default_config_text, parse_settings
    from ct_assets.demo.main import fast_settings

    raw = yaml.safe_load(default_config_text())
    spec = {"name": scenario, "start_day": DRIFT_DAY}
    if scenario == "label_shift":  # an outage: it ends, as in the demo's mix
        spec["end_day"] = DRIFT_DAY + LABEL_SHIFT_DAYS - 1
    raw["source"]["simulator"]["scenarios"] = [spec]
    start = dt.date.fromisoformat(str(raw["partitions"]["start_date"]))
    raw["reference"] = {"start": start.isoformat(), "end": (start + dt.timedelta(days=3)).isoformat()}
    raw["triggers"].update({"policy": POLICY, "cooldown_days": 2})
    if variant == "no_replay":
        raw["training"]["replay_fraction"] = 0.0
    elif variant == "ewc":
        raw["training"].update({"ewc_lambda": EWC_LAMBDA, "warm_start": True})
    elif variant != "replay":
        raise ValueError(f"unknown variant {variant!r}; expected one of {VARIANTS}")
    return fast_settings(parse_settings(raw, f"bench quality {scenario}/{variant}"))


def child(args) -> dict:
    from ct_assets.core.home import ct_home
    from ct_assets.demo.replay import run_replay
    from ct_assets.demo.timeline import policy_metrics

    settings = quality_settings(args.scenario, args.variant)
    home = ct_home().ensure(settings.triggers.max_concurrent_training_runs)
    t0 = time.perf_counter()
    result = run_replay(settings, home, args.days, policy=POLICY)
    seconds = time.perf_counter() - t0
    m = policy_metrics(result.records, drift_start_day=result.drift_start, golden_accuracies=result.golden_accuracies)
    return {**{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in m.items()},
            "golden_accuracies": result.golden_accuracies, "failed_runs": result.failed_runs,
            "seconds": seconds}


def _pairs(scenarios, variants) -> list[tuple[str, str]]:
    """The ablation stream first: if a long sweep is cut short, forgetting is answered."""
    ablations = [(ABLATION_SCENARIO, v) for v in VARIANTS if v != "replay" and v in variants]
    # The ablations are deltas against the replay-0.1 run of the same stream: it comes first.
    first = [(ABLATION_SCENARIO, "replay")] if ablations or ABLATION_SCENARIO in scenarios else []
    return first + ablations + [(s, "replay") for s in scenarios if s != ABLATION_SCENARIO]


def run(scenarios=SCENARIOS, variants=VARIANTS, days: int = DAYS, timeout: float = 3600,
        cache_dir: Path | None = None) -> dict:
    """The sweep. With ``cache_dir`` every finished replay is kept there (one JSON each) and
    reused by the next call with the same ``days``, so an interrupted hour-long sweep
    resumes instead of starting over; delete the folder to measure afresh."""
    if not replay_available():
        return skipped("replay not available (ct_assets.demo.replay is missing)")
    started = time.perf_counter()
    runs = {}
    for scenario, variant in _pairs(scenarios, variants):
        cached = cache_dir / f"{scenario}__{variant}.json" if cache_dir is not None else None
        if cached is not None and cached.is_file() and json.loads(cached.read_text()).get("days") == days:
            runs[f"{scenario}/{variant}"] = json.loads(cached.read_text())
            continue
        # run_child gives the replay a private CT_HOME and removes it afterwards.
        result = run_child(
            "bench.quality", ["--child", "--scenario", scenario, "--variant", variant, "--days", str(days)],
            timeout=timeout)
        result.update({"days": days, "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(result, indent=2, default=str))
        runs[f"{scenario}/{variant}"] = result
    per_scenario = {}
    for s in scenarios:
        r = runs[f"{s}/replay"]
        per_scenario[s] = {"ct_vs_static_accuracy_after_drift": ratio(r["mean_accuracy_after_drift"],
                                                                      r["static_mean_accuracy_after_drift"])}
    abl = {v: runs.get(f"{ABLATION_SCENARIO}/{v}") for v in VARIANTS}
    base = abl.get("replay")

    def forgetting_delta(variant: str) -> float | None:
        other = abl.get(variant)
        if base is None or other is None or base["golden_forgetting"] is None or other["golden_forgetting"] is None:
            return None
        return other["golden_forgetting"] - base["golden_forgetting"]

    return {
        "name": NAME, "status": "measured", "days": days, "drift_day": DRIFT_DAY, "policy": POLICY,
        "settings": "embedded ct.yaml + demo --fast (150 rows/day, 7-day window, 1 epoch), one scenario at a time",
        "runs": runs,
        "seconds": sum(r["seconds"] for r in runs.values()),  # replay time, also of cached runs
        "wall_seconds_this_call": time.perf_counter() - started,
        "ratios": {
            **{f"{s}_ct_vs_static_accuracy_after_drift": v["ct_vs_static_accuracy_after_drift"]
               for s, v in per_scenario.items()},
            # Differences, not ratios: forgetting is often exactly 0, and x/0 says nothing.
            "forgetting_no_replay_minus_replay": forgetting_delta("no_replay"),
            "forgetting_ewc_minus_replay": forgetting_delta("ewc"),
        },
    }


def skipped(reason: str) -> dict:
    keys = [f"{s}_ct_vs_static_accuracy_after_drift" for s in SCENARIOS]
    keys += ["forgetting_no_replay_minus_replay", "forgetting_ewc_minus_replay"]
    return {"name": NAME, "status": "skipped", "reason": reason, "ratios": dict.fromkeys(keys)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--scenario", choices=SCENARIOS)
    parser.add_argument("--variant", choices=VARIANTS)
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--result-file")
    args = parser.parse_args(argv)
    if args.child:
        quiet_child()
        write_child_result(args.result_file, child(args))
        return 0
    json.dump(run(args.scenarios, args.variants, args.days), sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
