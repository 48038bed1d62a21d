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
    _, home, defs, instance = data_days
    result = materialize_range(defs, instance, CHAIN, day(4), day(4))
    assert result.success
    reg = _registry(home)
    assert reg.aliases() == {"challenger": 1, "champion": 1}
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
    assert (audit["moved"], audit["from"], audit["to"], audit["blocked"]) == (True, "None", "1", "-")
    assert audit["approver"] == "automatic (require_approval off)" and audit["reason"].startswith("gate passed")
    # The same report is logged to the MLflow run.
    run_id = lake.read("lora_adapter", day(4))["mlflow_run_id"][0]
    files = [f.path for f in reg.client.list_artifacts(run_id, "eval")]
    assert "eval/eval_report.md" in files
    # With a champion, drift_report now carries its accuracy and uses its window.
    assert materialize_range(defs, instance, ("drift_report",), day(6), day(6)).success
    drift = _latest(instance, "drift_report")
    assert drift["champion_version"] == "1" and "champion training window" in drift["reference"]


def test_require_approval_holds_promotion_and_a_rolled_back_version_is_not_re_promoted(tmp_path, sim_base_dir):
    _, home, defs = _setup(tmp_path, sim_base_dir, **{"promotion.require_approval": True,
                                                       "gate.require_ci_above_zero": False,
                                                       "gate.min_improvement": -1.0,
                                                       "gate.max_forgetting": 1.0,
                                                       "gate.max_class_forgetting": 1.0})
    from ct_assets.registry.jobs import run_approve, run_rollback

    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(7)).success
        assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success
        reg = _registry(home)
        assert reg.aliases() == {"challenger": 1}
        assert _latest(instance, "champion")["blocked"] == (
            "awaiting human approval of version 1 (require_approval is on)")

        run_approve(defs, instance, version=1, reviewer="ana", decision="approve", comment="looks good")
        assert materialize_range(defs, instance, ("champion",), day(4), day(4)).success
        assert reg.aliases() == {"challenger": 1, "champion": 1}
        assert _latest(instance, "champion")["approver"] == "ana"

        assert materialize_range(defs, instance, CHAIN, day(5), day(5)).success
        assert reg.aliases() == {"challenger": 2, "champion": 1}
        run_approve(defs, instance, version=2, reviewer="ana", decision="approve", comment="")
        assert materialize_range(defs, instance, ("champion",), day(5), day(5)).success
        assert reg.aliases() == {"challenger": 2, "champion": 2, "previous_champion": 1}

        run_rollback(defs, instance, reason="bad feedback in prod", approver="ops")
        assert reg.aliases() == {"challenger": 2, "champion": 1}
        audit = _latest(instance, "champion")
        assert (audit["from"], audit["to"], audit["approver"]) == ("2", "1", "ops")
        assert audit["reason"] == "rollback: bad feedback in prod"

        # v2 is still the (approved, gate-passed) challenger: the next days' promotion
        # decisions must not put it back, and must say why.
        rolled_back_at = reg.version_info(2).tags["ct.rolled_back.ts"]
        for d in (6, 7):
            assert materialize_range(defs, instance, ("shadow_report", "champion"), day(d), day(d)).success
            assert reg.aliases() == {"challenger": 2, "champion": 1}, f"rolled-back v2 re-promoted on {day(d)}"
            row = Lake(base_path=str(home.lake)).read("champion", day(d)).row(0, named=True)
            assert (row["moved"], row["from_version"], row["to_version"]) == (False, 1, 1)
            assert row["blocked"] == (f"version 2 was rolled back by ops at {rolled_back_at} (bad feedback in prod); "
                                      "it is not re-promoted automatically")


def test_too_few_rows_registers_nothing(tmp_path, sim_base_dir):
    _, home, defs = _setup(tmp_path, sim_base_dir, **{"training.min_rows": 100000})
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(4)).success
        result = materialize_range(defs, instance, CHAIN, day(4), day(4), raise_on_error=False)
        assert not result.success
        # Stopped by training_dataset's blocking size check, before any training.
        (failure,) = result.get_step_failure_events()
        error = failure.event_specific_data.error
        assert failure.step_key == "training_dataset" and error.cls_name == "DagsterAssetCheckFailedError"
        assert "training_dataset: minimum_size" in error.message
        train_rows = Lake(base_path=str(home.lake)).read("training_dataset", day(4))["_split"].eq("train").sum()
        (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "minimum_size"]
        assert not check.passed and train_rows > 0
        assert (check.metadata["train_rows"].value, check.metadata["min_rows"].value) == (train_rows, 100000)
        ran = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert ran == {"training_dataset"}
        # Nothing reached MLflow: no database, so no version and no alias.
        assert not (home.mlflow / "mlflow.db").exists()


def test_shadow_days_hold_promotion_until_enough_new_days_passed(tmp_path, sim_base_dir):
    _, home, defs = _setup(tmp_path, sim_base_dir, **{"promotion.shadow_days": 1,
                                                       "gate.require_ci_above_zero": False,
                                                       "gate.min_improvement": -1.0,
                                                       "gate.max_forgetting": 1.0,
                                                       "gate.max_class_forgetting": 1.0})
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(6)).success
        assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success  # first model: no shadow
        reg = _registry(home)
        assert reg.aliases() == {"challenger": 1, "champion": 1}
        assert materialize_range(defs, instance, CHAIN, day(5), day(5)).success
        assert reg.aliases() == {"challenger": 2, "champion": 1}, "a day inside its own window does not count"
        assert _latest(instance, "champion")["blocked"] == "shadow: 0 of 1 required passing shadow days"
        assert materialize_range(defs, instance, ("shadow_report", "champion"), day(6), day(6)).success
        assert reg.aliases() == {"challenger": 2, "champion": 2, "previous_champion": 1}
        audit = _latest(instance, "champion")
        assert (audit["from"], audit["to"], audit["moved"]) == ("1", "2", True)
        assert audit["reason"].startswith("gate passed, 1/1 shadow days")
        shadow = Lake(base_path=str(home.lake)).read("shadow_report", day(6)).to_dicts()[0]
        assert shadow["challenger_version"] == 2 and shadow["counts"] and 0.0 <= shadow["agreement"] <= 1.0
