"""The gate and the shadow block promotion for real: real Dagster runs over the real
assets, a tiny model that learns (keyword_world), real thresholds.

Why: the gate's and the shadow's rules are unit-tested on hand-written numbers; these
prove that a challenger made worse for real (trained on mislabelled days) is stopped
inside the chain, that nothing is promoted, and that the audit row says why.
"""

from __future__ import annotations

import json
import re

from dagster import AssetCheckEvaluation, instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets_tests.helpers import day, make_home
from ct_assets_tests.registry_tests.keyword_world import keyword_base_dir, keyword_world  # noqa: F401

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
TRAIN_AND_GATE = ("training_dataset", "lora_adapter", "eval_report")
CHAIN = (*TRAIN_AND_GATE, "shadow_report", "champion")
# Enough steps for the tiny base to learn the keywords (chance is 1/6). No early stop: at
# lr 0.03 the validation loss is noisy, and patience 4 (40 steps) stopped some runs on a
# plateau at chance (0.19-0.69 over training seeds 1-5; CI once saw 0.23). All 8 epochs
# gave 0.61-0.78 over the same seeds.
LEARNS = {"training.learning_rate": 0.03, "training.max_epochs": 8, "training.patience": 1000}
# The labelling bug: days 5-7 carry shifted labels; day 8 (the day-8 challenger's
# holdout), day 9 and the golden set are true. The champion learns from days 1-4.
MISLABELLED = (5, 6, 7)


def _check(result, name: str) -> AssetCheckEvaluation:
    (evaluation,) = [c for c in result.get_asset_check_evaluations() if c.check_name == name]
    return evaluation


def _world(tmp_path, base_dir, **overrides):
    home = make_home(tmp_path)
    settings = keyword_world(home.root, base_dir, range(10), mislabelled=MISLABELLED, **{**LEARNS, **overrides})
    return home, build_definitions(settings, home), Lake(base_path=str(home.lake))


def _champion_trained_on_true_days(defs, instance, lake, reg) -> None:
    assert materialize_range(defs, instance, DATA, day(0), day(9)).success
    assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success
    assert reg.aliases() == {"challenger": 1, "champion": 1}
    # It learnt: a challenger can only be "worse" than a champion that is better than chance
    # (1/6 over six labels). Training on the tiny base varies with seed and machine (0.61-0.78
    # over five seeds), so the bound is twice chance, not a figure of one run.
    assert lake.read("eval_report", day(4)).row(0, named=True)["holdout_accuracy"] > 2 / 6


