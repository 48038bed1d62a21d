"""promotion_blockers: every unmet condition is a named blocker (pure, no registry)."""

from __future__ import annotations

import dataclasses

import pytest

from ct_assets.registry.promotion import PromotionInput, promotion_blockers
from ct_assets.registry.records import EvalRecord, ModelVersionInfo

PASSED = EvalRecord(passed=True, reasons=(), champion=1, golden_accuracy=0.9)
READY = PromotionInput(challenger=2, champion=1, evaluation=PASSED, shadow_passes=1, shadow_days=1,
                       require_approval=True, approval={"decision": "approve", "reviewer": "ana"})


def test_a_ready_challenger_has_no_blockers():
    assert promotion_blockers(READY) == []


@pytest.mark.parametrize("kind, field, by, ts, reason, verb", [
    ("rolled_back", "rollback", "ops", "2026-09-07T10:00:00.000+00:00", "bad feedback in prod", "rolled back"),
    ("withdrawn", "withdrawal", "canary_report", "2026-09-09T10:00:00.000+00:00",
     "canary accuracy 0.4 < champion 0.8 - 0.02", "withdrawn"),
])
def test_a_rolled_back_or_withdrawn_challenger_is_blocked_even_when_everything_else_passed(kind, field, by, ts,
                                                                                          reason, verb):
    info = ModelVersionInfo(2, "run", "file:///a", "READY", (), {
        f"ct.{kind}.ts": ts, f"ct.{kind}.by": by, f"ct.{kind}.reason": reason})
    blockers = promotion_blockers(dataclasses.replace(READY, **{field: getattr(info, field)}))
    assert blockers == [f"version 2 was {verb} by {by} at {ts} ({reason}); it is not re-promoted automatically"]


def test_never_rolled_back_has_no_rollback_record():
    assert ModelVersionInfo(2, "run", "file:///a", "READY", (), {}).rollback is None


def test_each_unmet_condition_is_named():
    failed = EvalRecord(passed=False, reasons=("x",), champion=1, golden_accuracy=0.1)
    inp = dataclasses.replace(READY, evaluation=failed, shadow_passes=0, approval=None)
    assert promotion_blockers(inp) == [
        "gate failed for version 2: x", "shadow: 0 of 1 required passing shadow days",
        "awaiting human approval of version 2 (require_approval is on)"]
    assert promotion_blockers(dataclasses.replace(READY, evaluation=None)) == ["gate not evaluated for version 2"]
    rejected = dataclasses.replace(READY, approval={"decision": "reject", "reviewer": "bo", "comment": "no"})
    assert promotion_blockers(rejected) == ["version 2 was rejected by bo: no"]
    assert promotion_blockers(dataclasses.replace(READY, challenger=1)) == ["version 1 is already champion"]
    assert promotion_blockers(dataclasses.replace(READY, challenger=None)) == ["no challenger registered"]


def test_canary_days_hold_full_promotion_like_shadow_days():
    waiting = dataclasses.replace(READY, canary_passes=1, canary_days=2)
    assert promotion_blockers(waiting) == ["canary: 1 of 2 required passing canary days"]
    assert promotion_blockers(dataclasses.replace(waiting, canary_passes=2)) == []
    # The first model has no champion arm to be compared with: canary days do not apply.
    assert promotion_blockers(dataclasses.replace(waiting, champion=None, canary_passes=0)) == []
    # canary_days 0 (the default): the canary informs, it does not gate.
    assert promotion_blockers(dataclasses.replace(READY, canary_passes=0)) == []


def test_canary_days_are_counted_by_the_same_rule_as_shadow_days():
    import datetime as dt

    from ct_assets.registry.promotion import passing_canary_days, passing_shadow_days

    assert passing_canary_days is passing_shadow_days  # one decision, one function (test_promotion_edges)
    rows = [{"partition": "2026-09-11", "challenger_version": 2, "passed": True, "counts": True},
            {"partition": "2026-09-12", "challenger_version": 2, "passed": False, "counts": True}]
    assert passing_canary_days(rows, challenger=2, after=dt.date(2026, 9, 10), as_of=dt.date(2026, 9, 12)) == 1
