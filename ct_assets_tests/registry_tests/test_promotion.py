"""promotion_blockers: every unmet condition is a named blocker (pure, no registry)."""

from __future__ import annotations

import dataclasses

from ct_assets.registry.promotion import PromotionInput, promotion_blockers
from ct_assets.registry.records import EvalRecord, ModelVersionInfo

PASSED = EvalRecord(passed=True, reasons=(), champion=1, golden_accuracy=0.9)
READY = PromotionInput(challenger=2, champion=1, evaluation=PASSED, shadow_passes=1, shadow_days=1,
                       require_approval=True, approval={"decision": "approve", "reviewer": "ana"})


def test_a_ready_challenger_has_no_blockers():
    assert promotion_blockers(READY) == []


def test_a_rolled_back_challenger_is_blocked_even_when_everything_else_passed():
    info = ModelVersionInfo(2, "run", "file:///a", "READY", ("challenger",), {
        "ct.rolled_back.ts": "2026-09-07T10:00:00.000+00:00", "ct.rolled_back.by": "ops",
        "ct.rolled_back.reason": "bad feedback in prod"})
    blockers = promotion_blockers(dataclasses.replace(READY, rollback=info.rollback))
    assert blockers == [("version 2 was rolled back by ops at 2026-09-07T10:00:00.000+00:00 "
                         "(bad feedback in prod); it is not re-promoted automatically")]


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
