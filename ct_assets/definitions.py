"""Wiring only: settings + CT_HOME -> assets, checks, resources, automation."""

from dagster import Definitions

from ct_assets.assets.data_assets import build_data_assets
from ct_assets.assets.model_assets import build_model_assets
from ct_assets.automation.approval import approve_model, rollback_champion
from ct_assets.automation.conditions import automation_for, data_automation_sensor
from ct_assets.automation.sensors import build_triggers
from ct_assets.home import CtHome, ct_home
from ct_assets.partitions import daily_partitions
from ct_assets.resources.wiring import build_resources
from ct_assets.settings import Settings, get_settings


def build_definitions(settings: Settings, home: CtHome) -> Definitions:
    home.ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    partitions = daily_partitions(settings.partitions.start_date)
    automation = automation_for(settings)
    sensors, schedules = build_triggers(settings)
    return Definitions(
        assets=[
            *build_data_assets(settings, partitions, automation),
            *build_model_assets(settings, partitions, automation),
        ],
        jobs=[approve_model, rollback_champion],
        sensors=[data_automation_sensor(), *sensors],
        schedules=schedules,
        resources=build_resources(settings, home),
    )


defs = build_definitions(get_settings(), ct_home())
