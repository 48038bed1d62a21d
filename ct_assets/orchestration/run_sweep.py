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

Runs the daemon launched (`dagster dev`, the UI, sensors) carry no such tags, but with the
default run launcher their worker is a local subprocess, and Dagster itself records its pid
in the run's first engine event ("Started process for run (pid: N)."). With that launcher
only, a run whose recorded worker pid is gone is dead too. The sensors sweep on every tick,
so a killed UI run stops holding the training cap within one sensor interval rather than
after run monitoring's max_runtime_seconds.
"""

from __future__ import annotations

import os
import socket

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DagsterRunStatus, DefaultRunLauncher, RunsFilter

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


# Dagster's own words when a run worker starts (dagster/_cli/api.py, _grpc/impl.py).
WORKER_STARTED = "Started process for run"


def _worker_pid(instance: DagsterInstance, run: DagsterRun) -> int | None:
    """The pid Dagster recorded for the run's worker process, when the worker is local."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return None  # a k8s or other launcher's worker is not a process of this host
    for entry in instance.all_logs(run.run_id, of_type=DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event is None or not (event.message or "").startswith(WORKER_STARTED):
            continue
        pid = event.engine_event_data.metadata.get("pid") if event.engine_event_data else None
        text = getattr(pid, "value", pid)
        return int(text) if isinstance(text, str) and text.isdigit() else None
    return None


def process_gone(run: DagsterRun, instance: DagsterInstance | None = None) -> bool:
    """True only when the run's own process is known to be dead: tagged by materialize_range
    on this host with a pid that is gone or reused, or (default launcher) a worker pid that
    Dagster recorded and that is gone."""
    tags = run.tags
    if PID_TAG not in tags:
        worker = _worker_pid(instance, run) if instance is not None else None
        return worker is not None and not pid_alive(worker)
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
    return process_gone(run, instance)


def sweep_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed every in-progress run whose process is known to be gone; their ids."""
    swept = []
    for record in instance.get_run_records(filters=RunsFilter(statuses=IN_PROGRESS)):
        run = record.dagster_run
        if not process_gone(run, instance):
            continue
        instance.report_run_failed(
            run, f"Marked failed by ct_assets: its process (pid {run.tags.get(PID_TAG) or _worker_pid(instance, run)}"
                 f" on {run.tags.get(HOST_TAG, socket.gethostname())}) is gone; it was killed before it could finish.")
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        swept.append(run.run_id)
    return swept
