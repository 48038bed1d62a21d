"""Training: training_dataset -> lora_adapter.

Thin wrappers over ``ct_assets.training``. Each is daily "as of d" and runs for the days a
trigger (or a person) asks for: retraining is not daily. Every MLflow call goes through
``ct_assets.registry``.

lora_adapter trains out of process, through Dagster Pipes: the ``training_launcher``
resource (training.launcher) starts ``python -m ct_assets.training.pipes_worker`` as a
subprocess, or as a pod on a GPU node (``CT_TRAINING_LAUNCHER=k8s``). The asset hands it a
``TrainingJob`` (training.job: settings, partition, run ids, lake URL, base, registry
config, checkpoint dir) as Pipes extras and the tracking URI in the environment; the
worker streams its step lines back as Pipes logs and reports the registered version's row
as a custom message, which the asset writes to the lake and checks. The checkpoint dir is
keyed by the root run id, so the process a RetryPolicy retry (or a re-execution from
failure) starts resumes where the killed one stopped.
"""

import datetime as dt
import math
import shutil
from collections.abc import Mapping

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    Backoff,
    Failure,
    MetadataValue,
    Output,
    ResourceParam,
    RetryPolicy,
    asset,
)

from ct_assets.core import markdown
from ct_assets.core.profile import MLFLOW_TRACKING_URI_ENV
from ct_assets.core.schema import TRAINING_TAG, run_story
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of, days_between
from ct_assets.evaluation.resources import GoldenSetResource
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.partitions import only_partition, trailing_days
from ct_assets.orchestration.run_tags import tag_run_story
from ct_assets.orchestration.state import StateDirs
from ct_assets.registry.resources import ModelRegistryResource
from ct_assets.training.change_window import plan_window
from ct_assets.training.job import RegistryConfig, TrainingJob, TrainingProcessError, outcome
from ct_assets.training.launcher import TrainingLauncher
from ct_assets.training.resources import BaseModelResource
from ct_assets.training.window import WINDOW_MODE_COLUMN, WINDOW_START_COLUMN, build_training_set, golden_overlap

GROUP = "model"
# Version bytes / base bytes a healthy version stays under: a LoRA adapter is a few percent
# of the base; a full fine-tune is a copy of the base plus the head, so more than that means
# something extra (an optimizer state, a second copy) was stored.
SIZE_RATIO_LIMITS = {"lora": 0.1, "full": 1.05}
# How far back the replay pool reaches before the window (days).
REPLAY_LOOKBACK_DAYS = 90


