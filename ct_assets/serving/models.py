"""The models ct serve answers with, and how a new alias reaches them without a restart.

``Slots`` is immutable: the champion, the gated challenger (or None) and why a slot is
empty. ``ModelSlots.slots`` is the one reference requests read; a reload builds a new
``Slots`` aside and swaps it in with one assignment on the event loop. A request that
read the old object keeps its models until it is done (their batchers drain before
they stop), so a swap never fails or mixes a request.

Every ``serving.reload_seconds`` the aliases are re-read. A version not loaded yet is
loaded in a thread (downloading, building base + adapter: seconds), not on the event
loop, so requests keep being served meanwhile. A failed load keeps the slot's old
model, is logged, counted (``ct_serve_reloads_total{outcome="failed"}``) and retried
at the next read.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from ct_assets.core.model_settings import ServingSettings
from ct_assets.registry.loader import load_predictor
from ct_assets.registry.mlflow_registry import RegistryError
from ct_assets.registry.records import CHALLENGER, CHAMPION
from ct_assets.serving.batching import MicroBatcher
from ct_assets.serving.metrics import ServingMetrics
from ct_assets.serving.routing import challenger_problem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    version: int
    batcher: MicroBatcher


@dataclass(frozen=True)
class Slots:
    champion: LoadedModel | None = None
    challenger: LoadedModel | None = None  # only a challenger that may take traffic (routing.py)
    champion_problem: str | None = "starting: the first read of the registry has not finished"
    challenger_problem: str | None = "starting: the first read of the registry has not finished"


@dataclass(frozen=True)
class Targets:
    """What the registry says should be served now."""

    champion: int | None
    challenger: int | None  # None unless the challenger may take traffic
    champion_problem: str | None
    challenger_problem: str | None


class RegistryModels:
    """The registry under CT_HOME, as ct serve reads it: alias targets and predictors."""

    def __init__(self, registry, cache_dir: Path, *, max_length: int, batch_size: int,
                 db_path: Path | None = None, precision: str = "auto") -> None:
        self.registry, self.cache_dir = registry, Path(cache_dir)
        self.max_length, self.batch_size, self.precision = max_length, batch_size, precision
        self.db_path = db_path

    def targets(self) -> Targets:
        """Blocking (registry reads): call it in a thread."""
        if self.db_path is not None and not self.db_path.exists():
            # Asking MLflow would create an empty database; before any model there is none.
            why = (f"no version has alias 'champion': there is no model registry at {self.db_path} yet "
                   "(train the first model with `ct bootstrap`)")
            return Targets(None, None, why, "no version has alias 'challenger'")
        aliases = self.registry.aliases()
        champion, challenger = aliases.get(CHAMPION), aliases.get(CHALLENGER)
        info = None if challenger is None else self.registry.version_info(challenger)
        problem = challenger_problem(info, champion)
        no_champion = f"model {self.registry.model_name}: no version has alias 'champion'"
        return Targets(champion, None if problem else challenger, None if champion is not None else no_champion,
                       problem)

    def predictor(self, version: int):
        """Blocking (download, base + adapter): call it in a thread."""
        return load_predictor(self.registry, version, self.cache_dir, max_length=self.max_length,
                              batch_size=self.batch_size, precision=self.precision)


class ModelSlots:
    def __init__(self, source: RegistryModels, limits: ServingSettings, metrics: ServingMetrics) -> None:
        self.source, self.limits, self.metrics = source, limits, metrics
        self.slots = Slots()
        self._failed_loads: dict[int, str] = {}  # version -> why its last load failed

    async def keep_fresh(self) -> None:
        """Re-read the aliases every serving.reload_seconds until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception:  # a bug in one refresh must not stop all later ones
                log.exception("ct serve: model refresh failed; serving stays on %s", self.slots)
            await asyncio.sleep(self.limits.reload_seconds)

    async def refresh(self) -> Slots:
        old = self.slots
        try:
            targets = await asyncio.to_thread(self.source.targets)
        except RegistryError as err:  # down or refusing: keep serving what is loaded
            log.warning("ct serve: cannot read the aliases (keeping the loaded models): %s", err)
            self.metrics.reloads.labels(slot="aliases", outcome="failed").inc()
            if old.champion is None:
                self.slots = replace(old, champion_problem=f"cannot read the model registry: {err}")
            return self.slots
        loaded = {m.version: m for m in (old.champion, old.challenger) if m is not None}
        champion, champion_problem = await self._fill(CHAMPION, targets.champion, targets.champion_problem,
                                                      old.champion, loaded)
        challenger, challenger_problem = await self._fill(CHALLENGER, targets.challenger,
                                                          targets.challenger_problem, old.challenger, loaded)
        if challenger is not None and challenger is champion:
            # A kept model the champion slot now serves (promoted, or kept after a failed load):
            # it answers as the champion, never as its own canary.
            challenger = None
            challenger_problem = challenger_problem or f"challenger v{champion.version} is served as the champion"
        new = Slots(champion, challenger, champion_problem, challenger_problem)
        self.slots = new  # the swap: one reference assignment, on the event loop
        for model in loaded.values():
            if model is not champion and model is not challenger:
                log.info("ct serve: v%s retired; its batcher drains and stops", model.version)
                model.batcher.close()
        self._report(old, new)
        return new

    async def _fill(self, slot: str, version: int | None, problem: str | None, current: LoadedModel | None,
                    loaded: dict[int, LoadedModel]) -> tuple[LoadedModel | None, str | None]:
        if version is None:
            return None, problem
        if version in loaded:
            return loaded[version], None
        try:
            model = await asyncio.to_thread(self._load, version)
        except Exception as err:  # a failed load keeps the old model (module doc)
            kept = f"still serving v{current.version}" if current else "nothing loaded in its place"
            problem = f"loading {slot} v{version} failed ({type(err).__name__}: {err}); {kept}"
            # Retried at every alias read (the cause may pass: a store that was down); the
            # traceback once per version, then one line, so a broken version cannot flood the log.
            if self._failed_loads.get(version) is None:
                log.exception("ct serve: %s", problem)
            else:
                log.warning("ct serve: %s (again)", problem)
            self._failed_loads[version] = problem
            self.metrics.reloads.labels(slot=slot, outcome="failed").inc()
            return current, problem
        self._failed_loads.pop(version, None)
        self.metrics.reloads.labels(slot=slot, outcome="ok").inc()
        loaded[version] = model
        return model, None

    def _load(self, version: int) -> LoadedModel:
        predictor = self.source.predictor(version)
        batcher = MicroBatcher(predictor, max_batch=self.limits.max_batch, max_wait_ms=self.limits.max_wait_ms,
                               name=f"v{version}", on_batch=self.metrics.batch_observer(version))
        return LoadedModel(version, batcher)

    def _report(self, old: Slots, new: Slots) -> None:
        for slot, before, after in ((CHAMPION, old.champion, new.champion),
                                    (CHALLENGER, old.challenger, new.challenger)):
            version = after.version if after else None
            self.metrics.show_loaded(slot, version)
            if (before.version if before else None) != version:
                log.info("ct serve: %s slot now %s (was %s)", slot, f"v{version}" if after else "empty",
                         f"v{before.version}" if before else "empty")

    def close(self) -> list[MicroBatcher]:
        """Stop taking texts; the batchers (returned, to join) finish what is queued."""
        batchers = [m.batcher for m in (self.slots.champion, self.slots.challenger) if m is not None]
        for batcher in batchers:
            batcher.close()
        return batchers
