"""`ct bootstrap`: the first model, the training chain for the newest drift-checked day,
run for real on the instance under CT_HOME (tiny base, real MLflow), and its refusals."""

from __future__ import annotations

import pytest

from ct_assets import cli
from ct_assets.definitions import build_definitions
from ct_assets.orchestration.runner import instance_for, materialize_range
from ct_assets.registry.mlflow_registry import AdapterRegistry
from ct_assets.triggers.automation import CHAIN
from ct_assets_tests.helpers import day, make_home, model_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")


@pytest.fixture
def home(tmp_path, sim_base_dir, monkeypatch):
    """A user's CT_HOME whose `ct` commands see the tiny-model settings."""
    home = make_home(tmp_path)
    defs = build_definitions(model_settings(sim_base_dir), home)
    monkeypatch.setattr("ct_assets.definitions.defs", defs)
    monkeypatch.setattr(cli, "ct_home", lambda: home)
    monkeypatch.setenv("DAGSTER_HOME", str(home.dagster))  # instance_for sets it: restored after the test
    return home, defs


def test_bootstrap_trains_and_promotes_the_first_model_for_the_newest_drift_checked_day(home, capsys):
    home, defs = home
    instance = instance_for(home)
    assert materialize_range(defs, instance, DATA, day(0), day(4)).success
    assert cli.main(["bootstrap"]) == 0
    (run,) = [r for r in instance.get_runs() if r.tags.get("ct/training") == "true"]
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"ct bootstrap: {' -> '.join(CHAIN)} for {day(4)}: done (run {run.run_id})")
    assert (run.tags["ct/trigger"], run.tags["ct/reason"]) == ("manual", f"first model (ct bootstrap) on data up to "
                                                                         f"{day(4)}")
    assert run.tags["dagster/partition"] == day(4)
    reg = AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root)
    assert reg.aliases() == {"challenger": 1, "champion": 1}
    assert reg.version_info(1).tags["ct.window_end"] == day(4)
    # A champion now exists: a second bootstrap refuses and starts nothing.
    assert cli.main(["bootstrap"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "ct bootstrap: a champion exists (v1); the triggers retrain it, or materialize the model group from the UI")
    assert len(instance.get_runs()) == 2


def test_bootstrap_without_a_drift_report_refuses_and_starts_nothing(home, capsys):
    home, _ = home
    assert cli.main(["bootstrap"]) == 2
    assert capsys.readouterr().err.strip() == ("ct bootstrap: no drift report yet; validate a day first "
                                               "(the data group, or `ct demo --data-only`)")
    assert instance_for(home).get_runs() == []
