"""`ct bootstrap`: the first model, the training chain for the newest drift-checked day.

The run itself is the chain the retrain sensors launch (tested end to end elsewhere); here
the command's choices are checked: which day, which assets, which tags, and when it refuses.
"""

from __future__ import annotations

import pytest

from ct_assets import cli
from ct_assets.triggers.automation import CHAIN
from ct_assets_tests.triggers_tests.test_sensors import World, day


@pytest.fixture
def world(tmp_path, monkeypatch):
    w = World(tmp_path)
    monkeypatch.setattr("ct_assets.definitions.defs", w.defs)
    monkeypatch.setattr(cli, "ct_home", lambda: w.home)
    calls = []

    class Result:
        success, run_id = True, "run-1"

    def materialize_range(defs, instance, assets, first, last, tags=None, **kw):
        calls.append((tuple(assets), first, last, tags))
        return Result()

    monkeypatch.setattr("ct_assets.orchestration.runner.materialize_range", materialize_range)
    w.calls = calls
    return w


def test_bootstrap_trains_the_chain_for_the_newest_drift_checked_day(world, capsys):
    world.drift(day(3))
    world.drift(day(4))
    assert cli.main(["bootstrap"]) == 0
    key = day(4).isoformat()
    assert world.calls == [(CHAIN, key, key, {"ct/trigger": "manual", "ct/training": "true",
                                              "ct/reason": f"first model (ct bootstrap) on data up to {key}"})]
    assert capsys.readouterr().out.strip() == f"ct bootstrap: {' -> '.join(CHAIN)} for {key}: done (run run-1)"
    assert cli.main(["bootstrap", "--day", day(3).isoformat()]) == 0
    assert world.calls[-1][1] == day(3).isoformat()


def test_bootstrap_refuses_without_data_or_with_a_champion(world, tmp_path, capsys):
    assert cli.main(["bootstrap"]) == 2
    assert capsys.readouterr().err.strip() == ("ct bootstrap: no drift report yet; validate a day first "
                                               "(the data group, or `ct demo --data-only`)")
    world.drift(day(4))
    world.champion(tmp_path, window_end=day(4))
    assert cli.main(["bootstrap"]) == 2
    # (MLflow logs its own lines to stderr before it; the command's is the last.)
    assert capsys.readouterr().err.strip().splitlines()[-1] == ("ct bootstrap: a champion exists (v1); the triggers retrain it, or "
                                               "materialize the model group from the UI")
    assert world.calls == []
