"""A training run SIGKILLed mid-training resumes from its checkpoint when re-executed.

Why: preemption kills the process; no exception, no cleanup. lora_adapter keys its
checkpoint folder by the run's root id, which re-execution from failure keeps, so the
re-executed step must pick up the dead run's checkpoint instead of training from step 0.
Here the run is a real Dagster run in its own process group on a persistent instance,
killed with SIGKILL once a checkpoint is on disk; the kill takes the run's Pipes training
process with it (its child, in its group), so no orphan trains on and registers behind the
dead run's back. The dead run is marked failed by the project's own sweep and re-executed
from failure through Dagster's public API, whose new training process resumes.
(test_pipes_training kills only the training process, and the step's RetryPolicy resumes.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterRunStatus, ReexecutionOptions, execute_job, reconstructable

from ct_assets.core.home import CT_HOME_ENV
from ct_assets.definitions import build_definitions
from ct_assets.orchestration.run_sweep import process_tags, sweep_dead_runs
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.registry.records import DAGSTER_RUN
from ct_assets.training.pipes_worker import PID_FILE
from ct_assets_tests.helpers import day
from ct_assets_tests.training_tests import resume_worker
from ct_assets_tests.training_tests.resume_worker import BASE_DIR_ENV, IN_PROCESS, PARTITION

DATA = ("raw_window", "validated_window", "quarantined_rows")
# Failure modes only: the worker imports Dagster and torch (slow on shared cores), then trains.
CHECKPOINT_TIMEOUT_S = 240
POLL_S = 0.02


def _checkpoint_step(folder) -> int | None:
    """The step of the newest complete checkpoint under a run's checkpoint folders."""
    steps = []
    for latest in folder.glob(f"{PARTITION}/*/latest.json"):
        try:
            steps.append(int(json.loads(latest.read_text())["step_dir"].removeprefix("step-")))
        except (OSError, ValueError, KeyError):
            continue  # being replaced right now
    return max(steps, default=None)


def _stopped(pid: int, timeout_s: float = 30) -> bool:
    """Whether ``pid`` is gone or a zombie (killed, not yet reaped by whoever inherited it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1][:1] in ("Z", "X"):
                return True
        except FileNotFoundError:
            return True
        time.sleep(POLL_S)
    return False


def _start_worker(log) -> subprocess.Popen:
    # Its own session: the SIGKILL below takes the whole process group, like a preempted node.
    # Its log goes to a file: a pipe nobody reads while polling would fill up and stall it.
    return subprocess.Popen([sys.executable, "-m", "ct_assets_tests.training_tests.resume_worker"],
                            env={**os.environ, "PYTHONWARNINGS": "ignore"}, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)


def _kill_after_first_checkpoint(folder, log_path) -> int:
    """Start the worker, SIGKILL its process group once a checkpoint is on disk; that step."""
    with open(log_path, "w") as log:
        worker = _start_worker(log)
    deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
    while (step := _checkpoint_step(folder)) is None:
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            raise AssertionError(f"no checkpoint under {folder} (worker rc {worker.wait()}): "
                                 f"{log_path.read_text()[-3000:]}")
        time.sleep(POLL_S)
    os.killpg(worker.pid, signal.SIGKILL)
    assert worker.wait(timeout=60) == -signal.SIGKILL, f"worker finished (rc {worker.returncode}) before the kill"
    return step


def test_sigkilled_training_run_resumes_from_its_checkpoint_when_reexecuted(tmp_path, sim_base_dir, monkeypatch):
    monkeypatch.setenv(CT_HOME_ENV, str(tmp_path / "ct_home"))
    monkeypatch.setenv(BASE_DIR_ENV, str(sim_base_dir))
    home = resume_worker.home()
    folder = home.checkpoints / "lora_adapter"
    with resume_worker.open_instance() as instance:
        defs = build_definitions(resume_worker.settings(), home)
        assert materialize_range(defs, instance, DATA, day(0), day(4), console_level="ERROR").success

        killed_at = _kill_after_first_checkpoint(folder, tmp_path / "worker.log")
        assert killed_at > 0
        (pid_file,) = folder.glob(f"{PARTITION}/*/{PID_FILE}")
        assert _stopped(int(pid_file.read_text())), "the Pipes training process outlived its killed run"
        (dead,) = instance.get_runs(limit=1)
        assert dead.status == DagsterRunStatus.STARTED  # nothing marked it: the process just vanished
        assert sweep_dead_runs(instance) == [dead.run_id]

        # The parent's tags (its partition) as the UI's re-execution keeps them; this process's pid.
        result = execute_job(
            reconstructable(resume_worker.training_chain), instance, run_config=IN_PROCESS,
            tags={**dead.tags, **process_tags()},
            reexecution_options=ReexecutionOptions.from_failure(dead.run_id, instance), raise_on_error=True)
        assert result.success
        assert result.dagster_run.root_run_id == dead.run_id
        steps_run = {e.step_key for e in instance.all_logs(result.run_id, of_type=DagsterEventType.STEP_START)}
        assert steps_run == {"lora_adapter"}, "training_dataset had succeeded: only the killed step runs again"

        mat = instance.get_latest_materialization_event(AssetKey("lora_adapter")).asset_materialization
        meta = {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
        # At least the step seen on disk before the kill (the worker may have saved another since).
        assert meta["resumed_from_step"] >= killed_at, (
            f"re-execution trained from step {meta['resumed_from_step']}, not from the killed run's checkpoint "
            f"(step >= {killed_at})")
        assert meta["steps"] > meta["resumed_from_step"], "the kill came after the training had finished"
        version = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root).version_info(1)
        assert version.tags[DAGSTER_RUN] == result.run_id
        assert not list(folder.glob(f"{PARTITION}/*/latest.json")), "registered: the checkpoint is removed"
