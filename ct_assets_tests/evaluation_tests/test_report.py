from __future__ import annotations

import base64
import re

import numpy as np

from ct_assets.evaluation.gate import GateInput, decide_gate
from ct_assets.evaluation.metrics import classification_metrics, paired_bootstrap_diff
from ct_assets.evaluation.report import recall_plot_png, render_eval_markdown, write_png

LABELS = ["billing", "shipping", "login", "refund", "bug", "feature"]
THRESHOLDS = dict(min_improvement=0.0, require_ci_above_zero=True, max_forgetting=0.03, max_class_forgetting=0.10,
                  min_class_recall=0.3,
                  first_model_min_accuracy=0.6, first_model_min_macro_f1=0.5)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DATA_URI = re.compile(r"!\[per-class recall\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def _inputs(with_champion: bool = True, labels=LABELS) -> GateInput:
    rng = np.random.default_rng(0)
    y, g = rng.choice(labels, 400), rng.choice(labels, 120)

    def model(truth, p):
        return list(np.where(rng.random(len(truth)) < p, truth, rng.choice(labels, len(truth))))

    ch_h, ch_g = model(y, 0.9), model(g, 0.9)
    probs = rng.dirichlet(np.ones(len(labels)), len(y))
    inp = dict(challenger_holdout=classification_metrics(list(y), ch_h, probs, labels),
               challenger_golden=classification_metrics(list(g), ch_g, None, labels))
    if with_champion:
        cp_h = model(y, 0.7)
        inp.update(champion_holdout=classification_metrics(list(y), cp_h, None, labels),
                   champion_golden=classification_metrics(list(g), model(g, 0.9), None, labels),
                   bootstrap=paired_bootstrap_diff(list(y), ch_h, cp_h))
    return GateInput(**inp)


def _png_from(md: str) -> bytes:
    match = DATA_URI.search(md)
    assert match, "no embedded PNG data URI"
    return base64.b64decode(match.group(1))


def test_report_with_champion_has_verdict_tables_and_small_png():
    inp = _inputs()
    decision = decide_gate(inp, **THRESHOLDS)
    md = render_eval_markdown(inp, decision, challenger_name="v7", champion_name="v5")
    assert "**Verdict: PASSED** — v7 vs v5: all" in md
    assert "| metric | challenger | champion | delta |" in md
    assert md.count("| accuracy |") == 2  # holdout and golden tables
    assert "95% paired bootstrap CI" in md
    for label in LABELS:
        assert f"| {label} |" in md
    for name in decision.checks:
        assert f"| {name} | ✅ pass |" in md
    png = _png_from(md)
    assert png.startswith(PNG_MAGIC)
    assert len(png) < 60_000


def test_blocked_first_model_report_lists_reasons_and_blank_champion():
    inp = _inputs(with_champion=False)
    decision = decide_gate(inp, **{**THRESHOLDS, "first_model_min_accuracy": 0.99})
    md = render_eval_markdown(inp, decision)
    assert "**Verdict: BLOCKED** — challenger (first model): 1 of" in md
    assert "- first model holdout accuracy" in md
    assert "| first_model_accuracy | ❌ fail |" in md
    assert "| accuracy | 0.9" in md and "| — | — |" in md  # champion and delta columns empty
    assert _png_from(md).startswith(PNG_MAGIC)


def test_pipe_in_label_does_not_break_tables():
    inp = _inputs(labels=["a|b", "c"])
    md = render_eval_markdown(inp, decide_gate(inp, **THRESHOLDS))
    assert "| a\\|b |" in md
    assert "class_recall:a\\|b" in md


def test_write_png_matches_embedded_plot(tmp_path):
    inp = _inputs()
    path = write_png(tmp_path / "reports" / "recall.png", inp)
    data = path.read_bytes()
    assert data.startswith(PNG_MAGIC) and data == recall_plot_png(inp)
    md = render_eval_markdown(inp, decide_gate(inp, **THRESHOLDS), png=data)
    assert _png_from(md) == data
