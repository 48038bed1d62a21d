"""Where rows come from: interchangeable sources behind one resource interface.

``LandingZoneSource`` reads real drops. ``SimulatorSource`` first writes the simulated
day into the same landing zone and then reads it back through the very same path, so
the demo exercises the ingestion code that production data goes through.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from pathlib import Path

from dagster import Config, ConfigurableResource

from ct_assets.ingest.contract import LandingDay, landing_root, read_landing_day


class RowSource(ConfigurableResource, ABC):
    """One day of rows under the landing row contract."""

    @abstractmethod
    def fetch_day(self, day: dt.date) -> LandingDay: ...

    @abstractmethod
    def describe(self) -> str: ...


class LandingZoneSource(RowSource):
    path: str
    fail_on_empty_day: bool = False

    def fetch_day(self, day: dt.date) -> LandingDay:
        return read_landing_day(landing_root(self.path), day, fail_on_empty=self.fail_on_empty_day)

    def describe(self) -> str:
        return f"landing zone {self.path}"


class ScenarioConfig(Config):
    name: str
    start_day: int
    end_day: int | None = None
    strength: float = 1.0
    label: str | None = None  # seasonal_class: the class that leaves the traffic


class SimulatorSource(LandingZoneSource):
    # No defaults: the wiring passes source.simulator.* from settings, the one source.
    labels: list[str]
    start_date: str
    seed: int
    rows_per_day: int
    same_day_label_share: float
    max_label_delay_days: int
    never_labelled_share: float
    scenarios: list[ScenarioConfig]

    def simulator_config(self):
        from ct_assets.sim.simulator import Scenario, SimulatorConfig

        return SimulatorConfig(
            labels=tuple(self.labels),
            seed=self.seed,
            rows_per_day=self.rows_per_day,
            same_day_label_share=self.same_day_label_share,
            max_label_delay_days=self.max_label_delay_days,
            never_labelled_share=self.never_labelled_share,
            scenarios=tuple(
                Scenario(name=s.name, start_day=s.start_day, end_day=s.end_day, strength=s.strength, label=s.label)
                for s in self.scenarios
            ),
        )

    def simulate_day(self, day: dt.date) -> Path:
        from ct_assets.sim.simulator import write_day

        return write_day(self.simulator_config(), dt.date.fromisoformat(self.start_date), day, landing_root(self.path))

    def fetch_day(self, day: dt.date) -> LandingDay:
        self.simulate_day(day)
        return super().fetch_day(day)

    def describe(self) -> str:
        return f"simulator (seed {self.seed}) writing into landing zone {self.path}"
