"""One adapter fit, end to end and framework-free: base + LoRA (+ warm start, + EWC)
-> training loop -> adapter directory with its manifest.

The lora_adapter asset wraps this with MLflow logging and registration; the benchmark
calls it directly, so the bench measures exactly the production training path.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ct_assets import __version__
from ct_assets.training.adapter_io import (
    AdapterFiles,
    load_adapter_weights_into,
    save_adapter,
)
from ct_assets.training.base_model import (
    BaseModelSpec,
    base_bytes,
    base_hash,
    load_base,
    resolve_base_dir,
)
from ct_assets.training.loop import (
    EwcPenalty,
    StepInfo,
    TrainConfig,
    TrainResult,
    train_adapter,
)
from ct_assets.training.lora import attach_lora, trainable_params


class TooFewRowsError(ValueError):
    """Fewer training rows than training.min_rows: nothing is trained or registered."""


@dataclass(frozen=True)
class LoraParams:
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FitOutcome:
    adapter: AdapterFiles
    result: TrainResult
    manifest: dict
    trainable_params: int
    total_params: int
    base_bytes: int
    seconds: float

    @property
    def size_ratio(self) -> float:
        return self.adapter.bytes / self.base_bytes


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def _xy(frame: pl.DataFrame, label_ids: dict[str, int]) -> tuple[list[str], list[int]]:
    unknown = set(frame["label"].to_list()) - set(label_ids)
    if unknown:
        raise ValueError(f"training rows carry labels outside settings.labels: {sorted(unknown)}")
    return frame["text"].to_list(), [label_ids[y] for y in frame["label"].to_list()]


def fit_adapter(
    *,
    train: pl.DataFrame,
    val: pl.DataFrame,
    replay: pl.DataFrame,
    labels: Sequence[str],
    base: BaseModelSpec,
    lora: LoraParams,
    config: TrainConfig,
    min_rows: int,
    checkpoint_dir: Path,
    out_dir: Path,
    manifest_extra: dict,
    champion_adapter: Path | None = None,
    warm_start: bool = False,
    on_step: Callable[[StepInfo], None] | None = None,
) -> FitOutcome:
    """Train an adapter on ``train`` (early stopping on ``val``) and save it to ``out_dir``.

    EWC (config.ewc_lambda > 0) anchors to the champion's adapter, so it needs the
    champion and implies starting from its weights; its Fisher is computed on replay rows.
    """
    started = time.perf_counter()
    if train.height < min_rows:
        raise TooFewRowsError(f"{train.height} training rows < training.min_rows {min_rows}")
    base_dir = resolve_base_dir(base)
    label_ids = {label: i for i, label in enumerate(labels)}
    model, tokenizer = load_base(base, len(labels), list(labels), seed=config.seed)
    peft_model = attach_lora(model, lora.r, lora.alpha, lora.dropout, lora.target_modules, seed=config.seed)
    anchored = champion_adapter is not None and (warm_start or config.ewc_lambda > 0)
    if anchored:
        load_adapter_weights_into(peft_model, champion_adapter, expected_labels=list(labels))
    ewc = None
    if config.ewc_lambda > 0:
        if champion_adapter is None:
            # No previous task to stay close to: train without the penalty.
            config = TrainConfig(**{**config.__dict__, "ewc_lambda": 0.0})
        elif replay.height == 0:
            raise ValueError("ewc_lambda > 0 needs replay rows to estimate the Fisher information; the replay sample is empty")
        else:
            texts, ys = _xy(replay, label_ids)
            ewc = EwcPenalty.from_model(peft_model, texts, ys, tokenizer, config.ewc_lambda,
                                        max_length=config.max_length, seed=config.seed)
    train_x, train_y = _xy(train, label_ids)
    val_x, val_y = _xy(val, label_ids)
    result = train_adapter(peft_model, tokenizer, train_x, train_y, val_x, val_y, config,
                           checkpoint_dir, on_step=on_step, ewc=ewc)
    counts = trainable_params(peft_model)
    bb = base_bytes(base_dir)
    manifest = {
        **manifest_extra,
        "base": {
            "kind": base.kind, "name": base.name, "model_id": base.model_id,
            "hash": base_hash(base_dir),
        },
        "labels": list(labels),
        "lora": {"r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout,
                 "target_modules": list(peft_model.peft_config["default"].target_modules)},
        "training": {**{k: v for k, v in config.__dict__.items()}, "warm_start": anchored,
                     "steps": result.steps, "stopped_early": result.stopped_early,
                     "best_val_metric": result.best_val_metric},
        "seeds": {"training": config.seed, "lora_init": config.seed, "head_init": config.seed},
        "rows": {"train": train.height, "val": val.height, "replay": replay.height},
        "code_version": code_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    files = save_adapter(peft_model, out_dir, labels, manifest, overwrite=True)
    return FitOutcome(files, result, manifest, counts.trainable, counts.total, bb,
                      time.perf_counter() - started)
