"""Batched inference and evaluation, plus the tokenise-once / pad-per-batch / length-
bucketing helpers that training shares.

Padding each batch only to its own longest row, with rows sorted by length, is most of
the speed on short support tickets: at max_length 64, if the median ticket is ~20
tokens, a padded-to-64 batch does 64/20 ~= 3x the FFN work of a bucketed one (more for
attention, which is quadratic in width).

Inference precision (``Predictor(precision=...)``, bench/inference.py measures each):

* every precision first folds the LoRA weights into a copy of the base (peft
  ``merge_and_unload``): exact to float rounding, and the graph is then a plain BERT,
  which is what int8 quantization and the fused SDPA attention path expect. The
  registry keeps the adapter; only the in-memory inference copy is merged. A full
  fine-tune (training.method: full) is that plain model already: nothing to merge.
* ``fp32``: the reference. On CPU MiniLM is compute-bound on the encoder's Linear
  layers (~21 MFLOP per token), so fp32 cannot go much faster than the merged model.
* ``int8``: dynamic int8 quantization of the encoder's Linear layers (CPU only: the
  quantized kernels are fbgemm/onednn). The head and pooler stay fp32: they are <2% of
  the work and carry the decision, so quantizing them costs accuracy for no speed.
* ``bf16``: autocast (matmuls in bf16, softmax/LayerNorm kept fp32). Fast on GPUs and on
  CPUs with AVX512-BF16/AMX; on older CPUs it is slower than fp32, hence not "auto" there.
* ``auto``: bf16 on a CUDA device that supports it, fp32 otherwise.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


PRECISIONS = ("auto", "fp32", "bf16", "int8")


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision ("fp32" | "bf16" | "int8") for ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"inference precision must be one of {PRECISIONS}, got {precision!r}")
    def cuda_bf16() -> bool:  # asked only for a CUDA device: a CPU-only torch may not answer
        return device.type == "cuda" and torch.cuda.is_bf16_supported()

    if precision == "auto":
        return "bf16" if cuda_bf16() else "fp32"
    if precision == "int8" and device.type != "cpu":
        raise ValueError(f"int8 inference is dynamic CPU quantization; device is {device}")
    if precision == "bf16" and device.type == "cuda" and not cuda_bf16():
        raise ValueError(f"bf16 inference: {torch.cuda.get_device_name(device)} has no bf16 support")
    return precision


def _keep_fp32(name: str, heads: Sequence[str]) -> bool:
    parts = name.split(".")
    return "pooler" in parts or any(h in parts for h in heads)


def quantize_int8(model):
    """Dynamic int8 (weights int8, activations quantized per batch) on the encoder's
    Linear layers; the head and pooler stay fp32 (module doc)."""
    from ct_assets.training.lora import head_modules

    heads = head_modules(model)
    spec = {name: torch.ao.quantization.default_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and not _keep_fp32(name, heads)}
    with warnings.catch_warnings():
        # torch 2.10+ points at torchao; the eager dynamic path is still what runs on CPU
        # here without another dependency.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*torchao.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8)


def inference_model(model, precision: str, device: torch.device, *, copy_model: bool = True):
    """``model`` ready for inference at a resolved ``precision``: LoRA merged into the base,
    eval mode, no grads, on ``device``, int8-quantized if asked.

    ``copy_model``: merge into a deep copy, so a caller who keeps training or saving the
    PeftModel it passed in is unaffected (merge_and_unload rewrites the base weights in
    place). The registry loader owns its freshly loaded model and skips the copy.
    """
    if copy_model:
        model = copy.deepcopy(model)
    if hasattr(model, "merge_and_unload"):  # a PeftModel
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning)
            model = model.merge_and_unload()
    model = model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    if precision == "int8":
        model = quantize_int8(model)
    return model


def encode(tokenizer, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids per text, truncated to max_length, no padding (padding happens per batch)."""
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 ([CLS] + [SEP]), got {max_length}")
    if not texts:
        return []
    out = tokenizer(
        [str(t) for t in texts],
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return list(out["input_ids"])


def pad_batch(seqs: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """input_ids / attention_mask padded to this batch's longest row.

    No token_type_ids: BERT-likes default them to zeros, and DistilBERT does not take them.
    """
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Index batches over rows sorted by length (stable, so ties keep input order)."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def bucketed_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                     mega_batches: int = 50) -> list[np.ndarray]:
    """One epoch's batches: shuffle, sort by length inside windows of ``mega_batches``
    batches, cut into batches, shuffle batch order. Depends only on (seed, epoch), so a
    resumed run replays the same order. Windows are multiples of batch_size, so there are
    exactly ceil(n / batch_size) batches."""
    rng = np.random.default_rng([seed, epoch])
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    window = batch_size * mega_batches
    batches: list[np.ndarray] = []
    for start in range(0, len(perm), window):
        idx = perm[start : start + window]
        idx = idx[np.argsort(-lengths[idx], kind="stable")]
        batches += [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@torch.no_grad()
def evaluate_ids(model, ids, labels, batch_size, pad_id, device, amp_dtype=None) -> dict[str, float]:
    """Mean cross-entropy / accuracy over pre-encoded rows, in eval mode (mode restored)."""
    if not ids:
        raise ValueError("evaluate: no rows")
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0
    for idx in sorted_batches([len(s) for s in ids], batch_size):
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = model(**pad_batch([ids[i] for i in idx], pad_id, device)).logits.float()
        y = torch.as_tensor([labels[i] for i in idx], device=device)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(-1) == y).sum())
    model.train(was_training)
    return {"val_loss": loss_sum / len(ids), "val_accuracy": correct / len(ids)}


def evaluate(model, tokenizer, texts, labels, max_length=64, batch_size=64, device="auto") -> dict[str, float]:
    """Mean cross-entropy and accuracy (eval mode, fp32)."""
    dev = resolve_device(device)
    ids = encode(tokenizer, texts, max_length)
    return evaluate_ids(model.to(dev), ids, [int(x) for x in labels], batch_size, tokenizer.pad_token_id, dev, None)


@dataclass(frozen=True)
class Predictions:
    labels: list[str]
    probs: np.ndarray  # [n, k] float32, rows sum to 1
    confidence: np.ndarray  # [n] max probability

    @property
    def label_ids(self) -> np.ndarray:
        return self.probs.argmax(axis=1) if len(self.probs) else np.zeros(0, dtype=np.int64)


class Predictor:
    """Eval-mode, no-grad, length-bucketed inference; results come back in input order.

    The one inference path: eval, monitoring, shadow and serving all predict through it.
    ``self.model`` is the merged (and, for int8, quantized) inference copy, never the
    model passed in (see ``inference_model``).
    """

    def __init__(
        self,
        model,
        tokenizer,
        labels: Sequence[str],
        max_length: int = 64,
        batch_size: int = 64,
        device: str | torch.device | None = "auto",
        precision: str = "fp32",
        copy_model: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.labels = list(labels)
        # Checked before the copy/merge: a wrong label list must fail fast and cheaply.
        n_out = getattr(getattr(model, "config", None), "num_labels", len(self.labels))
        if n_out != len(self.labels):
            raise ValueError(f"model has {n_out} outputs but {len(self.labels)} labels: {self.labels}")
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.model = inference_model(model, self.precision, self.device, copy_model=copy_model)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size

    @torch.inference_mode()
    def predict(self, texts: Sequence[str]) -> Predictions:
        k = len(self.labels)
        ids = encode(self.tokenizer, texts, self.max_length)
        probs = np.zeros((len(ids), k), dtype=np.float32)
        self.model.eval()
        for idx in sorted_batches([len(s) for s in ids], self.batch_size):
            batch = pad_batch([ids[i] for i in idx], self.tokenizer.pad_token_id, self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                logits = self.model(**batch).logits.float()
            probs[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        return Predictions(
            labels=[self.labels[i] for i in top],
            probs=probs,
            confidence=probs.max(axis=1) if len(probs) else np.zeros(0, dtype=np.float32),
        )
