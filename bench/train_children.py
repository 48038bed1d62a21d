"""The measured children of bench/train_throughput.py: the project's fit_adapter, the plain
transformers.Trainer + peft reference, and the machine's GEMM peak with the base's shape.
Each runs in its own subprocess (``python -m bench.train_throughput --child NAME``), so the
peak RSS it reports is its own. The shared hyper-parameters live here, beside the code that
applies them to both paths; the module docstring of train_throughput says what is timed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.common import peak_rss_mb

LORA = {"r": 8, "alpha": 16, "dropout": 0.1, "targets": ("query", "value")}
HPARAMS = {"batch_size": 32, "max_length": 64, "learning_rate": 1e-3, "weight_decay": 0.01,
           "warmup_fraction": 0.06, "max_grad_norm": 1.0, "seed": 13}


# ---- shared child pieces ---------------------------------------------------------------

def _import_everything() -> None:
    """Both training children import the same modules before the RSS baseline is taken,
    so 'RSS increase' is the model + training, not which libraries a path imports."""
    import peft  # noqa: F401
    import polars  # noqa: F401
    import torch  # noqa: F401
    import transformers  # noqa: F401
    from transformers import Trainer  # noqa: F401

    import ct_assets.training.fit  # noqa: F401


class TokenCounter:
    """Per-batch (rows, padded width, real lengths) of what was actually trained on."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int, list[int]]] = []

    def add(self, attention_mask) -> None:
        rows, width = attention_mask.shape
        self.batches.append((int(rows), int(width), attention_mask.sum(dim=1).tolist()))

    def totals(self, steps: int) -> dict:
        used = self.batches[:steps]  # a dataloader may prefetch past the last step
        return {
            "samples": sum(b[0] for b in used),
            "real_tokens": sum(sum(b[2]) for b in used),
            "real_tokens_sq": sum(s * s for b in used for s in b[2]),
            "padded_tokens": sum(b[0] * b[1] for b in used),
            "padded_tokens_sq": sum(b[0] * b[1] * b[1] for b in used),
            "batches_seen": len(self.batches),
        }


def _device_precision(args) -> tuple[str, str]:
    import torch

    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    return device, args.precision


def _cuda_peak_mb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None


def _heldout_accuracy(model, tokenizer, texts, labels, label_names, max_length, device) -> float:
    from ct_assets.training.predict import evaluate

    ids = {name: i for i, name in enumerate(label_names)}
    return evaluate(model, tokenizer, texts, [ids[y] for y in labels], max_length=max_length,
                    device=device)["val_accuracy"]


# ---- child: the project's path ---------------------------------------------------------

def child_project(args, data: dict) -> dict:
    _import_everything()
    baseline = peak_rss_mb()
    import polars as pl

    import ct_assets.training.loop as train_mod
    from ct_assets.training.adapter_io import load_adapter
    from ct_assets.training.base_model import BaseModelSpec
    from ct_assets.training.fit import LoraParams, fit_adapter
    from ct_assets.training.loop import TrainConfig

    device, precision = _device_precision(args)
    counter = TokenCounter()
    real_pad_batch = train_mod.pad_batch

    def counting_pad_batch(seqs, pad_id, dev):
        batch = real_pad_batch(seqs, pad_id, dev)
        counter.add(batch["attention_mask"])
        return batch

    # Counts the batches the loop really built; evaluation uses predict.pad_batch, untouched.
    train_mod.pad_batch = counting_pad_batch
    hp = HPARAMS
    config = TrainConfig(
        max_length=hp["max_length"], batch_size=hp["batch_size"], max_epochs=1, learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"], warmup_fraction=hp["warmup_fraction"], max_grad_norm=hp["max_grad_norm"],
        seed=hp["seed"], max_steps=args.steps, eval_every_steps=10**9, checkpoint_every_steps=10**9,
        precision=precision, device=device,
    )
    train = pl.DataFrame({"text": data["texts"], "label": data["labels"]})
    empty = train.clear()  # no validation rows: no evaluation anywhere in the loop
    work = Path(os.environ["CT_HOME"]) / "fit"  # the child's private CT_HOME, removed by the parent
    outcome = fit_adapter(
        train=train, val=empty, replay=empty, labels=data["label_names"],
        base=BaseModelSpec(**data["base_spec"]),
        lora=LoraParams(LORA["r"], LORA["alpha"], LORA["dropout"], LORA["targets"]),
        config=config, min_rows=1, checkpoint_dir=work / "ckpt", out_dir=work / "adapter", manifest_extra={},
    )
    rss = peak_rss_mb()
    gpu_mb = _cuda_peak_mb(device)
    r = outcome.result
    model, tokenizer, _ = load_adapter(data["base_dir"], outcome.adapter.directory)
    return {
        "cls_only_last_layer": config.cls_only_last_layer,
        "steps": r.steps,
        "timed_seconds": r.train_seconds,
        "loop_samples_per_second": r.samples_per_second,  # optimizer steps only, the loop's own figure
        "setup_seconds": outcome.seconds - r.train_seconds,  # load base, attach LoRA, hash, save adapter
        **counter.totals(args.steps),
        "trainable_params": outcome.trainable_params,
        "adapter_bytes": outcome.adapter.bytes,
        "base_bytes": outcome.base_bytes,
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": rss,
        "cuda_peak_allocated_mb": gpu_mb,
        "heldout_accuracy": _heldout_accuracy(model, tokenizer, data["heldout_texts"], data["heldout_labels"],
                                              data["label_names"], hp["max_length"], device),
    }


