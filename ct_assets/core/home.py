"""CT_HOME: the one directory that holds all state (default ./.ct_home).

Layout (README "State: everything under CT_HOME"):
  dagster/      DAGSTER_HOME with dagster.yaml and SQLite storage
  mlflow/       mlflow.db and artifacts
  lake/         Parquet, one file per asset and partition
  landing/      where sources drop files
  checkpoints/  training checkpoints
  reports/      reports (Data Docs, timelines)

With CT_PROFILE=server (ct_assets.core.profile) the Dagster storage is Postgres, MLflow is a
tracking server, and the lake and the landing zone are object-store URLs; CT_HOME keeps only
dagster.yaml, checkpoints, caches and reports.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ct_assets.core.profile import (
    LOCAL,
    MLFLOW_TRACKING_URI_ENV,
    PG_ADVISORY_LOCK,
    PG_ENV,
    Profile,
    profile_name,
    server_profile,
)

CT_HOME_ENV = "CT_HOME"
DEFAULT_CT_HOME = ".ct_home"

# The profile picks the storage (ct_assets.core.profile); the rest is shared. The cap on
# concurrent training comes from Dagster's own run tag limits and op pools, so it holds
# however a run was launched.
SQLITE_STORAGE = """\
# Written by ct_assets (CT_PROFILE=local). CT_PROFILE=server swaps the storage for
# Postgres; deploy/values.yaml does the same on Kubernetes. No code changes.
storage:
  sqlite:
    base_dir: {base_dir}
"""
# Secrets stay in the environment: dagster resolves {env: ...} when it loads the instance.
POSTGRES_STORAGE = """\
# Written by ct_assets (CT_PROFILE=server): run, event-log and schedule storage in
# Postgres (dagster-postgres); every value is read from the environment at load time.
storage:
  postgres:
    postgres_db:
""" + "".join(f"      {key}:\n        env: {var}\n" for key, var in PG_ENV.items()) + """\
      # dagster-postgres is written for psycopg2 (its NOTIFY takes a bound parameter, which
      # psycopg 3's server-side binding refuses); SQLAlchemy 2.1's default is psycopg 3.
      scheme: postgresql+psycopg2
# Runs wait in the queue; the limits under `concurrency: runs` below are its limits.
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
"""
DAGSTER_YAML = """\
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
run_monitoring:
  # Killed runs must not stay STARTED, holding run slots (max_concurrent_runs) and pool
  # slots. The daemon fails runs stuck starting or canceling, and any run past
  # max_runtime_seconds; the default run launcher cannot probe a worker's health, and
  # in-process runs (the CLI, ct demo) have no worker at all: those are marked failed by
  # ct_assets.orchestration.run_sweep at the next run, from the pid the run is tagged with.
  enabled: true
  start_timeout_seconds: 180
  cancel_timeout_seconds: 180
  max_runtime_seconds: 21600
  max_resume_run_attempts: 0
  poll_interval_seconds: 60
  # Pool slots of a run that ended (also one marked failed above) are freed after this.
  free_slots_after_run_end_seconds: 60
telemetry:
  enabled: false
