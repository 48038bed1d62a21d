"""Whether the champion alias may move to the challenger, and why not."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PromotionInput:
    challenger: int | None
    champion: int | None
    gate: str | None  # "passed" | "failed" | None (not evaluated)
    shadow_passes: int
    shadow_days: int
    require_approval: bool
    approval: dict | None  # the registry's approval record for the challenger


def promotion_blockers(inp: PromotionInput) -> list[str]:
    """Empty when promotion may proceed; else one sentence per unmet condition."""
    if inp.challenger is None:
        return ["no challenger registered"]
    if inp.challenger == inp.champion:
        return [f"version {inp.challenger} is already champion"]
    reasons = []
    if inp.gate != "passed":
        reasons.append(f"gate {'not evaluated' if inp.gate is None else inp.gate} for version {inp.challenger}")
    # The first model has nothing to run in shadow beside: shadow days start with a champion.
    if inp.champion is not None and inp.shadow_passes < inp.shadow_days:
        reasons.append(f"shadow: {inp.shadow_passes} of {inp.shadow_days} required passing shadow days")
    if inp.require_approval:
        decision = (inp.approval or {}).get("decision")
        if decision is None:
            reasons.append(f"awaiting human approval of version {inp.challenger} (require_approval is on)")
        elif decision != "approve":
            reasons.append(f"version {inp.challenger} was rejected by {inp.approval.get('reviewer')}: {inp.approval.get('comment')}")
    return reasons
