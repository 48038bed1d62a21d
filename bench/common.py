"""Shared plumbing: child processes, RSS, machine description, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "peft", "dagster", "polars", "great-expectations", "mlflow")


def peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ratio(num: float | None, den: float | None) -> float | None:
    """num / den, or None when either side is missing or den is zero (never a fake 0/inf)."""
    if num is None or den is None or den == 0:
        return None
    return num / den


def child_env(ct_home: Path | None = None) -> dict[str, str]:
    """Environment for a measured child: offline, quiet, and writing only under a temp CT_HOME.

    CT_HOME is always set because importing ct_assets.definitions builds the default
    Definitions, which would otherwise create ./.ct_home inside the repo.
    """
    env = dict(os.environ)
    home = ct_home or Path(os.environ.get("CT_HOME", ".ct_home")).resolve()
    env.update({
        "CT_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "TOKENIZERS_PARALLELISM": "false",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")])),
        "DAGSTER_DISABLE_TELEMETRY": "1",
        # Load reports and progress bars per from_pretrained would bury the results.
        "TRANSFORMERS_VERBOSITY": "error",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    })
    return env


def run_child(module: str, args: Sequence[str], *, timeout: float, ct_home: Path | None = None,
              extra_env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    """Run ``python -m <module> <args> --result-file F`` and return the JSON it wrote.

    A non-zero exit or a timeout raises (check=True): a benchmark that failed must not
    produce a table row. The child's output goes straight to our stderr so a long run
    shows progress.
    """
    with tempfile.TemporaryDirectory(prefix="ct_bench_child_") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", module, *args, "--result-file", str(result_file)]
        started, load_before = time.perf_counter(), os.getloadavg()[0]
        # Without a given CT_HOME the child gets a private one in this temp dir (removed after).
        home = ct_home or Path(tmp) / "ct_home"
        subprocess.run(cmd, cwd=cwd or REPO, env={**child_env(home), **(extra_env or {})}, timeout=timeout, check=True,
                       stdout=sys.stderr, stderr=sys.stderr)
        result = json.loads(result_file.read_text())
    result["process_wall_seconds"] = round(time.perf_counter() - started, 3)
    # 1-minute load average around the child: tells a contended measurement from a slow path.
    result["load_average"] = {"before": load_before, "after": os.getloadavg()[0]}
    return result


def quiet_child() -> None:
    """Dagster repeats a beta/preview notice per definition, peft a transformers-5
    deprecation per model; in a benchmark log they only hide the progress lines."""
    warnings.filterwarnings("ignore", message=".*is currently in (beta|preview).*")
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)


def write_child_result(path: str | Path, payload: dict) -> None:
    Path(path).write_text(json.dumps(payload, indent=2, default=str))


def write_result(out_dir: Path, name: str, payload: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def _cpu_model() -> str:
    with open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    raise RuntimeError("MemTotal not found in /proc/meminfo")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict:
    import torch

    return {
        "cpu_model": _cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in PACKAGES},
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