"""


@dataclass(frozen=True)
class CtHome:
    root: Path
    # None: the local profile (everything under root). See ct_assets.core.profile.
    profile: Profile | None = None

    @property
    def is_server(self) -> bool:
        return self.profile is not None and self.profile.is_server

    @property
    def lake_url(self) -> str:
        """Where the lake lives: a folder under CT_HOME, or the server profile's URL."""
        return self.profile.lake_url if self.is_server else str(self.lake)

    def landing_url(self, source_path: str) -> str:
        """The landing zone: ``source.path`` under CT_HOME, or the server profile's URL."""
        if self.is_server:
            return self.profile.landing_url
        return str(self.resolve(source_path, "source.path"))

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
    def adapter_cache(self) -> Path:
        """Downloaded, digest-verified adapters per version: Dagster's steps and ct serve share it."""
        return self.root / "cache" / "adapters"

    @property
    def mlflow_tracking_uri(self) -> str:
        """Resolved now. Resources take ``EnvVar`` instead (orchestration.resources), so the
        server's URI, which may carry credentials, never enters Dagster's run config."""
        if self.is_server:
            return os.environ[MLFLOW_TRACKING_URI_ENV]
        return f"sqlite:///{self.mlflow / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str | None:
        """None on the server profile: the tracking server owns its artifact store."""
        return None if self.is_server else (self.mlflow / "artifacts").as_uri()

    @property
    def registry_lock(self) -> str:
        """What serialises alias writes (registry.guards.registry_lock): a file beside mlflow.db
        locally; a Postgres advisory lock on the server profile, whose writers are on many machines."""
        if self.is_server:
            return PG_ADVISORY_LOCK
        return str(self.mlflow / "mlflow.db.registry.lock")

    def resolve(self, path: str | os.PathLike, key: str = "path") -> Path:
        """A settings path: absolute (or ``~``) stays, relative is taken under CT_HOME and
        may not leave it, and ``package://PKG/PATH`` is a file shipped inside the installed
        package PKG. ``key`` is the setting named in errors."""
        return resolve_path(path, self.root, key)

    def ensure(self, max_training_runs: int = 1) -> "CtHome":
        # On the server profile the lake, the landing zone and MLflow live on their engines.
        local_only = () if self.is_server else (self.mlflow, self.lake, self.landing)
        for d in (self.dagster, *local_only, self.checkpoints, self.reports):
            d.mkdir(parents=True, exist_ok=True)
        cfg = self.dagster / "dagster.yaml"
        storage = POSTGRES_STORAGE if self.is_server else SQLITE_STORAGE.format(base_dir=self.dagster)
        text = storage + DAGSTER_YAML.format(base_dir=self.dagster, max_training_runs=max_training_runs)
        if not cfg.exists() or cfg.read_text() != text:
            # A temp name per process: two processes loading the code location at once (dagster
            # dev and a CLI, or two test workers) must not rename each other's file away.
            tmp = cfg.with_name(f".dagster.yaml.{os.getpid()}.{uuid.uuid4().hex}.tmp")
            tmp.write_text(text)
            tmp.replace(cfg)
        return self


PACKAGE_SCHEME = "package://"


def path_problem(text: str) -> str | None:
    """Why ``text`` cannot be a settings path, or None. Refused: an empty path, and a
    relative path (or package path) that climbs out of its root or names the root itself.
    Lexical on purpose: settings are checked before CT_HOME exists, and a symlink inside
    CT_HOME is the user's explicit choice."""
    if not text.strip():
        return f"an empty path ({text!r}) is not a location; give a file or folder"
    if text.startswith(PACKAGE_SCHEME):
        package, _, rel = text[len(PACKAGE_SCHEME):].partition("/")
        if not package or not rel or _climbs(rel):
            return f"{text!r} must be package://PKG/PATH with PATH inside PKG"
        return None
    if Path(os.path.expanduser(text)).is_absolute():
        return None  # an absolute path is used as given
    if _climbs(text):
        return f"relative path {text!r} leaves CT_HOME; make it absolute to point outside"
    if os.path.normpath(text) == ".":
        # "." (or "a/..") would mix this setting's files with CT_HOME's own folders.
        return f"relative path {text!r} names CT_HOME itself; give a folder or file inside it"
    return None


def _climbs(rel: str) -> bool:
    norm = os.path.normpath(rel)
    return norm == os.pardir or norm.startswith(os.pardir + os.sep)


def resolve_path(path: str | os.PathLike, root: Path, key: str = "path") -> Path:
    """See CtHome.resolve; errors start with ``key``, the setting the path came from."""
    text = os.fspath(path)
    problem = path_problem(text)
    if problem is not None:
        raise ValueError(f"{key}: {problem}")
    if text.startswith(PACKAGE_SCHEME):
        package, _, rel = text[len(PACKAGE_SCHEME):].partition("/")
        try:
            base = resources.files(package)
        except ModuleNotFoundError:
            raise ValueError(f"{key}: {text}: package {package!r} is not installed") from None
        return Path(str(base.joinpath(rel)))
    p = Path(os.path.expanduser(text))
    return p if p.is_absolute() else root / p


def ct_home() -> CtHome:
    """The one place that picks the environment: CT_HOME (resolved to an absolute path)
    and CT_PROFILE (local by default; server reads its engines from the environment)."""
    root = Path(os.environ.get(CT_HOME_ENV, DEFAULT_CT_HOME)).resolve()
    return CtHome(root, None if profile_name() == LOCAL else server_profile())
