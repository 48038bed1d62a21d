"""Per-candidate training-step ablation for bench/train_throughput.py (its "ablation" key).

One child process, one base, the same fixed batches (the project's bucketed batches of
the benchmark rows) for every candidate. Each candidate is the project's training step
(forward, cross-entropy, backward, grad clip, AdamW) with one setting changed from the
project's defaults. Candidates run interleaved, A B C .. then .. C B A, ``repeats`` times;
the figure is the median steps/s, and ``vs_project`` the median of the per-round ratios
to the project row of the same round (adjacent in time, so under similar load).

torch.compile is not a row here: its first compile of forward+backward takes minutes on
a small CPU, longer than the whole benchmark; speed.py records what it measured.
"""

from __future__ import annotations

import copy
import statistics
import time

CANDIDATES = ("project", "no_cls_only_last_layer", "eager_attention", "adamw_fused", "bf16_autocast",
              "pad_multiple_8", "threads_1")


def child_ablation(args, data: dict, lora: dict, hp: dict, batches: int, repeats: int) -> dict:
    import torch
    from torch.nn import functional as F

    from ct_assets.training.base_model import load_base
    from ct_assets.training.lora import attach_lora
    from ct_assets.training.predict import bucketed_batches, encode, pad_batch
    from ct_assets.training.speed import cls_only_last_layer, intra_op_threads, pad_to_multiple

    names = data["label_names"]
    label_id = {n: i for i, n in enumerate(names)}
    model, tokenizer = load_base(data["base_dir"], len(names), names, seed=hp["seed"])
    base = attach_lora(model, lora["r"], lora["alpha"], lora["dropout"], list(lora["targets"]), seed=hp["seed"])
    base.train()
    ids = encode(tokenizer, data["texts"], hp["max_length"])
    ys = [label_id[y] for y in data["labels"]]
    chosen = bucketed_batches([len(s) for s in ids], hp["batch_size"], hp["seed"], 0)[:batches]
    bf16_ok = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()

    def make(name: str) -> dict:
        m = copy.deepcopy(base)
        if name == "eager_attention":
            m.get_base_model().set_attn_implementation("eager")
        params = [p for p in m.parameters() if p.requires_grad]
        extra = {"fused": True} if name == "adamw_fused" else {}
        return {"model": m, "params": params, "opt": torch.optim.AdamW(params, lr=hp["learning_rate"],
                                                                       weight_decay=hp["weight_decay"], **extra)}

    def run(name: str, c: dict) -> float:
        amp = torch.bfloat16 if name == "bf16_autocast" else None
        started = time.perf_counter()
        with intra_op_threads(1 if name == "threads_1" else 0), \
                cls_only_last_layer(c["model"], name != "no_cls_only_last_layer"):
            for idx in chosen:
                batch = pad_batch([ids[i] for i in idx], tokenizer.pad_token_id, torch.device("cpu"))
                batch = pad_to_multiple(batch, 8 if name == "pad_multiple_8" else 1, tokenizer.pad_token_id)
                with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                    logits = c["model"](**batch).logits
                loss = F.cross_entropy(logits.float(), torch.as_tensor([ys[i] for i in idx]))
                loss.item()
                c["opt"].zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(c["params"], hp["max_grad_norm"])
                c["opt"].step()
        return len(chosen) / (time.perf_counter() - started)

    names_run = [n for n in CANDIDATES if n != "bf16_autocast" or bf16_ok]
    made = {n: make(n) for n in names_run}
    for n in names_run:  # warm-up: thread pool, allocator, oneDNN primitives
        run(n, made[n])
    rounds: dict[str, list[float]] = {n: [] for n in names_run}
    for r in range(repeats):
        for n in names_run if r % 2 == 0 else names_run[::-1]:
            rounds[n].append(run(n, made[n]))
    table = {}
    for n, xs in rounds.items():
        table[n] = {"steps_per_second": statistics.median(xs),
                    "vs_project": statistics.median(x / p for x, p in zip(xs, rounds["project"], strict=True)),
                    "rounds": [round(x, 4) for x in xs]}
    return {"batches": len(chosen), "repeats": repeats, "widths": [max(len(ids[i]) for i in b) for b in chosen],
            "cpu_bf16_supported": bool(bf16_ok), "candidates": table}
