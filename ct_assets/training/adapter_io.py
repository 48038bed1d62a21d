"""The version directory (docs/CONTRACTS.md, "Adapter directory"), of either kind.

    adapter_model.safetensors  method lora: LoRA matrices + classification head (peft key names)
    adapter_config.json        method lora: peft LoraConfig
    model.safetensors          method full: every weight of the model (full_model.py)
    labels.json                list of label names, index = class id
    manifest.json              what the caller records (lineage, metrics, ...) plus, always,
                               "method", "bytes_stored" (the weights file) and "trainable_params"

A directory without "method" in its manifest predates full fine-tuning and is a LoRA one.

Loading reads tensors with ``safetensors`` only and builds the config from JSON, so
nothing is ever unpickled: a directory without adapter_model.safetensors is refused
even if it holds an adapter_model.bin.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ct_assets.training.base_model import BaseModelSpec, load_base
from ct_assets.training.lora import head_modules, peft_wrap

WEIGHTS = "adapter_model.safetensors"
FULL_WEIGHTS = "model.safetensors"
METHODS = ("lora", "full")
CONFIG = "adapter_config.json"
LABELS = "labels.json"
MANIFEST = "manifest.json"
log = logging.getLogger(__name__)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@dataclass(frozen=True)
class AdapterFiles:
    directory: Path
    weights: Path
    config: Path
    labels: Path
    manifest: Path
    bytes: int  # size of the weights file


def method_of(adapter_dir: Path | str) -> str:
    """"lora" or "full": what the version directory holds, from its manifest."""
    path = Path(adapter_dir) / MANIFEST
    method = read_manifest(adapter_dir).get("method", "lora") if path.is_file() else "lora"
    if method not in METHODS:
        raise ValueError(f"{path}: method {method!r} is not one of {METHODS}")
    return method


def version_weights(adapter_dir: Path | str, method: str | None = None) -> Path:
    """The weights file of ``adapter_dir``'s kind, checked to exist; ``method``, when
    given, is the kind the caller expects (a LoRA loader must not read a full version)."""
    adapter_dir = Path(adapter_dir)
    if not adapter_dir.is_dir():
        raise FileNotFoundError(f"adapter directory does not exist: {adapter_dir}")
    actual = method_of(adapter_dir)
    if method is not None and actual != method:
        raise ValueError(f"{adapter_dir} holds a {actual} version, not a {method} one")
    name = FULL_WEIGHTS if actual == "full" else WEIGHTS
    weights = adapter_dir / name
    if not weights.is_file():
        pickles = sorted(p.name for p in adapter_dir.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        extra = f" (found {pickles}; pickle formats are never loaded)" if pickles else ""
        raise FileNotFoundError(f"refusing {actual} directory {adapter_dir}: no {name}{extra}")
    return weights


def read_labels(adapter_dir: Path | str) -> list[str]:
    path = Path(adapter_dir) / LABELS
    labels = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels) or len(labels) < 2:
        raise ValueError(f"{path}: expected a list of >= 2 label names, got {labels!r}")
    return labels


def read_manifest(adapter_dir: Path | str) -> dict:
    return json.loads((Path(adapter_dir) / MANIFEST).read_text(encoding="utf-8"))


def save_adapter(
    peft_model,
    out_dir: Path | str,
    labels: Sequence[str],
    manifest: dict,
    overwrite: bool = False,
) -> AdapterFiles:
    """Write a LoRA version directory atomically (see write_version_dir)."""

    def write(tmp: Path) -> None:
        peft_model.save_pretrained(str(tmp), safe_serialization=True)
        (tmp / "README.md").unlink(missing_ok=True)  # peft's model-card stub, not ours
        _check_head_saved(tmp / WEIGHTS, head_modules(peft_model.get_base_model()))

    return write_version_dir(peft_model, out_dir, labels, manifest, "lora", write, overwrite)


def write_version_dir(model, out_dir: Path | str, labels: Sequence[str], manifest: dict, method: str,
                      write_weights: Callable[[Path], None], overwrite: bool = False) -> AdapterFiles:
    """Everything goes into a sibling temp dir (``write_weights(tmp)`` writes the tensors)
    that is renamed into place, so a reader never sees a half-written version.

    The manifest gets "method", "bytes_stored" and "trainable_params" (those with
    requires_grad: the ones this version changed). ``overwrite=True`` swaps an existing
    directory (old one renamed aside, then removed).
    """
    out_dir = Path(out_dir)
    labels = list(labels)
    num_labels = model.config.num_labels
    if len(labels) != num_labels:
        raise ValueError(f"{len(labels)} labels {labels} for a model with {num_labels} outputs")
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"adapter directory already exists: {out_dir}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    manifest = {**manifest, "method": method, "trainable_params": trainable, "bytes_stored": 0}
    # Serialise first: a non-JSON manifest must fail before anything touches the disk.
    json.dumps(manifest, allow_nan=False)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    done = False
    try:
        tmp.mkdir()
        write_weights(tmp)
        weights_name = FULL_WEIGHTS if method == "full" else WEIGHTS
        manifest["bytes_stored"] = (tmp / weights_name).stat().st_size
        (tmp / LABELS).write_text(json.dumps(labels, indent=2), encoding="utf-8")
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False),
                                    encoding="utf-8")
        if out_dir.exists():
            trash = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(out_dir, trash)
            os.replace(tmp, out_dir)
            shutil.rmtree(trash)
        else:
            os.replace(tmp, out_dir)
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
    weights = out_dir / weights_name
    return AdapterFiles(
        directory=out_dir,
        weights=weights,
        config=out_dir / CONFIG,
        labels=out_dir / LABELS,
        manifest=out_dir / MANIFEST,
        bytes=weights.stat().st_size,
    )


def _check_head_saved(weights: Path, heads: list[str]) -> None:
    # Without the head, a reloaded adapter gets a fresh random classifier and predicts
    # noise; peft saves modules_to_save by default, this guards against that changing.
    with safe_open(str(weights), framework="pt") as fh:
        keys = list(fh.keys())
    if not any(f".{h}." in k for k in keys for h in heads):
        raise RuntimeError(f"{weights}: no classification-head weights ({heads}) among {len(keys)} keys")


def _load_weights(peft_model, adapter_dir: Path) -> None:
    from peft import set_peft_model_state_dict

    weights = version_weights(adapter_dir, "lora")
    state = load_file(str(weights), device="cpu")  # safetensors: no pickle involved
    result = set_peft_model_state_dict(peft_model, state)
    if result.unexpected_keys:
        raise ValueError(f"{weights}: keys not in the model: {result.unexpected_keys[:5]}")
    # missing_keys lists every frozen base weight too; only adapter/head keys matter.
    missing = [k for k in result.missing_keys if "lora_" in k or "modules_to_save" in k]
    if missing:
        raise ValueError(f"{weights}: adapter keys missing from the file: {missing[:5]}")


def load_adapter(base_spec_or_dir: BaseModelSpec | Path | str, adapter_dir: Path | str, seed: int | None = 0):
    """(PeftModel in eval mode on CPU, tokenizer, labels) from the base + adapter dir."""
    from peft import LoraConfig

    adapter_dir = Path(adapter_dir)
    version_weights(adapter_dir, "lora")
    labels = read_labels(adapter_dir)
    base, tokenizer = load_base(base_spec_or_dir, len(labels), labels, seed=seed)
    config = LoraConfig.from_pretrained(str(adapter_dir))  # JSON only
    config.inference_mode = True  # everything frozen
    model = peft_wrap(base, config)
    _load_weights(model, adapter_dir)
    return model.eval(), tokenizer, labels


def load_adapter_weights_into(
    peft_model, adapter_dir: Path | str, expected_labels: Sequence[str] | None = None
) -> None:
    """Warm start: copy a saved adapter's LoRA + head weights into a trainable PeftModel
    (another kind of version: full_model.warm_start_from).

    The target must have the same target modules, rank and head size; labels are compared
    when given, since a reordered label list would silently permute the head.
    """
    adapter_dir = Path(adapter_dir)
    version_weights(adapter_dir)
    if expected_labels is not None and read_labels(adapter_dir) != list(expected_labels):
        raise ValueError(
            f"warm start from {adapter_dir}: labels {read_labels(adapter_dir)} != {list(expected_labels)}"
        )
    _load_weights(peft_model, adapter_dir)


def adapter_bytes(adapter_dir: Path | str) -> int:
    """Size of the version's weights file, either kind: the per-version storage cost."""
    return version_weights(Path(adapter_dir)).stat().st_size


