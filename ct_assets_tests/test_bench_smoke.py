"""CI smoke for the benchmarks: `python -m bench.run_all --tiny` end to end.

Why: the benchmark code drives the real training loop, Dagster runs and registry, so it
breaks silently when they change unless something runs it. CI runs it only at the tiny
size and asserts that every result file is written with its ratio keys — never anything
about speed, which on a shared CI machine means nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Ratios every tiny run must compute (None would mean a path silently did not run).
MEASURED = {
    "train_throughput": ("samples_per_second_vs_trainer", "samples_per_second_vs_trainer_grouped",
                         "padded_tokens_vs_trainer", "peak_rss_vs_trainer", "useful_share_of_peak_vs_trainer",
                         "peak_rss_vs_target"),
    "data_path": ("time_dagster_vs_plain", "rows_per_second_dagster_vs_plain", "gx_share_of_validation",
                  "gx_share_of_plain_path"),
    "ct_cycle": ("cycle_vs_training_seconds", "process_wall_vs_cycle", "adapter_to_base_bytes"),
    "storage": ("adapter_to_base_bytes",),
    "serve_load": ("throughput_vs_best_peer", "throughput_vs_naive_pipeline", "p99_vs_best_peer",
                   "shadow_throughput_cost"),
    "scaling": ("time_dagster_vs_plain_200",),
    "inference": ("predictor_fp32_vs_best_pipeline", "best_predictor_vs_best_pipeline", "int8_accuracy_delta_points"),
}
# The replay sweep never runs at tiny size; its file still carries the keys (as null).
QUALITY = ("concept_change_ct_vs_static_accuracy_after_drift", "forgetting_no_replay_minus_replay",
           "forgetting_ewc_minus_replay")


def test_tiny_bench_writes_every_result_with_its_ratios(tmp_path):
    out = tmp_path / "results"
    root_md = REPO / "BENCHMARKS.md"
    before = root_md.stat().st_mtime_ns if root_md.exists() else None
    env = {**os.environ, "CT_HOME": str(tmp_path / "ct_home")}
    proc = subprocess.run([sys.executable, "-m", "bench.run_all", "--tiny", "--out", str(out)], cwd=REPO, env=env,
                          timeout=480, capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.fail(f"bench.run_all --tiny exited {proc.returncode}:\n{proc.stderr[-6000:]}")

    for name, keys in MEASURED.items():
        result = json.loads((out / f"{name}.json").read_text())
        if "tiny" in result:
            assert result["tiny"] is True, name
        missing = [k for k in keys if result["ratios"].get(k) is None]
        assert not missing, f"{name}: ratios missing or null: {missing} in {result['ratios']}"
    quality = json.loads((out / "quality.json").read_text())
    assert quality["status"] == "skipped" and quality["reason"]
    assert set(QUALITY) <= set(quality["ratios"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tiny"] is True and set(MEASURED) <= set(summary["ratios"])
    report = (out / "BENCHMARKS.md").read_text()
    assert "TINY run" in report and "| 1 train |" in report
    # A smoke run must never overwrite the real numbers at the repo root.
    after = root_md.stat().st_mtime_ns if root_md.exists() else None
    assert after == before
