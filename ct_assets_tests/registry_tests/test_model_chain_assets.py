"""The model half through real Dagster, real MLflow on SQLite, real peft on a tiny base.

Why: training, registration, the gate, shadow and promotion only mean something when
they run as the UI runs them; this proves the chain end to end and its audit trail.
"""

from __future__ import annotations

import pytest
from dagster import AssetKey, instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets_tests.helpers import day, make_home, model_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
CHAIN = ("training_dataset", "lora_adapter", "eval_report", "shadow_report", "champion")


def _setup(tmp_path, base_dir, **overrides):
    settings = model_settings(base_dir, **overrides)
    home = make_home(tmp_path)
    defs = build_definitions(settings, home)
    return settings, home, defs


def _registry(home) -> AdapterRegistry:
    return AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)


def _latest(instance, asset: str) -> dict:
    mat = instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


@pytest.fixture
def data_days(tmp_path, sim_base_dir):
    settings, home, defs = _setup(tmp_path, sim_base_dir)
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(6)).success
        yield settings, home, defs, instance


def test_chain_registers_gates_and_promotes_the_first_model(data_days):
    settings, home, defs, instance = data_days
    result = materialize_range(defs, instance, CHAIN, day(4), day(4))
    assert result.success
    reg = _registry(home)
    assert reg.get_alias("challenger") == 1 and reg.get_alias("champion") == 1
    tags = reg.version_info(1).tags
    assert tags["ct.partition"] == day(4) and tags["ct.window_start"] == day(1) and tags["ct.window_end"] == day(4)
    assert tags["ct.gate"] == "passed"
    lake = Lake(base_path=str(home.lake))
    data = lake.read("training_dataset", day(4))
    assert set(data["_split"].unique()) == {"train", "val", "holdout"}
    assert data["_day"].max().isoformat() <= day(4)  # nothing from after the partition
    adapter = _latest(instance, "lora_adapter")
    assert adapter["adapter_to_base_bytes"] < 1.0 and adapter["trainable_params"] > 0
    report = _latest(instance, "eval_report")["report"]
    assert "data:image/png;base64," in report and "|" in report
    audit = _latest(instance, "champion")
    assert audit["moved"] is True and audit["from"] == "None" and audit["to"] == "1"
    # The same report is logged to the MLflow run.
    run_id = lake.read("lora_adapter", day(4))["mlflow_run_id"][0]
    files = [f.path for f in reg.client.list_artifacts(run_id, "eval")]
    assert "eval/eval_report.md" in files
    # With a champion, drift_report now carries its accuracy and uses its window.
    assert materialize_range(defs, instance, ("drift_report",), day(6), day(6)).success
    drift = _latest(instance, "drift_report")
    assert drift["champion_version"] == "1" and "champion training window" in drift["reference"]


def test_require_approval_holds_promotion_until_approved_and_rollback_restores(tmp_path, sim_base_dir):
    settings, home, defs = _setup(tmp_path, sim_base_dir, **{"promotion.require_approval": True,
                                                              "gate.require_ci_above_zero": False,
                                                              "gate.min_improvement": -1.0,
                                                              "gate.max_forgetting": 1.0})
    from ct_assets.registry.jobs import run_approve, run_rollback

    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(6)).success
        assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success
        reg = _registry(home)
        assert reg.get_alias("champion") is None
        assert "awaiting human approval of version 1" in _latest(instance, "champion")["blocked"]

        run_approve(defs, instance, version=1, reviewer="ana", decision="approve", comment="looks good")
        assert materialize_range(defs, instance, ("champion",), day(4), day(4)).success
        assert reg.get_alias("champion") == 1
        assert _latest(instance, "champion")["approver"] == "ana"

        assert materialize_range(defs, instance, CHAIN, day(5), day(5)).success
        assert reg.get_alias("challenger") == 2 and reg.get_alias("champion") == 1
        run_approve(defs, instance, version=2, reviewer="ana", decision="approve", comment="")
        assert materialize_range(defs, instance, ("champion",), day(5), day(5)).success
        assert reg.get_alias("champion") == 2 and reg.get_alias("previous_champion") == 1

        run_rollback(defs, instance, reason="bad feedback in prod", approver="ops")
        assert reg.get_alias("champion") == 1
        audit = _latest(instance, "champion")
        assert audit["from"] == "2" and audit["to"] == "1" and audit["approver"] == "ops"


def test_too_few_rows_registers_nothing(tmp_path, sim_base_dir):
    settings, home, defs = _setup(tmp_path, sim_base_dir, **{"training.min_rows": 100000})
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(4)).success
        result = materialize_range(defs, instance, CHAIN, day(4), day(4), raise_on_error=False)
        assert not result.success
        assert not (home.mlflow / "mlflow.db").exists() or _registry(home).get_alias("challenger") is None


def test_shadow_days_hold_promotion_until_enough_new_days_passed(tmp_path, sim_base_dir):
    settings, home, defs = _setup(tmp_path, sim_base_dir, **{"promotion.shadow_days": 1,
                                                              "gate.require_ci_above_zero": False,
                                                              "gate.min_improvement": -1.0,
                                                              "gate.max_forgetting": 1.0})
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(6)).success
        assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success  # first model: no shadow
        reg = _registry(home)
        assert reg.get_alias("champion") == 1
        assert materialize_range(defs, instance, CHAIN, day(5), day(5)).success
        assert reg.get_alias("champion") == 1, "a day inside its own window does not count as shadow"
        assert "shadow: 0 of 1" in _latest(instance, "champion")["blocked"]
        assert materialize_range(defs, instance, ("shadow_report", "champion"), day(6), day(6)).success
        assert reg.get_alias("champion") == 2
        shadow = Lake(base_path=str(home.lake)).read("shadow_report", day(6)).to_dicts()[0]
        assert shadow["challenger_version"] == 2 and shadow["counts"] and 0.0 <= shadow["agreement"] <= 1.0
