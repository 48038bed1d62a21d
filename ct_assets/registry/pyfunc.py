"""A registered version as an MLflow pyfunc model, with no pickle and no copy of the base.

The adapter directory is the model directory. ``write_model_files`` adds an ``MLmodel``
(flavor ``python_function``, ``loader_module`` = this module, ``data: .``) and the
environment files beside the adapter files. MLflow imports this module and calls
``_load_pyfunc(<downloaded dir>)``. We use the loader-module flavor, not a
``PythonModel`` subclass, because MLflow cloudpickles a PythonModel into the version,
and a version holds only safetensors and JSON. The base is referenced by the manifest
(kind, name, weight hash) and hash-checked on load with registry.loader's own check, so
a version costs its weights file and nothing more: the adapter for a LoRA version, every
weight for a full one (``model.safetensors``, loaded into the base's architecture and
tokenizer; training/full_model.py). The result is that

    mlflow models serve -m models:/<name>@champion --env-manager local

serves the champion as registered. The base must be where the manifest says: a
``package`` base comes with its pip package (pinned in requirements.txt), a
``directory`` base must exist at the same path on the serving machine, and a ``hub`` base
must be in the HF cache there. requirements.txt pins ct_assets itself, because it holds
this loader module. A deployment target that builds an environment from that file must
therefore be able to install ct_assets (from a private index or a wheel).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import uuid
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import yaml
from mlflow.models import Model, ModelSignature
from mlflow.types.schema import ColSpec, Schema

import ct_assets
from ct_assets.registry.loader import predictor_from_dir
from ct_assets.training.adapter_io import MANIFEST, read_manifest

MLMODEL, REQUIREMENTS, PYTHON_ENV, CONDA_ENV = "MLmodel", "requirements.txt", "python_env.yaml", "conda.yaml"
MODEL_FILES = (MLMODEL, REQUIREMENTS, PYTHON_ENV, CONDA_ENV)
TEXT, LABEL, CONFIDENCE = "text", "label", "confidence"
SIGNATURE = ModelSignature(inputs=Schema([ColSpec("string", TEXT)]),
                           outputs=Schema([ColSpec("string", LABEL), ColSpec("double", CONFIDENCE)]))
# What the loader imports besides ct_assets, pinned to the versions the version was
# registered with: a serving image rebuilt later must not pick up a transformers that
# tokenises or initialises the base differently.
_INFERENCE_STACK = ("mlflow", "torch", "transformers", "peft", "safetensors", "tokenizers", "numpy", "pandas")
_BUILD_STACK = ("pip", "setuptools", "wheel")
# Overridable at load: mlflow.pyfunc.load_model(uri, model_config={"device": "cpu"}).
# MLflow only passes on keys that the flavor declares, so every key gets a default here.
_DEFAULT_CONFIG = {"batch_size": 64, "device": "auto"}


def _pin(dist: str) -> str | None:
    try:
        version = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
    # A local label (torch "2.x+cpu") names a build that PyPI does not host; any build of
    # the same version serves the same model.
    return f"{dist}=={version.split('+')[0]}"


def requirements(manifest: dict) -> list[str]:
    """requirements.txt lines: ct_assets, the inference stack, and a package base's own
    distribution (so pip installs the base with the model)."""
    reqs = [_pin("ct_assets") or f"ct_assets=={ct_assets.__version__}"]
    reqs += [pin for dist in _INFERENCE_STACK if (pin := _pin(dist))]
    base = manifest.get("base") or {}
    if base.get("kind") == "package":
        dists = importlib.metadata.packages_distributions().get(base.get("name", ""), [])
        reqs += [pin for dist in sorted(set(dists)) if (pin := _pin(dist))]
    return reqs


def _write(path: Path, text: str) -> None:
    # Temp file + rename: a crash mid-write leaves the old file or none, never half of one.
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_model_files(adapter_dir: Path, *, run_id: str | None = None, artifact_path: str | None = None) -> None:
    """Make ``adapter_dir`` an MLflow pyfunc model by writing MODEL_FILES into it
    (overwriting earlier ones). The adapter files themselves are not touched."""
    adapter_dir = Path(adapter_dir)
    manifest = read_manifest(adapter_dir) if (adapter_dir / MANIFEST).is_file() else {}
    base = manifest.get("base") or {}
    training = manifest.get("training") or {}
    config = {"max_length": int(training.get("max_length", 64)), **_DEFAULT_CONFIG}
    model = Model(artifact_path=artifact_path, run_id=run_id, signature=SIGNATURE,
                  metadata={"ct_base": {k: base[k] for k in ("kind", "name", "hash") if k in base}} if base else None)
    mlflow.pyfunc.add_to_model(model, loader_module=__name__, data=".", conda_env=CONDA_ENV,
                               python_env=PYTHON_ENV, model_config=config)
    reqs = requirements(manifest)
    python = platform.python_version()
    _write(adapter_dir / REQUIREMENTS, "\n".join(reqs) + "\n")
    _write(adapter_dir / PYTHON_ENV, yaml.safe_dump(
        {"python": python, "build_dependencies": [_pin(d) or d for d in _BUILD_STACK],
         "dependencies": [f"-r {REQUIREMENTS}"]}, sort_keys=False))
    _write(adapter_dir / CONDA_ENV, yaml.safe_dump(
        {"name": "mlflow-env", "channels": ["conda-forge"],
         "dependencies": [f"python={python}", "pip", {"pip": reqs}]}, sort_keys=False))
    _write(adapter_dir / MLMODEL, model.to_yaml())  # last: the MLmodel names the other files


def _texts(model_input) -> list[str]:
    """The texts of a DataFrame's ``text`` column, a Series, a list/array of strings or one string."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT not in model_input.columns:
            raise ValueError(f"model input needs a {TEXT!r} column, got columns {list(model_input.columns)}")
        model_input = model_input[TEXT]
    if isinstance(model_input, str):
        model_input = [model_input]
    texts = model_input.tolist() if isinstance(model_input, (pd.Series, np.ndarray)) else list(model_input)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"model input row {i}: {TEXT} must be a string, got {type(text).__name__} {text!r}")
    return texts


class AdapterPyfunc:
    """What mlflow.pyfunc.load_model wraps: texts in, one (label, confidence) row per text out."""

    def __init__(self, predictor) -> None:
        self.predictor = predictor

    def predict(self, model_input, params: dict | None = None) -> pd.DataFrame:
        pred = self.predictor.predict(_texts(model_input))
        return pd.DataFrame({LABEL: pred.labels, CONFIDENCE: np.asarray(pred.confidence, dtype=np.float64)})


def _load_pyfunc(data_path: str, model_config: dict | None = None) -> AdapterPyfunc:
    """MLflow's entry point: ``data_path`` is the downloaded version directory."""
    adapter = Path(data_path).resolve()
    config = {"max_length": 64, **_DEFAULT_CONFIG, **(model_config or {})}
    mlmodel = adapter / MLMODEL
    run_id = Model.load(str(mlmodel)).run_id if mlmodel.is_file() else None
    subject = f"adapter of run {run_id} at {adapter}" if run_id else f"adapter at {adapter}"
    return AdapterPyfunc(predictor_from_dir(adapter, subject, max_length=int(config["max_length"]),
                                            batch_size=int(config["batch_size"]), device=str(config["device"])))
