"""The model slots: before the first model there is no registry database, and ct serve
says so without creating one (a database made by a reader would look like a registry that
lost its models); a reload reuses what is loaded, retires what is not needed, and a load
that fails keeps the old model, counted."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from ct_assets.core.model_settings import ServingSettings
from ct_assets.registry.mlflow_registry import AdapterRegistry, RegistryUnavailableError
from ct_assets.serving.batching import BatcherClosedError
from ct_assets.serving.metrics import ServingMetrics
from ct_assets.serving.models import ModelSlots, RegistryModels, Slots, Targets
from ct_assets_tests.helpers import make_home


def test_no_registry_yet_means_no_champion_and_no_database_is_created(tmp_path):
    home = make_home(tmp_path)
    db = home.mlflow / "mlflow.db"
    source = RegistryModels(AdapterRegistry(home.mlflow_tracking_uri, home.mlflow_artifact_root),
                            home.root / "cache", max_length=32, batch_size=8, db_path=db)
    targets = source.targets()
    assert (targets.champion, targets.challenger) == (None, None)
    assert targets.champion_problem.startswith("no version has alias 'champion': there is no model registry at")
    assert "ct bootstrap" in targets.champion_problem
    assert not db.exists()


class ScriptedSource:
    """What the registry says, one read at a time; versions in ``broken`` fail to load.
    A plain stand-in for RegistryModels (the server tests read the real registry): the swap
    logic is what is under test here."""

    def __init__(self, reads: list, broken: set[int]) -> None:
        self.reads, self.broken, self.loads = list(reads), broken, []

    def targets(self) -> Targets:
        read = self.reads.pop(0)
        if isinstance(read, Exception):
            raise read
        return read

    def predictor(self, version: int):
        self.loads.append(version)
        if version in self.broken:
            raise FileNotFoundError(f"adapter of v{version} is gone")
        return SimpleNamespace(version=version)


def test_a_swap_reuses_loaded_models_and_a_failed_load_keeps_the_old_one():
    reads = [
        Targets(1, 2, None, None),                           # champion v1, gated challenger v2
        Targets(2, 3, None, None),                           # v2 promoted; the new challenger v3 is broken
        Targets(4, None, None, "challenger v4 is the champion"),  # v4 promoted, and broken too
        RegistryUnavailableError("MLflow at sqlite:///x unavailable during read aliases: locked"),
    ]
    source = ScriptedSource(reads, broken={3, 4})
    metrics = ServingMetrics()
    models = ModelSlots(source, ServingSettings(), metrics)

    async def run() -> list[Slots]:
        return [await models.refresh() for _ in reads]

    try:
        first, promoted, broken_champion, registry_down = asyncio.run(run())
    finally:
        models.close()
    assert (first.champion.version, first.challenger.version) == (1, 2)
    # v2 moves from the challenger slot to the champion slot as the same loaded object, and
    # the kept old challenger (v2, now the champion) is not left in front of the canary arm.
    assert promoted.champion is first.challenger and promoted.challenger is None
    assert promoted.challenger_problem.startswith("loading challenger v3 failed (FileNotFoundError: adapter of v3")
    with pytest.raises(BatcherClosedError):
        first.champion.batcher.submit(["late"])  # v1 retired
    assert broken_champion.champion is promoted.champion  # still serving v2
    assert "loading champion v4 failed" in broken_champion.champion_problem
    assert "still serving v2" in broken_champion.champion_problem
    assert registry_down is broken_champion  # nothing changes while the registry is unreadable
    assert source.loads == [1, 2, 3, 4]
    sample = metrics.registry.get_sample_value
    assert sample("ct_serve_reloads_total", {"slot": "champion", "outcome": "ok"}) == 1
    assert sample("ct_serve_reloads_total", {"slot": "challenger", "outcome": "failed"}) == 1
    assert sample("ct_serve_reloads_total", {"slot": "champion", "outcome": "failed"}) == 1
    assert sample("ct_serve_reloads_total", {"slot": "aliases", "outcome": "failed"}) == 1
    assert sample("ct_serve_loaded_version", {"slot": "champion"}) == 2
