"""The canary share is what serving.canary_percent says, decided by the event id alone,
and only a challenger that passed the gate, was not rolled back and is not the champion
may take traffic. Pure functions: the server calls exactly these."""

from __future__ import annotations

import pytest

from ct_assets.registry.records import (
    ROLLED_BACK_BY,
    ROLLED_BACK_REASON,
    ROLLED_BACK_TS,
    WITHDRAWN_BY,
    WITHDRAWN_REASON,
    WITHDRAWN_TS,
    EvalRecord,
    ModelVersionInfo,
)
from ct_assets.serving.routing import BUCKETS, CANARY_ARM, CHAMPION_ARM, arm_for, bucket, challenger_problem

IDS = [f"event-{i}" for i in range(10_000)]


@pytest.mark.parametrize("percent", [
    1.0,   # a cautious first canary
    5.0,
    12.5,  # a fraction of a percent point: 1,250 of the 10,000 buckets
    50.0,  # an even split
    90.0,
])
def test_the_canary_share_over_10k_ids_is_within_two_points_of_the_setting(percent):
    share = 100 * sum(arm_for(i, percent) == CANARY_ARM for i in IDS) / len(IDS)
    assert abs(share - percent) <= 2.0, f"canary share {share:.2f} % for canary_percent {percent}"


@pytest.mark.parametrize("percent, expected", [(0.0, CHAMPION_ARM), (100.0, CANARY_ARM)])
def test_the_ends_send_everything_to_one_arm(percent, expected):
    assert {arm_for(i, percent) for i in IDS} == {expected}


def test_an_id_always_meets_the_same_arm_and_a_larger_share_only_adds_ids():
    assert [arm_for(i, 30.0) for i in IDS[:500]] == [arm_for(i, 30.0) for i in IDS[:500]]
    at_10 = {i for i in IDS if arm_for(i, 10.0) == CANARY_ARM}
    at_20 = {i for i in IDS if arm_for(i, 20.0) == CANARY_ARM}
    # Raising the share moves more users to the canary; nobody flips back to the champion.
    assert at_10 < at_20
    assert all(0 <= bucket(i) < BUCKETS for i in IDS[:100])


@pytest.mark.parametrize("percent", [-0.5, 100.5])
def test_a_share_outside_0_100_is_refused_naming_it(percent):
    with pytest.raises(ValueError, match=f"canary_percent must be within \\[0, 100\\], got {percent}"):
        arm_for("x", percent)


def _info(version: int, record: EvalRecord | None = None, rolled_back: bool = False,
          withdrawn: bool = False) -> ModelVersionInfo:
    tags = {"ct.status": "complete", **(record.to_tags() if record else {})}
    if rolled_back:
        tags |= {ROLLED_BACK_TS: "2026-09-10T00:00:00Z", ROLLED_BACK_BY: "oncall", ROLLED_BACK_REASON: "bad recall"}
    if withdrawn:
        tags |= {WITHDRAWN_TS: "2026-09-11T00:00:00Z", WITHDRAWN_BY: "canary_report", WITHDRAWN_REASON: "accuracy"}
    return ModelVersionInfo(version, "run", "file:///a", "READY", ("challenger",), tags)


PASSED = EvalRecord(passed=True, reasons=(), champion=1, golden_accuracy=0.9)
FAILED = EvalRecord(passed=False, reasons=("golden accuracy dropped",), champion=1, golden_accuracy=0.5)


@pytest.mark.parametrize("challenger, champion, problem", [
    # passed the gate, never rolled back, not the champion: may serve
    (_info(2, PASSED), 1, None),
    # the first model has no champion to compare with; passing the gate is enough
    (_info(2, PASSED), None, None),
    (None, 1, "no version has alias 'challenger'"),
    # promoted: the champion alias moved onto it, so there is nothing to compare
    (_info(2, PASSED), 2, "challenger v2 is the champion"),
    # registered but eval_report has not run yet
    (_info(2), 1, "challenger v2 has no gate verdict yet"),
    (_info(2, FAILED), 1, "challenger v2 failed the gate: golden accuracy dropped"),
    # once rolled back away from, never again in front of users, whatever its gate said
    (_info(2, PASSED, rolled_back=True), 1, "challenger v2 was rolled back at 2026-09-10T00:00:00Z by 'oncall'"),
    # a canary that failed in production: withdrawn, even if the alias came back onto it
    (_info(2, PASSED, withdrawn=True), 1, "challenger v2 was withdrawn at 2026-09-11T00:00:00Z by 'canary_report'"),
])
def test_only_a_gated_challenger_takes_traffic(challenger, champion, problem):
    got = challenger_problem(challenger, champion)
    assert got is None if problem is None else got is not None and got.startswith(problem), got
