"""The fast Predictor: merged LoRA and int8 / bf16 agree with the plain PeftModel forward."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ct_assets.registry.loader import predictor_from_dir
from ct_assets.training.adapter_io import save_adapter
from ct_assets.training.base_model import load_base
from ct_assets.training.loop import TrainConfig, train_adapter
from ct_assets.training.lora import attach_lora
from ct_assets.training.predict import Predictor, encode, pad_batch, resolve_precision
from ct_assets_tests.toy_text import LABELS


@pytest.fixture(scope="module")
def trained(tiny_base_dir, toy_data, tmp_path_factory):
    """A briefly trained tiny PeftModel: LoRA B and the head are nonzero, so merging matters."""
    model, tokenizer = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    model = attach_lora(model, r=4, alpha=8, dropout=0.0, seed=0)
    config = TrainConfig(batch_size=16, max_epochs=4, learning_rate=2e-2, max_length=32, eval_every_steps=100)
    train_adapter(model, tokenizer, *toy_data["train"], *toy_data["val"], config, tmp_path_factory.mktemp("c"))
    return model.eval(), tokenizer


def _peft_probs(model, tokenizer, texts) -> np.ndarray:
    """The unmerged forward, row by row (no batching, no merge): the reference."""
    out = []
    with torch.no_grad():
        for ids in encode(tokenizer, texts, 32):
            logits = model(**pad_batch([ids], tokenizer.pad_token_id, torch.device("cpu"))).logits
            out.append(torch.softmax(logits.float(), -1).numpy())
    return np.concatenate(out)


def test_merged_fp32_matches_the_peft_forward_and_leaves_the_input_model_alone(trained, toy_data):
    model, tokenizer = trained
    texts = toy_data["test"][0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    reference = _peft_probs(model, tokenizer, texts)
    pred = Predictor(model, tokenizer, LABELS, max_length=32, batch_size=8, device="cpu", precision="fp32")
    assert not any("lora_" in n for n, _ in pred.model.named_parameters())  # merged: a plain BERT
    np.testing.assert_allclose(pred.predict(texts).probs, reference, atol=1e-5)
    assert len(set(pred.predict(texts).labels)) > 1  # a trained, not constant, model
    # The caller's PeftModel is untouched (merge ran on a copy) and still trainable.
    after = dict(model.named_parameters())
    assert before.keys() == after.keys()
    assert all(torch.equal(before[n], after[n].detach()) for n in before)
    assert any(p.requires_grad for n, p in after.items() if "lora_" in n)
    np.testing.assert_allclose(_peft_probs(model, tokenizer, texts), reference, atol=0)


def _decisive(probs: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Rows whose top-two margin exceeds twice the largest probability difference between the
    two runs: only those cannot flip label by that error. The tiny random model is near
    uniform, so most rows are near-ties (CI once saw 0.93 agreement over all rows)."""
    top2 = np.sort(probs, axis=1)[:, -2:]
    return (top2[:, 1] - top2[:, 0]) > 2 * np.abs(other - probs).max() + 1e-7


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_low_precision_agrees_with_fp32(trained, toy_data, precision):
    model, tokenizer = trained
    texts = toy_data["test"][0] + toy_data["val"][0]
    fp32 = Predictor(model, tokenizer, LABELS, max_length=32, batch_size=8, device="cpu").predict(texts)
    low = Predictor(model, tokenizer, LABELS, max_length=32, batch_size=8, device="cpu", precision=precision)
    out = low.predict(texts)
    assert np.abs(out.probs - fp32.probs).max() < 0.05
    decisive = _decisive(fp32.probs, out.probs)
    assert np.all(out.label_ids[decisive] == fp32.label_ids[decisive])
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-5)
    assert out.probs.dtype == np.float32


def test_int8_quantizes_the_encoder_only(trained):
    model, tokenizer = trained
    pred = Predictor(model, tokenizer, LABELS, device="cpu", precision="int8")
    kinds = {name: type(m).__module__ for name, m in pred.model.named_modules()}
    encoder = [n for n, k in kinds.items() if ".encoder." in f".{n}." and n.endswith(("query", "value", "dense"))]
    assert encoder and all("quantized" in kinds[n] for n in encoder)
    assert type(pred.model.classifier) is torch.nn.Linear  # the head stays fp32 (predict.py doc)


def test_precision_resolution():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("int8", cpu) == "int8" and resolve_precision("bf16", cpu) == "bf16"
    with pytest.raises(ValueError, match="CPU quantization"):
        resolve_precision("int8", cuda)
    with pytest.raises(ValueError, match="must be one of"):
        resolve_precision("fp16", cpu)


def test_predictor_from_dir_takes_the_precision(trained, tiny_base_dir, toy_data, tmp_path):
    model, tokenizer = trained
    save_adapter(model, tmp_path / "adapter", LABELS, {"base": {"kind": "directory", "name": str(tiny_base_dir)}})
    texts = toy_data["test"][0]
    expected = Predictor(model, tokenizer, LABELS, max_length=32, device="cpu").predict(texts)
    fp32 = predictor_from_dir(tmp_path / "adapter", "test", max_length=32, device="cpu")
    int8 = predictor_from_dir(tmp_path / "adapter", "test", max_length=32, device="cpu", precision="int8")
    assert fp32.precision == "fp32" and int8.precision == "int8"
    np.testing.assert_allclose(fp32.predict(texts).probs, expected.probs, atol=1e-5)
    got = int8.predict(texts)
    assert np.abs(got.probs - expected.probs).max() < 0.05
    decisive = _decisive(expected.probs, got.probs)
    assert np.all(got.label_ids[decisive] == expected.label_ids[decisive])
