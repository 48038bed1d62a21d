"""Directories under CT_HOME that assets write to (reports, Data Docs, checkpoints, caches)."""

from __future__ import annotations

from pathlib import Path

from dagster import ConfigurableResource


class StateDirs(ConfigurableResource):
    root: str

    def _dir(self, *parts: str) -> Path:
        path = Path(self.root).joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def reports_dir(self) -> Path:
        return self._dir("reports")

    def data_docs_dir(self) -> Path:
        return self._dir("reports", "data_docs")

    def checkpoints_dir(self, *parts: str) -> Path:
        return self._dir("checkpoints", *parts)

    def cache_dir(self, *parts: str) -> Path:
        """Recomputable derived data (e.g. drift calibrations, keyed by their inputs'
        content): deleting it costs time, never correctness."""
        return self._dir("cache", *parts)
