"""Adapter training loop (plain PyTorch, not HF Trainer): bucketing, early stopping,
resumable checkpoints, EWC.

Checkpoints (``checkpoint_dir``)::

    latest.json            {"step_dir": "step-00000050", "fingerprint": ...}, replaced atomically
    step-00000050/         written as .tmp-* then renamed
        weights.safetensors  trainable params (LoRA + head) now
        best.safetensors     trainable params at the best evaluation so far
        state.pt             optimizer / scheduler / RNG / GradScaler (torch.load weights_only)
        progress.json        step, best metric, patience counter, history, fingerprint

A checkpoint belongs to a run via its fingerprint: config (minus checkpoint/log cadence and device), the
exact train/val rows, the trainable parameter names/shapes and the EWC lambda. A matching one is resumed; a
different one is ignored and replaced. The caller must therefore give every (base, warm-start source) its own
directory, e.g. one per run id. On success the final checkpoint (finished=true) is kept and older ones
deleted, so a retried run returns the finished result (best weights loaded) without training again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ct_assets.core.settings import TrainingSettings
from ct_assets.training.adapter_io import load_checkpoint, save_checkpoint
from ct_assets.training.predict import (
    bucketed_batches,
    encode,
    evaluate_ids,
    pad_batch,
    resolve_device,
    sorted_batches,
)
from ct_assets.training.speed import cls_only_last_layer, compiled_forward, intra_op_threads, pad_to_multiple
from ct_assets.training.speed import precision_dtype as _precision

log = logging.getLogger(__name__)
_PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_MONITORS = ("val_loss", "val_accuracy")
_DEFAULTS = TrainingSettings()
_SPEED_KEYS = ("cls_only_last_layer", "num_threads", "pad_multiple", "compile")


class NonFiniteLossError(FloatingPointError):
    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"non-finite training loss {loss} at step {step}; nothing was saved after it")
        self.step = step


@dataclass(frozen=True)
class TrainConfig:
    # Defaults of the settings keys are the settings' own (training.*): one source.
    max_length: int = _DEFAULTS.max_length
    batch_size: int = _DEFAULTS.batch_size
    max_epochs: int = _DEFAULTS.max_epochs
    learning_rate: float = _DEFAULTS.learning_rate
    patience: int = _DEFAULTS.patience  # evaluations without improvement before stopping
    eval_every_steps: int = _DEFAULTS.eval_every_steps
    checkpoint_every_steps: int = _DEFAULTS.checkpoint_every_steps
    ewc_lambda: float = _DEFAULTS.ewc_lambda
    seed: int = _DEFAULTS.seed
    max_steps: int | None = None
    precision: str = "auto"  # auto: bf16 on CUDA with bf16, fp16+GradScaler on older CUDA, fp32 on CPU
    device: str = "auto"
    monitor: str = "val_loss"
    min_delta: float = 1e-4  # smaller changes do not count as improvement
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    max_grad_norm: float = 1.0
    mega_batches: int = 50  # bucketing window, in batches
    log_every_steps: int = 10
    # Speed only (same trained weights up to float rounding; not in the fingerprint): see speed.py.
    cls_only_last_layer: bool = _DEFAULTS.cls_only_last_layer
    num_threads: int = _DEFAULTS.num_threads
    pad_multiple: int = _DEFAULTS.pad_multiple
    compile: bool = _DEFAULTS.compile

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_epochs", "patience", "eval_every_steps", "checkpoint_every_steps",
                     "mega_batches", "log_every_steps", "pad_multiple"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be an int >= 1, got {value!r}")
        if not isinstance(self.num_threads, int) or self.num_threads < 0:
            raise ValueError(f"TrainConfig.num_threads must be an int >= 0, got {self.num_threads!r}")
        if self.max_length < 2:
            raise ValueError(f"TrainConfig.max_length must be >= 2, got {self.max_length!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"TrainConfig.max_steps must be >= 1 or None, got {self.max_steps!r}")
        for name in ("learning_rate", "max_grad_norm"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ValueError(f"TrainConfig.{name} must be finite and > 0, got {getattr(self, name)!r}")
        for name in ("ewc_lambda", "min_delta", "weight_decay"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
                raise ValueError(f"TrainConfig.{name} must be finite and >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ValueError(f"TrainConfig.warmup_fraction must be in [0, 1), got {self.warmup_fraction!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"TrainConfig.precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if self.monitor not in _MONITORS:
            raise ValueError(f"TrainConfig.monitor must be one of {_MONITORS}, got {self.monitor!r}")

    @classmethod
    def from_settings(cls, training: object, **overrides: object) -> "TrainConfig":
        """From ``settings.training`` (duck-typed) plus overrides (max_steps, precision...)."""
        keys = ("max_length", "batch_size", "max_epochs", "learning_rate", "patience", "eval_every_steps",
                "checkpoint_every_steps", "ewc_lambda", "seed")
        speed = {k: getattr(training, k) for k in (*_SPEED_KEYS, "precision") if hasattr(training, k)}  # optional
        return cls(**{k: getattr(training, k) for k in keys}, **{**speed, **overrides})  # type: ignore[arg-type]


@dataclass(frozen=True)
class StepInfo:
    step: int
    total_steps: int
    epoch: int  # 0-based
    loss: float
    lr: float
    samples_per_second: float
    val_loss: float | None = None  # set on evaluation steps
    val_accuracy: float | None = None


@dataclass
class TrainResult:
    steps: int
    epochs: float  # steps / steps_per_epoch
    best_val_metric: float | None  # of config.monitor; None without a validation set
    best_step: int | None
    final_train_loss: float  # mean of the last log_every_steps step losses
    train_seconds: float  # wall time of this call
    samples_per_second: float  # over optimizer steps of this call only (no eval/checkpoint)
    tokens_per_second: float  # non-padding tokens
    stopped_early: bool
    resumed_from_step: int
    history: list[dict] = field(default_factory=list)


class EwcPenalty:
    """Elastic weight consolidation: lambda/2 * sum_i F_i (theta_i - theta*_i)^2.

    F is the diagonal empirical Fisher of the trainable params at the starting (champion)
    weights theta*: the mean over rows of the squared per-row gradient of the loss.
    With batch_size B > 1 it uses B * (batch-mean grad)^2, which equals the per-row value
    near an optimum (mean grad ~ 0) at a B-th of the backward passes. Cost: one
    forward+backward per row; MiniLM at max_length 32 on one contended CPU core does
    ~23 rows/s, so the default 256 rows take ~11 s. Fisher values are small (MiniLM r=8:
    mean ~5e-5, max ~0.1), so useful lambdas are large (~1e2..1e4).
    """

    def __init__(self, lam: float, fisher: dict[str, torch.Tensor], anchor: dict[str, torch.Tensor]) -> None:
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"EWC lambda must be finite and >= 0, got {lam!r}")
        self.lam, self.fisher, self.anchor = lam, fisher, anchor

    @classmethod
    def from_model(cls, model, texts: Sequence[str], labels: Sequence[int], tokenizer, lam: float,
                   max_length: int = 64, batch_size: int = 1, max_samples: int = 256,
                   device: str = "auto", seed: int = 0) -> "EwcPenalty":
        if len(texts) != len(labels) or not texts:
            raise ValueError(f"EWC needs matching non-empty texts/labels, got {len(texts)}/{len(labels)}")
        dev = resolve_device(device)
        model.to(dev)
        params = _trainable(model)
        keep = np.random.default_rng(seed).permutation(len(texts))[:max_samples]
        ids = encode(tokenizer, [texts[i] for i in keep], max_length)
        y = torch.as_tensor([int(labels[i]) for i in keep], device=dev)
        fisher = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in params.items()}
        was_training = model.training
        model.eval()  # no dropout: the Fisher of the deterministic model
        for idx in sorted_batches([len(s) for s in ids], batch_size):
            model.zero_grad(set_to_none=True)
            logits = model(**pad_batch([ids[i] for i in idx], tokenizer.pad_token_id, dev)).logits
            F.cross_entropy(logits.float(), y[idx]).backward()
            for n, p in params.items():
                if p.grad is not None:
                    fisher[n] += p.grad.detach().float() ** 2 * len(idx)
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        fisher = {n: f / len(ids) for n, f in fisher.items()}
        anchor = {n: p.detach().float().clone() for n, p in params.items()}
        return cls(lam, fisher, anchor)

    def penalty(self, model) -> torch.Tensor:
        params = dict(model.named_parameters())
        total = None
        for n, f in self.fisher.items():
            p = params[n]
            if f.device != p.device:
                self.fisher[n], self.anchor[n] = f.to(p.device), self.anchor[n].to(p.device)
            term = (self.fisher[n] * (p.float() - self.anchor[n]) ** 2).sum()
            total = term if total is None else total + term
        if total is None:
            raise ValueError("EWC penalty has no parameters")
        return 0.5 * self.lam * total


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def _fingerprint(config: TrainConfig, data: Sequence, params: dict, ewc: EwcPenalty | None) -> str:
    digest = hashlib.sha256()
    cfg = {k: v for k, v in asdict(config).items()
           if k not in ("checkpoint_every_steps", "log_every_steps", "device", *_SPEED_KEYS)}
    meta = {"config": cfg, "params": [[n, list(p.shape)] for n, p in params.items()],
            "ewc": ewc.lam if ewc else None}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    for texts, labels in data:
        for text, label in zip(texts, labels, strict=True):
            digest.update(f"{text}\x1f{label}\x1e".encode())
        digest.update(b"\x1d")
    return digest.hexdigest()


def _snapshot(params: dict) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in params.items()}


def _restore(params: dict, weights: dict[str, torch.Tensor]) -> None:
    if set(weights) != set(params):
        diff = sorted(set(weights) ^ set(params))[:5]
        raise ValueError(f"checkpoint weights do not match the trainable params: {diff}")
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(weights[n])


def train_adapter(model, tokenizer, train_texts: Sequence[str], train_labels: Sequence[int],
                  val_texts: Sequence[str], val_labels: Sequence[int], config: TrainConfig,
                  checkpoint_dir: Path, on_step: Callable[[StepInfo], None] | None = None,
                  ewc: EwcPenalty | None = None) -> TrainResult:
    """Train the trainable params of ``model`` (a PeftModel) in place; on return they
    hold the best-validation weights. Labels are class ids. Without validation rows
    there is no early stopping and the final weights are kept.

    Dropout draws from a private RNG seeded with config.seed (the caller's global RNG
    is left as it was), so equal inputs give equal runs and a resumed run can replay.
    """
    device = resolve_device(config.device)
    cuda_ids = []
    if device.type == "cuda":
        cuda_ids = [device.index if device.index is not None else torch.cuda.current_device()]
    # The speed contexts wrap the whole run (evaluation included) and are undone on return.
    with torch.random.fork_rng(devices=cuda_ids), intra_op_threads(config.num_threads), \
            cls_only_last_layer(model, config.cls_only_last_layer):
        torch.manual_seed(config.seed)
        return _train(model, tokenizer, train_texts, train_labels, val_texts, val_labels, config,
                      Path(checkpoint_dir), on_step, ewc, device)


def _train(model, tokenizer, train_texts, train_labels, val_texts, val_labels, config: TrainConfig,
           checkpoint_dir: Path, on_step, ewc: EwcPenalty | None, device: torch.device) -> TrainResult:
    started = time.perf_counter()
    if ewc is not None and ewc.lam != config.ewc_lambda:
        raise ValueError(f"ewc.lam {ewc.lam} != config.ewc_lambda {config.ewc_lambda}")
    if ewc is None and config.ewc_lambda > 0:
        raise ValueError(f"config.ewc_lambda {config.ewc_lambda} > 0 but no EwcPenalty was given")
    num_labels = model.config.num_labels
    for name, texts, labels in (("train", train_texts, train_labels), ("val", val_texts, val_labels)):
        if len(texts) != len(labels):
            raise ValueError(f"{name}: {len(texts)} texts but {len(labels)} labels")
        bad = [y for y in labels if not 0 <= int(y) < num_labels]
        if bad:
            raise ValueError(f"{name}: label ids {sorted(set(bad))[:5]} outside [0, {num_labels})")
    if not train_texts:
        raise ValueError("train: no rows")
    train_y, val_y = [int(y) for y in train_labels], [int(y) for y in val_labels]
    amp_dtype, scaler = _precision(config.precision, device)
    model.to(device).train()
    params = _trainable(model)
    if not params:
        raise ValueError("model has no trainable parameters (attach LoRA first)")
    ids = encode(tokenizer, train_texts, config.max_length)
    val_ids = encode(tokenizer, val_texts, config.max_length)
    lengths, pad_id = [len(s) for s in ids], tokenizer.pad_token_id
    per_epoch = math.ceil(len(ids) / config.batch_size)
    total = per_epoch * config.max_epochs
    total = min(total, config.max_steps) if config.max_steps else total
    # Linear warmup then linear decay to ~0: multiplier (s+1)/(w+1) for s < w, else (T-s)/(T-w);
    # e.g. T=100, w=6: step 1 trains at 1/7 of lr, step 100 at 1/94.
    warm = int(total * config.warmup_fraction)
    optimizer = torch.optim.AdamW(params.values(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / (warm + 1) if s < warm else max(0.0, (total - s) / max(1, total - warm)))
    fingerprint = _fingerprint(config, [(train_texts, train_y), (val_texts, val_y)], params, ewc)
    sign = 1.0 if config.monitor == "val_loss" else -1.0  # compare sign * metric, lower is better
    prog = {"fingerprint": fingerprint, "step": 0, "best_metric": None, "best_step": None, "bad_evals": 0,
            "history": [], "recent": [], "stopped_early": False, "finished": False}
    best: dict[str, torch.Tensor] | None = None
    loaded = load_checkpoint(checkpoint_dir, fingerprint)
    if loaded is not None:
        prog, weights, best, state = loaded
        _restore(params, weights)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state["rng_cuda"]:
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        if scaler is not None and state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        log.info("resuming %s from step %d", checkpoint_dir, prog["step"])
    resumed_from = prog["step"]
    recent = deque(prog["recent"], maxlen=config.log_every_steps)
    samples = tokens = 0
    step_seconds = 0.0
    forward = compiled_forward(model, config.compile)

    def checkpoint() -> None:
        prog["recent"] = list(recent)
        state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 "rng_cpu": torch.get_rng_state(),
                 "rng_cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                 "scaler": scaler.state_dict() if scaler is not None else None}
        save_checkpoint(checkpoint_dir, prog["step"], params, best, state, prog)

    step = prog["step"]
    stop = prog["finished"]
    while not stop and step < total:
        epoch, skip = divmod(step, per_epoch)
        for idx in bucketed_batches(lengths, config.batch_size, config.seed, epoch, config.mega_batches)[skip:]:
            t0 = time.perf_counter()
            step += 1
            batch = pad_to_multiple(pad_batch([ids[i] for i in idx], pad_id, device), config.pad_multiple, pad_id)
            y = torch.as_tensor([train_y[i] for i in idx], device=device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = forward(**batch).logits
            loss = F.cross_entropy(logits.float(), y)
            if ewc is not None:
                loss = loss + ewc.penalty(model)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(step, loss_value)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            torch.nn.utils.clip_grad_norm_(params.values(), config.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            step_seconds += time.perf_counter() - t0
            samples += len(idx)
            tokens += int(batch["attention_mask"].sum())
            recent.append(loss_value)
            rate = samples / step_seconds if step_seconds else 0.0
            metrics = {}
            if val_ids and (step % config.eval_every_steps == 0 or step % per_epoch == 0 or step == total):
                metrics = evaluate_ids(model, val_ids, val_y, config.batch_size * 2, pad_id, device, amp_dtype)
                value = sign * metrics[config.monitor]
                if prog["best_metric"] is None or value < sign * prog["best_metric"] - config.min_delta:
                    prog["best_metric"], prog["best_step"], prog["bad_evals"] = metrics[config.monitor], step, 0
                    best = _snapshot(params)
                else:
                    prog["bad_evals"] += 1
                    stop = prog["stopped_early"] = prog["bad_evals"] >= config.patience
            if metrics or step % config.log_every_steps == 0:  # loss: mean of the last log_every steps
                prog["history"].append({"step": step, "epoch": epoch, "loss": float(np.mean(recent)),
                                        "lr": lr, "samples_per_second": rate, **metrics})
            prog["step"] = step
            if step % config.checkpoint_every_steps == 0 and not stop and step < total:
                checkpoint()
            if on_step is not None:
                on_step(StepInfo(step, total, epoch, loss_value, lr, rate, metrics.get("val_loss"),
                                 metrics.get("val_accuracy")))
            if stop or step >= total:
                break
    optimizer.zero_grad(set_to_none=True)  # do not hand back a model holding stale grads
    if not prog["finished"]:
        prog["finished"] = True
        checkpoint()  # kept: a retry of a finished run returns without training
    if best is not None:
        _restore(params, best)
    return TrainResult(
        steps=prog["step"], epochs=prog["step"] / per_epoch,
        best_val_metric=prog["best_metric"], best_step=prog["best_step"],
        final_train_loss=float(np.mean(prog["recent"])) if prog["recent"] else float("nan"),
        train_seconds=time.perf_counter() - started,
        samples_per_second=samples / step_seconds if step_seconds else 0.0,
        tokens_per_second=tokens / step_seconds if step_seconds else 0.0,
        stopped_early=prog["stopped_early"], resumed_from_step=resumed_from, history=prog["history"])
