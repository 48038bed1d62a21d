"""Training-step speed helpers for the adapter loop (kept out of loop.py, which is full).

What was measured (2 contended CPU cores, MiniLM, batch 32, max_length 64; the table is
in bench/train_throughput.py's JSON under "ablation") and what that decided:

* ``cls_only_last_layer`` (default on): a sequence classifier's head reads only the
  first token of the last layer, so that layer's query, attention, output projection
  and FFN are needed for token 0 alone; keys/values still see every token. Same logits
  (to float rounding: ~1e-8 on MiniLM), ~10/12 of one layer's work fewer in forward and
  backward; measured 1.25-1.42x (fixed batches, 1 thread) and 1.34x (benchmark ablation,
  2 threads), medians of 5. Exact, so it is not a model change; it is applied only for the duration of
  training and only to architectures whose layer/heads are known to read token 0.
* ``num_threads`` (default 0: leave torch's choice, = physical cores): on an
  oversubscribed machine one intra-op thread can beat two, because OpenMP workers
  spin-wait for a descheduled peer (load average 5-9 on 2 cores here: 1 thread was
  2.3-3.6x faster than 2); that depends on the neighbours' load, so it is a setting,
  not a default: on an idle machine 2 threads are the faster choice.
* ``pad_multiple`` (default 1): widths rounded up to 8 gave no reliable gain in fp32
  (median 1.05x, per-round ratios 0.57..1.55x) for up to 7 more padded tokens a row.
* ``compile`` (default off): inductor's first compile of MiniLM forward+backward took
  303 s on this machine (the whole 60-step benchmark trains in ~1-2 min) and the
  compiled steady state was no faster (0.34 vs 0.41 steps/s, medians of 4).
* not kept either: eager attention instead of SDPA (1.18-1.21x in two runs without
  the token-0 layer, 0.78x in the benchmark's ablation with it: no consistent gain; SDPA
  stays the loader's default, which inference uses too),
  fused AdamW (75k trainable params: noise), bf16 autocast (1.5-1.7x on this
  avx512_bf16 CPU but not the fp32 trajectory: ``training.precision: bf16`` opts in).
"""

from __future__ import annotations

import contextlib
import logging
import types
from collections.abc import Iterator

import torch
from torch.nn import functional as F

log = logging.getLogger(__name__)

# Heads that read hidden_states[:, 0] only (BertPooler -> classifier); others
# (mean pooling, token classification) need every token of the last layer.
_CLS_HEAD_CLASSES = ("BertForSequenceClassification",)


def precision_dtype(precision: str, device: torch.device) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """(autocast dtype or None for fp32, GradScaler for fp16)."""
    cuda = device.type == "cuda"
    if precision == "auto":
        precision = "fp32" if not cuda else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if precision == "fp32":
        return None, None
    if precision == "bf16":
        if cuda and not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision 'bf16' is not supported on {torch.cuda.get_device_name(device)}")
        return torch.bfloat16, None
    if not cuda:
        raise ValueError(f"precision 'fp16' needs a CUDA device, got {device}")
    return torch.float16, torch.amp.GradScaler("cuda")


def _inner(model):
    """The transformers model under a PeftModel (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _cls_last_forward(self, hidden_states, attention_mask=None, *args, **kwargs):
    """BertLayer.forward for the last layer, computing the first token's output only.

    Returns (batch, 1, hidden): the pooler takes [:, 0], which is that row.
    """
    att = self.attention.self
    b, w, d = hidden_states.shape
    heads, size = att.num_attention_heads, att.attention_head_size
    first = hidden_states[:, :1]
    q = att.query(first).view(b, 1, heads, size).transpose(1, 2)
    k = att.key(hidden_states).view(b, w, heads, size).transpose(1, 2)
    v = att.value(hidden_states).view(b, w, heads, size).transpose(1, 2)
    mask = attention_mask
    if mask is not None and mask.dim() == 4 and mask.shape[-2] != 1:
        mask = mask[:, :, :1, :]  # the query row of token 0 (bool or additive: SDPA takes both)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=att.scaling,
                                         dropout_p=att.dropout.p if self.training else 0.0)
    out = self.attention.output(ctx.transpose(1, 2).reshape(b, 1, d), first)
    return self.output(self.intermediate(out), out)


def cls_only_supported(model) -> bool:
    inner = _inner(model)
    if type(inner).__name__ not in _CLS_HEAD_CLASSES:
        return False
    config = inner.config
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return False
    layer = inner.bert.encoder.layer[-1]
    # An instance-level forward is someone else's hook (e.g. accelerate offloading): leave it.
    return "forward" not in vars(layer) and all(hasattr(layer, a) for a in ("attention", "intermediate", "output"))


@contextlib.contextmanager
def cls_only_last_layer(model, enabled: bool = True) -> Iterator[bool]:
    """Patch the last encoder layer to compute token 0 only while the block runs; yields
    whether it did. Restored on exit, so inference/saving see the unmodified model."""
    if not enabled or not cls_only_supported(model):
        yield False
        return
    layer = _inner(model).bert.encoder.layer[-1]
    layer.forward = types.MethodType(_cls_last_forward, layer)  # instance attr shadows the class's
    try:
        yield True
    finally:
        del layer.forward


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """torch.set_num_threads(n) for the block (0: unchanged), restored on exit."""
    old = torch.get_num_threads()
    if n > 0 and n != old:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != old:
            torch.set_num_threads(old)


def pad_to_multiple(batch: dict[str, torch.Tensor], multiple: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad input_ids/attention_mask to a width that is a multiple of ``multiple``."""
    width = batch["input_ids"].shape[1]
    extra = -width % multiple if multiple > 1 else 0
    if not extra:
        return batch
    return {k: F.pad(v, (0, extra), value=pad_id if k == "input_ids" else 0) for k, v in batch.items()}


def compiled_forward(model, enabled: bool):
    """The callable the loop runs the training forward through: torch.compile'd
    (dynamic shapes: every batch has its own width) or the model itself."""
    if not enabled:
        return model
    return torch.compile(model, dynamic=True)