# ---- trainer checkpoints (layout documented in ct_assets.training.loop) -------------------
# Here because it is the same policy: tensors in safetensors, metadata in JSON, and the
# optimizer/RNG state through torch.load(weights_only=True), which refuses arbitrary
# pickled objects.


def save_checkpoint(ckpt_dir: Path, step: int, params, best, trainer_state: dict, progress: dict) -> None:
    """Write step-<step>/ via a temp dir + rename, then swap latest.json (the commit
    point), then delete every other step dir and leftover temp file."""
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:08d}"
    tmp = ckpt_dir / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    weights = {n: p.detach().to("cpu", copy=True).contiguous() for n, p in params.items()}
    save_file(weights, str(tmp / "weights.safetensors"))
    if best is not None:
        save_file(best, str(tmp / "best.safetensors"))
    torch.save(trainer_state, tmp / "state.pt")
    (tmp / "progress.json").write_text(json.dumps(progress), encoding="utf-8")
    final = ckpt_dir / name
    if final.exists():  # left by a run that died before updating latest.json
        shutil.rmtree(final)
    os.replace(tmp, final)
    pointer = ckpt_dir / f".latest-{uuid.uuid4().hex[:8]}.json"
    pointer.write_text(json.dumps({"step_dir": name, "fingerprint": progress["fingerprint"]}), encoding="utf-8")
    os.replace(pointer, ckpt_dir / "latest.json")  # the commit point
    for old in ckpt_dir.iterdir():
        if old.name != name and old.name.startswith(("step-", ".tmp-")):
            shutil.rmtree(old, ignore_errors=True)
        elif old.name.startswith(".latest-"):
            old.unlink(missing_ok=True)


def load_checkpoint(ckpt_dir: Path, fingerprint: str):
    """(progress, weights, best weights or None, trainer state) of this run's latest
    checkpoint, or None when there is none (or it belongs to another run)."""
    pointer = ckpt_dir / "latest.json"
    if not pointer.is_file():
        return None
    latest = json.loads(pointer.read_text(encoding="utf-8"))
    if latest.get("fingerprint") != fingerprint:
        log.warning("checkpoint in %s belongs to a different run; starting from step 0", ckpt_dir)
        return None
    step_dir = ckpt_dir / latest["step_dir"]
    if not step_dir.is_dir():  # only after a crash mid-replacement of the same step dir
        log.warning("checkpoint pointer in %s names missing %s; starting from step 0", ckpt_dir, step_dir)
        return None
    progress = json.loads((step_dir / "progress.json").read_text(encoding="utf-8"))
    best_path = step_dir / "best.safetensors"
    return (progress, load_file(str(step_dir / "weights.safetensors")),
            load_file(str(best_path)) if best_path.is_file() else None,
            torch.load(step_dir / "state.pt", weights_only=True))
