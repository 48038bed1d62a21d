"""Full fine-tuning (``training.method: full``), and the loaders that take a version of
either kind.

A full version trains every weight of the encoder and the head, so it stores them all:
``model.safetensors`` (safetensors' ``save_model``, nothing pickled) beside labels.json and
manifest.json. It has no config of its own: the architecture and the tokenizer come from
the base named (and hash-checked) in the manifest, exactly as for a LoRA version, and the
stored weights are loaded over the base with ``strict=True``, so a base of another shape
fails loudly instead of predicting with some weights left at the base's values.

Warm start across kinds (``warm_start_from``):

* full from a full champion: its weights, all of them.
* full from a LoRA champion: the champion's LoRA folded into the base (peft
  ``merge_and_unload``) and those weights copied in. The new model starts out predicting
  exactly what the champion predicts, so switching a deployment from lora to full does
  not throw the champion's knowledge away, and EWC anchors to the champion's function.
* lora from a full champion: not expressible (a LoRA delta lives on the shared base, and
  the champion moved the base itself), so training starts from the base and the fit
  records why; the gate still compares the result with the full champion.
* any kind from a champion trained on another base (hash differs): from the base, since
  the champion's weights mean nothing on it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import load_model, save_model

from ct_assets.training.adapter_io import (
    FULL_WEIGHTS,
    AdapterFiles,
    load_adapter,
    load_adapter_weights_into,
    method_of,
    read_labels,
    read_manifest,
    save_adapter,
    version_weights,
    write_version_dir,
)
from ct_assets.training.base_model import BaseModelSpec, load_base

log = logging.getLogger(__name__)


def make_trainable(model):
    """The plain model with every parameter trainable (method full: no peft wrapper)."""
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def save_full(model, out_dir: Path | str, labels: Sequence[str], manifest: dict,
              overwrite: bool = False) -> AdapterFiles:
    """Write a full version directory atomically (adapter_io.write_version_dir)."""

    def write(tmp: Path) -> None:
        # save_model, not save_file: it drops tied duplicates that save_file refuses.
        save_model(model, str(tmp / FULL_WEIGHTS), force_contiguous=True)

    return write_version_dir(model, out_dir, labels, manifest, "full", write, overwrite)


def save_version(model, out_dir: Path | str, labels: Sequence[str], manifest: dict, method: str,
                 overwrite: bool = False) -> AdapterFiles:
    if method == "full":
        return save_full(model, out_dir, labels, manifest, overwrite)
    return save_adapter(model, out_dir, labels, manifest, overwrite)


def _load_full_weights(model, version_dir: Path) -> None:
    weights = version_weights(version_dir, "full")
    # strict: every weight of the model must come from the file (module doc).
    load_model(model, str(weights), strict=True, device=str(next(model.parameters()).device))


def load_full(base_spec_or_dir: BaseModelSpec | Path | str, version_dir: Path | str, seed: int | None = 0):
    """(model in eval mode on CPU, frozen, tokenizer, labels) of a full version."""
    version_dir = Path(version_dir)
    version_weights(version_dir, "full")
    labels = read_labels(version_dir)
    model, tokenizer = load_base(base_spec_or_dir, len(labels), labels, seed=seed)
    _load_full_weights(model, version_dir)
    for param in model.parameters():
        param.requires_grad_(False)
    return model.eval(), tokenizer, labels


def load_version(base_spec_or_dir: BaseModelSpec | Path | str, version_dir: Path | str, seed: int | None = 0):
    """(model, tokenizer, labels) of a version directory of either kind (its manifest says)."""
    if method_of(version_dir) == "full":
        return load_full(base_spec_or_dir, version_dir, seed)
    return load_adapter(base_spec_or_dir, version_dir, seed)


def _merged_lora(base_spec_or_dir, lora_dir: Path):
    model, _, _ = load_adapter(base_spec_or_dir, lora_dir)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning)
        return model.merge_and_unload()


def warm_start_from(model, method: str, champion_dir: Path | str, labels: Sequence[str],
                    base_spec_or_dir: BaseModelSpec | Path | str, base_hash: str) -> str | None:
    """Load the champion into ``model`` (being trained with ``method``), per the module doc.

    Returns what was loaded ("lora", "full", or "lora_merged") or None when training must
    start from the base, with the reason logged. Labels must match: a reordered label list
    would silently permute the head.
    """
    champion_dir = Path(champion_dir)
    if read_labels(champion_dir) != list(labels):
        raise ValueError(f"warm start from {champion_dir}: labels {read_labels(champion_dir)} != {list(labels)}")
    champion_kind = method_of(champion_dir)
    trained_on = (read_manifest(champion_dir).get("base") or {}).get("hash")
    if trained_on and trained_on != base_hash:
        log.warning("warm start skipped: champion %s was trained on base %s, this base is %s",
                    champion_dir, trained_on, base_hash)
        return None
    if method == "lora":
        if champion_kind == "full":
            log.warning("warm start skipped: a LoRA adapter cannot start from the full champion %s", champion_dir)
            return None
        load_adapter_weights_into(model, champion_dir, expected_labels=list(labels))
        return "lora"
    if champion_kind == "full":
        _load_full_weights(model, champion_dir)
        return "full"
    merged = _merged_lora(base_spec_or_dir, champion_dir)
    model.load_state_dict(merged.state_dict(), strict=True)
    return "lora_merged"
