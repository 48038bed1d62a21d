"""Storage per model version: adapter bytes vs base bytes.

No new measurement of its own: the adapters are the ones the training benchmark and the
CT cycle actually produced (a freshly initialised adapter would have the same size, but
the claim is about what the pipeline stores). The peer is the base's weight files, i.e.
what every version would cost if each retrain were a full fine-tune saved in full.
"""

from __future__ import annotations

from bench.common import ratio

NAME = "storage"


def run(train: dict | None, cycle: dict | None) -> dict:
    sources = {}
    if train is not None:
        p = train["paths"]["project"]
        sources["train_throughput adapter (fit_adapter)"] = {
            "adapter_bytes": p["adapter_bytes"], "base_bytes": p["base_bytes"]}
    if cycle is not None:
        c = cycle["chain"]
        base_bytes = round(c["adapter_bytes"] / c["adapter_to_base_bytes"])
        sources["ct_cycle registered version"] = {
            "adapter_bytes": c["adapter_bytes"], "base_bytes": base_bytes,
            # weights + adapter_config + labels + manifest, as downloaded from MLflow
            "registered_dir_bytes": c["registered_dir_bytes"]}
    if not sources:
        raise ValueError("storage needs the train_throughput or the ct_cycle result")
    for s in sources.values():
        s["adapter_to_base_bytes"] = ratio(s["adapter_bytes"], s["base_bytes"])
        s["versions_per_base_size"] = ratio(s["base_bytes"], s.get("registered_dir_bytes", s["adapter_bytes"]))
    headline = sources.get("ct_cycle registered version") or next(iter(sources.values()))
    return {
        "name": NAME,
        "sources": sources,
        "ratios": {"adapter_to_base_bytes": headline["adapter_to_base_bytes"]},
        "targets": {"adapter_to_base_bytes": "< 0.1 (the lora_adapter check's own threshold)"},
    }
