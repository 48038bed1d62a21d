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
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    ResourceDefinition,
    job,
    op,
)
from pydantic import Field

from ct_assets.core.schema import REASON_TAG, TRIGGER_TAG
from ct_assets.registry.approval import WHERE_VERSIONS_ARE, approval_problem
from ct_assets.registry.resources import ModelRegistryResource, resolved


class ApprovalConfig(Config):
    version: int = Field(description=f"The registered model version to decide on (1, 2, ...): {WHERE_VERSIONS_ARE}.")
    reviewer: str = Field(description="Who decides: your name or handle. Required; recorded with the decision.")
    decision: Literal["approve", "reject"] = Field(
        default="approve", description="approve lets the version be promoted (after its gate and shadow days); "
        "reject keeps it from ever being promoted.")
    comment: str = Field(default="", description="Why: shown beside the decision in the registry and the UI.")


class RollbackConfig(Config):
    reason: str = Field(description="Why the champion goes back: recorded on the rolled-back version.")
    approver: str = Field(description="Who decides the rollback. Required.")
    partition: str | None = Field(
        default=None, description="The day (YYYY-MM-DD) to file the champion audit record under; default: the "
        "latest champion partition.")


@op
def record_approval(context: OpExecutionContext, config: ApprovalConfig, registry: ModelRegistryResource) -> dict:
    reg = registry.registry
    problem = approval_problem(config.version, config.reviewer, reg.version_numbers(), reg.model_name)
    if problem:
        # One line, and no retry: the launchpad entry is wrong, not the system.
        raise Failure(description=problem, allow_retries=False)
    record = reg.record_approval(config.version, config.reviewer, config.decision, config.comment)
    context.log.info(f"{config.decision} of version {config.version} by {config.reviewer}: {config.comment}")
    return record


@op
def move_champion_back(context: OpExecutionContext, config: RollbackConfig, registry: ModelRegistryResource) -> dict:
    if not config.approver.strip() or not config.reason.strip():
        raise Failure(description="a rollback needs a reason and an approver (both are recorded)",
                      allow_retries=False)
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


def build_human_jobs(registry: ModelRegistryResource) -> list[JobDefinition]:
    """approve_model and rollback_champion, bound to this registry. Bound as a fixed
    resource so the launchpad offers only the decision's fields: the registry's URIs are
    the deployment's, not something a reviewer may point elsewhere."""
    # Resolved when the run starts, in the run's process: the server profile's tracking URI
    # is an EnvVar, read there and never stored in the job definition.
    fixed = {"registry": ResourceDefinition(resource_fn=lambda _: resolved(registry),
                                            description="the model registry of this deployment")}
    manual = {TRIGGER_TAG: "manual"}

    @job(tags={**manual, REASON_TAG: "human decision on a model version"}, resource_defs=fixed)
    def approve_model():
        """Record a human decision (approve/reject) on a registered model version."""
        record_approval()

    @job(tags={**manual, REASON_TAG: "human rollback of the champion"}, resource_defs=fixed)
    def rollback_champion():
        """Move the champion alias back to previous_champion."""
        move_champion_back()

    return [approve_model, rollback_champion]


class HumanJobError(RuntimeError):
    """An approve/rollback entry that was refused, with the one line the job gave."""


def _run_human_job(defs: Definitions, instance: DagsterInstance, job_name: str, op_name: str, config: dict,
                   reason: str) -> dict:
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance, run_config={"ops": {op_name: {"config": config}}}, tags={REASON_TAG: reason},
        raise_on_error=False,
    )
    if result.success:
        return result.output_for_node(op_name)
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    user = failure.user_failure_data
    raise HumanJobError(user.description if user and user.description else failure.error.message.strip())


def run_approve(defs: Definitions, instance: DagsterInstance, *, version: int, reviewer: str,
                decision: str = "approve", comment: str = "") -> dict:
    config = {"version": int(version), "reviewer": reviewer, "decision": decision, "comment": comment}
    return _run_human_job(defs, instance, "approve_model", "record_approval", config,
                          f"{decision} of version {version} by {reviewer}")


def run_rollback(defs: Definitions, instance: DagsterInstance, *, reason: str, approver: str,
                 partition: str | None = None) -> dict:
    config = {"reason": reason, "approver": approver, "partition": partition}
    return _run_human_job(defs, instance, "rollback_champion", "move_champion_back", config,
                          f"rollback by {approver}: {reason}")
