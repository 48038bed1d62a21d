"""LoRA adapters on a frozen sequence-classification base.

Only the low-rank matrices and the classification head train; the base stays frozen
and shared across every model version, so a version costs ~adapter bytes, not base bytes
(MiniLM, r=8 on query/value: 6 layers x 2 modules x 2 x 8 x 384 = 73,728 LoRA params
+ 384 x k + k head params, vs 22.7M base params).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import nn

# Attention projections per architecture. q and v (not k/o/ffn) are the standard LoRA
# choice: they give most of the quality at half the adapter size of q,k,v,o.
TARGETS_BY_TYPE: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "distilbert": ["q_lin", "v_lin"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
}

# Head modules that from_pretrained initialises fresh and that must therefore train and
# be saved with the adapter. DistilBERT's pre_classifier and DeBERTa's pooler are new
# too: left out, they would stay random-frozen and be re-randomised on every reload,
# so a round-tripped adapter would predict differently.
HEADS_BY_TYPE: dict[str, list[str]] = {
    "bert": ["classifier"],
    "distilbert": ["pre_classifier", "classifier"],
    "roberta": ["classifier"],
    "xlm-roberta": ["classifier"],
    "deberta-v2": ["pooler", "classifier"],
}
_FALLBACK_HEADS = ["classifier", "score"]

_Q_NAMES = ("q", "q_proj", "query", "q_lin", "query_proj", "wq")
_V_NAMES = ("v", "v_proj", "value", "v_lin", "value_proj", "wv")


def _model_type(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) or type(model).__name__


def default_target_modules(model: nn.Module) -> list[str]:
    """LoRA target module names for ``model``'s architecture (see TARGETS_BY_TYPE).

    Unknown architectures: every Linear whose own name looks like a q or v projection;
    if there is none, ValueError naming the model type (set lora.target_modules).
    """
    model_type = _model_type(model)
    if model_type in TARGETS_BY_TYPE:
        return list(TARGETS_BY_TYPE[model_type])
    found = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1].lower() in _Q_NAMES + _V_NAMES
    }
    has_q = any(n.lower() in _Q_NAMES for n in found)
    has_v = any(n.lower() in _V_NAMES for n in found)
    if not (has_q and has_v):
        raise ValueError(
            f"no default LoRA target modules for model type {model_type!r}: found no Linear "
            f"q/v projections; set training.lora.target_modules explicitly"
        )
    return sorted(found)


def head_modules(model: nn.Module) -> list[str]:
    """Names of the (new, trainable, saved) classification-head modules."""
    return list(HEADS_BY_TYPE.get(_model_type(model), _FALLBACK_HEADS))


def attach_lora(
    model: nn.Module,
    r: int,
    alpha: int,
    dropout: float,
    target_modules: Sequence[str] | None = None,
    seed: int | None = 0,
):
    """Wrap ``model`` in a PeftModel (task SEQ_CLS): base frozen, LoRA + head trainable.

    lora_A is initialised randomly (lora_B is zero, so the wrapped model starts out equal
    to the base); ``seed`` makes that reproducible without touching the global RNG.
    """
    from peft import LoraConfig, TaskType

    if r < 1 or alpha < 1:
        raise ValueError(f"LoRA r and alpha must be >= 1, got r={r}, alpha={alpha}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
    targets = list(target_modules) if target_modules else default_target_modules(model)
    names = [name for name, _ in model.named_modules()]
    # peft matches a target against the module name's suffix; check the same way so a
    # typo fails here with the model type instead of deep inside peft.
    missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        raise ValueError(f"LoRA target modules {missing} not found in model type {_model_type(model)!r}")
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=targets,
        modules_to_save=head_modules(model),
    )
    return peft_wrap(model, config, seed)


def peft_wrap(model: nn.Module, config, seed: int | None = 0):
    """get_peft_model with a private, seeded RNG and without peft's deprecation noise."""
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft 0.21 calls a transformers-5 API deprecated for v6; not actionable here.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        if seed is not None:
            torch.manual_seed(seed)
        return get_peft_model(model, config)


class ParamCount(NamedTuple):
    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        return self.trainable / self.total if self.total else 0.0


def trainable_params(model: nn.Module) -> ParamCount:
    """(trainable, total) parameter counts. For a PeftModel the total counts the head
    twice (original frozen copy + trainable copy), as peft's own report does."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return ParamCount(trainable, total)
