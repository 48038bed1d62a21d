"""CT_HOME: the one directory that holds all state (default ./.ct_home).

Layout (README "State: everything under CT_HOME"):
  dagster/      DAGSTER_HOME with dagster.yaml and SQLite storage
  mlflow/       mlflow.db and artifacts
  lake/         Parquet, one file per asset and partition
  landing/      where sources drop files
  checkpoints/  training checkpoints
  reports/      reports (Data Docs, timelines)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

CT_HOME_ENV = "CT_HOME"
DEFAULT_CT_HOME = ".ct_home"

# SQLite storage everywhere; the cap on concurrent training comes from Dagster's own
# run tag limits and op pools, so it holds however a run was launched.
DAGSTER_YAML = """\
# Written by ct_assets. Scale-out swaps storage for Postgres and the run launcher
# for Kubernetes here; no code changes.
storage:
  sqlite:
    base_dir: {base_dir}
local_artifact_storage:
  module: dagster.core.storage.root
  class: LocalArtifactStorage
  config:
    base_dir: {base_dir}
concurrency:
  runs:
    max_concurrent_runs: 4
    # Every triggered retrain carries ct/training=true: at most this many at once.
    tag_concurrency_limits:
      - key: ct/training
        value: "true"
        limit: {max_training_runs}
  pools:
    # lora_adapter runs in pool "training": at most this many training steps at once,
    # however they were launched (sensor, schedule, UI, backfill).
    default_limit: {max_training_runs}
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class CtHome:
    root: Path

    @property
    def dagster(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow_tracking_uri(self) -> str:
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str:
        return (self.mlflow / "artifacts").as_uri()

    def resolve(self, path: str | os.PathLike) -> Path:
        """A settings path: absolute stays, relative is taken under CT_HOME, and
        ``package://PKG/PATH`` is a file shipped inside the installed package PKG."""
        return resolve_path(path, self.root)

    def ensure(self, max_training_runs: int = 1) -> "CtHome":
        for d in (self.dagster, self.mlflow, self.lake, self.landing, self.checkpoints, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        cfg = self.dagster / "dagster.yaml"
        text = DAGSTER_YAML.format(base_dir=self.dagster, max_training_runs=max_training_runs)
        if not cfg.exists() or cfg.read_text() != text:
            tmp = cfg.with_suffix(".yaml.tmp")
            tmp.write_text(text)
            tmp.replace(cfg)
        return self


PACKAGE_SCHEME = "package://"


def resolve_path(path: str | os.PathLike, root: Path) -> Path:
    text = os.fspath(path)
    if not text.strip():
        raise ValueError("an empty path is not a location; give a file or folder")
    if text.startswith(PACKAGE_SCHEME):
        package, _, rel = text[len(PACKAGE_SCHEME):].partition("/")
        try:
            base = resources.files(package)
        except ModuleNotFoundError:
            raise ValueError(f"{text}: package {package!r} is not installed") from None
        return Path(str(base.joinpath(rel)))
    p = Path(text)
    return p if p.is_absolute() else root / p


def ct_home() -> CtHome:
    """CT_HOME from the environment, resolved to an absolute path."""
    return CtHome(Path(os.environ.get(CT_HOME_ENV, DEFAULT_CT_HOME)).resolve())