def test_gate_blocks_a_worse_challenger_and_the_champion_stays(tmp_path, keyword_base_dir):  # noqa: F811
    home, defs, lake = _world(tmp_path, keyword_base_dir)
    reg = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    with instance_for_test() as instance:
        _champion_trained_on_true_days(defs, instance, lake, reg)

        result = materialize_range(defs, instance, CHAIN, day(8), day(8), raise_on_error=False)
        gate = _check(result, "promotion_gate")
        checks = gate.metadata["checks"].value
        failing = {name for name, c in checks.items() if not c["passed"]}
        forgotten = {name for name in failing if name.startswith("class_forgetting:")}
        assert not gate.passed and failing - forgotten == {"golden_forgetting", "holdout_ci_lower",
                                                           "holdout_improvement"}, (
            f"a challenger trained on mislabelled days passed the gate: {checks}")
        assert not result.success
        (failure,) = result.get_step_failure_events()
        assert failure.step_key == "eval_report" and "promotion_gate" in failure.event_specific_data.error.message
        # Blocked inside the run: shadow and the promotion decision never ran on it.
        ran = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
        assert ran == {"training_dataset", "lora_adapter", "eval_report"}
        report = lake.read("eval_report", day(8)).row(0, named=True)
        assert report["gate_passed"] is False and report["champion_version"] == 1
        assert (report["window_mode"], report["window_start"]) == ("fixed", reg.version_info(2).window[0].isoformat())
        assert report["holdout_accuracy"] < report["champion_holdout_accuracy"]
        # Days 5-7's shifted labels contradict the golden labels of a class, which the
        # drift_report's concept_shift flags: the gate leaves that class out of forgetting
        # (it cannot tell a labelling bug from a concept change) and the drop on the
        # classes that did not change still blocks.
        changed = json.loads(report["changed_classes"])
        assert changed, "the mislabelled days raised no concept_shift flag in the window"
        left_out = ", ".join(repr(c) for c in changed)
        assert re.search(r"golden accuracy on unchanged classes dropped by 0\.\d+ > max_forgetting 0\.050 "
                         rf"\(challenger 0\.\d+, champion 0\.\d+ on \d+ rows; left out as concept changes: "
                         rf"{re.escape(left_out)}\)", report["reasons"]), report["reasons"]
        assert checks["golden_forgetting"]["excluded_classes"] == changed
        # Per class too: the unchanged classes it got worse on are named, the changed ones
        # are not judged.
        assert forgotten and not {name.split(":", 1)[1] for name in forgotten} & set(changed), checks
        # The forgetting ledger of the version: per label, the changed one marked, in the
        # lake row and as an MLflow artifact of its run.
        ledger = json.loads(report["ledger"])
        labelled = {e["group"]: e for e in ledger if e["kind"] == "label"}
        assert {e["version"] for e in ledger} == {2} and sorted(c for c, e in labelled.items() if e["changed"]) == changed
        run_id = lake.read("lora_adapter", day(8)).row(0, named=True)["mlflow_run_id"]
        artifacts = {a.path for a in reg.client.list_artifacts(run_id, "eval")}
        assert "eval/ledger.json" in artifacts, artifacts
        # The challenger alias is on the new version, which carries its failed verdict.
        assert reg.aliases() == {"challenger": 2, "champion": 1}
        evaluation = reg.version_info(2).evaluation
        assert evaluation.passed is False and "; ".join(evaluation.reasons) == report["reasons"]

        # The day's promotion decision, run on its own (as the UI or a backfill would).
        assert materialize_range(defs, instance, ("champion",), day(8), day(8)).success
        row = lake.read("champion", day(8)).row(0, named=True)
        assert row == {"partition": day(8), "from_version": 1, "to_version": 1, "moved": False, "reason": "",
                       "approver": "", "blocked": f"gate failed for version 2: {report['reasons']}"}
        assert reg.aliases() == {"challenger": 2, "champion": 1}


def test_shadow_blocks_a_challenger_that_disagrees_with_the_champion(tmp_path, keyword_base_dir):  # noqa: F811
    # Not the gate's test: it is opened so that the mislabelled challenger reaches the
    # shadow, which keeps its real thresholds (min agreement 0.5, accuracy drop 0.02).
    # From scratch, not warm-started: the challenger then holds none of the champion's mapping.
    home, defs, lake = _world(tmp_path, keyword_base_dir, **{
        "promotion.shadow_days": 1, "training.warm_start": False, "gate.require_ci_above_zero": False, "gate.min_improvement": -1.0,
        "gate.max_forgetting": 1.0, "gate.max_class_forgetting": 1.0})
    reg = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    with instance_for_test() as instance:
        _champion_trained_on_true_days(defs, instance, lake, reg)
        assert materialize_range(defs, instance, TRAIN_AND_GATE, day(8), day(8)).success
        assert reg.version_info(2).evaluation.passed and reg.aliases() == {"challenger": 2, "champion": 1}

        result = materialize_range(defs, instance, ("shadow_report", "champion"), day(9), day(9),
                                   raise_on_error=False)
        shadow = lake.read("shadow_report", day(9)).row(0, named=True)
        assert (shadow["challenger_version"], shadow["champion_version"], shadow["counts"]) == (2, 1, True)
        assert shadow["agreement"] < 0.5 and re.search(
            r"agreement 0\.\d{3} < min_shadow_agreement 0\.5", shadow["note"]), shadow
        assert re.search(r"challenger accuracy 0\.\d{3} < champion 0\.\d{3} - 0\.02 on 120 labelled rows",
                         shadow["note"]), shadow
        check = _check(result, "shadow_within_policy")
        assert not check.passed and check.metadata["note"].value == shadow["note"]
        assert not result.success and reg.aliases() == {"challenger": 2, "champion": 1}

        assert materialize_range(defs, instance, ("champion",), day(9), day(9)).success
        row = lake.read("champion", day(9)).row(0, named=True)
        assert (row["moved"], row["to_version"], row["blocked"]) == (
            False, 1, "shadow: 0 of 1 required passing shadow days")
        assert reg.aliases() == {"challenger": 2, "champion": 1}
