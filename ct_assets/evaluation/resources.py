"""The golden set as a resource: where it lives is wiring; what it is, is evaluation.golden."""

from __future__ import annotations

from dagster import ConfigurableResource

from ct_assets.evaluation.golden import CARVE_HINT, GoldenSet, GoldenSetError, check_golden, load_golden


class GoldenSetResource(ConfigurableResource):
    path: str | None
    labels: list[str]
    min_per_label: int
    unsupported_labels: list[str] = []

    def load(self) -> GoldenSet:
        """The configured set, checked again (the file may have changed since settings
        loaded). Without one, the model half stops here with one line saying what to do."""
        if self.path is None:
            raise GoldenSetError(f"no golden set configured, so nothing can be evaluated or promoted: {CARVE_HINT}")
        golden = load_golden(self.path)
        check_golden(golden, self.labels, min_per_label=self.min_per_label, unsupported_labels=self.unsupported_labels)
        return golden
