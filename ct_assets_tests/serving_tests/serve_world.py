"""A real ``ct serve`` for the server tests: a temporary CT_HOME with its ct.yaml, a real
MLflow registry on SQLite holding tiny adapters (the toy base, a few kB each), and the
server as a subprocess on a free 127.0.0.1 port, stopped by its PID.

Nothing waits on the clock: every wait polls its condition under a generous deadline,
so a slow machine makes the tests slower, never red.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from ct_assets.core.home import CtHome
from ct_assets.core.settings import default_config_text
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.registry.records import EvalRecord
from ct_assets.training.adapter_io import save_adapter
from ct_assets.training.base_model import base_hash, load_base
from ct_assets.training.lora import attach_lora
from ct_assets_tests.dagster_dev_server import free_port

CT = Path(sys.executable).parent / "ct"
LABELS = tuple(yaml.safe_load(default_config_text())["labels"])
DEADLINE_S = 180.0  # generous on purpose: a start-up imports torch, transformers and MLflow


def poll(check: Callable[[], object], what: str, deadline_s: float = DEADLINE_S, log: Path | None = None):
    """check()'s first truthy value; AssertionError naming ``what`` (and the server log) at the deadline."""
    deadline = time.monotonic() + deadline_s
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"{what}: not within {deadline_s:.0f} s (last: {last!r})\n{tail}")


class ServeWorld:
    """CT_HOME + ct.yaml + the registry the server reads; tiny adapters registered on demand."""

    def __init__(self, root: Path, base_dir: Path, **serving) -> None:
        self.home = CtHome(root / "ct_home").ensure()
        self.base_dir, self.adapters = base_dir, root / "adapters"
        raw = yaml.safe_load(default_config_text())
        raw["source"]["kind"] = "landing_zone"
        raw["serving"] = {**raw.get("serving", {}), **serving}
        self.config = root / "ct.yaml"
        self.config.write_text(yaml.safe_dump(raw))
        self.registry = AdapterRegistry(self.home.mlflow_tracking_uri, self.home.mlflow_artifact_root)
        self.registry.aliases()  # the database exists (schema migrated) before any server reads it

    def register(self, seed: int, *, broken: bool = False) -> int:
        """A fresh LoRA adapter on the tiny base as a new version (it becomes the challenger).
        ``broken``: its manifest names a base hash that is not the base here, so loading fails."""
        model, _ = load_base(self.base_dir, len(LABELS), LABELS, seed=seed)
        model = attach_lora(model, r=4, alpha=8, dropout=0.0, seed=seed)
        base = {"kind": "directory", "name": str(self.base_dir), "model_id": "tiny-bert",
                "hash": "0" * 64 if broken else base_hash(self.base_dir)}
        out = save_adapter(model, self.adapters / f"seed{seed}", LABELS, {"base": base}).directory
        return self.registry.register_adapter(self.registry.create_run(f"tiny-{seed}"), out).version

    def gate(self, version: int, passed: bool = True) -> None:
        self.registry.record_evaluation(version, EvalRecord(
            passed=passed, reasons=() if passed else ("golden accuracy dropped",), champion=None,
            golden_accuracy=0.9))

    def landing_rows(self) -> dict[str, dict]:
        """Every served row in the landing zone, by event id."""
        rows = {}
        for path in sorted((self.home.landing).glob("dt=*/served/*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rec = json.loads(line)
                    rows[rec["event_id"]] = rec | {"_day": path.parent.parent.name}
        return rows


@dataclass(frozen=True)
class Server:
    url: str
    log: Path

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=30)

    def post(self, path: str, **kw) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kw)

    def predict(self, texts: list[str], ids: list[str] | None = None, **extra) -> list[dict]:
        body = {"texts": texts, **({"ids": ids} if ids is not None else {}), **extra}
        resp = self.post("/predict", json=body)
        assert resp.status_code == 200, (resp.status_code, resp.text)
        return resp.json()["predictions"]

    def ready(self) -> dict | None:
        resp = self.get("/readyz")
        return resp.json() if resp.status_code == 200 else None


@contextlib.contextmanager
def running_server(world: ServeWorld, *flags: str) -> Iterator[Server]:
    """``ct serve`` on a free port; yields once /healthz answers; SIGINT (graceful: the
    prediction log is flushed), then SIGKILL if it has not exited."""
    port = free_port()
    env = {**os.environ, "CT_HOME": str(world.home.root), "CT_CONFIG": str(world.config),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
           "OMP_NUM_THREADS": "1"}
    log_path = world.home.root / f"serve-{port}.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(CT), "serve", "--port", str(port), *flags], cwd=world.home.root, env=env,
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            server = Server(f"http://127.0.0.1:{port}", log_path)
            poll(lambda: _alive(proc, server), "ct serve answering /healthz", log=log_path)
            yield server
        finally:
            _stop(proc)


def _alive(proc: subprocess.Popen, server: Server) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"ct serve exited with {proc.returncode}:\n{server.log.read_text()[-4000:]}")
    try:
        return server.get("/healthz").status_code == 200
    except requests.ConnectionError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
