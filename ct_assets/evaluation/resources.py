"""The golden set as a resource: where it lives is wiring; what it is, is evaluation.golden."""

from __future__ import annotations

from dagster import ConfigurableResource

from ct_assets.evaluation.golden import GoldenSet, load_golden


class GoldenSetResource(ConfigurableResource):
    path: str

    def load(self) -> GoldenSet:
        return load_golden(self.path)
