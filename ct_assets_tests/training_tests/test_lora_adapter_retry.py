"""lora_adapter's RetryPolicy: an MLflow outage is retried, a registry error is not.

Why: the registry maps "MLflow cannot be reached" to RegistryUnavailableError precisely so
that the step's RetryPolicy rides out a short outage; every other registry error would fail
again after the backoff, so the step fails at once. The outage here is real: another
connection holds MLflow's SQLite database under an exclusive lock (as a long migration or
a stuck writer would) until the first attempt has failed, and then lets go.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from dagster import DagsterEventType, DagsterInstance

from ct_assets.definitions import build_definitions
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.registry.records import DAGSTER_RUN, PARTITION, STATUS, WINDOW_END, WINDOW_START
from ct_assets_tests.helpers import day, make_home, model_settings

DATA = ("raw_window", "validated_window", "quarantined_rows")
STEP = "lora_adapter"
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
    return bool(latest) and bool(_events(instance, latest[0].run_id, DagsterEventType.STEP_UP_FOR_RETRY))


def _events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return [e.dagster_event for e in instance.all_logs(run_id, of_type=kind) if e.step_key == STEP]


@pytest.fixture
def trained_inputs(tmp_path, sim_base_dir):
    """A CT_HOME with training_dataset[day 4] materialized and an MLflow store that exists."""
    home = make_home(tmp_path)
    defs = build_definitions(model_settings(sim_base_dir), home)
    registry = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    registry.ensure_experiment()
    with DagsterInstance.from_config(str(home.dagster)) as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(4), console_level="ERROR").success
        assert materialize_range(defs, instance, ("training_dataset",), day(4), day(4), console_level="ERROR").success
        yield home, defs, instance, registry


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
    retries = _events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    restarts = _events(instance, result.run_id, DagsterEventType.STEP_RESTARTED)
    assert len(retries) == 1, f"{STEP} was up for retry {len(retries)} times, not once"
    assert len(restarts) == 1, f"{STEP} restarted {len(restarts)} times, not once"
    error = retries[0].event_specific_data.error.cause  # under Dagster's RetryRequestedFromPolicy
    assert error.cls_name == "RegistryUnavailableError" and "database is locked" in error.message, error.message
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
    retries = _events(instance, result.run_id, DagsterEventType.STEP_UP_FOR_RETRY)
    assert not retries, f"a non-transient RegistryError was retried {len(retries)} times"
    (failure,) = _events(instance, result.run_id, DagsterEventType.STEP_FAILURE)
    assert "RegistryError" in failure.event_specific_data.error.message
