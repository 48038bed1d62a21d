"""Promotion: champion, the alias move after each day's promotion decision."""

from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetExecutionContext,
    MetadataValue,
    Output,
    asset,
)

from ct_assets.core.schema import run_story
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of
from ct_assets.orchestration.partitions import only_partition, trailing_days
from ct_assets.orchestration.run_tags import tag_run_story
from ct_assets.registry.promotion import (
    PromotionInput,
    passing_canary_days,
    passing_shadow_days,
    promotion_blockers,
)
from ct_assets.registry.resources import ModelRegistryResource

GROUP = "model"
# How far back the shadow and canary records are read for a waiting challenger (days). A
# challenger that waits longer (for approval, say) counts only its days within this reach.
SHADOW_LOOKBACK_DAYS = 90


def _rows(frames: Mapping[str, pl.DataFrame]) -> list[dict]:
    return [frame.to_dicts()[0] for frame in frames.values() if frame.height]


def build_registry_assets(settings: Settings, partitions_def, automation=None) -> list:
    promotion = settings.promotion
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        ins={"shadow_report": trailing_days(SHADOW_LOOKBACK_DAYS + 1),
             "canary_report": trailing_days(SHADOW_LOOKBACK_DAYS + 1)},
        automation_condition=auto.get("champion"),
        freshness_policy=auto.get("model_freshness"),
    )
    def champion(context: AssetExecutionContext, shadow_report: Mapping[str, pl.DataFrame],
                 canary_report: Mapping[str, pl.DataFrame], registry: ModelRegistryResource):
        """The champion alias after this day's promotion decision (the audit trail)."""
        tag_run_story(context)
        key = only_partition(context)
        challenger = registry.alias_version("challenger")
        current = registry.champion_version()
        reg = registry.registry
        shadow_passes = canary_passes = 0
        evaluation = approval = rollback = withdrawal = None
        if challenger is not None and challenger != current:
            info = registry.version(challenger)
            evaluation, approval, rollback = info.evaluation, reg.approval(challenger), info.rollback
            withdrawal = info.withdrawal
            period = {"challenger": challenger, "after": info.window[1], "as_of": day_of(key)}
            shadow_passes = passing_shadow_days(_rows(shadow_report), **period)
            canary_passes = passing_canary_days(_rows(canary_report), **period)
        blockers = promotion_blockers(PromotionInput(
            challenger=challenger, champion=current, evaluation=evaluation, shadow_passes=shadow_passes,
            shadow_days=promotion.shadow_days, require_approval=promotion.require_approval, approval=approval,
            rollback=rollback, canary_passes=canary_passes, canary_days=promotion.canary_days,
            withdrawal=withdrawal,
        ))
        row = {"partition": key, "from_version": current, "to_version": current, "moved": False,
               "reason": "", "approver": "", "blocked": "; ".join(blockers)}
        if not blockers:
            approver = (approval or {}).get("reviewer") or "automatic (require_approval off)"
            canary = f", {canary_passes}/{promotion.canary_days} canary days" if promotion.canary_days else ""
            reason = (f"gate passed, {shadow_passes}/{promotion.shadow_days} shadow days{canary}"
                      f"; trigger {run_story(context.run.tags)[0]}")
            move = reg.promote(challenger, reason=reason, approver=approver,
                               require_approval=promotion.require_approval)
            row.update({"to_version": move.to_version, "moved": move.from_version != move.to_version,
                        "reason": reason, "approver": approver})
            context.log.info(f"champion: v{move.from_version} -> v{move.to_version} ({reason}; by {approver})")
        else:
            context.log.info(f"champion stays v{current}: {row['blocked']}")
        yield Output({key: pl.DataFrame([row])}, metadata={
            "champion_version": MetadataValue.text(str(row["to_version"])),
            "from": MetadataValue.text(str(row["from_version"])),
            "to": MetadataValue.text(str(row["to_version"])),
            "moved": row["moved"],
            "reason": row["reason"] or "-",
            "approver": row["approver"] or "-",
            "blocked": row["blocked"] or "-",
        })

    return [champion]
