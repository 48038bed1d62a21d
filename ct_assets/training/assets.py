"""Training: training_dataset -> lora_adapter.

Thin wrappers over ``ct_assets.training``. Each is daily "as of d" and runs for the days a
trigger (or a person) asks for: retraining is not daily. Every MLflow call goes through
``ct_assets.registry``.
"""

import datetime as dt
import math
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

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
    RetryPolicy,
    asset,
)

from ct_assets.core import markdown
from ct_assets.core.schema import TRAINING_TAG, run_story
from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of, days_between
from ct_assets.evaluation.resources import GoldenSetResource
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.partitions import only_partition, trailing_days
from ct_assets.orchestration.run_tags import tag_run_story
from ct_assets.orchestration.state import StateDirs
from ct_assets.registry.mlflow_registry import RegistryError, RegistryUnavailableError
from ct_assets.registry.records import (
    BASE_HASH,
    DAGSTER_RUN,
    PARTITION,
    TRIGGER,
    WINDOW_END,
    WINDOW_START,
)
from ct_assets.registry.resources import ModelRegistryResource
from ct_assets.registry.runs import training_run
from ct_assets.training.fit import LoraParams, fit_adapter
from ct_assets.training.loop import TrainConfig
from ct_assets.training.resources import BaseModelResource
from ct_assets.training.window import SPLIT, build_training_set, golden_overlap

GROUP = "model"
# How far back the replay pool reaches before the window (days).
REPLAY_LOOKBACK_DAYS = 90


@contextmanager
def retried_only_when_unavailable() -> Iterator[None]:
    """A RetryPolicy retries every exception; of the registry's, only an unreachable MLflow
    is worth it. Any other (a deleted experiment, stored artifacts that fail verification)
    would fail the same way again, after the backoff: it fails the step at once."""
    try:
        yield
    except RegistryUnavailableError:
        raise
    except RegistryError as err:
        raise Failure(description=f"{type(err).__name__}: {err}", allow_retries=False) from err


