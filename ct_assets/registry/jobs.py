"""Human in the loop: the approve_model and rollback_champion jobs, and the helpers the
`ct approve` / `ct rollback` commands use to run them on the instance under CT_HOME.

Both are jobs (not scripts) so every decision is a Dagster run with its config and
logs; a rollback also records a `champion` materialization (from, to, reason, approver)
so the asset's history answers "which adapter was champion on day D".
"""

from typing import Literal

from dagster import (
    AssetKey,
    AssetMaterialization,
    Config,
    DagsterInstance,
    Definitions,
    MetadataValue,
    OpExecutionContext,
    job,
    op,
)

from ct_assets.registry.resources import ModelRegistryResource


class ApprovalConfig(Config):
    version: int
    reviewer: str
    decision: Literal["approve", "reject"] = "approve"
    comment: str = ""


class RollbackConfig(Config):
    reason: str
    approver: str
    partition: str | None = None  # the day to file the audit record under; default: latest


@op
def record_approval(context: OpExecutionContext, config: ApprovalConfig, registry: ModelRegistryResource) -> dict:
    record = registry.registry.record_approval(config.version, config.reviewer, config.decision, config.comment)
    context.log.info(f"{config.decision} of version {config.version} by {config.reviewer}: {config.comment}")
    return record


@op
def move_champion_back(context: OpExecutionContext, config: RollbackConfig, registry: ModelRegistryResource) -> dict:
    move = registry.registry.rollback(reason=config.reason, approver=config.approver)
    partition = config.partition or _latest_partition(context)
    context.log_event(AssetMaterialization(
        asset_key=AssetKey("champion"),
        partition=partition,
        description="rollback",
        metadata={
            "champion_version": MetadataValue.text(str(move.to_version)),
            "from": MetadataValue.text(str(move.from_version)),
            "to": MetadataValue.text(str(move.to_version)),
            "moved": True,
            "reason": f"rollback: {move.reason}",
            "approver": move.approver,
            "blocked": "-",
        },
    ))
    return {"from": move.from_version, "to": move.to_version}


def _latest_partition(context: OpExecutionContext) -> str | None:
    record = context.instance.get_latest_materialization_event(AssetKey("champion"))
    return record.asset_materialization.partition if record else None


@job(tags={"ct/trigger": "manual"})
def approve_model():
    """Record a human decision (approve/reject) on a registered model version."""
    record_approval()


@job(tags={"ct/trigger": "manual"})
def rollback_champion():
    """Move the champion alias back to previous_champion."""
    move_champion_back()


def run_approve(defs: Definitions, instance: DagsterInstance, *, version: int, reviewer: str,
                decision: str = "approve", comment: str = "") -> dict:
    result = defs.resolve_job_def("approve_model").execute_in_process(
        instance=instance,
        run_config={"ops": {"record_approval": {"config": {
            "version": int(version), "reviewer": reviewer, "decision": decision, "comment": comment}}}},
        tags={"ct/reason": f"{decision} of version {version} by {reviewer}"},
    )
    return result.output_for_node("record_approval")


def run_rollback(defs: Definitions, instance: DagsterInstance, *, reason: str, approver: str,
                 partition: str | None = None) -> dict:
    result = defs.resolve_job_def("rollback_champion").execute_in_process(
        instance=instance,
        run_config={"ops": {"move_champion_back": {"config": {
            "reason": reason, "approver": approver, "partition": partition}}}},
        tags={"ct/reason": f"rollback by {approver}: {reason}"},
    )
    return result.output_for_node("move_champion_back")
