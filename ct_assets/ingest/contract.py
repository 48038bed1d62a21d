"""The landing-zone row contract: read one day's files into the raw frame.

Layout: ``<landing>/dt=YYYY-MM-DD/*.jsonl | *.csv | *.parquet``. The raw frame schema
is in docs/CONTRACTS.md. Two outcomes only, for every kind of bad input:
- a file-level problem (undecodable bytes, unparseable line, missing column, a parquet
  column of the wrong type) raises ``LandingFileError`` naming file, partition, problem;
- a row-level problem (bad timestamp, a number where text belongs) keeps the row, with
  the original value preserved, for the quality rules to quarantine with a reason.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ct_assets.core.schema import (
    RAW_SCHEMA,
    REQUIRED_COLUMNS,
    STRING_COLUMNS,
    TIMESTAMP_COLUMNS,
)

SUFFIXES = (".jsonl", ".csv", ".parquet")


class LandingFileError(ValueError):
    """A landing file cannot be read under the row contract."""

    def __init__(self, path: Path, partition: str, problem: str):
        super().__init__(f"{path} (partition {partition}): {problem}")
        self.path, self.partition, self.problem = path, partition, problem


class EmptyDayError(ValueError):
    """No data for a day, raised only when settings say an empty day is an error."""


@dataclass(frozen=True)
class LandingDay:
    frame: pl.DataFrame
    files: tuple[Path, ...]
    bytes_read: int


def day_dir(landing: Path, day: dt.date) -> Path:
    return landing / f"dt={day.isoformat()}"


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def parse_timestamp(value: object) -> dt.datetime | None:
    """ISO-8601 to an aware UTC datetime; None when missing or unparseable.

    A naive timestamp is read as UTC: the contract says timestamps are UTC.
    """
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=dt.timezone.utc) if parsed.tzinfo is None else parsed.astimezone(dt.timezone.utc)


def _raw_string(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return json.dumps(value)


def _coerce_records(records: list[dict], rel_name: str) -> pl.DataFrame:
    """Contract columns to their types, keeping every original value recoverable."""
    cols: dict[str, list] = {name: [] for name in RAW_SCHEMA}
    extras: dict[str, list] = {}
    extra_names: list[str] = []
    for rec in records:
        for key in rec:
            if key not in RAW_SCHEMA and key not in extras:
                extras[key] = []
                extra_names.append(key)
    for line_no, rec in enumerate(records, start=1):
        errors = []
        for name in STRING_COLUMNS:
            value = rec.get(name)
            if value is not None and not isinstance(value, str):
                errors.append(f"{name}: expected string, got {type(value).__name__}")
                value = _raw_string(value)
            cols[name].append(value)
        for name in TIMESTAMP_COLUMNS:
            value = rec.get(name)
            cols[name].append(parse_timestamp(value))
            cols[f"_raw_{name}"].append(_raw_string(value))
        cols["_source_file"].append(rel_name)
        cols["_line"].append(line_no)
        cols["_type_errors"].append("; ".join(errors) or None)
        for key in extra_names:
            extras[key].append(rec.get(key))
    frame = pl.DataFrame(cols, schema=RAW_SCHEMA)
    if extra_names:
        try:
            extra_frame = pl.DataFrame(extras, infer_schema_length=None, strict=False)
        except (pl.exceptions.PolarsError, TypeError, ValueError) as err:
            raise ValueError(f"extra columns {extra_names} have mixed types: {err}") from err
        frame = frame.hstack(extra_frame)
    return frame


def _check_columns(columns: Iterable[str], path: Path, partition: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in set(columns)]
    if missing:
        raise LandingFileError(path, partition, f"missing required column(s) {missing}")


def _decode(path: Path, partition: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LandingFileError(
            path, partition, f"not UTF-8: byte 0x{data[err.start]:02x} at offset {err.start}"
        ) from None


def _read_jsonl(path: Path, partition: str) -> list[dict]:
    records = []
    for line_no, line in enumerate(_decode(path, partition).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise LandingFileError(path, partition, f"line {line_no} is not valid JSON: {err.msg}") from None
        if not isinstance(rec, dict):
            raise LandingFileError(path, partition, f"line {line_no} is a {type(rec).__name__}, not an object")
        records.append(rec)
    if records:
        _check_columns(set().union(*records), path, partition)
    return records


def _read_csv(path: Path, partition: str) -> list[dict]:
    text = _decode(path, partition)
    if not text.strip():
        return []
    try:
        # Every column as text: the contract types are applied by _coerce_records, so a
        # CSV and a JSONL file of the same rows give the same raw frame.
        frame = pl.read_csv(text.encode("utf-8"), infer_schema=False)
    except pl.exceptions.PolarsError as err:
        raise LandingFileError(path, partition, f"cannot parse CSV: {err}") from None
    _check_columns(frame.columns, path, partition)
    return frame.to_dicts()


def _read_parquet(path: Path, partition: str) -> list[dict]:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise LandingFileError(path, partition, f"cannot read Parquet: {err}") from None
    _check_columns(frame.columns, path, partition)
    for name in STRING_COLUMNS:
        if frame.schema[name] not in (pl.Utf8, pl.Null):
            raise LandingFileError(path, partition, f"column {name!r} has type {frame.schema[name]}, expected string")
    for name in TIMESTAMP_COLUMNS:
        dtype = frame.schema[name]
        if not (dtype in (pl.Utf8, pl.Null) or isinstance(dtype, pl.Datetime)):
            raise LandingFileError(path, partition, f"column {name!r} has type {dtype}, expected timestamp or ISO string")
    return frame.to_dicts()


READERS = {".jsonl": _read_jsonl, ".csv": _read_csv, ".parquet": _read_parquet}


def list_day_files(landing: Path, day: dt.date) -> list[Path]:
    folder = day_dir(landing, day)
    if not folder.is_dir():
        return []
    # Sorted: the same files always give the same row order, so a re-run is identical.
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES)


def read_landing_day(landing: Path, day: dt.date, *, fail_on_empty: bool = False) -> LandingDay:
    """All of one day's landing files as the raw frame (docs/CONTRACTS.md)."""
    partition = day.isoformat()
    files = list_day_files(landing, day)
    frames = []
    for path in files:
        rel = str(path.relative_to(landing))
        records = READERS[path.suffix](path, partition)
        try:
            frames.append(_coerce_records(records, rel))
        except ValueError as err:
            raise LandingFileError(path, partition, str(err)) from None
    frame = pl.concat(frames, how="diagonal_relaxed") if frames else empty_raw_frame()
    if frame.height == 0 and fail_on_empty:
        raise EmptyDayError(f"partition {partition}: no rows in {day_dir(landing, day)} (fail_on_empty_day is on)")
    return LandingDay(frame=frame, files=tuple(files), bytes_read=sum(p.stat().st_size for p in files))
