"""Runs whose process died: mark them failed, so none stays STARTED holding slots.

Why this exists beside run monitoring (dagster.yaml): the daemon's run monitoring asks
the run launcher whether a run's worker is alive, and ``execute_in_process`` runs (the
CLI, ``ct demo``, tests) have no launcher and no worker it could ask; the default run
launcher cannot answer either. A SIGKILLed in-process run therefore stays STARTED until
something marks it: nothing in Dagster does, short of ``max_runtime_seconds``.

So every in-process run that ``materialize_range`` starts is tagged with its host, pid
and the process's start time, and the next ``materialize_range`` (and the lake's
garbage collection) treats a STARTED run whose process is gone as dead: it is reported
failed through the public ``DagsterInstance.report_run_failed`` and its concurrency
slots are freed. The start time guards against pid reuse; a run from another host is
left to run monitoring.
"""

from __future__ import annotations

import os
import socket

from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from ct_assets.lake.commit import pid_alive

HOST_TAG = "ct/host"
PID_TAG = "ct/pid"
PROCESS_START_TAG = "ct/process_start"
IN_PROGRESS = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING,
               DagsterRunStatus.STARTED, DagsterRunStatus.CANCELING]


def _process_start(pid: int) -> str:
    """Start time of a process in clock ticks since boot (Linux); "" where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            # The command name (field 2) may hold spaces; fields after its ")" are fixed.
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def process_tags() -> dict[str, str]:
    pid = os.getpid()
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(pid), PROCESS_START_TAG: _process_start(pid)}


def process_gone(run: DagsterRun) -> bool:
    """True only when the run's own process is known to be dead (same host, pid gone or reused)."""
    tags = run.tags
    if tags.get(HOST_TAG) != socket.gethostname() or not tags.get(PID_TAG, "").isdigit():
        return False
    pid = int(tags[PID_TAG])
    if not pid_alive(pid):
        return True
    started = tags.get(PROCESS_START_TAG, "")
    return bool(started) and _process_start(pid) not in ("", started)


def run_is_dead(instance: DagsterInstance, run_id: str) -> bool:
    """Whether a run can no longer write: finished, unknown to this instance, or its process gone."""
    run = instance.get_run_by_id(run_id)
    if run is None or run.status not in IN_PROGRESS:
        return True
    return process_gone(run)


def sweep_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every in-progress run of this host whose process is gone; their ids."""
    swept = []
    records = instance.get_run_records(filters=RunsFilter(statuses=IN_PROGRESS, tags={HOST_TAG: socket.gethostname()}))
    for record in records:
        run = record.dagster_run
        if not process_gone(run):
            continue
        instance.report_run_failed(
            run, f"Marked failed by ct_assets: its process (pid {run.tags.get(PID_TAG)} on "
                 f"{run.tags.get(HOST_TAG)}) is gone; it was killed before it could finish.")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        swept.append(run.run_id)
    return swept