def build_training_assets(settings: Settings, partitions_def, automation=None) -> list:
    tr = settings.training
    auto = automation or {}

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        ins={"validated_window": trailing_days(tr.window_days)},
        check_specs=[
            AssetCheckSpec("no_golden_leakage", asset="training_dataset", blocking=True, partitions_def=partitions_def,
                           description="no golden-set row is in any split"),
            AssetCheckSpec("minimum_size", asset="training_dataset", blocking=True, partitions_def=partitions_def,
                           description=f"train rows >= training.min_rows ({tr.min_rows})"),
        ],
        automation_condition=auto.get("training_dataset"),
    )
    def training_dataset(context: AssetExecutionContext, validated_window: Mapping[str, pl.DataFrame], lake: Lake,
                         golden: GoldenSetResource):
        """Train, validation and holdout rows as of d: the sliding window plus replay."""
        tag_run_story(context)
        key = only_partition(context)
        as_of = day_of(key)
        window_start = as_of - dt.timedelta(days=tr.window_days - 1)
        first = max(settings.partitions.start_date, window_start - dt.timedelta(days=REPLAY_LOOKBACK_DAYS))
        pool_days = days_between(first, window_start - dt.timedelta(days=1))
        pool = lake.read_many("validated_window", [d.isoformat() for d in pool_days])
        in_window = {k: f for k, f in validated_window.items() if day_of(k) >= window_start}
        gold = golden.load()
        verdicts = None
        if tr.window_mode == "since_change":
            keys = [d.isoformat() for d in days_between(window_start, as_of)]
            verdicts = {k: f["verdict"][0] if f.height else None for k, f in lake.read_many("drift_report", keys).items()}
        plan = plan_window(in_window, pool, mode=tr.window_mode, as_of=as_of, window_days=tr.window_days,
                           holdout_days=tr.holdout_days, seed=tr.seed, verdicts=verdicts)
        if plan.missing_days:
            context.log.warning(f"training_dataset[{key}]: no drift_report for {', '.join(plan.missing_days)}: "
                                "those days cannot mark a change point")
        ts = build_training_set(
            plan.window,
            as_of=as_of,
            window_days=plan.window_days,
            replay_filter=plan.replay_filter,
            window_info=plan.info,
            replay_pool=pl.concat(list(plan.pool.values()), how="diagonal_relaxed") if plan.pool else pl.DataFrame(),
            replay_fraction=tr.replay_fraction,
            val_fraction=tr.val_fraction,
            holdout_days=tr.holdout_days,
            golden_ids=gold.ids,
            golden_texts=gold.matching_keys,
            seed=tr.seed,
        )
        stats = ts.stats
        # Carried in the frame so the training process (manifest, registered window) and
        # eval_report see the window this dataset was actually built on.
        frame = ts.combined().with_columns(**{WINDOW_MODE_COLUMN: pl.lit(stats["window"]["mode"]),
                                              WINDOW_START_COLUMN: pl.lit(stats["window"]["start"])})
        yield Output({key: frame}, metadata={
            "rows": frame.height,
            "train_rows": ts.train.height,
            "val_rows": ts.val.height,
            "holdout_rows": ts.holdout.height,
            "replay_rows": stats["replay_rows"],
            "replay_share": stats["replay_share"],
            "window": f"{stats['window']['start']}..{stats['window']['end']}",
            "window_mode": MetadataValue.json(stats["window"]),
            **({"replay_contradicted": MetadataValue.json(stats["replay_contradicted"])}
               if "replay_contradicted" in stats else {}),
            "rows_per_day": MetadataValue.md(markdown.counts({str(k): v for k, v in stats["rows_per_day"].items()}, "day")),
            "rows_per_label": MetadataValue.md(markdown.counts(stats["rows_per_label"], "label")),
            "golden_rows_removed": stats["leaked_removed"],
        })
        overlap = golden_overlap(frame, gold.ids, gold.matching_keys)
        yield AssetCheckResult(check_name="no_golden_leakage", passed=overlap == 0, severity=AssetCheckSeverity.ERROR,
                               metadata={"golden_rows_in_splits": overlap})
        yield AssetCheckResult(check_name="minimum_size", passed=ts.train.height >= tr.min_rows,
                               severity=AssetCheckSeverity.ERROR,
                               metadata={"train_rows": ts.train.height, "min_rows": tr.min_rows})

    @asset(
        partitions_def=partitions_def,
        group_name=GROUP,
        io_manager_key="lake_io",
        # A dependency, not an input: the training process reads the partition from the lake
        # itself (a pod reaches s3:// as well as the orchestrator does).
        deps=["training_dataset"],
        # A flaky MLflow, a crashed or killed training process: retried, and the new process
        # resumes from the last checkpoint. So does a re-execution from failure (same root run id).
        retry_policy=RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL),
        pool="training",
        op_tags={TRAINING_TAG: "true"},
        check_specs=[
            AssetCheckSpec("finite_loss", asset="lora_adapter", blocking=True, partitions_def=partitions_def,
                           description="every training and validation loss was a finite number"),
            AssetCheckSpec("adapter_size_ratio", asset="lora_adapter", partitions_def=partitions_def,
                           description=f"stored bytes / base bytes under {SIZE_RATIO_LIMITS[tr.method]} "
                                       f"(training.method {tr.method})"),
        ],
        automation_condition=auto.get("lora_adapter"),
        freshness_policy=auto.get("model_freshness"),
    )
    def lora_adapter(
        context: AssetExecutionContext,
        training_launcher: ResourceParam[TrainingLauncher],
        lake: Lake,
        base_model: BaseModelResource,
        registry: ModelRegistryResource,
        golden: GoldenSetResource,
        state: StateDirs,
    ):
        """A LoRA adapter on the frozen base, registered in MLflow with alias challenger."""
        tag_run_story(context)
        key = only_partition(context)
        # The root run id survives Dagster's retries and re-execution from failure, so a
        # killed run resumes from its checkpoint; a new run of the same day starts fresh.
        # The run's field, not its dagster/root_run_id tag: execute_job's re-execution sets only the field.
        root_run = context.run.root_run_id or context.run_id
        ckpt = state.checkpoints_dir("lora_adapter", key, root_run)
        trigger, reason = run_story(context.run.tags)
        job = TrainingJob(
            settings=settings, partition=key, run_id=context.run_id, root_run_id=root_run,
            trigger=trigger, reason=reason, lake_base_path=lake.base_path, base=base_model.spec(),
            registry=RegistryConfig(artifact_root=registry.artifact_root, model_name=registry.model_name,
                                    cache_dir=registry.cache_dir, lock=registry.lock),
            golden_version=golden.load().version, checkpoint_dir=ckpt,
        )
        # The tracking URI may carry credentials: the process's environment, never the extras.
        env = {MLFLOW_TRACKING_URI_ENV: registry.tracking_uri}
        invocation = training_launcher.launch(context, job.to_extras(), env)
        try:
            result = outcome(invocation.get_custom_messages())
        except TrainingProcessError as err:
            if err.stack:
                context.log.error(f"training process failed:\n{err.stack}")
            if not err.retryable:
                # It would fail the same way after the backoff (a deleted experiment, stored
                # artifacts that fail verification): the step fails at once.
                raise Failure(description=str(err), allow_retries=False) from err
            raise
        shutil.rmtree(ckpt, ignore_errors=True)  # registered: nothing left to resume
        row = result["row"]
        yield Output({key: pl.DataFrame([row])}, metadata={
            "model_version": MetadataValue.text(str(row["version"])),
            "mlflow_run_id": row["mlflow_run_id"],
            "trainable_params": row["trainable_params"],
            "adapter_bytes": row["adapter_bytes"],
            "adapter_to_base_bytes": round(row["size_ratio"], 6),
            "training_seconds": round(row["train_seconds"], 2),
            "samples_per_second": round(row["samples_per_second"], 1),
            "steps": row["steps"],
            "stopped_early": result["stopped_early"],
            "resumed_from_step": row["resumed_from_step"],
            "window": f"{row['window_start']}..{row['window_end']}",
            "manifest": MetadataValue.json(result["manifest"]),
        })
        # isfinite, not x == x: an infinite loss is as broken as a NaN one.
        loss = row["final_train_loss"]
        yield AssetCheckResult(check_name="finite_loss", passed=math.isfinite(loss),
                               severity=AssetCheckSeverity.ERROR, metadata={"final_train_loss": loss})
        limit = SIZE_RATIO_LIMITS[tr.method]
        yield AssetCheckResult(check_name="adapter_size_ratio", passed=row["size_ratio"] < limit,
                               severity=AssetCheckSeverity.WARN,
                               metadata={"ratio": row["size_ratio"], "limit": limit, "method": tr.method})

    return [training_dataset, lora_adapter]
