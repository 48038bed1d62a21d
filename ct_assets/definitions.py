"""Wiring only: settings + CT_HOME -> what each domain declares, merged."""

from dagster import Definitions

from ct_assets.core.home import CtHome, ct_home
from ct_assets.core.settings import Settings, get_settings
from ct_assets.drift.assets import build_drift_assets
from ct_assets.evaluation.assets import build_evaluation_assets
from ct_assets.ingest.assets import build_ingest_assets
from ct_assets.orchestration.partitions import daily_partitions
from ct_assets.orchestration.resources import build_resources
from ct_assets.registry.assets import build_registry_assets
from ct_assets.registry.jobs import build_human_jobs
from ct_assets.training.assets import build_training_assets
from ct_assets.triggers.automation import automation_for, data_automation_sensor, model_automation_sensor
from ct_assets.triggers.schedules import build_schedules
from ct_assets.triggers.sensors import build_sensors

ASSET_BUILDERS = (build_ingest_assets, build_drift_assets, build_training_assets, build_evaluation_assets,
                  build_registry_assets)


def build_definitions(settings: Settings, home: CtHome) -> Definitions:
    home.ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    partitions = daily_partitions(settings.partitions.start_date)
    automation = automation_for(settings)
    resources = build_resources(settings, home)
    return Definitions(
        assets=[a for build in ASSET_BUILDERS for a in build(settings, partitions, automation)],
        jobs=build_human_jobs(resources["registry"]),
        sensors=[data_automation_sensor(), model_automation_sensor(settings), *build_sensors(settings)],
        schedules=build_schedules(settings),
        resources=resources,
    )


defs = build_definitions(get_settings(), ct_home())
