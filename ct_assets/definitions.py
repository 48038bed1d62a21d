"""Wiring only: settings + CT_HOME -> assets, checks, resources, automation."""

from __future__ import annotations

from dagster import Definitions

from ct_assets.assets.data_assets import build_data_assets
from ct_assets.assets.model_assets import build_model_assets
from ct_assets.automation.approval import approve_model, rollback_champion
from ct_assets.home import CtHome, ct_home
from ct_assets.partitions import daily_partitions
from ct_assets.resources.wiring import build_resources
from ct_assets.settings import Settings, get_settings


def build_definitions(settings: Settings, home: CtHome) -> Definitions:
    home.ensure(max_training_runs=settings.triggers.max_concurrent_training_runs)
    partitions = daily_partitions(settings.partitions.start_date)
    return Definitions(
        assets=[*build_data_assets(settings, partitions), *build_model_assets(settings, partitions)],
        jobs=[approve_model, rollback_champion],
        resources=build_resources(settings, home),
    )


defs = build_definitions(get_settings(), ct_home())
