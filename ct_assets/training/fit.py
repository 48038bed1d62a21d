"""One fit, end to end and framework-free: base + LoRA, or the whole model for
``method="full"`` (+ warm start, + EWC) -> training loop -> version directory with its manifest.

The lora_adapter asset wraps this with MLflow logging and registration; the benchmark
calls it directly, so the bench measures exactly the production training path.
"""

from __future__ import annotations

import datetime as dt
import logging
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ct_assets import __version__
from ct_assets.training.adapter_io import AdapterFiles, read_manifest
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
from ct_assets.training.full_model import make_trainable, save_version, warm_start_from
from ct_assets.training.lora import attach_lora, trainable_params

log = logging.getLogger(__name__)
# Above this a full fine-tune of a pretrained encoder typically diverges or forgets the
# pretraining (the usual range is 1e-5..1e-4); LoRA's default 5e-3 is far above it.
_FULL_LR_WARN = 1e-3

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
    method: str = "lora",
) -> FitOutcome:
    """Train on ``train`` (early stopping on ``val``) and save the version to ``out_dir``.

    ``method``: "lora" trains an adapter (``lora``) on the frozen base, "full" every weight
    (``lora`` is then unused). EWC (config.ewc_lambda > 0) anchors to the champion, so it
    needs the champion and implies starting from its weights; its Fisher is computed on
    replay rows. A champion that cannot be loaded into this method (full_model module doc)
    means training from the base, without EWC.
    """
    started = time.perf_counter()
    if train.height < min_rows:
        raise TooFewRowsError(f"{train.height} training rows < training.min_rows {min_rows}")
    if method not in ("lora", "full"):
        raise ValueError(f"training method must be lora or full, got {method!r}")
    if method == "full" and config.learning_rate > _FULL_LR_WARN:
        log.warning("method full with learning_rate %s: full fine-tuning usually needs 1e-5..1e-4",
                    config.learning_rate)
    base_dir = resolve_base_dir(base)
    base_digest = base_hash(base_dir)
    label_ids = {label: i for i, label in enumerate(labels)}
    model, tokenizer = load_base(base, len(labels), list(labels), seed=config.seed)
    if method == "full":
        net = make_trainable(model)
    else:
        net = attach_lora(model, lora.r, lora.alpha, lora.dropout, lora.target_modules, seed=config.seed)
    source = None
    if champion_adapter is not None and (warm_start or config.ewc_lambda > 0):
        source = warm_start_from(net, method, champion_adapter, labels, base, base_digest)
    anchored = source is not None
    ewc = None
    if config.ewc_lambda > 0:
        if not anchored:
            # No previous task to stay close to: train without the penalty.
            config = TrainConfig(**{**config.__dict__, "ewc_lambda": 0.0})
        elif replay.height == 0:
            raise ValueError("ewc_lambda > 0 needs replay rows to estimate the Fisher information; the replay sample is empty")
        else:
            texts, ys = _xy(replay, label_ids)
            ewc = EwcPenalty.from_model(net, texts, ys, tokenizer, config.ewc_lambda,
                                        max_length=config.max_length, seed=config.seed)
    train_x, train_y = _xy(train, label_ids)
    val_x, val_y = _xy(val, label_ids)
    result = train_adapter(net, tokenizer, train_x, train_y, val_x, val_y, config,
                           checkpoint_dir, on_step=on_step, ewc=ewc)
    counts = trainable_params(net)
    bb = base_bytes(base_dir)
    manifest = {
        **manifest_extra,
        "base": {
            "kind": base.kind, "name": base.name, "model_id": base.model_id,
            "hash": base_digest,
        },
        "labels": list(labels),
        "lora": None if method == "full" else {
            "r": lora.r, "alpha": lora.alpha, "dropout": lora.dropout,
            "target_modules": list(net.peft_config["default"].target_modules)},
        "training": {**{k: v for k, v in config.__dict__.items()}, "warm_start": anchored,
                     "warm_start_source": source,
                     "steps": result.steps, "stopped_early": result.stopped_early,
                     "best_val_metric": result.best_val_metric},
        "seeds": {"training": config.seed, "lora_init": config.seed, "head_init": config.seed},
        "rows": {"train": train.height, "val": val.height, "replay": replay.height},
        "code_version": code_version(),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    files = save_version(net, out_dir, labels, manifest, method, overwrite=True)
    # As written: save_version adds method, bytes_stored and trainable_params.
    return FitOutcome(files, result, read_manifest(files.directory), counts.trainable, counts.total, bb,
                      time.perf_counter() - started)
