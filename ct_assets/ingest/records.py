"""Records to raw-frame columns, one row at a time: the reference behaviour (pure).

The strict reader builds the whole raw frame here; the native reader (native.py) builds
only the rows it could not prove safe here, so both give the same values for them.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from ct_assets.core.schema import RAW_SCHEMA, STRING_COLUMNS, TIMESTAMP_COLUMNS
from ct_assets.ingest.formats import Record

# The raw frame without the extras: the columns this module fills.
CORE_COLUMNS = tuple(RAW_SCHEMA)


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


def raw_string(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return json.dumps(value)


def core_frame(rows: list[tuple[str, Record]]) -> pl.DataFrame:
    """The raw frame's own columns (no extras) of ``[(file, record), ...]``, row by row."""
    cols: dict[str, list] = {name: [] for name in CORE_COLUMNS}
    for rel_name, (line_no, rec, findings) in rows:
        errors = [findings] if findings else []
        for name in STRING_COLUMNS:
            value = rec.get(name)
            if value is not None and not isinstance(value, str):
                errors.append(f"{name}: expected string, got {type(value).__name__}")
                value = raw_string(value)
            cols[name].append(value)
        for name in TIMESTAMP_COLUMNS:
            value = rec.get(name)
            cols[name].append(parse_timestamp(value))
            cols[f"_raw_{name}"].append(raw_string(value))
        cols["_source_file"].append(rel_name)
        cols["_line"].append(line_no)
        cols["_type_errors"].append("; ".join(errors) or None)
    return pl.DataFrame(cols, schema=RAW_SCHEMA)
