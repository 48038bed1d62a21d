"""Parse one landing file into numbered records (pure; the listing is in contract.py).

Each reader returns ``[(line, record, findings), ...]`` where ``line`` is what ``_line`` stores
(docs/CONTRACTS.md): the 1-based physical line a record starts on for JSONL and CSV (the
CSV header is line 1, blank lines count), the 1-based row number for Parquet. Every
file-level problem raises ``LandingFileError`` naming file, partition and problem.

Strict JSON: records are split on ``\\n`` only (U+2028, U+0085 inside strings are valid
JSON), NaN/Infinity are refused, and a duplicate key is a row-level finding (see
``DUPLICATE_KEY_PREFIX``) rather than a silent "last one wins". A leading UTF-8 BOM is
dropped for every text format, JSONL and CSV alike.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import polars as pl

from ct_assets.core.schema import REQUIRED_COLUMNS, STRING_COLUMNS, TIMESTAMP_COLUMNS

BOM = "\ufeff"
# Row-level findings of the reader go to ``_type_errors`` (the raw frame's one column for
# them); quality.py's ``duplicate_key`` rule keys on this prefix.
DUPLICATE_KEY_PREFIX = "duplicate key "
# JSON's own whitespace: str.strip() would also eat U+2028, U+0085, ... which JSON does not
# allow outside strings, so a line of only those must fail, not vanish.
_JSON_WS = " \t\r\n"

# (line, record, row-level reader findings or None)
Record = tuple[int, dict, "str | None"]


class LandingFileError(ValueError):
    """A landing file cannot be read under the row contract."""

    def __init__(self, path: Path, partition: str, problem: str):
        super().__init__(f"{path} (partition {partition}): {problem}")
        self.path, self.partition, self.problem = path, partition, problem


def decode(path: Path, partition: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise LandingFileError(path, partition, f"cannot read: {err.strerror or err}") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise LandingFileError(path, partition, "UTF-16 byte-order mark: the contract is UTF-8, re-encode the file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise LandingFileError(
            path, partition, f"not UTF-8: byte 0x{data[err.start]:02x} at offset {err.start}"
        ) from None
    return text.removeprefix(BOM)


def check_columns(columns, path: Path, partition: str) -> None:
    present = set(columns)
    missing = [c for c in REQUIRED_COLUMNS if c not in present]
    if missing:
        raise LandingFileError(path, partition, f"missing required column(s) {missing}")


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str):
    raise _NotJson(f"{name} is not JSON")


def _has_lone_surrogate(value: object) -> bool:
    # "\ud800" is a legal JSON escape but no UTF-8 string: Arrow could not store it.
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def parse_json_line(line: str, line_no: int, path: Path, partition: str) -> Record:
    """One non-blank JSONL line as a record, strictly (the reference the native reader keeps)."""
    duplicates: list[str] = []

    def pairs(items):
        obj: dict = {}
        for key, value in items:
            if key in obj:
                duplicates.append(
                    f"{DUPLICATE_KEY_PREFIX}{key!r} (values {json.dumps(obj[key], ensure_ascii=False)}"
                    f" and {json.dumps(value, ensure_ascii=False)}; the first is kept)"
                )
                continue
            obj[key] = value
        return obj

    try:
        rec = json.loads(line, object_pairs_hook=pairs, parse_constant=_refuse_constant)
    except json.JSONDecodeError as err:
        raise LandingFileError(path, partition, f"line {line_no} is not valid JSON: {err.msg}") from None
    except _NotJson as err:
        raise LandingFileError(path, partition, f"line {line_no} is not valid JSON: {err}") from None
    except RecursionError:
        raise LandingFileError(path, partition, f"line {line_no} is nested too deeply to read") from None
    if not isinstance(rec, dict):
        raise LandingFileError(path, partition, f"line {line_no} is a {type(rec).__name__}, not an object")
    if "\\u" in line and _has_lone_surrogate(rec):
        raise LandingFileError(path, partition, f"line {line_no} holds an unpaired surrogate escape (not UTF-8)")
    return line_no, rec, "; ".join(duplicates) or None


def is_blank_json(line: str) -> bool:
    return not line.strip(_JSON_WS)


def read_jsonl(path: Path, partition: str) -> list[Record]:
    records = [parse_json_line(line, line_no, path, partition)
               for line_no, line in enumerate(decode(path, partition).split("\n"), start=1)
               if not is_blank_json(line)]
    if records:
        check_columns({k for _, r, _ in records for k in r}, path, partition)
    return records


def read_csv(path: Path, partition: str) -> list[Record]:
    text = decode(path, partition)
    # newline="\n": records end at "\n" (or "\r\n"); a U+2028 in a field is just a character.
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    header: list[str] | None = None
    records: list[Record] = []
    last = 0
    try:
        for row in reader:
            start, last = last + 1, reader.line_num
            if not row:  # a blank line: counted, holds nothing
                continue
            if header is None:
                header = row
                _check_header(header, path, partition)
                continue
            if len(row) != len(header):
                raise LandingFileError(
                    path, partition, f"line {start} has {len(row)} field(s), the header has {len(header)}"
                )
            # An empty field is null, as for every CSV reader the contract was written against.
            records.append((start, {k: (v if v != "" else None) for k, v in zip(header, row)}, None))
    except csv.Error as err:
        raise LandingFileError(path, partition, f"cannot parse CSV at line {reader.line_num}: {err}") from None
    if header is not None:
        check_columns(header, path, partition)
    return records


def _check_header(header: list[str], path: Path, partition: str) -> None:
    # A duplicate header is an error, never a silent rename: which column is "text"?
    seen: set[str] = set()
    for i, name in enumerate(header, start=1):
        if name == "":
            raise LandingFileError(path, partition, f"header column {i} has no name")
        if name in seen:
            raise LandingFileError(path, partition, f"duplicate column {name!r} in the header")
        seen.add(name)


def parquet_frame(path: Path, partition: str) -> pl.DataFrame:
    """The Parquet file as read, once its contract columns have acceptable types."""
    try:
        # polars reads a local path itself; an object-store file (a UPath) arrives as bytes.
        frame = pl.read_parquet(path if isinstance(path, Path) else io.BytesIO(path.read_bytes()))
    except (pl.exceptions.PolarsError, OSError) as err:
        raise LandingFileError(path, partition, f"cannot read Parquet: {err}") from None
    check_columns(frame.columns, path, partition)
    for name in STRING_COLUMNS:
        if frame.schema[name] not in (pl.Utf8, pl.Null):
            raise LandingFileError(path, partition, f"column {name!r} has type {frame.schema[name]}, expected string")
    for name in TIMESTAMP_COLUMNS:
        dtype = frame.schema[name]
        if not (dtype in (pl.Utf8, pl.Null) or isinstance(dtype, pl.Datetime)):
            raise LandingFileError(path, partition, f"column {name!r} has type {dtype}, expected timestamp or ISO string")
    return frame


def read_parquet(path: Path, partition: str) -> list[Record]:
    return [(n, rec, None) for n, rec in enumerate(parquet_frame(path, partition).to_dicts(), start=1)]


# Lower-case suffix -> reader. .json and .ndjson are JSON Lines too (one object a line).
READERS = {
    ".jsonl": read_jsonl,
    ".ndjson": read_jsonl,
    ".json": read_jsonl,
    ".csv": read_csv,
    ".parquet": read_parquet,
}