def build_training_assets(settings: Settings, partitions_def, automation=None) -> list:
    labels = list(settings.labels)
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
        ts = build_training_set(
            in_window,
            as_of=as_of,
            window_days=tr.window_days,
            replay_pool=pl.concat(list(pool.values()), how="diagonal_relaxed") if pool else pl.DataFrame(),
            replay_fraction=tr.replay_fraction,
            val_fraction=tr.val_fraction,
            holdout_days=tr.holdout_days,
            golden_ids=gold.ids,
            golden_texts=gold.matching_keys,
            seed=tr.seed,
        )
        frame = ts.combined()
        stats = ts.stats
        yield Output({key: frame}, metadata={
            "rows": frame.height,
            "train_rows": ts.train.height,
            "val_rows": ts.val.height,
            "holdout_rows": ts.holdout.height,
            "replay_rows": stats["replay_rows"],
            "replay_share": stats["replay_share"],
            "window": f"{stats['window']['start']}..{stats['window']['end']}",
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
        # A flaky MLflow (RegistryUnavailableError): retried, resuming from the last checkpoint.
        # A killed run resumes from it too when re-executed from failure (same root run id).
        retry_policy=RetryPolicy(max_retries=2, delay=5, backoff=Backoff.EXPONENTIAL),
        pool="training",
        op_tags={TRAINING_TAG: "true"},
        check_specs=[
            AssetCheckSpec("finite_loss", asset="lora_adapter", blocking=True, partitions_def=partitions_def,
                           description="every training and validation loss was a finite number"),
            AssetCheckSpec("adapter_size_ratio", asset="lora_adapter", partitions_def=partitions_def,
                           description="adapter bytes are a small fraction of the base's"),
        ],
        automation_condition=auto.get("lora_adapter"),
        freshness_policy=auto.get("model_freshness"),
    )
    def lora_adapter(
        context: AssetExecutionContext,
        training_dataset: Mapping[str, pl.DataFrame],
        base_model: BaseModelResource,
        registry: ModelRegistryResource,
        golden: GoldenSetResource,
        state: StateDirs,
    ):
        """A LoRA adapter on the frozen base, registered in MLflow with alias challenger."""
        tag_run_story(context)
        key = only_partition(context)
        data = training_dataset[key]
        split = {name: data.filter(pl.col(SPLIT) == name) for name in ("train", "val", "holdout")}
        replay = split["train"].filter(pl.col("_origin") == "replay")
        with retried_only_when_unavailable():
            champion = registry.champion_version()
            champion_dir = None
            if champion is not None and (tr.warm_start or tr.ewc_lambda > 0):
                champion_dir = registry.adapter_dir(champion)
        # The root run id survives Dagster's retries and re-execution from failure, so a
        # killed run resumes from its checkpoint; a new run of the same day starts fresh.
        # The run's field, not its dagster/root_run_id tag: execute_job's re-execution sets only the field.
        root_run = context.run.root_run_id or context.run_id
        ckpt = state.checkpoints_dir("lora_adapter", key, root_run)
        window = ((day_of(key) - dt.timedelta(days=tr.window_days - 1)).isoformat(), key)
        trigger, reason = run_story(context.run.tags)
        config = TrainConfig.from_settings(tr)
        run_tags = {PARTITION: key, "dagster.run_id": context.run_id, TRIGGER: trigger, "ct.reason": reason}
        with retried_only_when_unavailable(), training_run(registry.registry, f"lora_adapter-{key}", run_tags) as run:
            run.params({**config.__dict__, "lora_r": tr.lora.r, "lora_alpha": tr.lora.alpha,
                        "lora_dropout": tr.lora.dropout, "warm_start": tr.warm_start,
                        "window": f"{window[0]}..{window[1]}", "base": base_model.model_id})

            def on_step(info) -> None:
                run.metrics({"train_loss": info.loss}, step=info.step)
                if info.val_loss is not None:
                    run.metrics({"val_loss": info.val_loss, "val_accuracy": info.val_accuracy}, step=info.step)
                    context.log.info(
                        f"step {info.step}/{info.total_steps} epoch {info.epoch} loss {info.loss:.4f} "
                        f"val_loss {info.val_loss:.4f} val_acc {info.val_accuracy:.3f} "
                        f"({info.samples_per_second:.0f} samples/s)"
                    )

            fit = fit_adapter(
                train=split["train"], val=split["val"], replay=replay, labels=labels,
                base=base_model.spec(),
                lora=LoraParams(tr.lora.r, tr.lora.alpha, tr.lora.dropout, tr.lora.target_modules),
                config=config, min_rows=tr.min_rows, checkpoint_dir=ckpt, out_dir=ckpt / "adapter",
                manifest_extra={
                    "partition": key,
                    "window": {"start": window[0], "end": window[1]},
                    "rows_per_day": {str(d): n for d, n in data.group_by("_day").len().iter_rows()},
                    "replay_share": round(replay.height / max(1, split["train"].height + split["val"].height), 4),
                    "warm_start_from": champion if champion_dir is not None else None,
                    # The golden version its training rows were kept disjoint from.
                    "golden": golden.load().version,
                },
                champion_adapter=champion_dir, warm_start=tr.warm_start, on_step=on_step,
            )
            r = fit.result
            metrics = {"final_train_loss": r.final_train_loss, "samples_per_second": r.samples_per_second,
                       "tokens_per_second": r.tokens_per_second, "train_seconds": r.train_seconds,
                       "steps": r.steps, "adapter_bytes": fit.adapter.bytes, "size_ratio": fit.size_ratio,
                       "trainable_params": fit.trainable_params}
            if r.best_val_metric is not None:
                metrics["best_val_loss"] = r.best_val_metric
            run.metrics(metrics)
            info = registry.registry.register_adapter(run.run_id, fit.adapter.directory, tags={
                PARTITION: key, WINDOW_START: window[0], WINDOW_END: window[1],
                BASE_HASH: fit.manifest["base"]["hash"], DAGSTER_RUN: context.run_id, TRIGGER: trigger,
            })
        shutil.rmtree(ckpt, ignore_errors=True)  # registered: nothing left to resume
        row = {"partition": key, "version": info.version, "mlflow_run_id": run.run_id, "window_start": window[0],
               "window_end": window[1], "resumed_from_step": r.resumed_from_step, **metrics}
        yield Output({key: pl.DataFrame([row])}, metadata={
            "model_version": MetadataValue.text(str(info.version)),
            "mlflow_run_id": run.run_id,
            "trainable_params": fit.trainable_params,
            "adapter_bytes": fit.adapter.bytes,
            "adapter_to_base_bytes": round(fit.size_ratio, 6),
            "training_seconds": round(r.train_seconds, 2),
            "samples_per_second": round(r.samples_per_second, 1),
            "steps": r.steps,
            "stopped_early": r.stopped_early,
            "resumed_from_step": r.resumed_from_step,
            "window": f"{window[0]}..{window[1]}",
            "manifest": MetadataValue.json(fit.manifest),
        })
        # isfinite, not x == x: an infinite loss is as broken as a NaN one.
        yield AssetCheckResult(check_name="finite_loss", passed=math.isfinite(r.final_train_loss),
                               severity=AssetCheckSeverity.ERROR, metadata={"final_train_loss": r.final_train_loss})
        yield AssetCheckResult(check_name="adapter_size_ratio", passed=fit.size_ratio < 0.1,
                               severity=AssetCheckSeverity.WARN, metadata={"ratio": fit.size_ratio})

    return [training_dataset, lora_adapter]
