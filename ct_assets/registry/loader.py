"""Load a registered model (frozen base + adapter, or base architecture + full weights
for a ``method: full`` version) by alias or version, and predict.

The one entry point for prediction: the eval report, the drift report and the shadow
all use it, and MLflow's own loader reaches ``predictor_from_dir`` through
registry.pyfunc, so both paths run the same base check. Versions are immutable, so a
downloaded, digest-verified adapter is cached on disk per version and a loaded predictor
in memory per (registry, version, max_length, batch_size, device, precision).

``precision`` ("auto" | "fp32" | "bf16" | "int8", training/predict.py) only changes the
in-memory inference copy: the adapter in the registry is never merged or quantized.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from ct_assets.training.adapter_io import FULL_WEIGHTS, WEIGHTS, read_manifest
from ct_assets.training.base_model import BaseModelSpec, base_hash, resolve_base_dir
from ct_assets.training.full_model import load_version
from ct_assets.training.predict import Predictor

_LOADED: OrderedDict[tuple, Predictor] = OrderedDict()
_MAX_LOADED = 4


class BaseMismatchError(RuntimeError):
    """The base an adapter was trained on is not the base available here."""


def resolve_version(registry, alias_or_version: int | str) -> int:
    if isinstance(alias_or_version, int) or str(alias_or_version).isdigit():
        return int(alias_or_version)
    version = registry.get_alias(str(alias_or_version))
    if version is None:
        raise LookupError(f"model {registry.model_name}: no version has alias {alias_or_version!r}")
    return version


def base_spec_from_manifest(manifest: dict) -> BaseModelSpec:
    base = manifest["base"]
    return BaseModelSpec(kind=base["kind"], name=base["name"], model_id=base.get("model_id", ""))


def checked_base(manifest: dict, subject: str) -> BaseModelSpec:
    """The base ``manifest`` names, after checking that the base found here has the weight
    hash recorded at training (an adapter on another base predicts garbage, silently).

    ``subject`` names the adapter in the error ("version 3", "adapter /tmp/x"). A hub base
    is not hashed: that would need the weights in the HF cache just to compare.
    """
    spec = base_spec_from_manifest(manifest)
    expected = manifest["base"].get("hash")
    if expected and spec.kind != "hub":
        found = base_hash(resolve_base_dir(spec))
        if found != expected:
            raise BaseMismatchError(
                f"{subject} was trained on base {spec.name} with hash {expected}, found {found}")
    return spec


def predictor_from_dir(
    adapter: Path, subject: str, *, max_length: int = 64, batch_size: int = 64, device: str = "auto",
    precision: str = "fp32",
) -> Predictor:
    """Base (hash-checked) + the version directory ``adapter`` of either kind, ready to
    ``predict(texts)``. A full version is checked against the base too: its architecture
    and tokenizer are the base's."""
    spec = checked_base(read_manifest(adapter), subject)
    model, tokenizer, labels = load_version(spec, adapter)
    # The model was loaded for this predictor alone: merge in place, no second copy in memory.
    return Predictor(model, tokenizer, labels, max_length=max_length, batch_size=batch_size, device=device,
                     precision=precision, copy_model=False)


def adapter_dir_for(registry, version: int, cache_dir: Path) -> Path:
    target = cache_dir / f"{registry.model_name}-v{version}"
    adapter = target / "adapter"
    # A download is renamed into place whole, so a weights file of either kind means complete.
    if not any((adapter / name).exists() for name in (WEIGHTS, FULL_WEIGHTS)):
        adapter = registry.download_adapter(version, target)
    return adapter


def load_predictor(
    registry,
    alias_or_version: int | str,
    cache_dir: Path,
    *,
    max_length: int = 64,
    batch_size: int = 64,
    device: str = "auto",
    precision: str = "fp32",
) -> Predictor:
    """Base + adapter of a registered version, ready to ``predict(texts)``."""
    version = resolve_version(registry, alias_or_version)
    key = (registry.tracking_uri, registry.model_name, version, max_length, batch_size, device, precision)
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    adapter = adapter_dir_for(registry, version, Path(cache_dir))
    predictor = predictor_from_dir(adapter, f"version {version}", max_length=max_length,
                                   batch_size=batch_size, device=device, precision=precision)
    _LOADED[key] = predictor
    while len(_LOADED) > _MAX_LOADED:
        _LOADED.popitem(last=False)
    return predictor

