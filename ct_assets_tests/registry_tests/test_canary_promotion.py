"""The canary gates and withdraws for real: real Dagster runs, real MLflow on SQLite, real
versions trained on the tiny base, and served traffic written by the real prediction log.

Why: the canary verdict is unit-tested on hand-made rows (evaluation_tests/test_canary.py);
these prove that served rows go landing zone -> raw_window -> validated_window ->
canary_report, that ``promotion.canary_days`` holds the champion alias until enough passing
days, that a worse canary loses its ``challenger`` alias with the move recorded, and that
shadow_report judges on served pairs when ct serve mirrored traffic.

Served predictions are chosen here, not computed: the log records what a server answered,
so "the canary answered worse" is a fact about the rows, as it is in production.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from dagster import AssetKey, instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.resources import build_source
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.serving.prediction_log import PredictionLog
from ct_assets.triggers.automation import PROMOTION
from ct_assets_tests.helpers import START, day, make_home, model_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
CHAIN = ("training_dataset", "lora_adapter", "eval_report", "shadow_report", "champion")
# Open gate: the tiny base learns nothing from simulator text, and the gate is not under test.
OPEN_GATE = {"gate.require_ci_above_zero": False, "gate.min_improvement": -1.0, "gate.max_forgetting": 1.0,
             "gate.max_class_forgetting": 1.0}
ARM_ROWS = 40  # >= the 30 labelled rows per arm a verdict needs


def serve_day(log: PredictionLog, i: int, *, canary_correct: int, champion_correct: int = 30) -> None:
    """A day of served traffic: ARM_ROWS rows per arm, all with feedback the same day; the
    champion's rows carry the challenger's shadow prediction (ct serve's shadow mode)."""
    labels = ("billing", "refund")
    t0 = dt.datetime.combine(START + dt.timedelta(days=i), dt.time(10), dt.UTC)
    rows, feedback = [], []
    for arm, version, correct in (("champion", 1, champion_correct), ("canary", 2, canary_correct)):
        for n in range(ARM_ROWS):
            truth = labels[n % 2]
            prediction = truth if n < correct else labels[(n + 1) % 2]
            event_id = f"{arm}-{i}-{n}"
            rows.append({"event_id": event_id, "event_ts": t0 + dt.timedelta(seconds=n),
                         "text": f"please help with my {truth} request number {n}", "served_version": version,
                         "arm": arm, "prediction": prediction, "confidence": 0.8, "latency_ms": 3.0 + n,
                         "shadow_version": 2 if arm == "champion" else None,
                         "shadow_prediction": truth if arm == "champion" else None,
                         "shadow_confidence": 0.7 if arm == "champion" else None})
            feedback.append((event_id, truth, t0 + dt.timedelta(hours=2, seconds=n)))
    log.append(rows)
    log.flush()
    for event_id, label, ts in feedback:  # /feedback after the rows were flushed: file rewrites
        log.record_feedback(event_id, label, ts)
    log.flush()


@pytest.fixture
def world(tmp_path, sim_base_dir):
    """v1 champion (trained as of day 4), v2 challenger (day 5, gate passed), and served
    traffic of both on days 6-7 as ``serve`` writes it; data half for days 0-7 run after."""
    settings = model_settings(sim_base_dir, **{**OPEN_GATE, "promotion.canary_days": 2})
    home = make_home(tmp_path)
    defs = build_definitions(settings, home)
    landing = Path(build_source(settings, home).path)
    reg = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    with instance_for_test() as instance:
        yield defs, instance, landing, reg, Lake(base_path=str(home.lake))


def _first_two_versions(defs, instance, reg) -> None:
    assert materialize_range(defs, instance, CHAIN, day(4), day(4)).success
    assert reg.aliases() == {"challenger": 1, "champion": 1}
    assert materialize_range(defs, instance, CHAIN, day(5), day(5)).success
    assert reg.aliases() == {"challenger": 2, "champion": 1}


def _metadata(instance, asset: str) -> dict:
    mat = instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}


