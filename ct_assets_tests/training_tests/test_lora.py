"""LoRA attachment: the right modules per architecture, a frozen base, a trainable head."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from ct_assets.training.lora import (
    attach_lora,
    default_target_modules,
    trainable_params,
)

TINY = dict(vocab_size=64, num_labels=3)


def tiny_models() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    common = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **TINY)
    return {
        "bert": BertForSequenceClassification(BertConfig(**common)),
        "roberta": RobertaForSequenceClassification(RobertaConfig(**common, pad_token_id=1)),
        "deberta-v2": DebertaV2ForSequenceClassification(DebertaV2Config(**common)),
        "distilbert": DistilBertForSequenceClassification(
            DistilBertConfig(dim=16, n_layers=1, n_heads=2, hidden_dim=32, **TINY)
        ),
    }


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("bert", ["query", "value"]),
        ("roberta", ["query", "value"]),
        ("distilbert", ["q_lin", "v_lin"]),
        ("deberta-v2", ["query_proj", "value_proj"]),
    ],
)
def test_default_target_modules_per_architecture(arch, expected):
    model = tiny_models()[arch]
    assert model.config.model_type == arch
    assert default_target_modules(model) == expected


class _Attn(nn.Module):
    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        for name in names:
            setattr(self, name, nn.Linear(4, 4))


class _Unknown(nn.Module):
    def __init__(self, names: tuple[str, ...]) -> None:
        super().__init__()
        self.config = type("Cfg", (), {"model_type": "mystery-net"})()
        self.layer = nn.ModuleList([_Attn(names), _Attn(names)])


def test_unknown_architecture_falls_back_to_q_v_named_linears():
    assert default_target_modules(_Unknown(("q_proj", "k_proj", "v_proj", "o_proj"))) == ["q_proj", "v_proj"]


def test_unknown_architecture_without_q_v_raises_naming_the_type():
    with pytest.raises(ValueError, match="mystery-net"):
        default_target_modules(_Unknown(("fc1", "fc2")))


@pytest.mark.parametrize("arch", ["bert", "roberta", "distilbert", "deberta-v2"])
def test_attach_lora_freezes_base_and_trains_only_lora_and_head(arch):
    model = attach_lora(tiny_models()[arch], r=2, alpha=4, dropout=0.0)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable, arch
    for name in trainable:
        assert "lora_" in name or "modules_to_save" in name, name
    # Every base weight (including the original, wrapped head) is frozen.
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert any("original_module" in n or "classifier" in n for n in frozen)
    assert all("lora_" not in n for n in frozen)
    # The new classification head(s) train: for distilbert that includes pre_classifier,
    # which would otherwise stay random and differ after every reload.
    heads = {"distilbert": ["pre_classifier", "classifier"], "deberta-v2": ["pooler", "classifier"]}
    for head in heads.get(arch, ["classifier"]):
        assert any(f".{head}.modules_to_save." in n for n in trainable), (arch, head)
    count = trainable_params(model)
    assert 0 < count.trainable < count.total and count.fraction < 0.5


def test_attach_lora_rejects_unknown_target_module():
    with pytest.raises(ValueError, match="not_there"):
        attach_lora(tiny_models()["bert"], r=2, alpha=4, dropout=0.0, target_modules=["not_there"])


def test_attach_lora_is_seeded_and_keeps_global_rng():
    base_a, base_b = tiny_models()["bert"], tiny_models()["bert"]
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = attach_lora(base_a, r=2, alpha=4, dropout=0.0, seed=5)
    assert torch.equal(torch.rand(1), expected)  # the caller's RNG stream is untouched
    b = attach_lora(base_b, r=2, alpha=4, dropout=0.0, seed=5)
    names = [n for n, _ in a.named_parameters() if "lora_A" in n]
    assert names
    for name in names:
        assert torch.equal(a.get_parameter(name), b.get_parameter(name))
