"""Shared builders for integration tests: small settings, a temp CT_HOME, Definitions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

from ct_assets.core.home import CtHome
from ct_assets.core.settings import Settings, default_config_text, parse_settings

START = dt.date(2026, 9, 1)


def small_settings(**overrides) -> Settings:
    """The embedded defaults, shrunk for tests (fewer rows), with deep overrides by
    dotted key: ``small_settings(**{"quality.max_bad_fraction": 0.5})``."""
    raw = yaml.safe_load(default_config_text())
    raw["source"]["simulator"]["rows_per_day"] = 120
    raw["drift"]["sample_rows"] = 400
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_settings(raw, "test settings")


def incident_settings(reference_end: str) -> Settings:
    """Small settings whose simulated stream has a quality incident on day 4 (a day the
    data half's blocking checks fail)."""
    return small_settings(**{
        "source.simulator.scenarios": [{"name": "quality_incident", "start_day": 4, "end_day": 4}],
        "reference.end": reference_end,
    })


def make_home(tmp_path: Path) -> CtHome:
    return CtHome(tmp_path / "ct_home").ensure()


def day(i: int) -> str:
    return (START + dt.timedelta(days=i)).isoformat()


def model_settings(base_dir: Path, **overrides) -> Settings:
    """Small settings for the model half on the tiny base: short window, few steps, a
    first-model gate the random tiny model can pass (the gate itself is unit-tested).

    The shadow thresholds stay open: on simulator text the tiny model learns nothing and
    predicts one class, so two versions agree on all rows or none, by chance. The tests
    where gate and shadow block with real thresholds use a learnable world instead
    (registry_tests/keyword_world.py)."""
    defaults = {
        "training.base": {"kind": "directory", "name": str(base_dir), "model_id": "tiny-bert"},
        "training.window_days": 4,
        "training.holdout_days": 1,
        "training.min_rows": 50,
        "training.max_epochs": 2,
        "training.batch_size": 16,
        "training.eval_every_steps": 10,
        "training.checkpoint_every_steps": 10,
        "training.max_length": 32,
        "training.learning_rate": 0.005,
        "gate.first_model": {"min_accuracy": 0.0, "min_macro_f1": 0.0},
        "gate.min_class_recall": 0.0,
        "gate.bootstrap_samples": 200,
        "promotion.min_shadow_agreement": 0.0,
        "promotion.max_shadow_accuracy_drop": 1.0,
        "source.simulator.scenarios": [],
        "reference.end": day(2),
    }
    return small_settings(**{**defaults, **overrides})


def simulator_texts(n_days: int = 3) -> list[str]:
    from ct_assets.sim.simulator import SimulatorConfig, generate_day

    config = SimulatorConfig(labels=tuple(small_settings().labels), rows_per_day=200)
    return [r["text"] for i in range(n_days) for r in generate_day(config, START, START + dt.timedelta(days=i))
            if isinstance(r["text"], str)]
