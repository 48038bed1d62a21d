"""Batched inference and evaluation, plus the tokenise-once / pad-per-batch / length-
bucketing helpers that training shares.

Padding each batch only to its own longest row, with rows sorted by length, is most of
the speed on short support tickets: at max_length 64, if the median ticket is ~20
tokens, a padded-to-64 batch does 64/20 ~= 3x the FFN work of a bucketed one (more for
attention, which is quadratic in width).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


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
    """Eval-mode, no-grad, length-bucketed inference; results come back in input order."""

    def __init__(
        self,
        model,
        tokenizer,
        labels: Sequence[str],
        max_length: int = 64,
        batch_size: int = 64,
        device: str | torch.device | None = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.labels = list(labels)
        self.max_length = max_length
        self.batch_size = batch_size
        n_out = getattr(getattr(model, "config", None), "num_labels", len(self.labels))
        if n_out != len(self.labels):
            raise ValueError(f"model has {n_out} outputs but {len(self.labels)} labels: {self.labels}")

    @torch.inference_mode()
    def predict(self, texts: Sequence[str]) -> Predictions:
        k = len(self.labels)
        ids = encode(self.tokenizer, texts, self.max_length)
        probs = np.zeros((len(ids), k), dtype=np.float32)
        self.model.eval()
        for idx in sorted_batches([len(s) for s in ids], self.batch_size):
            batch = pad_batch([ids[i] for i in idx], self.tokenizer.pad_token_id, self.device)
            logits = self.model(**batch).logits.float()
            probs[idx] = torch.softmax(logits, dim=-1).cpu().numpy()
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
        return Predictions(
            labels=[self.labels[i] for i in top],
            probs=probs,
            confidence=probs.max(axis=1) if len(probs) else np.zeros(0, dtype=np.float32),
        )
