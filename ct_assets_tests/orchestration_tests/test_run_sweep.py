"""A run whose process died is marked failed, whoever launched it.

Why: a killed run left STARTED holds the training cap (the in-flight count the arbiter
reads) until run monitoring's max runtime, hours later; no retrain could start meanwhile.
These runs are real records on a real instance with the default run launcher (what
`dagster dev` uses), and real processes: one that exited, and this one.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus
from dagster._core.events import EngineEventData  # test-only: builds the event Dagster's worker writes

from ct_assets.core.home import CtHome
from ct_assets.orchestration.run_sweep import WORKER_STARTED, sweep_dead_runs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def instance(tmp_path):
    home = CtHome(tmp_path / "ct_home").ensure()
    with DagsterInstance.from_config(str(home.dagster)) as inst:
        yield inst


def _started_run(instance, worker_pid: int | None) -> DagsterRun:
    run = instance.add_run(DagsterRun(job_name="__ASSET_JOB", run_id=str(uuid.uuid4()),
                                      status=DagsterRunStatus.STARTED))
    if worker_pid is not None:
        instance.report_engine_event(f"{WORKER_STARTED} (pid: {worker_pid}).", run,
                                     EngineEventData.in_process(worker_pid))
    return run


@pytest.mark.parametrize(
    ("worker", "swept"),
    [
        ("dead", True),  # a UI/daemon run whose worker was killed: failed, with the reason
        ("alive", False),  # a run still working (this very process): left alone
        ("none", False),  # launched but no worker recorded yet: nothing known, left alone
    ],
)
def test_daemon_launched_run_with_a_dead_worker_is_failed(instance, worker, swept):
    import os

    pid = {"dead": _dead_pid(), "alive": os.getpid(), "none": None}[worker]
    run = _started_run(instance, pid)
    assert (run.run_id in sweep_dead_runs(instance)) == swept
    status = instance.get_run_by_id(run.run_id).status
    assert status == (DagsterRunStatus.FAILURE if swept else DagsterRunStatus.STARTED)
