"""The golden set: a fixed, labelled evaluation set (pure).

The gate compares challenger and champion on it, and the leakage check keeps every one
of its rows (same event_id, or the same text after ``matching_key``) out of training.
Its content hash identifies the version the gate compared on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ct_assets.training.window import matching_key


class GoldenSetError(ValueError):
    """The golden file cannot be read; the message names the file and the row."""


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
    def ids(self) -> set[str]:
        return {str(r["event_id"]) for r in self.rows if r.get("event_id") is not None}

    @property
    def matching_keys(self) -> set[str]:
        return {matching_key(r["text"]) for r in self.rows}


def load_golden(path: str | Path) -> GoldenSet:
    """A JSONL golden file with at least ``text`` and ``label`` on every row."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise GoldenSetError(f"golden set {path}: cannot read: {err.strerror or err}") from None
    rows = []
    for n, line in enumerate(data.decode("utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise GoldenSetError(f"golden set {path}: row {n} is not valid JSON: {err.msg}") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or not isinstance(row.get("label"), str):
            raise GoldenSetError(f"golden set {path}: row {n} needs string 'text' and 'label'")
        rows.append(row)
    if not rows:
        raise GoldenSetError(f"golden set {path}: no rows")
    return GoldenSet(path=path, rows=tuple(rows), sha256=hashlib.sha256(data).hexdigest())
