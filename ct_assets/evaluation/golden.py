"""The golden set: the user's fixed, labelled evaluation set (pure).

The gate compares challenger and champion on it, ``eval_report`` reports accuracy per
label (and per slice when the file has a ``slice`` column), and the leakage check keeps
every one of its rows (same event_id, or the same text after ``matching_key``) out of
training. Its content hash names the version the gate compared on.

Formats: JSONL, CSV or Parquet, with string columns ``text`` and ``label`` and optional
``slice`` and ``event_id``. Every error names the file, and the row where there is one.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ct_assets.training.window import matching_key

FORMATS = (".jsonl", ".json", ".ndjson", ".csv", ".parquet")
CARVE_HINT = ("set golden.path in ct.yaml to your labelled evaluation set, or carve one from your reference "
              "days: ct golden carve --start D1 --end D2 --per-label N --out golden.jsonl")


class GoldenSetError(ValueError):
    """The golden set is missing or unusable; the message names the file, row and label."""


@dataclass(frozen=True)
class GoldenSet:
    path: Path
    rows: tuple[dict, ...]
    sha256: str

    @property
    def texts(self) -> list[str]:
        return [r["text"] for r in self.rows]

    @property
    def labels(self) -> list[str]:
        return [r["label"] for r in self.rows]

    @property
    def slices(self) -> list[str] | None:
        """The slice of every row, or None when the file has no slice column."""
        if not any("slice" in r for r in self.rows):
            return None
        return [str(r.get("slice") or "(none)") for r in self.rows]

    @property
    def ids(self) -> set[str]:
        return {str(r["event_id"]) for r in self.rows if r.get("event_id") is not None}

    @property
    def matching_keys(self) -> set[str]:
        return {matching_key(r["text"]) for r in self.rows}

    @property
    def version(self) -> dict:
        """What identifies this golden set in reports, manifests and MLflow tags."""
        return {"path": str(self.path), "sha256": self.sha256, "rows": len(self.rows)}


def _records(path: Path, data: bytes) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise GoldenSetError(f"golden set {path}: unknown format {path.suffix!r}; use one of {list(FORMATS)}")
    if suffix == ".parquet" or suffix == ".csv":
        try:
            frame = pl.read_parquet(data) if suffix == ".parquet" else pl.read_csv(data, infer_schema=False)
        except (pl.exceptions.PolarsError, OSError) as err:
            raise GoldenSetError(f"golden set {path}: cannot read {suffix[1:]}: {err}") from None
        return frame.to_dicts()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise GoldenSetError(f"golden set {path}: not UTF-8 (byte offset {err.start})") from None
    out = []
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise GoldenSetError(f"golden set {path}: row {n} is not valid JSON: {err.msg}") from None
        if not isinstance(row, dict):
            raise GoldenSetError(f"golden set {path}: row {n} is a {type(row).__name__}, not an object")
        out.append(row)
    return out


def load_golden(path: str | Path) -> GoldenSet:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise GoldenSetError(f"golden set {path}: cannot read ({err.strerror or err}); {CARVE_HINT}") from None
    rows = _records(path, data)
    for n, row in enumerate(rows, start=1):
        for column in ("text", "label"):
            value = row.get(column)
            if not isinstance(value, str) or not value.strip():
                raise GoldenSetError(f"golden set {path}: row {n} has no {column} (got {value!r})")
    if not rows:
        raise GoldenSetError(f"golden set {path}: no rows")
    return GoldenSet(path=path, rows=tuple(rows), sha256=hashlib.sha256(data).hexdigest())


def check_golden(golden: GoldenSet, labels: Sequence[str], *, min_per_label: int,
                 unsupported_labels: Sequence[str] = ()) -> None:
    """Every golden label is a configured label, and every configured label has at least
    ``min_per_label`` rows unless it is listed as unsupported."""
    known = set(labels)
    stray = sorted(set(unsupported_labels) - known)
    if stray:
        raise GoldenSetError(f"golden.unsupported_labels: {stray} are not in labels {list(labels)}")
    for n, row in enumerate(golden.rows, start=1):
        if row["label"] not in known:
            raise GoldenSetError(f"golden set {golden.path}: row {n} has label {row['label']!r}, which is not in "
                                 f"labels {list(labels)}")
    counts = Counter(golden.labels)
    short = {label: counts.get(label, 0) for label in labels
             if counts.get(label, 0) < min_per_label and label not in unsupported_labels}
    if short:
        detail = ", ".join(f"{label!r}: {n}" for label, n in short.items())
        raise GoldenSetError(
            f"golden set {golden.path}: too few rows for {detail} (golden.min_per_label is {min_per_label}); "
            "add rows, or list the label in golden.unsupported_labels")
