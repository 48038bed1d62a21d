"""The contract between lora_adapter and its training process, without Pipes.

Why: the asset and the worker agree on the extras and on the outcome message only through
ct_assets.training.job. A field lost on the way (the settings, built in code by tests, must
arrive whole), or an error marked retryable the wrong way round, would show up only as a
slow, flaky integration test; here each rule is one table row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ct_assets.registry.mlflow_registry import ArtifactVerificationError, RegistryError, RegistryUnavailableError
from ct_assets.training.base_model import BaseModelSpec
from ct_assets.training.fit import TooFewRowsError
from ct_assets.training.job import (
    RegistryConfig,
    TrainingJob,
    TrainingProcessError,
    error_message,
    outcome,
    read_training_dataset,
)
from ct_assets_tests.helpers import day, model_settings


def _job(tmp_path: Path, **overrides) -> TrainingJob:
    return TrainingJob(
        settings=model_settings(tmp_path / "base", **overrides), partition=day(4), run_id="r2", root_run_id="r1",
        trigger="manual", reason="a test", lake_base_path=str(tmp_path / "lake"),
        base=BaseModelSpec("directory", str(tmp_path / "base"), "tiny-bert"),
        registry=RegistryConfig(artifact_root=None, model_name="m", cache_dir=str(tmp_path / "cache"),
                                lock="postgres-advisory-lock"),
        golden_version={"path": "g.jsonl", "sha256": "ab", "rows": 3}, checkpoint_dir=tmp_path / "ckpt",
    )


def test_a_job_survives_the_trip_through_json_extras_whole(tmp_path):
    # Non-default settings: the worker must get these, not re-read ct.yaml's.
    job = _job(tmp_path, **{"training.lora.target_modules": ["query", "value"], "training.ewc_lambda": 10.0})
    back = TrainingJob.from_extras(json.loads(json.dumps(job.to_extras())))
    assert back == job
    assert back.window == (day(1), day(4))


def _keys(node) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for v in node.values() for k in _keys(v)}
    return {k for v in node for k in _keys(v)} if isinstance(node, list) else set()


def test_the_tracking_uri_is_not_in_the_extras(tmp_path):
    # It may carry credentials; extras are written in clear (a temp file, a pod's env).
    assert not {k for k in _keys(_job(tmp_path).to_extras()) if "tracking" in k}


@pytest.mark.parametrize(("err", "retryable"), [
    # MLflow unreachable: the retry, after the backoff, may find it back.
    (RegistryUnavailableError("database is locked"), True),
    # Every other registry error fails the same way again: no retry.
    (RegistryError("experiment deleted"), False),
    (ArtifactVerificationError("sha256 differs"), False),
    # Not the registry's: retried as any exception under the RetryPolicy always was.
    (TooFewRowsError("10 training rows < 50"), True),
    (FloatingPointError("non-finite loss"), True),
])
def test_a_reported_error_keeps_its_name_and_whether_it_is_retried(err, retryable):
    with pytest.raises(TrainingProcessError) as raised:
        outcome([json.loads(json.dumps(error_message(err)))])
    assert raised.value.retryable is retryable
    assert str(raised.value) == f"{type(err).__name__}: {err}"


def test_a_result_is_returned_and_no_outcome_at_all_is_a_retryable_error():
    assert outcome([{"unrelated": 1}, {"result": {"row": {"version": 3}}}]) == {"row": {"version": 3}}
    with pytest.raises(TrainingProcessError, match="without reporting") as raised:
        outcome([])
    assert raised.value.retryable


def test_a_missing_training_dataset_partition_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=rf"training_dataset\[{day(4)}\]"):
        read_training_dataset(_job(tmp_path))


def test_the_worker_imports_dagster_pipes_but_not_dagster():
    # A training image needs the training stack, not the orchestrator.
    code = ("import sys, ct_assets.training.pipes_worker, ct_assets.training.job; "
            "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['dagster_pipes']"
