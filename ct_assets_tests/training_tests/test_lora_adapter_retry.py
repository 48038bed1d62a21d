"""lora_adapter's RetryPolicy: an MLflow outage is retried, a registry error is not.

Why: the registry maps "MLflow cannot be reached" to RegistryUnavailableError precisely so
that the step's RetryPolicy rides out a short outage; every other registry error would fail
again after the backoff, so the step fails at once. The outage here is real: another
connection holds MLflow's SQLite database under an exclusive lock (as a long migration or
a stuck writer would) until the first attempt has failed, and then lets go. The errors
happen in the Pipes training process; what crosses back to the asset must keep the rule.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.records import DAGSTER_RUN, PARTITION, STATUS, WINDOW_END, WINDOW_START
from ct_assets_tests.helpers import day
from ct_assets_tests.training_tests.pipes_world import STEP, step_events, step_messages, worker_pids

# A failure mode only: the first attempt fails after the registry's 10 s sqlite busy timeout.
OUTAGE_LIMIT_S = 180


class MlflowOutage(threading.Thread):
    """Holds MLflow's database exclusively until lora_adapter is up for retry (or ``end``)."""

    def __init__(self, db: Path, dagster_home: Path) -> None:
        super().__init__(daemon=True)
        self.db, self.dagster_home = db, dagster_home
        self.down, self.end = threading.Event(), threading.Event()

    def run(self) -> None:
        # Opened in this thread: sqlite3 connections belong to the thread that made them.
        con = sqlite3.connect(self.db, timeout=0, isolation_level=None)
        try:
            con.execute("BEGIN EXCLUSIVE")
            self.down.set()
            with DagsterInstance.from_config(str(self.dagster_home)) as instance:
                deadline = time.monotonic() + OUTAGE_LIMIT_S
                while not (self.end.is_set() or _up_for_retry(instance) or time.monotonic() > deadline):
                    time.sleep(0.05)
        finally:
            con.close()  # ends the transaction: MLflow is back


def _up_for_retry(instance: DagsterInstance) -> bool:
    latest = instance.get_runs(limit=1)
    return bool(latest) and bool(step_events(instance, latest[0].run_id, DagsterEventType.STEP_UP_FOR_RETRY))


def test_mlflow_down_for_the_first_attempt_is_retried_once_and_registers_one_version(trained_inputs):
    home, defs, instance, registry = trained_inputs
    outage = MlflowOutage(home.mlflow / "mlflow.db", home.dagster)
    outage.start()
    assert outage.down.wait(30), "could not lock the MLflow database"
    try:
        result = materialize_range(defs, instance, (STEP,), day(4), day(4), raise_on_error=False)
    finally:
        outage.end.set()
        outage.join(30)
    retries = step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    restarts = step_events(instance, result.run_id, DagsterEventType.STEP_RESTARTED)
    assert len(retries) == 1, f"{STEP} was up for retry {len(retries)} times, not once"
    assert len(restarts) == 1, f"{STEP} restarted {len(restarts)} times, not once"
    error = retries[0].event_specific_data.error.cause  # under Dagster's RetryRequestedFromPolicy
    # Raised by the worker, reported through Pipes, raised again by the asset: named, and retryable.
    assert error.cls_name == "TrainingProcessError", error.cls_name
    assert "RegistryUnavailableError: " in error.message and "database is locked" in error.message, error.message
    assert len(worker_pids(step_messages(instance, result.run_id))) == 2, "each attempt is a new training process"
    assert result.success, "the retry, with MLflow back, should have succeeded"

    versions = registry.client.search_model_versions(f"name='{registry.model_name}'")
    assert [int(v.version) for v in versions] == [1], "one attempt registered, the failed one nothing"
    tags = registry.version_info(1).tags
    assert tags[PARTITION] == day(4) and tags[WINDOW_START] == day(1) and tags[WINDOW_END] == day(4)
    assert tags[DAGSTER_RUN] == result.run_id and tags[STATUS] == "complete"
    assert registry.get_alias("challenger") == 1


def test_a_registry_error_that_is_not_an_outage_is_not_retried(trained_inputs):
    _, defs, instance, registry = trained_inputs
    # Someone deleted the MLflow experiment: creating a run in it fails, and would every time.
    registry.client.delete_experiment(registry.ensure_experiment())
    result = materialize_range(defs, instance, (STEP,), day(4), day(4), raise_on_error=False)
    assert not result.success
    retries = step_events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert not retries, f"a non-transient RegistryError was retried {len(retries)} times"
    (failure,) = step_events(instance, result.run_id, DagsterEventType.STEP_FAILURE)
    error = failure.event_specific_data.error
    assert error.cls_name == "Failure" and "RegistryError: " in error.message, error.message
    assert len(worker_pids(step_messages(instance, result.run_id))) == 1, "one training process, no second"
