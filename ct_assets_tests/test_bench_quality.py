"""`make bench-quality` (bench.continual, bench.quality_metrics): the loop runs the real
pure-logic layer on the tiny base, and its figures mean what BENCHMARKS.md says they mean.
Nothing here is about speed or about how good the tiny model is."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from bench import quality_sweep
from bench.continual import ContinualLoop
from bench.quality_metrics import forgetting_rows, stream_metrics, tables
from ct_assets_tests.helpers import model_settings


def test_the_loop_lands_judges_trains_and_gates_every_day(sim_base_dir, tmp_path):
    settings = model_settings(sim_base_dir, **{
        "source.simulator.scenarios": [{"name": "seasonal_class", "start_day": 5, "end_day": 7, "label": "shipping"}],
        "training.window_mode": "since_change"})
    loop = ContinualLoop(settings, tmp_path, retrain_every=2, bootstrap_day=3, device="cpu")
    result = loop.run(10)
    assert [r["index"] for r in result.days] == list(range(10))
    assert all(r["verdict"] for r in result.days)  # every day was judged by drift_of_day
    trained = [r for r in result.days if r.get("trained")]
    assert [r["index"] for r in trained] == [3, 5, 7, 9] and trained[0]["trigger"] == "bootstrap"
    assert [v.number for v in result.versions] == [1, 2, 3, 4]
    labels = set(settings.labels)
    for v in result.versions:
        assert set(v.golden_recall) == labels and v.bytes_stored > 0 and v.trainable_params > 0
        assert v.window["mode"] == "since_change" and v.gate.startswith(("PASSED", "BLOCKED"))
    assert result.versions[0].promoted  # the tiny model's first-model gate is open (model_settings)
    # The static model is the first champion; the CT champion is whatever passed last.
    assert all(r["static_accuracy"] is not None for r in result.days[4:])
    champions = {r["champion"] for r in result.days[4:]}
    assert champions <= {v.number for v in result.versions if v.promoted}

    run = {"records": result.days, "versions": [dataclasses.asdict(v) for v in result.versions],
           "spec": {"name": "seasonal_class", "start_day": 5, "end_day": 7}, "max_forgetting": 0.05,
           "seconds": result.seconds}
    m = stream_metrics(run, drift_day=5)
    assert m["retrains"] == 3 and m["promotions"] + m["blocked"] == 3 and m["first_trigger_day"] == 5
    f = forgetting_rows(run, "shipping", 5, 7)
    assert f["adapters_during_absence"] == 2 and len(f["per_version"]) == 4
    md = tables({"metrics": {"seasonal_class/x": m}, "forgetting": {"seasonal_class/x": f},
                 "seasonal": {"label": "shipping", "absent_days": [5, 7]}})
    assert "| seasonal_class/x |" in md and "Golden recall of `shipping`" in md


def _version(number, day, promoted, recall, changed=(), acc=None):
    return {"number": number, "day": day, "promoted": promoted, "trigger": "drift" if number > 1 else "bootstrap",
            "golden_recall": recall, "golden_accuracy": acc if acc is not None else sum(recall.values()) / len(recall),
            "blocked_reasons": [] if promoted else ["holdout accuracy gain is not significant: 95% CI [-0.1, 0.1]"],
            "changed_classes": list(changed), "train_seconds": 1.0, "bytes_stored": 10, "trainable_params": 5}


def test_recovery_days_to_recover_and_the_promotions_the_gate_should_have_stopped():
    """Pre-drift 0.90; from day 4 the static model falls to 0.70; CT retrains on day 4, is
    back to 0.90 from day 5: recovery 0.8 over days 4..8, recovered 1 day after the trigger.
    v3 dropped class a (unchanged) by 0.2 when promoted: counted; v2's drop on b, a class the
    gate treated as changed, is not."""
    acc_ct = [0.9, 0.9, 0.9, 0.9, 0.7, 0.9, 0.9, 0.9, 0.9]
    acc_st = [0.9, 0.9, 0.9, 0.9, 0.7, 0.7, 0.7, 0.7, 0.7]
    records = [{"index": i, "day": f"d{i}", "champion_accuracy": c, "static_accuracy": s, "champion": 1}
               for i, (c, s) in enumerate(zip(acc_ct, acc_st))]
    records[0].update(trained=True, trigger="bootstrap")
    records[4].update(trained=True, trigger="drift")
    records[6].update(trained=True, trigger="drift")
    records[7].update(trained=True, trigger="drift")
    versions = [_version(1, "d0", True, {"a": 1.0, "b": 1.0}),
                _version(2, "d4", True, {"a": 1.0, "b": 0.5}, changed=["b"]),
                _version(3, "d6", True, {"a": 0.8, "b": 0.5}),
                _version(4, "d7", False, {"a": 0.2, "b": 0.5})]
    run = {"records": records, "versions": versions, "spec": {"start_day": 4, "end_day": None},
           "max_forgetting": 0.05, "seconds": 1.0}
    m = stream_metrics(run, drift_day=4)
    assert m["pre_drift_accuracy"] == pytest.approx(0.9) and m["static_after_drift"] == pytest.approx(0.7)
    assert m["recovery_ratio"] == pytest.approx(0.8) and m["days_to_recover"] == 1
    assert (m["retrains"], m["promotions"], m["blocked"]) == (3, 2, 1)
    assert m["blocked_reasons"] == {"holdout accuracy gain is not significant": 1}
    assert m["promotions_worse_on_unchanged_classes"] == [{"version": 3, "class": "a", "drop": 0.2}]
    assert m["changed_classes"] == ["b"] and m["worst_unchanged_class_forgetting"] == ("a", pytest.approx(0.2))
    f = forgetting_rows(run, "a", 4, 7)
    assert f["recall_before"] == 1.0 and f["min_recall_during"] == 0.2 and f["kept_share"] == pytest.approx(0.2)
    assert f["adapters_during_absence"] == 3 and f["points_lost"] == pytest.approx(0.8)


def test_a_scenario_that_costs_the_static_model_nothing_has_no_recovery_ratio():
    records = [{"index": i, "day": f"d{i}", "champion_accuracy": 0.9, "static_accuracy": 0.9, "champion": 1}
               for i in range(6)]
    run = {"records": records, "versions": [_version(1, "d0", True, {"a": 1.0})],
           "spec": {"start_day": 3, "end_day": None}, "max_forgetting": 0.05, "seconds": 1.0}
    m = stream_metrics(run, drift_day=3)
    assert m["static_loss"] == pytest.approx(0.0) and m["recovery_ratio"] is None


def _stream_in_a_worker(variant, *, full_size, days):
    """What bench.quality_sweep.run_variant returns, cut to what the metrics read, plus
    where and at how many threads it ran (module level: a spawned worker imports it)."""
    import torch

    records = [{"index": i, "day": f"d{i}", "champion_accuracy": 0.9, "static_accuracy": 0.8, "champion": 1}
               for i in range(days)]
    return {"variant": variant, "scenario": quality_sweep.VARIANTS[variant][0], "days": days, "seconds": 1.0,
            "records": records, "versions": [_version(1, "d0", True, {quality_sweep.SEASONAL_LABEL: 1.0})],
            "spec": {"start_day": 2, "end_day": None}, "max_forgetting": 0.05, "max_class_forgetting": 0.1,
            "measured_at": "2026-12-04T00:00:00+00:00", "torch_threads": torch.get_num_threads(),
            "pid": os.getpid(), "polars_threads": os.environ.get("POLARS_MAX_THREADS")}


def _no_stream(variant, **_):
    raise AssertionError(f"{variant} was cached and must not run again")


def test_two_jobs_run_streams_in_one_thread_workers_and_cache_each(tmp_path, monkeypatch):
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    variants = ["product_launch/fixed", "concept_change/fixed", "seasonal_class/cadence_replay_full"]
    out = quality_sweep.run(variants, days=5, cache=tmp_path, jobs=2, runner=_stream_in_a_worker)
    assert list(out["metrics"]) == variants and out["jobs"] == 2 and out["streams_run_this_call"] == 3
    assert all(m["torch_threads"] == 1 for m in out["metrics"].values())
    assert out["stream_seconds"] == 3.0 and set(out["forgetting"]) == {"seasonal_class/cadence_replay_full"}
    cached = {p.name: p for p in tmp_path.iterdir()}
    assert sorted(cached) == ["concept_change__fixed.json", "product_launch__fixed.json",
                              "seasonal_class__cadence_replay_full.json"]
    stored = [json.loads(p.read_text()) for p in cached.values()]
    assert all(r["pid"] != os.getpid() and r["polars_threads"] == "1" for r in stored)
    assert "POLARS_MAX_THREADS" not in os.environ  # set for the workers only
    again = quality_sweep.run(variants, days=5, cache=tmp_path, jobs=2, runner=_no_stream)
    assert again["streams_run_this_call"] == 0 and again["metrics"] == out["metrics"]


def test_the_pool_takes_full_fine_tunes_then_cadences_first():
    order = quality_sweep.costliest_first(list(quality_sweep.VARIANTS))
    assert order[:2] == ["seasonal_class/cadence_replay_full", "concept_change/full"]
    assert all(quality_sweep.VARIANTS[v][2] is not None for v in order[2:6])
    assert sorted(order) == sorted(quality_sweep.VARIANTS)


def _failing_stream(variant, **_):
    raise ValueError("no rows on day 3")


def test_a_failed_stream_is_named_and_nothing_half_written_is_cached(tmp_path):
    with pytest.raises(RuntimeError, match=r"stream 'concept_change/fixed' failed: no rows on day 3"):
        quality_sweep.run(["concept_change/fixed"], days=5, cache=tmp_path, jobs=2, runner=_failing_stream)
    assert list(tmp_path.iterdir()) == []
