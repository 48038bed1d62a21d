"""training.method: full on the tiny BERT: every weight trains, the version stores them
all as safetensors, and every loader (Predictor, registry, pyfunc) takes it beside LoRA ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from safetensors import safe_open

from ct_assets.registry.loader import load_predictor
from ct_assets.registry.mlflow_registry import CHAMPION, AdapterRegistry
from ct_assets.registry.pyfunc import _load_pyfunc
from ct_assets.training.adapter_io import (
    FULL_WEIGHTS,
    load_adapter,
    method_of,
    read_manifest,
    save_adapter,
)
from ct_assets.training.base_model import BaseModelSpec, base_hash, load_base
from ct_assets.training.fit import LoraParams, fit_adapter
from ct_assets.training.full_model import load_full, load_version, make_trainable, warm_start_from
from ct_assets.training.loop import TrainConfig, train_adapter
from ct_assets.training.lora import trainable_params
from ct_assets.training.predict import Predictor
from ct_assets_tests.toy_text import LABELS

CONFIG = TrainConfig(batch_size=16, max_epochs=1, learning_rate=1e-3, max_length=32, eval_every_steps=5,
                     checkpoint_every_steps=3, max_steps=8)


def frame(rows) -> pl.DataFrame:
    texts, ys = rows
    return pl.DataFrame({"text": texts, "label": [LABELS[y] for y in ys]})


def manifest_for(base_dir) -> dict:
    return {"base": {"kind": "directory", "name": str(base_dir), "model_id": "", "hash": base_hash(base_dir)},
            "training": {"max_length": 32}}


def fit(base_dir, toy_data, tmp, **kw):
    return fit_adapter(
        train=frame(toy_data["train"]), val=frame(toy_data["val"]), replay=frame(toy_data["val"]), labels=LABELS,
        base=BaseModelSpec("directory", str(base_dir)), lora=LoraParams(4, 8, 0.1), config=kw.pop("config", CONFIG),
        min_rows=10, checkpoint_dir=tmp / "ckpt", out_dir=tmp / "out", manifest_extra={}, **kw)


@pytest.fixture(scope="module")
def full_fit(tiny_base_dir, toy_data, tmp_path_factory):
    return fit(tiny_base_dir, toy_data, tmp_path_factory.mktemp("full"), method="full")


def probs(model, tokenizer, texts, **kw):
    return Predictor(model, tokenizer, LABELS, max_length=32, batch_size=8, device="cpu", **kw).predict(texts).probs


def test_full_trains_every_parameter_and_records_its_kind(full_fit, tiny_base_dir):
    assert full_fit.trainable_params == full_fit.total_params > 0
    manifest = read_manifest(full_fit.adapter.directory)
    assert manifest["method"] == "full" and manifest["lora"] is None
    assert manifest["trainable_params"] == full_fit.trainable_params
    assert manifest["bytes_stored"] == full_fit.adapter.bytes == (full_fit.adapter.directory / FULL_WEIGHTS).stat().st_size
    assert sorted(p.name for p in full_fit.adapter.directory.iterdir()) == ["labels.json", "manifest.json",
                                                                            FULL_WEIGHTS]
    assert full_fit.size_ratio > 0.5  # every weight is stored: about the base's size
    with safe_open(str(full_fit.adapter.weights), framework="pt") as fh:
        keys = set(fh.keys())
    assert any(k.startswith("bert.encoder.") for k in keys) and any(k.startswith("classifier.") for k in keys)


def test_full_weights_moved_from_the_base(full_fit, tiny_base_dir):
    base, _ = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    tuned, _, _ = load_full(tiny_base_dir, full_fit.adapter.directory)
    moved = {n for n, p in tuned.named_parameters()
             if not np.allclose(p.detach().numpy(), dict(base.named_parameters())[n].detach().numpy())}
    assert any(n.startswith("bert.encoder.layer.0.") for n in moved)  # the encoder itself trained


def test_full_round_trip_predicts_identically_and_precisions_work(full_fit, tiny_base_dir, toy_data):
    texts = toy_data["test"][0][:30]
    a, tok, labels = load_version(tiny_base_dir, full_fit.adapter.directory, seed=1)
    b, _, _ = load_full(tiny_base_dir, full_fit.adapter.directory, seed=999)  # head from the file, not init
    assert labels == LABELS and not any(p.requires_grad for p in a.parameters())
    np.testing.assert_allclose(probs(a, tok, texts), probs(b, tok, texts), atol=1e-6)
    ref = probs(a, tok, texts)
    np.testing.assert_allclose(probs(a, tok, texts, precision="int8"), ref, atol=0.1)
    np.testing.assert_allclose(probs(a, tok, texts, precision="bf16"), ref, atol=0.1)
    with pytest.raises(ValueError, match="holds a full version"):
        load_adapter(tiny_base_dir, full_fit.adapter.directory)


def test_full_resume_from_checkpoint_matches_an_uninterrupted_run(tiny_base_dir, toy_data, tmp_path):
    def run(ckpt, config):
        model, tok = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
        model = make_trainable(model)
        result = train_adapter(model, tok, *toy_data["train"], *toy_data["val"], config, ckpt)
        return model, tok, result

    whole, tok, _ = run(tmp_path / "a", CONFIG)
    run(tmp_path / "b", TrainConfig(**{**CONFIG.__dict__, "max_steps": 8}))  # same fingerprint...
    # ...so a second call finds the finished checkpoint and returns without training again
    again, _, result = run(tmp_path / "b", CONFIG)
    assert result.resumed_from_step == 8
    texts = toy_data["test"][0][:20]
    np.testing.assert_allclose(probs(again, tok, texts), probs(whole, tok, texts), atol=1e-5)


def test_full_resume_mid_run(tiny_base_dir, toy_data, tmp_path):
    def run(ckpt, stop_at=None):
        model, tok = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
        model = make_trainable(model)

        def on_step(info):
            if stop_at is not None and info.step == stop_at:
                raise KeyboardInterrupt  # the process is killed after a checkpoint
        try:
            result = train_adapter(model, tok, *toy_data["train"], *toy_data["val"], CONFIG, ckpt, on_step=on_step)
        except KeyboardInterrupt:
            return None
        return model, tok, result

    whole, tok, _ = run(tmp_path / "a")
    assert run(tmp_path / "b", stop_at=4) is None  # checkpoint at step 3 survives
    resumed, _, result = run(tmp_path / "b")
    assert result.resumed_from_step == 3
    texts = toy_data["test"][0][:20]
    np.testing.assert_allclose(probs(resumed, tok, texts), probs(whole, tok, texts), atol=1e-5)


def test_warm_start_across_kinds_and_ewc(full_fit, tiny_base_dir, tiny_peft, toy_data, tmp_path):
    texts = toy_data["test"][0][:20]
    lora_dir = save_adapter(tiny_peft[0], tmp_path / "lora", LABELS, manifest_for(tiny_base_dir)).directory
    digest = base_hash(tiny_base_dir)
    # full from a LoRA champion: the merged champion, same predictions
    model, tok = load_base(tiny_base_dir, len(LABELS), LABELS, seed=5)
    model = make_trainable(model)
    assert warm_start_from(model, "full", lora_dir, LABELS, tiny_base_dir, digest) == "lora_merged"
    champ, ctok, _ = load_adapter(tiny_base_dir, lora_dir)
    np.testing.assert_allclose(probs(model, tok, texts), probs(champ, ctok, texts), atol=1e-5)
    # full from a full champion: its weights
    assert warm_start_from(model, "full", full_fit.adapter.directory, LABELS, tiny_base_dir, digest) == "full"
    full, _, _ = load_full(tiny_base_dir, full_fit.adapter.directory)
    np.testing.assert_allclose(probs(model, tok, texts), probs(full, tok, texts), atol=1e-6)
    # lora from a full champion: not expressible, start from the base
    assert warm_start_from(tiny_peft[0], "lora", full_fit.adapter.directory, LABELS, tiny_base_dir, digest) is None
    # another base: never
    assert warm_start_from(model, "full", lora_dir, LABELS, tiny_base_dir, "0" * 64) is None
    # EWC on a full fit anchors every parameter, at the champion
    ewc_fit = fit(tiny_base_dir, toy_data, tmp_path / "ewc", method="full", champion_adapter=full_fit.adapter.directory,
                  warm_start=True, config=TrainConfig(**{**CONFIG.__dict__, "ewc_lambda": 10.0, "max_steps": 2}))
    assert ewc_fit.manifest["training"]["warm_start_source"] == "full"
    assert ewc_fit.manifest["training"]["ewc_lambda"] == 10.0
    lora_fit = fit(tiny_base_dir, toy_data, tmp_path / "lora_fit", champion_adapter=full_fit.adapter.directory,
                   warm_start=True, config=TrainConfig(**{**CONFIG.__dict__, "ewc_lambda": 10.0, "max_steps": 2}))
    assert lora_fit.manifest["method"] == "lora" and lora_fit.manifest["training"]["warm_start"] is False
    assert lora_fit.manifest["training"]["ewc_lambda"] == 0.0
    assert lora_fit.trainable_params == lora_fit.manifest["trainable_params"] < lora_fit.total_params


def test_ewc_penalty_covers_every_parameter_of_a_full_model(tiny_base_dir, toy_data):
    from ct_assets.training.loop import EwcPenalty

    model, tok = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    model = make_trainable(model)
    texts, ys = toy_data["val"]
    ewc = EwcPenalty.from_model(model, texts[:8], ys[:8], tok, 1.0, max_length=32, device="cpu")
    assert set(ewc.anchor) == {n for n, _ in model.named_parameters()}
    assert sum(a.numel() for a in ewc.anchor.values()) == trainable_params(model).total


@pytest.fixture
def reg(tmp_path, monkeypatch) -> AdapterRegistry:
    root = tmp_path / "mlflow"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    return AdapterRegistry(uri, (root / "artifacts").as_uri(), model_name="full_and_lora")


def test_lora_and_full_versions_coexist_in_one_registry(reg, full_fit, tiny_peft, tiny_base_dir, toy_data, tmp_path):
    import shutil

    import mlflow.pyfunc

    texts = toy_data["test"][0][:20]
    lora_dir = save_adapter(tiny_peft[0], tmp_path / "lora", LABELS, manifest_for(tiny_base_dir)).directory
    full_dir = shutil.copytree(full_fit.adapter.directory, tmp_path / "full")
    v_lora = reg.register_adapter(reg.create_run(run_name="lora"), lora_dir).version
    v_full = reg.register_adapter(reg.create_run(run_name="full"), full_dir).version
    cache = tmp_path / "cache"
    p_lora = load_predictor(reg, v_lora, cache, max_length=32, device="cpu")
    p_full = load_predictor(reg, v_full, cache, max_length=32, device="cpu")
    assert method_of(cache / f"{reg.model_name}-v{v_full}" / "adapter") == "full"
    model, tok, _ = load_full(tiny_base_dir, full_fit.adapter.directory)
    np.testing.assert_allclose(p_full.predict(texts).probs, probs(model, tok, texts), atol=1e-6)
    champ, ctok, _ = load_adapter(tiny_base_dir, lora_dir)
    np.testing.assert_allclose(p_lora.predict(texts).probs, probs(champ, ctok, texts), atol=1e-6)

    # Promote lora, then full, then roll back to lora: each alias target loads and predicts.
    reg.promote(v_lora, "first", "test")
    reg.promote(v_full, "full is better", "test")
    served = mlflow.pyfunc.load_model(f"models:/{reg.model_name}@{CHAMPION}")
    assert served.predict(pd.DataFrame({"text": texts}))["label"].tolist() == p_full.predict(texts).labels
    reg.rollback("back to lora", "oncall")
    assert reg.get_alias(CHAMPION) == v_lora
    back = load_predictor(reg, CHAMPION, tmp_path / "cache2", max_length=32, device="cpu")
    np.testing.assert_allclose(back.predict(texts).probs, p_lora.predict(texts).probs, atol=1e-6)
    # MLflow's loader entry point on a full version directory, directly
    direct = _load_pyfunc(str(full_fit.adapter.directory), {"max_length": 32, "device": "cpu"})
    assert direct.predict(texts)["label"].tolist() == p_full.predict(texts).labels
