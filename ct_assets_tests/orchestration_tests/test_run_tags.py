"""Every run carries ct/trigger and ct/reason, also the runs nobody tagged at launch (a
materialization or backfill from the UI, an automation sensor's request)."""

from __future__ import annotations

import pytest
from dagster import instance_for_test

from ct_assets.core.schema import run_story
from ct_assets.definitions import build_definitions
from ct_assets.orchestration.runner import materialize_range
from ct_assets_tests.helpers import day, make_home, small_settings


@pytest.mark.parametrize("tags, story", [
    ({"ct/trigger": "drift", "ct/reason": "drift OOV=0.20 > 0.08"}, ("drift", "drift OOV=0.20 > 0.08")),
    ({"dagster/backfill": "abcd"}, ("manual", "backfill abcd launched from the UI or CLI")),
    ({"dagster/sensor_name": "data_automation_sensor"}, ("automation", "requested by data_automation_sensor")),
    ({"dagster/schedule_name": "weekly_retrain_schedule"}, ("schedule", "requested by weekly_retrain_schedule")),
    ({}, ("manual", "materialized from the Dagster UI or CLI")),
])
def test_run_story_from_our_tags_or_dagsters(tags, story):
    assert run_story(tags) == story


@pytest.mark.parametrize("launch_tags, expected", [
    ({}, {"ct/trigger": "manual", "ct/reason": "materialized from the Dagster UI or CLI"}),
    ({"dagster/backfill": "b1"}, {"ct/trigger": "manual", "ct/reason": "backfill b1 launched from the UI or CLI"}),
    ({"ct/trigger": "manual", "ct/reason": "mine"}, {"ct/trigger": "manual", "ct/reason": "mine"}),
])
def test_an_untagged_run_is_tagged_with_its_story_by_its_first_asset(tmp_path, launch_tags, expected):
    defs = build_definitions(small_settings(), make_home(tmp_path))
    with instance_for_test() as instance:
        result = materialize_range(defs, instance, ("raw_window",), day(0), day(0), tags=launch_tags)
        tags = instance.get_run_by_id(result.run_id).tags
    assert {k: tags[k] for k in expected} == expected
