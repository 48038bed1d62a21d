"""Markdown evaluation report for Dagster metadata (``MetadataValue.md``).

The plot is embedded as a base64 PNG data URI so the report is one self-contained
string; Dagster's UI renders it. The figure is kept small (low dpi, few colours) so the
metadata entry stays well under ~60 kB. Drawing uses a bare ``Figure`` on the Agg
canvas, not pyplot: no global backend switch, no figure registry to leak, thread-safe.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ct_assets.evaluation.gate import GateDecision, GateInput

_METRICS = (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("ece", "ECE"), ("n", "n"))


def _fmt(x, signed: bool = False) -> str:
    if x is None:
        return "—"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:+d}" if signed else str(x)
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def _cell(text: str) -> str:
    # A "|" inside a label would split the table cell.
    return str(text).replace("|", "\\|")


def _metric_table(ch: dict, champ: dict | None) -> list[str]:
    rows = ["| metric | challenger | champion | delta |", "|---|---:|---:|---:|"]
    for key, name in _METRICS:
        a = ch.get(key)
        b = champ.get(key) if champ else None
        delta = a - b if a is not None and b is not None else None
        rows.append(f"| {name} | {_fmt(a)} | {_fmt(b)} | {_fmt(delta, signed=True)} |")
    return rows


def _labels(inp: GateInput) -> list[str]:
    seen: dict[str, None] = {}
    for m in (inp.challenger_holdout, inp.challenger_golden, inp.champion_holdout, inp.champion_golden):
        if m:
            seen.update(dict.fromkeys(m["per_class_recall"]))
    return list(seen)


def _recall(m: dict | None, label: str):
    return m["per_class_recall"].get(label) if m else None


def recall_plot_png(inp: GateInput, dpi: int = 80, min_class_recall: float | None = None) -> bytes:
    """Grouped bars of per-class recall, challenger vs champion, holdout and golden; a
    dashed line marks the gate's min_class_recall when given."""
    labels = _labels(inp)
    series = [
        ("challenger holdout", inp.challenger_holdout, "#1f77b4", None),
        ("challenger golden", inp.challenger_golden, "#1f77b4", "//"),
        ("champion holdout", inp.champion_holdout, "#999999", None),
        ("champion golden", inp.champion_golden, "#999999", "//"),
    ]
    series = [s for s in series if s[1] is not None]
    width = 0.8 / len(series)
    fig = Figure(figsize=(max(4.0, 0.9 * len(labels) + 2), 2.8), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    for i, (name, m, colour, hatch) in enumerate(series):
        # Missing recall (no support) is drawn as an empty slot, not as 0.
        values = [_recall(m, lb) if _recall(m, lb) is not None else float("nan") for lb in labels]
        xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(labels))]
        ax.bar(xs, values, width, label=name, color=colour, hatch=hatch, edgecolor="white")
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0, fontsize=8)
    if min_class_recall is not None:
        ax.axhline(min_class_recall, color="#d62728", linestyle="--", linewidth=1)
    # Headroom above 1.0 keeps the legend off the bars.
    ax.set_ylim(0, 1.3)
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_ylabel("recall", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=7, ncols=len(series), loc="upper center", frameon=False)
    ax.set_title("per-class recall", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def write_png(path: str | Path, inp: GateInput, min_class_recall: float | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(recall_plot_png(inp, min_class_recall=min_class_recall))
    return path


def render_eval_markdown(
    inp: GateInput,
    decision: GateDecision,
    *,
    title: str = "Challenger evaluation",
    challenger_name: str = "challenger",
    champion_name: str | None = "champion",
    png: bytes | None = None,
    slices: list[dict] | None = None,
    concept_evidence: list[dict] | None = None,
) -> str:
    """The full report. Pass ``png`` to reuse bytes already written with ``write_png``."""
    verdict = "PASSED" if decision.passed else "BLOCKED"
    who = f"{challenger_name} vs {champion_name}" if inp.has_champion else f"{challenger_name} (first model)"
    n_failed = sum(not c["passed"] for c in decision.checks.values())
    n_checks = len(decision.checks)
    tally = f"{n_failed} of {n_checks} checks failed" if n_failed else f"all {n_checks} checks passed"
    lines = [f"## {title}", "", f"**Verdict: {verdict}** — {_cell(who)}: {tally}.", ""]
    if decision.reasons:
        lines += [f"- {_cell(r)}" for r in decision.reasons] + [""]
    if inp.bootstrap is not None:
        diff, lo, hi = inp.bootstrap
        lines += [
            f"Holdout accuracy difference {_fmt(diff, True)} "
            f"({inp.confidence:.0%} paired bootstrap CI [{_fmt(lo, True)}, {_fmt(hi, True)}])",
            "",
        ]
    champ_h = inp.champion_holdout
    champ_g = inp.champion_golden
    lines += ["### Holdout", "", *_metric_table(inp.challenger_holdout, champ_h), ""]
    lines += ["### Golden set", "", *_metric_table(inp.challenger_golden, champ_g), ""]

    lines += [
        "### Per-label accuracy (recall)",
        "",
        "| class | challenger holdout | champion holdout | challenger golden | champion golden |",
        "|---|---:|---:|---:|---:|",
    ]
    for label in _labels(inp):
        vals = [_recall(m, label) for m in (inp.challenger_holdout, champ_h, inp.challenger_golden, champ_g)]
        lines.append(f"| {_cell(label)} | " + " | ".join(_fmt(v) for v in vals) + " |")
    lines.append("")

    if slices:
        lines += ["### Golden accuracy per slice", "", "| slice | rows | challenger | champion |", "|---|---:|---:|---:|"]
        lines += [f"| {_cell(s['slice'])} | {s['n']} | {_fmt(s['challenger'])} | {_fmt(s['champion'])} |"
                  for s in slices]
        lines.append("")

    if inp.changed_classes:
        lines += ["### Concept changes", "",
                  "Treated as concept changes (their golden rows are left out of golden_forgetting and their "
                  "golden recall is not judged): " + ", ".join(f"`{_cell(c)}`" for c in sorted(inp.changed_classes)),
                  ""]
        if concept_evidence:
            lines += ["| day | class | concept_shift | threshold | now labelled |", "|---|---|---:|---:|---|"]
            lines += [f"| {e['day']} | {_cell(e['class'])} | {_fmt(e.get('score'))} | {_fmt(e.get('threshold'))} | "
                      f"{_cell(e.get('confused_label') or '—')} |" for e in concept_evidence]
            lines.append("")

    lines += ["### Gate checks", "", "| check | result | value | threshold |", "|---|---|---:|---:|"]
    for name, c in decision.checks.items():
        mark = "✅ pass" if c["passed"] else "❌ fail"
        scope = f" ({c['scope']})" if c.get("scope") else ""
        lines.append(f"| {_cell(name)}{_cell(scope)} | {mark} | {_fmt(c['value'])} | {_fmt(c['threshold'])} |")
    # Not judged is neither pass nor fail: shown with its reason, not counted above.
    lines += [f"| {_cell(name)} | ⚪ not judged: {_cell(why)} | — | — |" for name, why in decision.not_judged.items()]
    lines.append("")
    if decision.notes:
        lines += [f"_Note: {_cell(n)}_" for n in decision.notes] + [""]

    if png is None:
        floors = [c["threshold"] for name, c in decision.checks.items() if name.startswith("class_recall:")]
        png = recall_plot_png(inp, min_class_recall=floors[0] if floors else None)
    data = base64.b64encode(png).decode("ascii")
    lines += [f"![per-class recall](data:image/png;base64,{data})", ""]
    return "\n".join(lines)
