"""The naive serving peer of bench/serve_load.py: FastAPI calling a transformers
``pipeline`` once per request, on the same registered version (LoRA merged into the base,
which makes its forward pass cheaper than the unmerged adapter's, never dearer).

    python -m bench.naive_server --home CT_HOME --version N --port P
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

MODEL_NAME = "ct_text_classifier"


class Request(BaseModel):
    texts: list[str]
    ids: list[str] | None = None


def build_app(home: Path, version: int) -> FastAPI:
    import torch
    from transformers import pipeline

    from ct_assets.core.home import CtHome
    from ct_assets.registry.loader import adapter_dir_for, base_spec_from_manifest
    from ct_assets.registry.mlflow_registry import AdapterRegistry
    from ct_assets.training.adapter_io import load_adapter, read_manifest

    ct_home = CtHome(home)
    registry = AdapterRegistry(ct_home.mlflow_tracking_uri, ct_home.mlflow_artifact_root, MODEL_NAME)
    adapter = adapter_dir_for(registry, version, home / "cache" / "naive")
    model, tokenizer, labels = load_adapter(base_spec_from_manifest(read_manifest(adapter)), adapter)
    merged = model.merge_and_unload().eval()
    merged.config.id2label = dict(enumerate(labels))
    classify = pipeline("text-classification", model=merged, tokenizer=tokenizer, device="cuda" if torch.cuda.is_available() else "cpu",
                        truncation=True, max_length=64)
    app = FastAPI()

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    @app.post("/predict")
    def predict(request: Request) -> dict:  # sync: FastAPI runs it in its thread pool, per request
        return {"predictions": [{"label": p["label"], "confidence": p["score"]} for p in classify(request.texts)]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--version", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(build_app(args.home, args.version), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
