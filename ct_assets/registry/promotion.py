"""Whether the champion alias may move to the challenger, and why not (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ct_assets.registry.records import EvalRecord


@dataclass(frozen=True)
class PromotionInput:
    challenger: int | None
    champion: int | None
    evaluation: EvalRecord | None  # the gate's record for the challenger; None = not evaluated
    shadow_passes: int
    shadow_days: int
    require_approval: bool
    approval: dict | None  # the registry's approval record for the challenger
    # The challenger's rollback record ({"ts", "by", "reason"}); None = never rolled back.
    rollback: Mapping[str, str] | None = None
    # Served canary days (canary_report) the challenger passed, and how many full promotion needs.
    canary_passes: int = 0
    canary_days: int = 0
    # The challenger's withdrawal record (a failed canary); None = never withdrawn.
    withdrawal: Mapping[str, str] | None = None


def passing_days(rows: Iterable[Mapping], *, challenger: int, after: dt.date, as_of: dt.date) -> int:
    """Days in (after, as_of] whose shadow_report (or canary_report) row passed for
    ``challenger`` and counts (traffic after its training window)."""
    return sum(
        1 for r in rows
        if after < dt.date.fromisoformat(r["partition"]) <= as_of
        and r["challenger_version"] == challenger and r["passed"] and r["counts"]
    )


passing_shadow_days = passing_canary_days = passing_days


def promotion_blockers(inp: PromotionInput) -> list[str]:
    """Empty when promotion may proceed; else one sentence per unmet condition."""
    if inp.challenger is None:
        return ["no challenger registered"]
    if inp.challenger == inp.champion:
        return [f"version {inp.challenger} is already champion"]
    reasons = []
    # Rolled back = judged bad in production by a person: its gate pass, shadow days and
    # approval predate that verdict, so none of them may put it back automatically.
    if inp.rollback is not None:
        r = inp.rollback
        reasons.append(f"version {inp.challenger} was rolled back by {r.get('by') or '?'} at {r.get('ts')} "
                       f"({r.get('reason') or 'no reason given'}); it is not re-promoted automatically")
    # Withdrawn = its canary answered users worse than the champion did; as for a rollback,
    # evidence from before that verdict may not promote it.
    if inp.withdrawal is not None:
        w = inp.withdrawal
        reasons.append(f"version {inp.challenger} was withdrawn by {w.get('by') or '?'} at {w.get('ts')} "
                       f"({w.get('reason') or 'no reason given'}); it is not re-promoted automatically")
    if inp.evaluation is None:
        reasons.append(f"gate not evaluated for version {inp.challenger}")
    elif not inp.evaluation.passed:
        reasons.append(f"gate failed for version {inp.challenger}: {'; '.join(inp.evaluation.reasons)}")
    # The first model has nothing to run in shadow beside: shadow days start with a champion.
    if inp.champion is not None and inp.shadow_passes < inp.shadow_days:
        reasons.append(f"shadow: {inp.shadow_passes} of {inp.shadow_days} required passing shadow days")
    # Likewise the canary: the first model has no champion arm to be compared with.
    if inp.champion is not None and inp.canary_passes < inp.canary_days:
        reasons.append(f"canary: {inp.canary_passes} of {inp.canary_days} required passing canary days")
    if inp.require_approval:
        decision = (inp.approval or {}).get("decision")
        if decision is None:
            reasons.append(f"awaiting human approval of version {inp.challenger} (require_approval is on)")
        elif decision != "approve":
            reasons.append(f"version {inp.challenger} was rejected by {inp.approval.get('reviewer')}: {inp.approval.get('comment')}")
    return reasons
