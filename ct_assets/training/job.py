"""One lora_adapter training, framework-free: champion lookup, the MLflow run, the fit
(resuming its checkpoint) and the registration. The Pipes worker (training.pipes_worker)
runs it in its own process or pod; tests call it directly.

What crosses the process boundary is defined here once, for both sides:

* ``TrainingJob`` <-> Pipes extras (``to_extras`` / ``from_extras``): plain JSON, so the
  settings travel as ``model_dump(mode="json")`` (tests build Settings in code: the worker
  must not read ct.yaml) and the lake is read by its URL (``s3://`` works in a pod).
* the outcome, sent back as one custom message: ``{"result": ...}`` or ``{"error": ...}``
  (``error_message`` / ``outcome``). A RegistryError that is not an outage is marked not
  retryable: it would fail the same way after the backoff. Anything else (an unreachable
  MLflow, a training error) is retryable, as an in-process exception was under the
  asset's RetryPolicy. A process that dies sends nothing: its step fails and is retried.

The MLflow tracking URI is not in the extras (it may carry credentials, and extras are
written to a file or a pod's environment in clear): the worker reads it from
``MLFLOW_TRACKING_URI``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from upath import UPath

from ct_assets.core.settings import Settings
from ct_assets.core.time import day_of
from ct_assets.lake.commit import recover
from ct_assets.lake.parquet import partition_path, read_parquet
from ct_assets.registry.loader import adapter_dir_for
from ct_assets.registry.mlflow_registry import AdapterRegistry, RegistryError, RegistryUnavailableError
from ct_assets.registry.records import (
    BASE_HASH,
    DAGSTER_RUN,
    PARTITION,
    TRIGGER,
    WINDOW_END,
    WINDOW_START,
)
from ct_assets.registry.runs import end_orphaned_runs, training_run
from ct_assets.training.base_model import BaseModelSpec
from ct_assets.training.fit import LoraParams, fit_adapter
from ct_assets.training.loop import StepInfo, TrainConfig
from ct_assets.training.window import SPLIT, dataset_window

DATASET = "training_dataset"


@dataclass(frozen=True)
class RegistryConfig:
    """The registry's non-secret settings (ModelRegistryResource's, less the tracking URI)."""

    artifact_root: str | None
    model_name: str
    cache_dir: str
    lock: str | None = None

    def connect(self, tracking_uri: str) -> AdapterRegistry:
        return AdapterRegistry(tracking_uri, self.artifact_root, self.model_name, lock_path=self.lock)


@dataclass(frozen=True)
class TrainingJob:
    settings: Settings
    partition: str
    run_id: str
    # Keys the checkpoint dir: it survives retries and re-execution, so a new process resumes.
    root_run_id: str
    trigger: str
    reason: str
    lake_base_path: str
    base: BaseModelSpec
    registry: RegistryConfig
    golden_version: dict
    checkpoint_dir: Path

    @property
    def window(self) -> tuple[str, str]:
        days = self.settings.training.window_days
        return (day_of(self.partition) - dt.timedelta(days=days - 1)).isoformat(), self.partition

    def to_extras(self) -> dict:
        return {
            "settings": self.settings.model_dump(mode="json"),
            "partition": self.partition, "run_id": self.run_id, "root_run_id": self.root_run_id,
            "trigger": self.trigger, "reason": self.reason, "lake_base_path": self.lake_base_path,
            "base": dataclasses.asdict(self.base), "registry": dataclasses.asdict(self.registry),
            "golden_version": self.golden_version, "checkpoint_dir": str(self.checkpoint_dir),
        }

    @classmethod
    def from_extras(cls, extras: Mapping) -> "TrainingJob":
        return cls(
            settings=Settings.model_validate(extras["settings"]),
            partition=extras["partition"], run_id=extras["run_id"], root_run_id=extras["root_run_id"],
            trigger=extras["trigger"], reason=extras["reason"], lake_base_path=extras["lake_base_path"],
            base=BaseModelSpec(**extras["base"]), registry=RegistryConfig(**extras["registry"]),
            golden_version=extras["golden_version"], checkpoint_dir=Path(extras["checkpoint_dir"]),
        )


class TrainingProcessError(RuntimeError):
    """The training process reported an error (or no outcome at all)."""

    def __init__(self, message: str, retryable: bool, stack: str = "") -> None:
        super().__init__(message)
        self.retryable, self.stack = retryable, stack


def error_message(err: BaseException) -> dict:
    # Today's rule (was the asset's retried_only_when_unavailable), decided once.
    retryable = isinstance(err, RegistryUnavailableError) or not isinstance(err, RegistryError)
    return {"error": {"message": f"{type(err).__name__}: {err}", "retryable": retryable,
                      "stack": "".join(traceback.format_exception(err))}}


def outcome(messages: Sequence) -> dict:
    """The result the worker reported; its reported error, or a missing outcome, raised."""
    for payload in messages:
        if isinstance(payload, Mapping) and "result" in payload:
            return payload["result"]
        if isinstance(payload, Mapping) and "error" in payload:
            err = payload["error"]
            raise TrainingProcessError(err["message"], bool(err["retryable"]), err.get("stack", ""))
    raise TrainingProcessError("the training process exited without reporting a result or an error",
                               retryable=True)


def read_training_dataset(job: TrainingJob) -> pl.DataFrame:
    # Lake.read's two steps (roll committed journals forward, then read), without the
    # Dagster resource: the worker imports no Dagster.
    base = UPath(job.lake_base_path)
    recover(base)
    path = partition_path(base, [DATASET], job.partition)
    if not path.exists():
        raise FileNotFoundError(f"{DATASET}[{job.partition}]: no lake file at {path}; materialize it first")
    return read_parquet(path)


def _step_line(info: StepInfo) -> str:
    return (f"step {info.step}/{info.total_steps} epoch {info.epoch} loss {info.loss:.4f} "
            f"val_loss {info.val_loss:.4f} val_acc {info.val_accuracy:.3f} "
            f"({info.samples_per_second:.0f} samples/s)")


ROOT_RUN_TAG = "dagster.root_run_id"


def run_training(job: TrainingJob, tracking_uri: str, log: Callable[[str], None]) -> dict:
    """Train, log to MLflow and register; the lake row, manifest and early-stop flag."""
    tr, labels = job.settings.training, list(job.settings.labels)
    key = job.partition
    data = read_training_dataset(job)
    mode, start = dataset_window(data, job.window[0])
    window = (start, job.window[1])
    split = {name: data.filter(pl.col(SPLIT) == name) for name in ("train", "val", "holdout")}
    replay = split["train"].filter(pl.col("_origin") == "replay")
    registry = job.registry.connect(tracking_uri)
    champion = champion_dir = None
    if tr.warm_start or tr.ewc_lambda > 0:
        champion = registry.get_alias("champion")
        if champion is not None:
            champion_dir = adapter_dir_for(registry, champion, Path(job.registry.cache_dir))
    config = TrainConfig.from_settings(tr)
    run_tags = {PARTITION: key, "dagster.run_id": job.run_id, ROOT_RUN_TAG: job.root_run_id,
                TRIGGER: job.trigger, "ct.reason": job.reason}
    # One attempt per root run at a time (the training pool): a RUNNING run of this root is
    # an attempt that was killed before it could say so.
    for orphan in end_orphaned_runs(registry, ROOT_RUN_TAG, job.root_run_id):
        log(f"MLflow run {orphan} of a killed attempt marked KILLED")
    with training_run(registry, f"lora_adapter-{key}", run_tags) as run:
        run.params({**config.__dict__, "method": tr.method, "lora_r": tr.lora.r, "lora_alpha": tr.lora.alpha,
                    "lora_dropout": tr.lora.dropout, "warm_start": tr.warm_start,
                    "window": f"{window[0]}..{window[1]}", "base": job.base.model_id})

        def on_step(info: StepInfo) -> None:
            run.metrics({"train_loss": info.loss}, step=info.step)
            if info.val_loss is not None:
                run.metrics({"val_loss": info.val_loss, "val_accuracy": info.val_accuracy}, step=info.step)
                log(_step_line(info))

        fit = fit_adapter(
            train=split["train"], val=split["val"], replay=replay, labels=labels, base=job.base,
            lora=LoraParams(tr.lora.r, tr.lora.alpha, tr.lora.dropout, tr.lora.target_modules),
            config=config, min_rows=tr.min_rows, checkpoint_dir=job.checkpoint_dir,
            out_dir=job.checkpoint_dir / "adapter",
            manifest_extra={
                "partition": key,
                "window": {"start": window[0], "end": window[1], "mode": mode},
                "rows_per_day": {str(d): n for d, n in data.group_by("_day").len().iter_rows()},
                "replay_share": round(replay.height / max(1, split["train"].height + split["val"].height), 4),
                "warm_start_from": champion if champion_dir is not None else None,
                # The golden version its training rows were kept disjoint from.
                "golden": job.golden_version,
            },
            champion_adapter=champion_dir, warm_start=tr.warm_start, on_step=on_step, method=tr.method,
        )
        r = fit.result
        metrics = {"final_train_loss": r.final_train_loss, "samples_per_second": r.samples_per_second,
                   "tokens_per_second": r.tokens_per_second, "train_seconds": r.train_seconds,
                   "steps": r.steps, "adapter_bytes": fit.adapter.bytes, "size_ratio": fit.size_ratio,
                   "trainable_params": fit.trainable_params}
        if r.best_val_metric is not None:
            metrics["best_val_loss"] = r.best_val_metric
        run.metrics(metrics)
        info = registry.register_adapter(run.run_id, fit.adapter.directory, tags={
            PARTITION: key, WINDOW_START: window[0], WINDOW_END: window[1],
            BASE_HASH: fit.manifest["base"]["hash"], DAGSTER_RUN: job.run_id, TRIGGER: job.trigger,
        })
    log(f"registered version {info.version} (MLflow run {run.run_id}; resumed from step {r.resumed_from_step})")
    row = {"partition": key, "version": info.version, "mlflow_run_id": run.run_id, "window_start": window[0],
           "window_end": window[1], "resumed_from_step": r.resumed_from_step, **metrics}
    return {"row": row, "stopped_early": r.stopped_early, "manifest": fit.manifest}
