"""The forgetting ledger: golden accuracy per label and per slice, one entry per version
(pure, no Dagster).

Forgetting is a per-class story that one golden accuracy hides: a challenger that loses a
seasonal class while gaining elsewhere can keep its overall score. eval_report writes the
ledger of every version it evaluates (``ledger.json`` next to its report, logged to the
version's MLflow run under ``eval/``, and as a column of its lake row); the demo timeline
puts the ledgers of successive versions side by side, so a class's recall can be followed
across retrains.

An entry's ``accuracy`` is the share of that group's golden rows the version labels
right; for a label group that is the label's golden recall. ``champion`` is the champion
of the same evaluation, scored on the same golden version. ``changed`` marks a label the
gate treated as a concept change (its golden labels are contradicted by recent data, so
a low value there is not forgetting).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LEDGER_FILE = "ledger.json"
KINDS = ("overall", "label", "slice")


def build_ledger(
    *,
    version: int,
    partition: str,
    golden_sha256: str,
    challenger_golden: Mapping,
    champion_golden: Mapping | None,
    slices: Sequence[Mapping] = (),
    changed_classes: Iterable[str] = (),
) -> list[dict]:
    """Entries for one evaluated version, from the golden metrics eval_report already has
    (``classification_metrics`` dicts and ``challenger.slice_accuracy`` rows). Labels with
    no golden rows are kept, with accuracy None, so a class the golden set lacks is visible."""
    changed = set(changed_classes)
    base = {"version": int(version), "partition": partition, "golden_sha256": golden_sha256}
    champ = champion_golden or {}
    entries = [{**base, "kind": "overall", "group": "(all)", "rows": int(challenger_golden["n"]),
                "accuracy": challenger_golden["accuracy"], "champion": champ.get("accuracy"), "changed": False}]
    champ_recall = champ.get("per_class_recall") or {}
    for label, recall in challenger_golden["per_class_recall"].items():
        entries.append({**base, "kind": "label", "group": label, "rows": int(challenger_golden["support"][label]),
                        "accuracy": recall, "champion": champ_recall.get(label), "changed": label in changed})
    for s in slices:
        entries.append({**base, "kind": "slice", "group": s["slice"], "rows": int(s["n"]),
                        "accuracy": s["challenger"], "champion": s.get("champion"), "changed": False})
    return entries


def write_ledger(entries: Sequence[Mapping], out_dir: Path) -> Path:
    path = Path(out_dir) / LEDGER_FILE
    path.write_text(json.dumps(list(entries), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _cell(value) -> str:
    return "—" if value is None else f"{value:.3f}"


def ledger_markdown(entries: Sequence[Mapping]) -> str:
    """One version's ledger as a markdown table (the eval_report metadata)."""
    lines = ["| kind | group | golden rows | accuracy | champion | concept change |",
             "|---|---|---:|---:|---:|---|"]
    for e in entries:
        group = str(e["group"]).replace("|", "\\|")
        lines.append(f"| {e['kind']} | {group} | {e['rows']} | {_cell(e['accuracy'])} | "
                     f"{_cell(e['champion'])} | {'yes' if e['changed'] else ''} |")
    return "\n".join(lines)


def ledger_by_version(entries: Iterable[Mapping]) -> list[dict]:
    """Many versions' entries pivoted to one row per version (the timeline's table):
    ``version``, ``partition``, ``overall`` and one column per label (``label:X``) and per
    slice (``slice:Y``), in first-seen order. A later evaluation of the same version (a
    re-run of its day) replaces the earlier one."""
    latest: dict[int, list[Mapping]] = {}
    for e in entries:
        bucket = latest.setdefault(int(e["version"]), [])
        if bucket and bucket[0]["partition"] != e["partition"]:
            if e["partition"] < bucket[0]["partition"]:
                continue
            bucket.clear()
        bucket.append(e)
    rows = []
    for version in sorted(latest):
        group = latest[version]
        row = {"version": version, "partition": group[0]["partition"]}
        for e in group:
            column = "overall" if e["kind"] == "overall" else f"{e['kind']}:{e['group']}"
            row[column] = e["accuracy"]
        rows.append(row)
    return rows


def ledger_drops(rows: Sequence[Mapping]) -> dict[str, float]:
    """Per ledger column, the largest drop of a later version below the first version's
    value (0 when none fell): the per-class forgetting the single golden number hides."""
    if not rows:
        return {}
    first = rows[0]
    out = {}
    for column in (c for c in first if c not in ("version", "partition")):
        start = first[column]
        later = [r.get(column) for r in rows[1:] if r.get(column) is not None]
        if start is not None:
            out[column] = max([0.0, *(start - v for v in later)])
    return out
