"""BENCHMARKS.md section 10: inference throughput (bench/inference.py)."""

from __future__ import annotations

from bench.report import _f, _table, _x

TARGET = 3.0
MAX_DELTA = 0.5


def inference_rows(i: dict) -> list[list[str]]:
    r, peer = i["ratios"], i["variants"][i["best_peer"]]
    best = i["best_predictor"]
    ok = r["best_predictor_vs_best_pipeline"] >= TARGET
    rows = [["10", f"inference samples/s, best Predictor ({best.removeprefix('predictor_')}) vs best pipeline "
             f"({i['best_peer'].removeprefix('pipeline_')})",
             _f(i["variants"][best]["samples_per_second"], 0), _f(peer["samples_per_second"], 0),
             _x(r["best_predictor_vs_best_pipeline"]), f">= {TARGET:g}x", "met" if ok else "**missed**"]]
    if "int8_accuracy_delta_points" in r:
        delta = r["int8_accuracy_delta_points"]
        rows.append(["10", "int8 accuracy delta vs fp32 (points, same rows)", _f(delta, 2), "-", "-",
                     f"|delta| < {MAX_DELTA:g}", "met" if abs(delta) < MAX_DELTA else "**missed**"])
    return rows


def inference_section(i: dict) -> list[str]:
    rows = [[name, _f(v["samples_per_second"], 1), " / ".join(_f(t, 2) for t in v["rounds_seconds"]),
             _f(v["accuracy"], 4), _f(v["agreement_with_fp32"], 4),
             _x(i["ratios"].get(f"{name}_vs_best_pipeline")) if name.startswith("predictor_") else "-"]
            for name, v in i["variants"].items()]
    return [
        "## 10. Inference",
        "",
        f"`python -m bench.inference` ({i['measured_at']}, {i['device']}, {i['torch_threads']} torch threads): "
        f"{i['model']}, {i['n']:,} simulator texts, max_length {i['max_length']}, {i['rounds']} interleaved rounds. "
        "The Predictor sorts by length, pads per batch, merges the LoRA weights into a copy of the base and runs "
        "under `torch.inference_mode`; int8 is dynamic quantization of the encoder's Linear layers. The peer is "
        "`transformers.pipeline(\"text-classification\")` on the same merged model at its best batch size. Ratios "
        "are paired within a round (median over rounds); samples/s is each variant's fastest round.",
        "",
        *_table(["variant", "samples/s", "round seconds", "accuracy", "agreement with fp32",
                 "vs best pipeline (paired)"], rows),
        "",
        f"* Load average around the measuring child: {i['load_average']['before']:.1f} before, "
        f"{i['load_average']['after']:.1f} after.",
    ]
