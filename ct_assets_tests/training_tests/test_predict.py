"""Predictor: input order, probabilities, eval mode, bucketed batches."""

from __future__ import annotations

import numpy as np
import pytest

from ct_assets.training.base_model import load_base
from ct_assets.training.loop import TrainConfig, train_adapter
from ct_assets.training.lora import attach_lora
from ct_assets.training.predict import Predictor
from ct_assets_tests.toy_text import LABELS


@pytest.fixture(scope="module")
def predictor(tiny_base_dir, toy_data, tmp_path_factory):
    """A briefly trained tiny model (so predictions differ between inputs), dropout 0.5."""
    model, tokenizer = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    model = attach_lora(model, r=4, alpha=8, dropout=0.5, seed=0)
    config = TrainConfig(batch_size=16, max_epochs=4, learning_rate=2e-2, max_length=32, eval_every_steps=100)
    train_adapter(model, tokenizer, *toy_data["train"], *toy_data["val"], config, tmp_path_factory.mktemp("c"))
    return Predictor(model, tokenizer, LABELS, max_length=32, batch_size=4, device="cpu")


def test_results_come_back_in_input_order(predictor, toy_data):
    texts = toy_data["test"][0][:30]
    batched = predictor.predict(texts)
    one_by_one = np.concatenate([predictor.predict([t]).probs for t in texts])
    np.testing.assert_allclose(batched.probs, one_by_one, atol=1e-5)
    reversed_probs = predictor.predict(texts[::-1]).probs[::-1]
    np.testing.assert_allclose(batched.probs, reversed_probs, atol=1e-5)
    assert len(set(batched.labels)) > 1  # not a constant model, so order actually matters


def test_probabilities_labels_and_confidence(predictor, toy_data):
    out = predictor.predict(toy_data["test"][0][:17])
    assert out.probs.shape == (17, len(LABELS)) and out.probs.dtype == np.float32
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out.confidence, out.probs.max(axis=1))
    assert out.labels == [LABELS[i] for i in out.label_ids]


def test_eval_mode_is_deterministic_and_gradient_free(predictor, toy_data):
    predictor.model.train()  # a caller left it in train mode: dropout 0.5 would show
    predictor.model.zero_grad(set_to_none=True)
    texts = toy_data["test"][0][:10]
    first = predictor.predict(texts)
    assert not predictor.model.training
    np.testing.assert_array_equal(first.probs, predictor.predict(texts).probs)
    assert all(p.grad is None for p in predictor.model.parameters())


def test_empty_input_and_label_mismatch(predictor):
    out = predictor.predict([])
    assert out.probs.shape == (0, len(LABELS)) and out.labels == [] and out.confidence.shape == (0,)
    with pytest.raises(ValueError, match="6 outputs but 2 labels"):
        Predictor(predictor.model, predictor.tokenizer, ["a", "b"], device="cpu")
