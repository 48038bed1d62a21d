"""Resources built from settings and CT_HOME: the only place that decides the environment."""

from __future__ import annotations

from dagster import EnvVar

from ct_assets.core.home import CtHome
from ct_assets.core.profile import MLFLOW_TRACKING_URI_ENV
from ct_assets.core.settings import BaseModelSettings, Settings
from ct_assets.evaluation.resources import GoldenSetResource
from ct_assets.ingest.resources import (
    LandingZoneSource,
    ScenarioConfig,
    SimulatorSource,
)
from ct_assets.lake.resources import LAKE_IO_KEY, Lake, LakeIOManager
from ct_assets.orchestration.state import StateDirs
from ct_assets.registry.records import MODEL_NAME
from ct_assets.registry.resources import ModelRegistryResource
from ct_assets.training.launcher import build_launcher
from ct_assets.training.resources import BaseModelResource



def build_source(settings: Settings, home: CtHome) -> LandingZoneSource:
    src = settings.source
    # Both kinds use the same resolved folder: the simulator writes its days exactly where
    # the landing-zone reader would look, so `source.path: ../x` is refused (by settings,
    # and again here for settings built in code) before anything is written outside CT_HOME.
    landing = home.landing_url(src.path)
    fail_on_empty = settings.partitions.fail_on_empty_day
    if src.kind == "landing_zone":
        return LandingZoneSource(path=landing, fail_on_empty_day=fail_on_empty)
    sim = src.simulator
    return SimulatorSource(
        path=landing,
        fail_on_empty_day=fail_on_empty,
        labels=list(settings.labels),
        start_date=settings.partitions.start_date.isoformat(),
        seed=sim.seed,
        rows_per_day=sim.rows_per_day,
        same_day_label_share=sim.same_day_label_share,
        max_label_delay_days=sim.max_label_delay_days,
        never_labelled_share=sim.never_labelled_share,
        scenarios=[ScenarioConfig(**s.model_dump()) for s in sim.scenarios],
    )


def _base_name(base: BaseModelSettings, home: CtHome) -> str:
    # Only a directory is a path; package names and hub ids are passed through.
    if base.kind != "directory":
        return base.name
    return str(home.resolve(base.name, "training.base.name"))


def build_resources(settings: Settings, home: CtHome) -> dict:
    base, g = settings.training.base, settings.golden
    return {
        "source": build_source(settings, home),
        "base_model": BaseModelResource(kind=base.kind, name=_base_name(base, home), model_id=base.model_id),
        LAKE_IO_KEY: LakeIOManager(base_path=home.lake_url),
        "lake": Lake(base_path=home.lake_url),
        "state": StateDirs(root=str(home.root)),
        "golden": GoldenSetResource(
            path=str(home.resolve(g.path, "golden.path")) if g.path is not None else None,
            labels=list(settings.labels),
            min_per_label=g.min_per_label, unsupported_labels=list(g.unsupported_labels)),
        "registry": ModelRegistryResource(
            # Secrets only through EnvVar: Dagster resolves it in the process that runs the step.
            tracking_uri=EnvVar(MLFLOW_TRACKING_URI_ENV) if home.is_server else home.mlflow_tracking_uri,
            artifact_root=home.mlflow_artifact_root,
            lock=home.registry_lock,
            model_name=MODEL_NAME,
            cache_dir=str(home.adapter_cache),
            max_length=settings.training.max_length,
            inference_precision=settings.training.inference_precision,
        ),
        # Where lora_adapter's training process runs (CT_TRAINING_LAUNCHER: subprocess | k8s).
        "training_launcher": build_launcher(),
    }
