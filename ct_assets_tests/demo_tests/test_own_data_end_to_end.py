"""A user's own classifier, end to end, on real tweets: nothing of the simulator.

Why: the product only matters on the user's task. This walks the README section "Use it
on your own data" with its own commands: `ct import` a real export, run the data half,
`ct golden carve` a golden set from the reference days, retrain, and get a gate decision
on that golden set and a registered, promoted champion. The labels (negative / neutral /
positive), the vocabulary and the golden set all come from the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from ct_assets.core.home import CtHome
from ct_assets.core.settings import get_settings, load_settings
from ct_assets.definitions import build_definitions
from ct_assets.evaluation.golden import load_golden
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "airline_tweets_2015" / "tweets_sample.csv"
DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
CHAIN = ("training_dataset", "lora_adapter", "eval_report", "shadow_report", "champion")
DAYS = ["2015-02-17", "2015-02-18", "2015-02-19", "2015-02-20"]


def _config(base_dir: Path, golden: Path | None = None) -> dict:
    config = {
        "labels": ["negative", "neutral", "positive"],
        "source": {"kind": "landing_zone", "path": "landing"},
        "partitions": {"start_date": "2015-02-17"},
        "reference": {"start": "2015-02-17", "end": "2015-02-19"},
        "drift": {"sample_rows": 400},
        "training": {
            "base": {"kind": "directory", "name": str(base_dir), "model_id": "tiny-bert-tweets"},
            "window_days": 4, "holdout_days": 1, "min_rows": 100, "max_epochs": 3, "batch_size": 16,
            "eval_every_steps": 20, "checkpoint_every_steps": 20, "max_length": 32, "learning_rate": 0.01,
        },
        # The tiny random base cannot meet a production floor; the gate's rules are unit-tested.
        "gate": {"first_model": {"min_accuracy": 0.3, "min_macro_f1": 0.1}, "min_class_recall": 0.0,
                 "bootstrap_samples": 200},
    }
    if golden is not None:
        config["golden"] = {"path": str(golden), "min_per_label": 10}
    return config


def _cli(argv: list[str]) -> int:
    from ct_assets.cli import main

    get_settings.cache_clear()
    try:
        return main(argv)
    finally:
        get_settings.cache_clear()


@pytest.fixture
def tweets_base(tmp_path_factory):
    from ct_assets.training.base_model import build_tiny_model

    texts = pl.read_csv(FIXTURE, infer_schema=False)["text"].to_list()
    return build_tiny_model(tmp_path_factory.mktemp("tiny_tweets_base"), texts, vocab_size=800)


def test_import_data_half_carve_retrain_gate_promote(tmp_path, monkeypatch, tweets_base, capsys):
    home = CtHome(tmp_path / "ct_home")  # a new user's machine: nothing there yet
    config = tmp_path / "ct.yaml"
    config.write_text(yaml.safe_dump(_config(tweets_base)))
    monkeypatch.setenv("CT_HOME", str(home.root))
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))
    monkeypatch.setenv("CT_CONFIG", str(config))

    # 1. The user's export into the landing zone, one folder per UTC day.
    assert _cli(["import", str(FIXTURE), "--text", "text", "--label", "airline_sentiment",
                 "--time", "tweet_created", "--id", "tweet_id"]) == 0
    assert (home.dagster / "dagster.yaml").is_file()  # ready for `dagster asset materialize`
    landed = sorted(p.name for p in home.landing.iterdir())
    assert landed[:4] == [f"dt={d}" for d in DAYS]

    # 2. The data half on the real instance, day by day as automation runs it.
    settings = load_settings(config)
    defs = build_definitions(settings, home)
    instance = DagsterInstance.get()
    for d in DAYS:
        assert materialize_range(defs, instance, DATA, d, d).success, d
    lake = Lake(base_path=str(home.lake))
    clean = sum(lake.read("validated_window", d).height for d in DAYS)
    bad = sum(lake.read("quarantined_rows", d).height for d in DAYS)
    assert clean + bad == 4 * 200 and bad == 0  # real, well-formed rows: all clean, none lost

    # 3. A golden set carved from the reference days, then configured.
    golden_path = tmp_path / "golden.jsonl"
    assert _cli(["golden", "carve", "--start", DAYS[0], "--end", DAYS[1], "--per-label", "15",
                 "--out", str(golden_path)]) == 0
    printed = capsys.readouterr().out
    assert "golden:" in printed and str(golden_path) in printed
    golden = load_golden(golden_path)
    assert set(golden.labels) == {"negative", "neutral", "positive"}
    config.write_text(yaml.safe_dump(_config(tweets_base, golden_path)))
    settings = load_settings(config)
    defs = build_definitions(settings, home)

    # 4. A retrain as of the last day: window, adapter, gate on the user's golden set, promotion.
    assert materialize_range(defs, instance, CHAIN, DAYS[-1], DAYS[-1]).success
    data = lake.read("training_dataset", DAYS[-1])
    assert not set(data["event_id"].to_list()) & golden.ids  # carved rows never train
    registry = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    version = registry.get_alias("challenger")
    evaluation = registry.version_info(version).evaluation
    assert evaluation is not None and evaluation.passed
    assert evaluation.golden_sha256 == golden.sha256 and evaluation.golden_rows == len(golden.rows)
    assert registry.get_alias("champion") == version
    meta = instance.get_latest_materialization_event(AssetKey("eval_report")).asset_materialization.metadata
    assert meta["golden_sha256"].value == golden.sha256
    assert "### Per-label accuracy (recall)" in meta["report"].value
    manifest = json.loads(json.dumps(instance.get_latest_materialization_event(
        AssetKey("lora_adapter")).asset_materialization.metadata["manifest"].value))
    assert manifest["golden"]["sha256"] == golden.sha256 and manifest["labels"] == list(settings.labels)

    # 5. The user's whole history replayed through the real Definitions (fresh CT_HOME, the
    #    same landing zone and golden set by absolute path), with the days they know were
    #    ordinary marked stable.
    replay_config = _config(tweets_base, golden_path)
    replay_config["source"]["path"] = str(home.landing)
    config.write_text(yaml.safe_dump(replay_config))
    bt_home = tmp_path / "backtest_home"
    monkeypatch.setenv("CT_HOME", str(bt_home))
    monkeypatch.setenv("DAGSTER_HOME", str(bt_home / "dagster"))
    figures_path = tmp_path / "backtest.json"
    assert _cli(["backtest", "--end", "2015-02-22", "--stable", "2015-02-20..2015-02-21",
                 "--json", str(figures_path)]) == 0
    out = capsys.readouterr().out
    assert "Policy table" in out and "Timeline report:" in out
    figures = json.loads(figures_path.read_text())["combined"]
    assert set(figures) >= {"mean_accuracy", "static_mean_accuracy", "retrains", "promotions", "golden_forgetting"}
    assert figures["retrains"] >= 1 and figures["promotions"] >= 1  # the first model, on the user's own data
    assert figures["mean_accuracy"] is not None and figures["stable_days"] == 2
    assert (bt_home / "reports" / "timeline_combined.html").is_file()
