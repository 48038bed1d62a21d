"""BENCHMARKS.md section 7: `ct serve` under load, beside its peers (bench/serve_load.py)."""

from __future__ import annotations

from bench.report import _f, _status, _table, _x

PEERS = {"mlflow_models_serve": "`mlflow models serve` (same pyfunc version)",
         "naive_pipeline": "FastAPI + transformers pipeline per request"}


def serving_rows(s: dict) -> list[list[str]]:
    r, runs = s["ratios"], s["runs"]
    best = runs[s["best_peer"]]
    vs_best = r["throughput_vs_best_peer"]
    return [
        ["7 serving", f"requests/s, {s['clients']} clients x 1 text, vs {PEERS[s['best_peer']]}",
         _f(runs["ct_serve"]["requests_per_second"], 1), _f(best["requests_per_second"], 1), _x(vs_best),
         ">= 1x", _status(None if vs_best is None else vs_best >= 1.0)],
        ["7 serving", "p99 latency (ms) vs the same peer", _f(runs["ct_serve"]["p99_ms"], 1), _f(best["p99_ms"], 1),
         _x(r["p99_vs_best_peer"]), "-", "-"],
        ["7 serving", "throughput with serving.shadow on vs off", _f(runs["ct_serve_shadow"]["requests_per_second"], 1),
         _f(runs["ct_serve"]["requests_per_second"], 1), _x(r["shadow_throughput_cost"]), "-", "-"],
    ]


def serving_detail(s: dict) -> list[str]:
    names = {"ct_serve": "`ct serve` (micro-batching)", "ct_serve_shadow": "`ct serve`, serving.shadow: true", **PEERS}
    rows = [[names[k], _f(v["requests_per_second"], 1), _f(v["p50_ms"], 1), _f(v["p99_ms"], 1), _f(v["requests"]),
             _f(v["errors"]), _f(v["startup_seconds"], 1)] for k, v in s["runs"].items()]
    shadow = s["ratios"]["shadow_throughput_cost"]
    return [
        "## 7. Serving",
        "",
        f"`python -m bench.serve_load`: {s['model']}, registered in MLflow; each server in turn on loopback, "
        f"{s['clients']} client threads each sending one single-text request after another for "
        f"{s['seconds_per_run']:.0f} s (after a short warm-up), on the same CPU as the clients.",
        "",
        *_table(["server", "requests/s", "p50 ms", "p99 ms", "requests", "errors", "start-up s"], rows),
        "",
        "* `ct serve` merges concurrent requests into micro-batches (serving.max_batch, max_wait_ms), so its "
        "model runs one forward pass per batch where the peers run one per request.",
        f"* Shadow mode scores every request on the challenger too, off the response path: "
        f"{_x(shadow)} of the throughput without it (both models share the same cores).",
    ]