# ---- child: the plain Trainer reference ------------------------------------------------

def child_trainer(args, data: dict, grouped: bool) -> dict:
    _import_everything()
    baseline = peak_rss_mb()
    import torch
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    device, precision = _device_precision(args)
    hp = HPARAMS
    names = data["label_names"]
    counter = TokenCounter()

    class CountingCollator(DataCollatorWithPadding):
        def __call__(self, features):
            batch = super().__call__(features)
            counter.add(batch["attention_mask"])
            return batch

    started = time.perf_counter()
    torch.manual_seed(hp["seed"])
    model = AutoModelForSequenceClassification.from_pretrained(
        data["base_dir"], num_labels=len(names), id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        ignore_mismatched_sizes=True)  # a base saved with a classifier head (the tiny one) gets a fresh one
    tokenizer = AutoTokenizer.from_pretrained(data["base_dir"])
    model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=LORA["r"], lora_alpha=LORA["alpha"],
                                             lora_dropout=LORA["dropout"], target_modules=list(LORA["targets"])))
    setup = time.perf_counter() - started

    work = str(Path(os.environ["CT_HOME"]) / "trainer")
    t0 = time.perf_counter()
    ids = {n: i for i, n in enumerate(names)}
    enc = tokenizer(data["texts"], truncation=True, max_length=hp["max_length"])
    rows = [{"input_ids": enc["input_ids"][i], "attention_mask": enc["attention_mask"][i],
             "labels": ids[y]} for i, y in enumerate(data["labels"])]
    targs = TrainingArguments(
        output_dir=work, per_device_train_batch_size=hp["batch_size"], learning_rate=hp["learning_rate"],
        weight_decay=hp["weight_decay"], warmup_steps=hp["warmup_fraction"], max_grad_norm=hp["max_grad_norm"],
        max_steps=args.steps, lr_scheduler_type="linear", seed=hp["seed"],
        train_sampling_strategy="group_by_length" if grouped else "random",
        eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
        dataloader_num_workers=0, use_cpu=device == "cpu", bf16=precision == "bf16",
    )
    trainer = Trainer(model=model, args=targs, train_dataset=rows,
                      data_collator=CountingCollator(tokenizer), processing_class=tokenizer)
    out = trainer.train()
    timed = time.perf_counter() - t0
    rss = peak_rss_mb()
    gpu_mb = _cuda_peak_mb(device)
    return {
        "steps": out.global_step,
        "timed_seconds": timed,
        "loop_samples_per_second": out.metrics["train_samples_per_second"],
        "setup_seconds": setup,
        **counter.totals(args.steps),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "rss_after_imports_mb": baseline,
        "peak_rss_mb": rss,
        "cuda_peak_allocated_mb": gpu_mb,
        "heldout_accuracy": _heldout_accuracy(model, tokenizer, data["heldout_texts"], data["heldout_labels"],
                                              names, hp["max_length"], device),
    }


# ---- child: machine peak and model shape -----------------------------------------------

def child_peak(args, data: dict) -> dict:
    """GEMM peak (best of several) and the base's FLOP-relevant shape."""
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModel

    device, precision = _device_precision(args)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    n = args.gemm_n
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(2):  # warm-up: thread pool, caches, cuBLAS heuristics
        a @ b
    sync()
    reps, best = 4, float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(reps):
            a @ b
        sync()
        best = min(best, (time.perf_counter() - t0) / reps)
    config = AutoConfig.from_pretrained(data["base_dir"])
    model = AutoModel.from_pretrained(data["base_dir"])
    encoder_linear = sum(m.weight.numel() for name, m in model.named_modules()
                         if isinstance(m, nn.Linear) and ".layer." in f".{name}")
    adapted = sum(1 for name, m in model.named_modules()
                  if isinstance(m, nn.Linear) and name.rsplit(".", 1)[-1] in LORA["targets"])
    return {
        "gemm_n": n, "gemm_dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
        "peak_flops": 2 * n**3 / best,
        "base_params": sum(p.numel() for p in model.parameters()),
        "encoder_linear_params": encoder_linear,
        "hidden": config.hidden_size, "layers": config.num_hidden_layers, "lora_modules": adapted,
    }