def test_canary_days_hold_promotion_until_two_passing_days_then_the_champion_moves(world):
    defs, instance, landing, reg, lake = world
    log = PredictionLog(landing, flush_rows=1000, flush_seconds=60.0)
    for i in (6, 7):
        serve_day(log, i, canary_correct=30)  # as accurate as the champion: 0.75 each
    log.close()
    assert materialize_range(defs, instance, DATA, day(0), day(7)).success
    _first_two_versions(defs, instance, reg)
    # Day 5 had no served traffic: offline shadow, and the champion waits for canary days.
    assert lake.read("shadow_report", day(5)).row(0, named=True)["source"] == "offline"
    assert lake.read("champion", day(5)).row(0, named=True)["blocked"] == "canary: 0 of 2 required passing canary days"

    # A range in one run (a backfill, or late days), judged day by day.
    assert materialize_range(defs, instance, ("canary_report",), day(4), day(7)).success
    assert [lake.read("canary_report", day(i)).row(0, named=True)["verdict"] for i in (4, 5, 6, 7)] == [
        "insufficient", "insufficient", "passed", "passed"]
    assert lake.read("canary_report", day(5)).row(0, named=True)["reason"] == "no served traffic on this day"

    # What promotion_sensor runs each day for a waiting challenger: canary first, then the decision.
    assert materialize_range(defs, instance, PROMOTION, day(6), day(6)).success
    canary = lake.read("canary_report", day(6)).row(0, named=True)
    assert (canary["verdict"], canary["canary_version"], canary["passed"], canary["counts"]) == ("passed", 2, True, True)
    assert (canary["canary_rows"], canary["canary_labelled"], canary["champion_labelled"]) == (40, 40, 40)
    assert canary["reason"] == "canary v2 accuracy 0.750 >= champion 0.750 - 0.02 on 40 and 40 labelled rows"
    md = _metadata(instance, "canary_report")
    assert md["verdict"] == "passed" and "| champion | 1 | 40 | 40 | 0.75 |" in md["arms"]
    assert reg.aliases() == {"challenger": 2, "champion": 1}
    assert lake.read("champion", day(6)).row(0, named=True)["blocked"] == "canary: 1 of 2 required passing canary days"
    # Served shadow pairs fed shadow_report: the champion's 40 answers with v2's shadow beside them.
    shadow = lake.read("shadow_report", day(6)).row(0, named=True)
    assert (shadow["source"], shadow["served_pairs"], shadow["labelled_rows"]) == ("served", 40, 40)
    assert (shadow["agreement"], shadow["champion_accuracy"], shadow["challenger_accuracy"]) == (0.75, 0.75, 1.0)

    assert materialize_range(defs, instance, PROMOTION, day(7), day(7)).success
    assert reg.aliases() == {"challenger": 2, "champion": 2, "previous_champion": 1}
    audit = lake.read("champion", day(7)).row(0, named=True)
    assert (audit["from_version"], audit["to_version"], audit["moved"]) == (1, 2, True)
    # Both served days also passed shadow (served pairs), though shadow_days 0 does not gate.
    assert audit["reason"].startswith("gate passed, 2/0 shadow days, 2/2 canary days")


def test_a_worse_canary_is_withdrawn_and_the_champion_stays(world):
    defs, instance, landing, reg, lake = world
    log = PredictionLog(landing, flush_rows=1000, flush_seconds=60.0)
    serve_day(log, 6, canary_correct=10)  # 0.25 against the champion's 0.75
    log.close()
    assert materialize_range(defs, instance, DATA, day(0), day(6)).success
    _first_two_versions(defs, instance, reg)

    result = materialize_range(defs, instance, PROMOTION, day(6), day(6), raise_on_error=False)
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "canary_within_policy"]
    assert not check.passed and check.metadata["verdict"].value == "failed"
    # canary_days > 0: the check is an ERROR, so the day's promotion decision did not run after it.
    assert not result.success and lake.read("champion", day(6)) is None
    row = lake.read("canary_report", day(6)).row(0, named=True)
    reason = ("canary_report[2026-09-07]: canary v2 accuracy 0.250 < champion 0.750 - 0.02 on 40 and 40 "
              "labelled rows (max_canary_accuracy_drop)")
    assert (row["verdict"], row["withdrawn"], row["withdrawn_from"], row["withdrawn_to"]) == ("failed", True, 2, None)
    assert row["withdrawn_reason"] == reason
    assert _metadata(instance, "canary_report")["withdrawn"] == {
        "withdrawn": True, "withdrawn_from": 2, "withdrawn_to": None, "withdrawn_reason": reason}
    # The alias is gone, the version says why, and the champion never moved.
    assert reg.aliases() == {"champion": 1}
    withdrawal = reg.version_info(2).withdrawal
    assert (withdrawal["by"], withdrawal["reason"]) == ("canary_report", reason)

    # The decision run on its own: nothing to promote, and it says so.
    assert materialize_range(defs, instance, ("champion",), day(6), day(6)).success
    audit = lake.read("champion", day(6)).row(0, named=True)
    assert (audit["moved"], audit["to_version"], audit["blocked"]) == (False, 1, "no challenger registered")
    # Re-judging the day later neither withdraws again nor fails: v2 is no longer the candidate.
    assert materialize_range(defs, instance, ("canary_report",), day(6), day(6)).success
    again = lake.read("canary_report", day(6)).row(0, named=True)
    assert (again["verdict"], again["withdrawn"], again["challenger_version"]) == ("failed", False, None)


def test_canary_report_follows_each_landed_day_and_does_not_drag_champion(tmp_path):
    """Automation, evaluated by Dagster: a day's validated rows (also a late day) request its
    canary_report, as for the data followers; champion, which reads canary_report, is not
    requested by it (champion follows the training chain and promotion_sensor only)."""
    from dagster import AssetMaterialization, evaluate_automation_conditions

    from ct_assets_tests.helpers import small_settings

    defs = build_definitions(small_settings(), make_home(tmp_path))
    now = dt.datetime.combine(START + dt.timedelta(days=20), dt.time(6), dt.UTC)  # latest partition: day 19
    with instance_for_test() as instance:
        cursor = evaluate_automation_conditions(defs, instance, evaluation_time=now).cursor
        for i in (19, 16):  # today's day, and one that landed 3 days late
            instance.report_runless_asset_event(AssetMaterialization("validated_window", partition=day(i)))
        result = evaluate_automation_conditions(defs, instance, evaluation_time=now + dt.timedelta(minutes=1),
                                                cursor=cursor)
    assert sorted(result.get_requested_partitions(AssetKey("canary_report"))) == [day(16), day(19)]
    assert not result.get_requested_partitions(AssetKey("champion"))
    sensor = defs.resolve_sensor_def("data_automation_sensor")
    assert AssetKey("canary_report") in sensor.asset_selection.resolve(defs.resolve_asset_graph())
