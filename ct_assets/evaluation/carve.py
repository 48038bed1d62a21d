"""`ct golden carve`: a golden set cut from validated days (pure, no Dagster).

The rows come from the ``validated_window`` partitions of D1..D2 in the lake, with the
labels known at the end of D2 (``labels_as_of``, the one point-in-time rule). Then:

- one row per normalized text (``matching_key``, the key the leakage check uses); a text
  whose copies carry different labels is left out, since a golden row must have one answer;
- per label, the first N rows in blake2b order of the normalized text: the same rows give
  the same set whatever their ids, files or row order (no RNG over row positions);
- a label with fewer than N rows gives all it has, and the report says so.

The file is JSONL with ``event_id, text, label`` (and ``slice`` when the rows carry one),
written atomically; ``load_golden`` reads it, and ``training_dataset`` keeps its rows out
of training by event_id and by matching_key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl
from upath import UPath

from ct_assets.core.time import days_between, labels_as_of
from ct_assets.lake.parquet import partition_path, read_parquet
from ct_assets.training.window import matching_key

ASSET = "validated_window"
COLUMNS = ("event_id", "text", "label")
SLICE = "slice"
# Fixed salt: the selection must not move when a training seed or anything else changes.
_SALT = "ct-golden-v1"
# GoldenSettings' default min_per_label: fewer rows per label make per-class recall noisy.
NOISY_BELOW = 20


class CarveError(ValueError):
    """Nothing to carve from; the message names the range and the lake folder."""


@dataclass(frozen=True)
class CarveResult:
    path: Path
    start: dt.date
    end: dt.date
    per_label: int
    counts: dict[str, int]  # rows per label, ct.yaml label order
    days_read: tuple[str, ...]
    days_missing: tuple[str, ...]
    rows_read: int
    labelled_as_of_end: int
    duplicates_removed: int  # rows whose normalized text was already taken
    conflicting_removed: int  # rows of texts that carry two or more labels
    other_labels: dict[str, int]  # labels in the lake that ct.yaml does not list (not carved)

    @property
    def short(self) -> dict[str, int]:
        return {label: n for label, n in self.counts.items() if n < self.per_label}

    @property
    def min_per_label(self) -> int:
        present = [n for n in self.counts.values() if n > 0]
        return min(min(present), self.per_label)

    def settings_yaml(self) -> str:
        """The ct.yaml lines that use this set."""
        # Quoted (a JSON string is YAML): a path with ": " or a leading "[" stays one string.
        lines = ["golden:", f"  path: {json.dumps(str(self.path))}", f"  min_per_label: {self.min_per_label}"]
        absent = [label for label, n in self.counts.items() if n == 0]
        if absent:
            lines.append(f"  unsupported_labels: [{', '.join(absent)}]")
        return "\n".join(lines)

    def report(self) -> str:
        head = (f"carved {sum(self.counts.values())} golden rows from {ASSET} {self.start}..{self.end} "
                f"(labels as of the end of {self.end}) into {self.path}")
        read = (f"read {self.rows_read} rows from {len(self.days_read)} day(s); {self.labelled_as_of_end} labelled "
                f"as of {self.end}; left out: {self.duplicates_removed} row(s) repeating a text or event, "
                f"{self.conflicting_removed} row(s) whose text carries two labels")
        lines = [head, read, "", f"{'label':<20}{'rows':>6}"]
        lines += [f"{label:<20}{n:>6}" for label, n in self.counts.items()]
        if self.days_missing:
            lines.append(f"WARNING: no {ASSET} partition for {', '.join(self.days_missing)}; those days are not in "
                         "the set (materialize them first to include them)")
        for label, n in self.short.items():
            lines.append(f"WARNING: label {label!r} has no rows in {self.start}..{self.end}: list it in "
                         "golden.unsupported_labels, or carve a wider range" if n == 0 else
                         f"WARNING: label {label!r} has only {n} row(s) in {self.start}..{self.end} (asked "
                         f"{self.per_label}): took all {n}")
        if self.other_labels:
            lines.append(f"WARNING: labels not in ct.yaml labels were not carved: {self.other_labels}")
        if self.min_per_label < NOISY_BELOW:
            lines.append(f"note: {self.min_per_label} row(s) for the smallest label; below {NOISY_BELOW} the "
                         "gate's per-class recall is noisy")
        return "\n".join([*lines, "", "use it in ct.yaml:", self.settings_yaml()])


def _order(key: str) -> str:
    return hashlib.blake2b(f"{_SALT}:{key}".encode(), digest_size=8).hexdigest()


def select_golden(frame: pl.DataFrame, *, as_of: dt.date, per_label: int,
                  labels: Sequence[str]) -> tuple[pl.DataFrame, dict]:
    """The golden rows of ``frame`` (validated rows) and the counts of what was left out."""
    known = labels_as_of(frame, as_of).filter(pl.col("label").is_not_null())
    listed = pl.col("label").is_in(pl.Series(list(labels), dtype=pl.Utf8).implode())
    in_config, other = known.filter(listed), known.filter(~listed)
    keep = [*COLUMNS, *([SLICE] if SLICE in frame.columns else [])]
    rows = in_config.select(keep).with_columns(
        pl.Series("_key", [matching_key(t) for t in in_config.get_column("text").to_list()], dtype=pl.Utf8))
    rows = rows.with_columns(pl.Series("_h", [_order(k) for k in rows.get_column("_key").to_list()], dtype=pl.Utf8))
    conflicting = pl.col("label").n_unique().over("_key") > 1
    n_conflicting = rows.filter(conflicting).height
    rows = rows.filter(~conflicting).sort(["_h", "event_id"])
    # One row per text, then per event (a re-delivered event can sit in two days' partitions).
    unique = rows.unique("_key", keep="first", maintain_order=True).unique("event_id", keep="first",
                                                                           maintain_order=True)
    ranked = unique.with_columns(_rank=pl.int_range(pl.len()).over("label"))
    chosen = ranked.filter(pl.col("_rank") < per_label)
    order = {label: i for i, label in enumerate(labels)}
    chosen = chosen.with_columns(_lo=pl.col("label").replace_strict(order, return_dtype=pl.Int64))
    chosen = chosen.sort(["_lo", "_rank"]).select(keep)
    return chosen, {
        "labelled_as_of_end": known.height,
        "duplicates_removed": rows.height - unique.height,
        "conflicting_removed": n_conflicting,
        "other_labels": {str(k): int(v) for k, v in other.group_by("label").len().sort("label").iter_rows()},
    }


def read_validated(lake: str | os.PathLike, start: dt.date, end: dt.date) -> tuple[dict[str, pl.DataFrame],
                                                                                 list[str]]:
    """The stored validated_window partitions of start..end, and the days without one."""
    if end < start:
        raise CarveError(f"--end {end} is before --start {start}")
    frames, missing = {}, []
    for day in days_between(start, end):
        path = partition_path(UPath(os.fspath(lake)), [ASSET], day.isoformat())
        if path.exists():
            frames[day.isoformat()] = read_parquet(path)
        else:
            missing.append(day.isoformat())
    if not frames:
        raise CarveError(f"no {ASSET} partitions for {start}..{end} in {UPath(os.fspath(lake)) / ASSET}; "
                         f"materialize {ASSET} for those days first (Dagster UI, or `DAGSTER_HOME=$CT_HOME/dagster "
                         f"dagster asset materialize -m ct_assets.definitions --select "
                         f"raw_window,validated_window,quarantined_rows --partition-range {start}...{end}`)")
    return frames, missing


def _write_jsonl(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def carve_golden(lake: str | os.PathLike, *, start: dt.date, end: dt.date, per_label: int, out: str | os.PathLike,
                 labels: Sequence[str]) -> CarveResult:
    if per_label < 1:
        raise CarveError(f"--per-label must be at least 1, got {per_label}")
    out = Path(out).absolute()
    if out.suffix.lower() not in (".jsonl", ".ndjson", ".json"):
        # load_golden picks the format by suffix: JSONL under a .csv name would not load.
        raise CarveError(f"--out {out}: the golden set is written as JSONL, so the name must end in .jsonl")
    frames, missing = read_validated(lake, start, end)
    frame = pl.concat(list(frames.values()), how="diagonal_relaxed")
    chosen, stats = select_golden(frame, as_of=end, per_label=per_label, labels=labels)
    if chosen.height == 0:
        raise CarveError(f"{ASSET} {start}..{end} has {frame.height} rows but none labelled with one of "
                         f"{list(labels)} as of the end of {end}: nothing to carve")
    _write_jsonl(chosen.to_dicts(), out)
    counts = dict(chosen.group_by("label").len().iter_rows())
    return CarveResult(
        path=out, start=start, end=end, per_label=per_label,
        counts={label: int(counts.get(label, 0)) for label in labels},
        days_read=tuple(frames), days_missing=tuple(missing), rows_read=frame.height,
        **stats)
