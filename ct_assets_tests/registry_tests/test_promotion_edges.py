"""Edges of the promotion rules that mutation testing found unpinned (docs/mutation.md):
which shadow days count, and the blockers' boundaries and exact sentences."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from ct_assets.registry.promotion import PromotionInput, passing_shadow_days, promotion_blockers
from ct_assets.registry.records import EvalRecord

AFTER, AS_OF = dt.date(2026, 9, 10), dt.date(2026, 9, 14)


def row(day: int, *, challenger: int = 2, passed: bool = True, counts: bool = True) -> dict:
    return {"partition": f"2026-09-{day:02d}", "challenger_version": challenger, "passed": passed, "counts": counts}


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([row(11), row(12), row(14)], 3),
        ([row(10)], 0),  # the window end itself is before the shadow period: (after, as_of]
        ([row(14)], 1),  # as_of itself counts
        ([row(15)], 0),  # after as_of: not yet
        ([row(9)], 0),
        ([row(12, challenger=3)], 0),  # another challenger's day
        ([row(12, passed=False)], 0),
        ([row(12, counts=False)], 0),  # traffic inside its training window
        ([row(10), row(11), row(12, passed=False), row(13, challenger=1), row(14), row(15)], 2),
        ([], 0),
    ],
)
def test_passing_shadow_days_counts_only_passing_days_of_this_challenger_in_the_period(rows, expected):
    assert passing_shadow_days(rows, challenger=2, after=AFTER, as_of=AS_OF) == expected


PASSED = EvalRecord(passed=True, reasons=(), champion=1, golden_accuracy=0.9)
READY = PromotionInput(challenger=2, champion=1, evaluation=PASSED, shadow_passes=3, shadow_days=3,
                       require_approval=False, approval=None)


@pytest.mark.parametrize(
    ("changes", "blockers"),
    [
        ({}, []),
        ({"shadow_passes": 2}, ["shadow: 2 of 3 required passing shadow days"]),
        ({"shadow_passes": 4}, []),  # more than required is fine
        # The first model has no champion to shadow beside: shadow days do not apply.
        ({"champion": None, "shadow_passes": 0}, []),
        ({"shadow_days": 0, "shadow_passes": 0}, []),
        ({"require_approval": True}, ["awaiting human approval of version 2 (require_approval is on)"]),
        ({"require_approval": True, "approval": {"reviewer": "ana"}},
         ["awaiting human approval of version 2 (require_approval is on)"]),
        ({"require_approval": True, "approval": {"decision": "approve"}}, []),
        # An approval on record does not matter when approval is not required.
        ({"approval": {"decision": "reject", "reviewer": "bo", "comment": "no"}}, []),
        ({"require_approval": True, "approval": {"decision": "reject", "reviewer": "bo", "comment": "too risky"}},
         ["version 2 was rejected by bo: too risky"]),
        ({"evaluation": None, "shadow_passes": 0, "require_approval": True},
         ["gate not evaluated for version 2", "shadow: 0 of 3 required passing shadow days",
          "awaiting human approval of version 2 (require_approval is on)"]),
        ({"evaluation": EvalRecord(passed=False, reasons=("holdout -0.020", "class 'b' collapsed"), champion=1,
                                   golden_accuracy=0.8)},
         ["gate failed for version 2: holdout -0.020; class 'b' collapsed"]),
        # A rollback record without who or why still blocks, and says what it lacks.
        ({"rollback": {"ts": "2026-09-07T10:00"}, "shadow_passes": 0},
         ["version 2 was rolled back by ? at 2026-09-07T10:00 (no reason given); it is not re-promoted automatically",
          "shadow: 0 of 3 required passing shadow days"]),
        ({"challenger": None, "evaluation": None}, ["no challenger registered"]),
        ({"challenger": 1, "evaluation": None, "shadow_passes": 0}, ["version 1 is already champion"]),
    ],
)
def test_promotion_blockers_table(changes, blockers):
    assert promotion_blockers(dataclasses.replace(READY, **changes)) == blockers
