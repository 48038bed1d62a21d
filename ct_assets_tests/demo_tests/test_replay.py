"""The CT replay end to end on the real MiniLM base (the one place the suite trains it).

Why: this is the product's claim — continuous training keeps accuracy up where a
static model decays. A 20-day replay with a concept change (and new slang) must show
the CT champion ahead of the static first model after the change, through the real
Definitions, sensors, automation, MLflow registry and gate.
"""

from __future__ import annotations

import re

import pytest

from ct_assets.demo.main import fast_settings
from ct_assets.demo.replay import run_replay
from ct_assets.demo.timeline import policy_metrics
from ct_assets.triggers.policy import TRIGGERS
from ct_assets_tests.helpers import make_home, small_settings


@pytest.mark.slow
def test_replay_keeps_ct_ahead_of_static_after_concept_change(tmp_path):
    settings = fast_settings(small_settings(**{
        "source.simulator.scenarios": [
            {"name": "concept_change", "start_day": 9},
            {"name": "slang_shift", "start_day": 9},
        ],
        "reference.end": "2026-09-04",
        "triggers.policy": "combined",
        "triggers.cooldown_days": 3,
        "triggers.min_accuracy": 0.75,
        # A 20-day replay has a 2-day holdout of ~100 labelled rows: a significance
        # requirement there would block nearly every retrain, so the test gates on the
        # point estimate and a looser forgetting bound (the gate itself is unit-tested).
        "gate.require_ci_above_zero": False,
        "gate.max_forgetting": 0.1,
        "gate.max_class_forgetting": 0.2,
        "gate.min_class_recall": 0.1,
    }))
    home = make_home(tmp_path)
    result = run_replay(settings, home, 20)
    metrics = policy_metrics(result.records, drift_start_day=result.drift_start,
                             golden_accuracies=result.golden_accuracies)
    fired = [t for r in result.records for t in r["triggers_fired"]]
    assert any(t.startswith("manual: bootstrap") for t in fired)
    assert metrics["retrains"] >= 2, fired
    assert metrics["promotions"] >= 2, result.records
    ct, static = metrics["mean_accuracy_after_drift"], metrics["static_mean_accuracy_after_drift"]
    assert ct is not None and static is not None
    assert ct > static, f"CT {ct} vs static {static}; triggers {fired}"
    # Every retrain names a known trigger and says what it measured; the concept change (day 9)
    # is answered by a metric trigger (drift or accuracy) quoting a value against its threshold.
    stories = [t.split(": ", 1) for t in fired]
    assert all(len(s) == 2 and s[0] in TRIGGERS and s[1].strip() for s in stories), fired
    after_change = [(r["day"], t) for r in result.records for t in r["triggers_fired"]
                    if r["day"] >= result.drift_start]
    metric = [t for _, t in after_change if t.split(":", 1)[0] in ("drift", "accuracy")]
    assert metric and all(re.search(r"\d [<>] \d", t) for t in metric), after_change
