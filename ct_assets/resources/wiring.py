"""Resources built from settings and CT_HOME: the only place that decides the environment."""

from __future__ import annotations

from ct_assets.home import CtHome
from ct_assets.resources.base_model import BaseModelResource
from ct_assets.resources.lake import Lake, LakeIOManager
from ct_assets.resources.registry import ModelRegistryResource
from ct_assets.resources.sources import LandingZoneSource, ScenarioConfig, SimulatorSource
from ct_assets.resources.state import StateDirs
from ct_assets.settings import Settings

MODEL_NAME = "ct_text_classifier"


def build_source(settings: Settings, home: CtHome) -> LandingZoneSource:
    src = settings.source
    landing = str(home.resolve(src.path))
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


def build_resources(settings: Settings, home: CtHome) -> dict:
    base = settings.training.base
    return {
        "source": build_source(settings, home),
        "base_model": BaseModelResource(kind=base.kind, name=base.name, model_id=base.model_id),
        "lake_io": LakeIOManager(base_path=str(home.lake)),
        "lake": Lake(base_path=str(home.lake)),
        "state": StateDirs(root=str(home.root)),
        "registry": ModelRegistryResource(
            tracking_uri=home.mlflow_tracking_uri,
            artifact_root=home.mlflow_artifact_root,
            model_name=MODEL_NAME,
            cache_dir=str(home.root / "cache" / "adapters"),
            max_length=settings.training.max_length,
        ),
    }
