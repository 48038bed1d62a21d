"""What each drift scenario costs a static model: accuracy before vs after, per strength.

The static model is the first champion of the demo's --fast world, never retrained: one
LoRA adapter trained with the production path (ct_assets.training.fit.fit_adapter on the
MiniLM base of the embedded ct.yaml, --fast training settings) on the labelled rows of
the pre-drift days 0..PRE_DAYS-1 at 150 rows/day. It is then scored (registry.loader's
predictor_from_dir, the one inference path) on the drift days DRIFT_DAYS twice: in the
stable world ("before") and with one scenario switched on at DRIFT_DAYS[0] ("after").
Same days, same row count, so the difference is what the scenario costs, not day-to-day
noise. Scored against the annotated label (what the product sees), labelled rows only.

The adapter is cached in CACHE (keyed by the training rows and settings), so a rerun
after a scenario change (which leaves pre-drift days byte-identical) only re-scores.

    .venv/bin/python -m bench.scenario_cost [--strengths 0.5 1] [--scenarios concept_change ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import time
from pathlib import Path

import polars as pl

CACHE = Path("/tmp/scenario_cost")
OUT = Path(__file__).resolve().parent / "results" / "scenario_cost.json"
PRE_DAYS = 7  # the --fast window: what the first champion trains on
DRIFT_DAYS = range(9, 14)  # five days, as long as the demo's outage
SCENARIOS = ("product_launch", "slang_shift", "label_shift", "concept_change", "quality_incident",
             "seasonal_class")
SEASONAL_LABEL = "cancellation"


def world():
    import yaml

    from ct_assets.core.settings import default_config_text, parse_settings
    from ct_assets.demo.main import fast_settings

    settings = fast_settings(parse_settings(yaml.safe_load(default_config_text()), "embedded ct.yaml"))
    return settings


def sim_config(settings, *scenarios):
    from ct_assets.sim.simulator import SimulatorConfig

    s = settings.source.simulator
    return SimulatorConfig(labels=settings.labels, seed=s.seed, rows_per_day=s.rows_per_day,
                           same_day_label_share=s.same_day_label_share,
                           max_label_delay_days=s.max_label_delay_days,
                           never_labelled_share=s.never_labelled_share, scenarios=scenarios)


def labelled(config, start: dt.date, days, labels) -> pl.DataFrame:
    from ct_assets.sim.simulator import generate_day

    rows = [r for i in days for r in generate_day(config, start, start + dt.timedelta(days=i))
            if isinstance(r.get("text"), str) and r["text"].strip() and r.get("label") in labels]
    return pl.DataFrame({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})


def train_static(settings, start: dt.date) -> Path:
    from ct_assets.training.base_model import BaseModelSpec
    from ct_assets.training.fit import LoraParams, fit_adapter
    from ct_assets.training.loop import TrainConfig

    labels = list(settings.labels)
    data = labelled(sim_config(settings), start, range(PRE_DAYS), labels)
    tr = settings.training
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in tr.model_dump().items() if k in fields})
    key = hashlib.sha256(json.dumps([data.to_dicts(), repr(config), tr.lora.model_dump(),
                                     tr.base.model_dump()], default=str).encode()).hexdigest()[:16]
    out = CACHE / key / "adapter"
    if (out / "manifest.json").is_file() or any(out.glob("*.safetensors")):
        return out
    shuffled = data.sample(fraction=1.0, shuffle=True, seed=tr.seed)
    n_val = max(1, int(shuffled.height * tr.val_fraction))
    t0 = time.perf_counter()
    fit = fit_adapter(
        train=shuffled[n_val:], val=shuffled[:n_val], replay=shuffled.clear(), labels=labels,
        base=BaseModelSpec(tr.base.kind, tr.base.name, tr.base.model_id),
        lora=LoraParams(tr.lora.r, tr.lora.alpha, tr.lora.dropout, tr.lora.target_modules),
        config=config, min_rows=1, checkpoint_dir=CACHE / key / "ckpt", out_dir=out,
        manifest_extra={"bench": "scenario_cost"},
    )
    print(f"trained the static model on {data.height} rows in {time.perf_counter() - t0:.0f}s "
          f"(best val {fit.result.best_val_metric})", flush=True)
    return fit.adapter.directory


def accuracy(predictor, frame: pl.DataFrame) -> float:
    pred = predictor.predict(frame["text"].to_list())
    return sum(p == y for p, y in zip(pred.labels, frame["label"].to_list())) / max(1, frame.height)


def scenario(name: str, strength: float):
    from ct_assets.sim.simulator import Scenario

    return Scenario(name, DRIFT_DAYS[0], None, strength, SEASONAL_LABEL if name == "seasonal_class" else None)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.5, 1.0])
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIOS))
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    from ct_assets.registry.loader import predictor_from_dir

    settings = world()
    start = settings.partitions.start_date
    labels = list(settings.labels)
    adapter = train_static(settings, start)
    predictor = predictor_from_dir(adapter, "static model", max_length=settings.training.max_length, device="cpu")
    before_frame = labelled(sim_config(settings), start, DRIFT_DAYS, labels)
    before = accuracy(predictor, before_frame)
    table = []
    for name in args.scenarios:
        for s in args.strengths:
            frame = labelled(sim_config(settings, scenario(name, s)), start, DRIFT_DAYS, labels)
            after = accuracy(predictor, frame)
            table.append({"scenario": name, "strength": s, "before": round(before, 4), "after": round(after, 4),
                          "cost_points": round(100 * (before - after), 1), "rows": frame.height})
            print(f"{name:18s} {s:4.2f}  before {before:.3f}  after {after:.3f}  "
                  f"cost {100 * (before - after):5.1f} pts  ({frame.height} rows)", flush=True)
    result = {
        "name": "scenario_cost",
        "static_model": f"MiniLM ({settings.training.base.name}) + LoRA via fit_adapter, --fast training settings, "
                        f"labelled rows of days 0..{PRE_DAYS - 1} at {settings.source.simulator.rows_per_day} rows/day",
        "drift_days": [DRIFT_DAYS[0], DRIFT_DAYS[-1]],
        "before_rows": before_frame.height,
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "table": table,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
