"""Inference throughput: the project's Predictor (fp32 / int8 / bf16) vs a transformers
``pipeline("text-classification")`` on the same merged model.

    python -m bench.inference [--tiny] [--device auto|cpu|cuda] [--precisions fp32,int8,bf16] [--n 4000]

Same rows (simulator texts, drift scenarios off), same truncation (max_length 64), the
same weights: a LoRA adapter (r=8 on query/value) briefly trained on simulator rows so
accuracy means something, saved and reloaded through adapter_io like a registered
version. The peer gets the adapter merged into the base (what a user serving it with a
pipeline would do) and its best batch size among PIPELINE_BATCHES; it runs at fp32 on
CPU, and also at bf16 weights on CUDA, and the best of all its configurations is the
denominator of every ratio.

Two children: ``prepare`` trains and saves the adapter (not timed); ``measure`` loads
each variant once, warms it up, then times every variant over all N texts in each
round, interleaved (A B C, then C B A). On a machine shared with other work the paired
ratios (variant / best peer within one round, median over rounds) are the headline; the
absolute figures are each variant's fastest round. Timed region: ``predict(texts)`` /
``pipe(texts)`` end to end, tokenisation included, model loading excluded.

Accuracy is against the simulator's labels; ``int8_accuracy_delta_points`` is
(int8 - fp32) accuracy x 100 on the same rows, and ``agreement_with_fp32`` the share of
rows whose predicted label matches the fp32 Predictor's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import quiet_child, ratio, run_child, write_child_result
from bench.train_throughput import base_for, simulated_rows

NAME = "inference"
MAX_LENGTH = 64
PIPELINE_BATCHES = (32, 64)
FULL = {"n": 4000, "train_rows": 3200, "train_steps": 120, "rounds": 2, "batch_size": 64}
TINY = {"n": 256, "train_rows": 256, "train_steps": 16, "rounds": 1, "batch_size": 64}
TARGET_VS_PIPELINE = 3.0
MAX_INT8_DELTA_POINTS = 0.5


def _resolve(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


# ---- children ---------------------------------------------------------------------------

def child_prepare(args, data: dict) -> dict:
    """Train a LoRA adapter briefly and save it (adapter_io) for the measure child."""
    from ct_assets.training.adapter_io import save_adapter
    from ct_assets.training.base_model import load_base
    from ct_assets.training.loop import TrainConfig, train_adapter
    from ct_assets.training.lora import attach_lora

    names = data["label_names"]
    ids = [names.index(y) for y in data["train_labels"]]
    model, tokenizer = load_base(data["base_dir"], len(names), names, seed=0)
    model = attach_lora(model, r=8, alpha=16, dropout=0.1, target_modules=("query", "value"), seed=0)
    config = TrainConfig(batch_size=32, max_length=MAX_LENGTH, learning_rate=5e-3 if not data["tiny"] else 2e-2,
                         max_epochs=50, max_steps=data["train_steps"], eval_every_steps=10_000,
                         checkpoint_every_steps=10_000, device=args.device)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as ckpt:
        train_adapter(model, tokenizer, data["train_texts"], ids, [], [], config, Path(ckpt))
    save_adapter(model, args.adapter, names, {"base": data["base_spec"]}, overwrite=True)
    return {"train_seconds": round(time.perf_counter() - started, 2)}


def _timed(fn, texts) -> tuple[float, list[str]]:
    started = time.perf_counter()
    labels = fn(texts)
    return time.perf_counter() - started, labels


def child_measure(args, data: dict) -> dict:
    import torch
    from transformers import pipeline

    from ct_assets.training.adapter_io import load_adapter
    from ct_assets.training.predict import Predictor, inference_model

    device = torch.device(args.device)
    texts, truth = data["texts"], data["labels"]
    peft_model, tokenizer, names = load_adapter(data["base_dir"], args.adapter)
    variants = {}
    for precision in args.precisions.split(","):
        pred = Predictor(peft_model, tokenizer, names, max_length=MAX_LENGTH, batch_size=args.batch_size or 64,
                         device=device, precision=precision)
        variants[f"predictor_{precision}"] = lambda t, p=pred: p.predict(t).labels
    merged = inference_model(peft_model, "fp32", device)
    peers = [("fp32", merged)]
    if device.type == "cuda":
        # On a GPU a user would also hand the pipeline bf16 weights: its best configuration.
        peers.append(("bf16", inference_model(peft_model, "fp32", device).to(torch.bfloat16)))
    for dtype, model in peers:
        for bs in PIPELINE_BATCHES:
            pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=device, batch_size=bs)
            variants[f"pipeline_{dtype}_bs{bs}"] = lambda t, p=pipe: [
                r["label"] for r in p(list(t), truncation=True, max_length=MAX_LENGTH)]
    for fn in variants.values():  # warm-up: first-call allocations, oneDNN kernel selection
        fn(texts[:64])
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    labels: dict[str, list[str]] = {}
    order = list(variants)
    for i in range(args.rounds):
        for name in order if i % 2 == 0 else order[::-1]:
            took, labels[name] = _timed(variants[name], texts)
            seconds[name].append(took)
            print(f"[inference] round {i} {name}: {len(texts) / took:.1f} samples/s", file=sys.stderr, flush=True)
    return {"seconds": seconds, "labels": labels, "truth": truth, "torch_threads": torch.get_num_threads()}


# ---- parent -----------------------------------------------------------------------------

def summarise(measured: dict, n: int) -> dict:
    truth, seconds, labels = measured["truth"], measured["seconds"], measured["labels"]
    pipes = [name for name in seconds if name.startswith("pipeline_")]
    best_peer = min(pipes, key=lambda name: min(seconds[name]))
    fp32 = labels.get("predictor_fp32")
    rows = {}
    for name, times in seconds.items():
        rows[name] = {
            "samples_per_second": round(n / min(times), 1),
            "rounds_seconds": [round(t, 3) for t in times],
            "accuracy": round(sum(a == b for a, b in zip(labels[name], truth, strict=True)) / n, 4),
            "agreement_with_fp32": (None if fp32 is None else
                                    round(sum(a == b for a, b in zip(labels[name], fp32, strict=True)) / n, 4)),
        }

    def paired(name: str) -> float:
        """Median over rounds of peer time / variant time within the round (module doc)."""
        return statistics.median(p / v for v, p in zip(seconds[name], seconds[best_peer], strict=True))

    ratios = {f"{name}_vs_best_pipeline": round(paired(name), 3) for name in seconds if name.startswith("predictor_")}
    best_ours = max((n_ for n_ in seconds if n_.startswith("predictor_")), key=lambda k: ratios[f"{k}_vs_best_pipeline"])
    ratios["best_predictor_vs_best_pipeline"] = ratios[f"{best_ours}_vs_best_pipeline"]
    ratios["best_round_fp32_vs_best_pipeline"] = ratio(rows.get("predictor_fp32", {}).get("samples_per_second"),
                                                       rows[best_peer]["samples_per_second"])
    for precision in ("int8", "bf16"):
        if f"predictor_{precision}" in rows and fp32 is not None:
            delta = rows[f"predictor_{precision}"]["accuracy"] - rows["predictor_fp32"]["accuracy"]
            ratios[f"{precision}_accuracy_delta_points"] = round(100 * delta, 2)
    return {"variants": rows, "best_peer": best_peer, "best_predictor": best_ours, "ratios": ratios}


def run(tiny: bool, device: str = "auto", precisions: str | None = None, n: int | None = None,
        rounds: int | None = None, train_steps: int | None = None, batch_size: int | None = None) -> dict:
    overrides = {"train_steps": train_steps, "batch_size": batch_size}
    size = {**(TINY if tiny else FULL), **{k: v for k, v in overrides.items() if v}}
    device = _resolve(device)
    # int8 is CPU dynamic quantization; bf16 on CPU is measured too (it pays only on
    # CPUs with AVX512-BF16/AMX, which is exactly what the number shows).
    precisions = precisions or ("fp32,int8,bf16" if device == "cpu" else "fp32,bf16")
    n = n or size["n"]
    rounds = rounds or size["rounds"]
    timeout = 300 if tiny else 3600
    with tempfile.TemporaryDirectory(prefix="ct_bench_inference_") as tmp:
        work = Path(tmp)
        texts, labels, names = simulated_rows(size["train_rows"] + n)
        spec, base_dir = base_for(tiny, work)
        data = {"tiny": tiny, "label_names": names, "base_spec": spec, "base_dir": str(base_dir),
                "train_texts": texts[:size["train_rows"]], "train_labels": labels[:size["train_rows"]],
                "train_steps": size["train_steps"], "texts": texts[size["train_rows"]:],
                "labels": labels[size["train_rows"]:]}
        data_file = work / "data.json"
        data_file.write_text(json.dumps(data))
        common = ["--data", str(data_file), "--adapter", str(work / "adapter"), "--device", device]
        prepared = run_child("bench.inference", ["--child", "prepare", *common], timeout=timeout)
        measured = run_child("bench.inference", ["--child", "measure", *common, "--precisions", precisions,
                                                 "--rounds", str(rounds), "--batch-size", str(size["batch_size"])],
                             timeout=timeout)
    return {
        "name": NAME, "tiny": tiny, "device": device, "n": n, "rounds": rounds, "max_length": MAX_LENGTH,
        "predictor_batch_size": size["batch_size"], "pipeline_batch_sizes": list(PIPELINE_BATCHES),
        "model": "tiny random BERT + LoRA r=8" if tiny else "all-MiniLM-L6-v2 + LoRA r=8 (query, value)",
        "adapter_train_steps": size["train_steps"], "adapter_train_seconds": prepared["train_seconds"],
        "torch_threads": measured["torch_threads"], "load_average": measured["load_average"],
        **summarise(measured, n),
        "targets": {"best_predictor_vs_best_pipeline": f">= {TARGET_VS_PIPELINE}",
                    "int8_accuracy_delta_points": f"> -{MAX_INT8_DELTA_POINTS}"},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precisions", help="comma-separated Predictor precisions (default: fp32,int8,bf16 on "
                        "CPU, fp32,bf16 on CUDA)")
    parser.add_argument("--n", type=int, help="texts to score per variant and round")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--train-steps", type=int, help="optimizer steps of the adapter's brief training")
    parser.add_argument("--batch-size", type=int, help=f"Predictor batch size (default {FULL['batch_size']})")
    parser.add_argument("--child", choices=("prepare", "measure"))
    parser.add_argument("--data")
    parser.add_argument("--adapter")
    parser.add_argument("--result-file")
    args = parser.parse_args(argv)
    if args.child:
        quiet_child()
        data = json.loads(Path(args.data).read_text())
        handler = child_prepare if args.child == "prepare" else child_measure
        write_child_result(args.result_file, handler(args, data))
        return 0
    result = run(args.tiny, args.device, args.precisions, args.n, args.rounds, args.train_steps,
                 args.batch_size)
    if args.result_file:
        write_child_result(args.result_file, result)
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
