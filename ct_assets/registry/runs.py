"""An MLflow run's lifecycle for one training or evaluation, through the registry's
error mapping (an unreachable MLflow becomes RegistryUnavailableError, which the
lora_adapter RetryPolicy retries).

``training_run`` ends the run FINISHED on success and FAILED on any error. If marking it
FAILED fails too (MLflow is down: often the very cause), that is logged and the original
error is the one raised: a training error must never be replaced by an MLflow one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ct_assets.registry.mlflow_registry import AdapterRegistry, RegistryError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunLog:
    """Writes to one MLflow run; every call goes through the registry's guard."""

    registry: AdapterRegistry
    run_id: str

    def params(self, params: Mapping[str, object]) -> None:
        with self.registry.guard(f"log params to run {self.run_id}"):
            for name, value in params.items():
                self.registry.client.log_param(self.run_id, name, value)

    def metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        with self.registry.guard(f"log metrics to run {self.run_id}"):
            for name, value in metrics.items():
                self.registry.client.log_metric(self.run_id, name, float(value), step=step)

    def artifacts(self, local_dir: str, artifact_path: str) -> None:
        with self.registry.guard(f"log artifacts {local_dir} to run {self.run_id}"):
            self.registry.client.log_artifacts(self.run_id, local_dir, artifact_path)


def metric_name(prefix: str, key: str) -> str:
    """An MLflow metric name for a user's label or slice: MLflow allows letters, digits,
    ``_ - . / `` and space, so anything else becomes ``_``."""
    return f"{prefix}/" + re.sub(r"[^\w\-. /]", "_", key)


def end_run(registry: AdapterRegistry, run_id: str, status: str) -> None:
    with registry.guard(f"end run {run_id} as {status}"):
        registry.client.set_terminated(run_id, status)


@contextmanager
def training_run(registry: AdapterRegistry, run_name: str, tags: Mapping[str, str]) -> Iterator[RunLog]:
    run = RunLog(registry, registry.create_run(run_name=run_name, tags=dict(tags)))
    try:
        yield run
    except BaseException:
        # Whatever failed (training, NaN loss, MLflow, a kill), the run says so; nothing was
        # aliased. The original exception propagates unchanged.
        try:
            end_run(registry, run.run_id, "FAILED")
        except RegistryError as err:
            _log.warning("could not mark MLflow run %s FAILED: %s", run.run_id, err)
        raise
    end_run(registry, run.run_id, "FINISHED")


def end_orphaned_runs(registry: AdapterRegistry, tag: str, value: str) -> list[str]:
    """Mark KILLED the runs still RUNNING whose ``tag`` is ``value``: a training process
    that was SIGKILLed (preempted, OOM-killed) could not end its own run. Called by the next
    attempt of the same work, which is the only one that knows the old one is dead."""
    with registry.guard(f"find runs left RUNNING with {tag}={value}"):
        experiment = registry.ensure_experiment()
        runs = registry.client.search_runs(
            [experiment], filter_string=f"tags.`{tag}` = '{value}' and attributes.status = 'RUNNING'")
    for run in runs:
        end_run(registry, run.info.run_id, "KILLED")
    return [run.info.run_id for run in runs]
