"""Shared fixtures for the ML tests: a tiny BERT base built once per session, and a
learnable toy task (each label has its own keywords, wrapped in shared filler text).

The tiny base (~50k params) trains in milliseconds per step, so every test here runs on
the same code path as the real MiniLM at a thousandth of the cost.
"""

from __future__ import annotations

import os
import random

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# One intra-op thread: a 32-wide model gains nothing from two, and on a shared 2-core box
# OpenMP's spinning barrier makes two threads 5-10x slower as soon as another process
# holds a core (measured: the learning test took 2.5 s with 1 thread, 16 s with 2).
torch.set_num_threads(1)

LABELS = ["billing", "shipping", "login", "refund", "bug", "feature"]
# Label-specific words mixed with shared filler. A random tiny BERT cannot learn the
# phrase-level version of this task in a few hundred steps (its [CLS] mixes too little),
# so the signal is per word; 0-12 fillers make lengths vary from 3 to 17 tokens.
KEYWORDS = {
    "billing": ["invoice", "charged", "payment", "card"],
    "shipping": ["package", "delivery", "courier", "parcel"],
    "login": ["password", "signin", "username", "locked"],
    "refund": ["refund", "reimburse", "return", "money"],
    "bug": ["crash", "error", "freezes", "broken"],
    "feature": ["darkmode", "export", "request", "suggestion"],
}
FILLER = (
    "hi hello please help my the a is not working since yesterday with order account "
    "thanks again today can you look at this for me urgent"
).split()


def make_rows(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    """n synthetic support tickets and their label ids (balanced, shuffled)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        y = i % len(LABELS)
        words = [rng.choice(KEYWORDS[LABELS[y]]) for _ in range(rng.randint(1, 3))]
        words += [rng.choice(FILLER) for _ in range(rng.randint(0, 12))]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(y)
    order = list(range(n))
    rng.shuffle(order)
    return [texts[i] for i in order], [labels[i] for i in order]


@pytest.fixture(scope="session")
def toy_data() -> dict[str, tuple[list[str], list[int]]]:
    return {"train": make_rows(240, seed=1), "val": make_rows(60, seed=2), "test": make_rows(60, seed=3)}


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory):
    from ct_assets.training.base_model import build_tiny_model

    texts, _ = make_rows(300, seed=0)
    return build_tiny_model(tmp_path_factory.mktemp("tiny_base"), texts)


@pytest.fixture
def tiny_peft(tiny_base_dir):
    """A fresh (model, tokenizer) with LoRA attached; same init every time."""
    from ct_assets.training.base_model import load_base
    from ct_assets.training.lora import attach_lora

    model, tokenizer = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    return attach_lora(model, r=4, alpha=8, dropout=0.1, seed=0), tokenizer
