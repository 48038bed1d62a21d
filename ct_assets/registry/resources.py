"""The MLflow registry as a Dagster resource: aliases, versions, prediction by alias.

A ConfigurableResource over mlflow rather than dagster-mlflow's ``mlflow_tracking``:
that resource opens one global MLflow run per Dagster run and configures MLflow through
process-wide state, while CT needs one MLflow run per adapter (per partition), explicit
tracking and registry URIs under CT_HOME, and several registries side by side in
tests. dagster-mlflow stays pinned in the Dagster family for users who want it.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path

import polars as pl
from dagster import ConfigurableResource, EnvVar

from ct_assets.evaluation.calibration import Calibration
from ct_assets.evaluation.monitoring import day_performance, monitoring_sample
from ct_assets.registry.loader import adapter_dir_for, load_predictor
from ct_assets.registry.records import ModelVersionInfo


class ModelRegistryResource(ConfigurableResource):
    # The server profile passes EnvVar("MLFLOW_TRACKING_URI"): the URI may carry credentials.
    tracking_uri: str
    # None: the tracking server's own artifact store (server profile).
    artifact_root: str | None = None
    model_name: str = "ct_text_classifier"
    cache_dir: str
    max_length: int = 64
    batch_size: int = 64
    inference_precision: str = "auto"  # training.inference_precision
    # A lock file, or registry.guards.PG_ADVISORY_LOCK; None: beside the SQLite db.
    lock: str | None = None

    def db_exists(self) -> bool:
        # Before the first model there is no database; asking MLflow would create one.
        prefix = "sqlite:///"
        return not self.tracking_uri.startswith(prefix) or Path(self.tracking_uri[len(prefix):]).exists()

    @cached_property
    def registry(self):
        from ct_assets.registry.mlflow_registry import AdapterRegistry

        return AdapterRegistry(self.tracking_uri, self.artifact_root, self.model_name, lock_path=self.lock)

    def alias_version(self, alias: str) -> int | None:
        if not self.db_exists():
            return None
        return self.registry.get_alias(alias)

    def champion_version(self) -> int | None:
        return self.alias_version("champion")

    def version(self, version: int) -> ModelVersionInfo:
        return self.registry.version_info(version)

    def window_of(self, version: int) -> tuple[dt.date, dt.date]:
        return self.version(version).window

    def champion_window(self) -> tuple[dt.date, dt.date] | None:
        version = self.champion_version()
        return None if version is None else self.window_of(version)

    def adapter_dir(self, version: int) -> Path:
        """The verified, downloaded adapter directory of a version (cached per version)."""
        return adapter_dir_for(self.registry, version, Path(self.cache_dir))

    def predictor(self, alias_or_version: int | str):
        return load_predictor(
            self.registry, alias_or_version, Path(self.cache_dir),
            max_length=self.max_length, batch_size=self.batch_size, precision=self.inference_precision,
        )

    def calibration(self, version: int) -> Calibration | None:
        record = self.version(version).evaluation
        return Calibration.from_json(record.calibration_json) if record and record.calibration_json else None

    def performance_on(self, frame: pl.DataFrame, version: int | None = None, *,
                       sample_rows: int | None = None, seed: int | str = 0) -> dict:
        """A version's (default: the champion's) accuracy on the frame's labelled rows (with
        its 95% interval), its label-free estimate and prediction mix; {} when there is no
        such model. A frame over ``sample_rows`` rows is scored on a seeded label-stratified
        sample of that size (evaluation/monitoring.py); None scores every row."""
        version = self.champion_version() if version is None else version
        if version is None or frame.height == 0:
            return {}
        truth = frame["label"].to_list()
        rows = monitoring_sample(truth, sample_rows, seed)
        scored = frame if len(rows) == frame.height else frame[rows]
        pred = self.predictor(version).predict(scored["text"].to_list())
        perf = day_performance(pred.labels, pred.confidence, [truth[i] for i in rows], self.calibration(version),
                               total_rows=frame.height)
        return {"version": version, **perf}


def resolved(registry: ModelRegistryResource) -> ModelRegistryResource:
    """The resource with EnvVar fields read now. Dagster does this for steps; code that uses
    the resource outside a run (the CLI, ct demo, the human jobs' binding) must do it too,
    or an EnvVar field would read as the variable's name. Read by hand rather than through
    ``process_config_and_initialize``: that builds an ephemeral instance and leaves it set as
    the process's current defs-state storage, which breaks the next Definitions load."""
    values = {}
    for name in type(registry).model_fields:
        value = getattr(registry, name)
        if isinstance(value, EnvVar):
            if value.get_value() is None:
                raise ValueError(f"registry.{name}: environment variable {value.env_var_name} is not set")
            value = value.get_value()
        values[name] = value
    return type(registry)(**values)
