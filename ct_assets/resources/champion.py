"""What the data half needs to know about the model in production.

The drift reference is the champion's training window once a champion exists, and the
drift report carries the champion's accuracy and prediction mix on the day. Before any
model is registered (no MLflow database yet) there is simply no champion.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path

import polars as pl
from dagster import ConfigurableResource, MetadataValue

from ct_assets import markdown
from ct_assets.ml.cbpe import estimate_accuracy


class ChampionInfo(ConfigurableResource):
    tracking_uri: str
    artifact_root: str
    model_name: str = "ct_text_classifier"
    cache_dir: str
    max_length: int = 64
    batch_size: int = 64

    def _db_exists(self) -> bool:
        prefix = "sqlite:///"
        return not self.tracking_uri.startswith(prefix) or Path(self.tracking_uri[len(prefix):]).exists()

    @cached_property
    def _registry(self):
        from ct_assets.ml.registry import AdapterRegistry

        return AdapterRegistry(self.tracking_uri, self.artifact_root, self.model_name)

    def champion_version(self) -> str | None:
        if not self._db_exists():
            return None
        return self._registry.get_alias("champion")

    def champion_window(self) -> tuple[dt.date, dt.date] | None:
        version = self.champion_version()
        if version is None:
            return None
        tags = self._registry.version_info(version).tags
        return dt.date.fromisoformat(tags["ct.window_start"]), dt.date.fromisoformat(tags["ct.window_end"])

    def predictor(self, alias_or_version: str):
        from ct_assets.ml.serving import load_predictor

        return load_predictor(
            self._registry, alias_or_version, Path(self.cache_dir), max_length=self.max_length,
            batch_size=self.batch_size,
        )

    def performance_on(self, frame: pl.DataFrame, day: dt.date) -> dict:
        """The champion's accuracy on the day's labelled rows, its label-free estimate
        (confidence-based, in the spirit of NannyML's CBPE) and its prediction mix."""
        version = self.champion_version()
        if version is None or frame.height == 0:
            return {"champion_version": version}
        pred = self.predictor(version).predict(frame["text"].to_list())
        labelled = frame["label"].is_not_null().to_numpy()
        truth = frame["label"].to_list()
        n_lab = int(labelled.sum())
        correct = sum(1 for i, ok in enumerate(labelled) if ok and pred.labels[i] == truth[i])
        mix: dict[str, int] = {}
        for label in pred.labels:
            mix[label] = mix.get(label, 0) + 1
        return {
            "champion_version": version,
            "champion_accuracy": round(correct / n_lab, 4) if n_lab else None,
            "champion_labelled_rows": n_lab,
            "champion_estimated_accuracy": round(estimate_accuracy(pred.confidence), 4),
            "champion_prediction_mix": mix,
        }

    def markdown(self, row: dict) -> str:
        if row.get("champion_version") is None:
            return "\n\n**Champion:** none yet (reference is the configured range)."
        acc = row.get("champion_accuracy")
        return (
            f"\n\n**Champion v{row['champion_version']}:** accuracy on labelled rows "
            f"{acc if acc is not None else 'n/a'} (n={row.get('champion_labelled_rows')}), "
            f"estimated (label-free) {row.get('champion_estimated_accuracy')}\n\n"
            + markdown.counts(row.get("champion_prediction_mix") or {}, "predicted label")
        )

    def metadata(self, row: dict) -> dict:
        if row.get("champion_version") is None:
            return {"champion_version": MetadataValue.text("none")}
        out = {
            "champion_version": MetadataValue.text(str(row["champion_version"])),
            "champion_estimated_accuracy": row.get("champion_estimated_accuracy"),
            "champion_prediction_mix": MetadataValue.json(row.get("champion_prediction_mix") or {}),
        }
        if row.get("champion_accuracy") is not None:
            out["champion_accuracy"] = row["champion_accuracy"]
        return out
