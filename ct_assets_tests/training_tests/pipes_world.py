"""What the lora_adapter tests share: a CT_HOME whose training_dataset[day 4] is in the
lake, and the step's events and Pipes log lines read back from the instance."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster import AssetKey, DagsterEventType, DagsterInstance

from ct_assets.definitions import build_definitions
from ct_assets.orchestration.runner import materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets_tests.helpers import day, make_home, model_settings

DATA = ("raw_window", "validated_window", "quarantined_rows")
STEP = "lora_adapter"
PARTITION = day(4)
# The first line the worker logs through Pipes: "training <day> in process <pid>; ...".
_STARTED = re.compile(r"^training \S+ in process (\d+);")


@contextmanager
def trained_home(tmp_path: Path, base_dir: Path, **overrides) -> Iterator[tuple]:
    """(home, defs, instance, registry) with training_dataset[day 4] materialized and an
    MLflow store that exists (so a test can lock its database)."""
    home = make_home(tmp_path)
    defs = build_definitions(model_settings(base_dir, **overrides), home)
    registry = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    registry.ensure_experiment()
    with DagsterInstance.from_config(str(home.dagster)) as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(4), console_level="ERROR").success
        assert materialize_range(defs, instance, ("training_dataset",), PARTITION, PARTITION,
                                 console_level="ERROR").success
        yield home, defs, instance, registry


def step_events(instance: DagsterInstance, run_id: str, kind: DagsterEventType) -> list:
    return [e.dagster_event for e in instance.all_logs(run_id, of_type=kind) if e.step_key == STEP]


def step_messages(instance: DagsterInstance, run_id: str) -> list[str]:
    """The step's log lines (Pipes logs arrive as ordinary step logs)."""
    return [e.user_message for e in instance.all_logs(run_id) if e.step_key == STEP and e.dagster_event is None]


def worker_pids(messages: list[str]) -> list[int]:
    """The pid of each training process the step started, in order."""
    return [int(m.group(1)) for m in map(_STARTED.match, messages) if m]


def latest_metadata(instance: DagsterInstance, asset: str = STEP) -> dict:
    mat = instance.get_latest_materialization_event(AssetKey(asset)).asset_materialization
    return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
