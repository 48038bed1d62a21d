"""lora_adapter trains in another process, through Dagster Pipes.

Why: in production the training runs on a GPU node, not in the orchestrator, and that
process may die (preemption, OOM kill). Both tests use the real default launcher
(PipesSubprocessClient) on the tiny base. The first proves the split is invisible from
outside: the worker registers the version, its step lines reach the run's event log as
Pipes logs, and the lake row and metadata are those the in-process asset wrote. The
second SIGKILLs the worker at its first checkpoint: the asset's RetryPolicy starts a new
worker, which resumes from that checkpoint, and exactly one version is registered.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

from dagster import DagsterEventType

from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.training.pipes_worker import PID_FILE
from ct_assets_tests.helpers import day
from ct_assets_tests.training_tests.pipes_world import (
    PARTITION,
    STEP,
    latest_metadata,
    step_events,
    step_messages,
    worker_pids,
)

# The metadata the asset wrote before training moved out of process (plus the lake's own).
METADATA = {"model_version", "mlflow_run_id", "trainable_params", "adapter_bytes", "adapter_to_base_bytes",
            "training_seconds", "samples_per_second", "steps", "stopped_early", "resumed_from_step", "window",
            "manifest", "lake_path", "rows_written"}
ROW = {"partition", "version", "mlflow_run_id", "window_start", "window_end", "resumed_from_step",
       "final_train_loss", "samples_per_second", "tokens_per_second", "train_seconds", "steps", "adapter_bytes",
       "size_ratio", "trainable_params", "best_val_loss"}
STEP_LINE = re.compile(r"^step \d+/\d+ epoch \d+ loss \d+\.\d{4} val_loss \d+\.\d{4} val_acc \d\.\d{3} ")
# Failure modes only: a worker imports torch, peft and mlflow (seconds on shared cores) first.
CHECKPOINT_TIMEOUT_S = 240
POLL_S = 0.02


def test_a_materialization_trains_in_a_pipes_process_and_writes_the_same_row(trained_inputs):
    home, defs, instance, registry = trained_inputs
    result = materialize_range(defs, instance, (STEP,), PARTITION, PARTITION, console_level="ERROR")
    assert result.success

    messages = step_messages(instance, result.run_id)
    (pid,) = worker_pids(messages)
    assert pid != os.getpid(), "the training ran in the orchestrating process"
    assert "[pipes] external process successfully opened dagster pipes." in messages
    step_lines = [m for m in messages if STEP_LINE.match(m)]
    assert step_lines, f"no step line from the worker among {messages}"
    assert any(m.startswith("registered version 1 ") for m in messages)

    assert registry.version_numbers() == [1] and registry.get_alias("challenger") == 1
    row = Lake(base_path=str(home.lake)).read(STEP, PARTITION).row(0, named=True)
    meta = latest_metadata(instance)
    assert set(row) == ROW and set(meta) == METADATA
    assert row["partition"] == PARTITION and row["version"] == 1 and meta["model_version"] == "1"
    assert row["mlflow_run_id"] == meta["mlflow_run_id"] == registry.version_info(1).run_id
    assert (row["window_start"], row["window_end"], meta["window"]) == (day(1), day(4), f"{day(1)}..{day(4)}")
    assert row["resumed_from_step"] == meta["resumed_from_step"] == 0
    assert row["steps"] == meta["steps"] > 0 and row["trainable_params"] == meta["trainable_params"] > 0
    assert meta["adapter_to_base_bytes"] == round(row["size_ratio"], 6)
    manifest = meta["manifest"]
    assert manifest["partition"] == PARTITION and manifest["base"]["model_id"] == "tiny-bert"
    assert manifest["golden"]["sha256"] and manifest["training"]["steps"] == row["steps"]

    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations() if c.asset_key.path == [STEP]}
    assert set(checks) == {"finite_loss", "adapter_size_ratio"} and checks["finite_loss"]
    # The worker logged the MLflow run as the asset did: params, and a train_loss per step.
    run = registry.client.get_run(row["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["base"] == "tiny-bert"
    assert len(registry.client.get_metric_history(run.info.run_id, "train_loss")) == row["steps"]
    assert not list((home.checkpoints / STEP / PARTITION).glob("*/latest.json")), "registered: checkpoint removed"


class KillAtFirstCheckpoint(threading.Thread):
    """SIGKILLs the training worker (its pid from worker.pid) once a checkpoint is on disk."""

    def __init__(self, folder: Path) -> None:
        super().__init__(daemon=True)
        self.folder, self.stop = folder, threading.Event()
        self.killed: tuple[int, int] | None = None  # (pid, checkpoint step)

    def run(self) -> None:
        deadline = time.monotonic() + CHECKPOINT_TIMEOUT_S
        while not self.stop.is_set() and time.monotonic() < deadline:
            for latest in self.folder.glob("*/latest.json"):
                try:
                    step = int(json.loads(latest.read_text())["step_dir"].removeprefix("step-"))
                    pid = int((latest.parent / PID_FILE).read_text())
                except (OSError, ValueError, KeyError):
                    continue  # being replaced right now
                os.kill(pid, signal.SIGKILL)
                self.killed = (pid, step)
                return
            time.sleep(POLL_S)


def test_a_sigkilled_worker_is_retried_and_the_new_one_resumes_from_its_checkpoint(killable_inputs):
    home, defs, instance, registry = killable_inputs
    watcher = KillAtFirstCheckpoint(home.checkpoints / STEP / PARTITION)
    watcher.start()
    try:
        result = materialize_range(defs, instance, (STEP,), PARTITION, PARTITION, raise_on_error=False,
                                   console_level="ERROR")
    finally:
        watcher.stop.set()
        watcher.join(30)
    assert watcher.killed is not None, "no checkpoint appeared while the step ran"
    killed_pid, killed_at = watcher.killed

    retries = step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert len(retries) == 1, f"{STEP} was up for retry {len(retries)} times, not once"
    error = retries[0].event_specific_data.error.cause  # under Dagster's RetryRequestedFromPolicy
    assert f"failed with code -{int(signal.SIGKILL)}" in error.message, error.message
    assert result.success, "the retried worker should have finished the training"

    first, second = worker_pids(step_messages(instance, result.run_id))
    assert first == killed_pid and second != killed_pid
    meta = latest_metadata(instance)
    # At least the step seen on disk before the kill (the worker may have saved another since).
    assert meta["resumed_from_step"] >= killed_at > 0, (
        f"the retry trained from step {meta['resumed_from_step']}, not from the checkpoint (step >= {killed_at})")
    assert meta["steps"] > meta["resumed_from_step"], "the kill came after the training had finished"
    assert registry.version_numbers() == [1], "the killed worker registered nothing, the retry one version"
    # The killed attempt's MLflow run could not end itself: the retry marked it KILLED.
    runs = registry.client.search_runs([registry.ensure_experiment()], filter_string="tags.`ct.partition` != ''")
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"], [r.info.status for r in runs]
    assert Lake(base_path=str(home.lake)).read(STEP, PARTITION)["resumed_from_step"][0] == meta["resumed_from_step"]
