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
a low value there is not forgetting). A label entry also has ``window_rows`` and
``replay_rows``: the rows of that class the version trained on from the sliding window
and from replay, so a class that left the window shows what replay still gave it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import polars as pl

from ct_assets.training.window import SPLIT

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
    trained_rows: Mapping[str, tuple[int, int]] | None = None,
) -> list[dict]:
    """Entries for one evaluated version, from the golden metrics eval_report already has
    (``classification_metrics`` dicts and ``challenger.slice_accuracy`` rows). Labels with
    no golden rows are kept, with accuracy None, so a class the golden set lacks is visible.
    ``trained_rows``: label -> (window rows, replay rows) the version trained on (train and
    val), so a class that left the window shows what replay still gave it."""
    changed = set(changed_classes)
    base = {"version": int(version), "partition": partition, "golden_sha256": golden_sha256}
    champ = champion_golden or {}
    entries = [{**base, "kind": "overall", "group": "(all)", "rows": int(challenger_golden["n"]),
                "accuracy": challenger_golden["accuracy"], "champion": champ.get("accuracy"), "changed": False}]
    champ_recall = champ.get("per_class_recall") or {}
    for label, recall in challenger_golden["per_class_recall"].items():
        entry = {**base, "kind": "label", "group": label, "rows": int(challenger_golden["support"][label]),
                 "accuracy": recall, "champion": champ_recall.get(label), "changed": label in changed}
        if trained_rows is not None:
            entry["window_rows"], entry["replay_rows"] = (int(n) for n in trained_rows.get(label, (0, 0)))
        entries.append(entry)
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


def trained_rows_by_label(frame: pl.DataFrame) -> dict[str, tuple[int, int]]:
    """label -> (window rows, replay rows) of a training_dataset frame's train and val splits
    (``_origin`` says which part of the window a row came from)."""
    rows = frame.filter(pl.col(SPLIT).is_in(["train", "val"]) & pl.col("label").is_not_null())
    out: dict[str, list[int]] = {}
    for label, origin, n in rows.group_by("label", "_origin").len().iter_rows():
        out.setdefault(str(label), [0, 0])[0 if origin == "window" else 1] += int(n)
    return {label: (w, r) for label, (w, r) in sorted(out.items())}


# A class has "left the window" for a version when its window rows fell below this share of
# the most any version had: annotation noise keeps a handful of rows of an absent class.
ABSENT_SHARE = 0.1


def replay_contrast(entries: Iterable[Mapping]) -> list[dict]:
    """Every version of each class that left the training window for some version (its
    window rows under ``ABSENT_SHARE`` of the most any version had): window rows, replay
    rows and golden recall, beside the first version's recall. Without replay the versions
    trained while it was gone saw almost none of the class; this is what a reader compares
    (the timeline's "Replay vs forgetting" table)."""
    labels = [e for e in entries if e["kind"] == "label" and "window_rows" in e]
    most: dict[str, int] = {}
    for e in labels:
        most[e["group"]] = max(most.get(e["group"], 0), e["window_rows"])
    absent = {e["group"] for e in labels
              if e["window_rows"] < ABSENT_SHARE * most[e["group"]] or most[e["group"]] == 0}
    first = {}
    for e in sorted(labels, key=lambda e: int(e["version"])):
        first.setdefault(e["group"], e["accuracy"])
    rows = []
    for e in sorted(labels, key=lambda e: (e["group"], int(e["version"]))):
        if e["group"] in absent:
            rows.append({"class": e["group"], "version": int(e["version"]), "partition": e["partition"],
                         "window rows": e["window_rows"], "replay rows": e["replay_rows"],
                         "left the window": e["window_rows"] < ABSENT_SHARE * most[e["group"]],
                         "golden recall": e["accuracy"], "first version's recall": first[e["group"]]})
    return rows
