"""Extra (non-contract) columns: kept exactly, or as JSON text when no type fits (pure).

"Carried through untouched" means a value read back equals the value given, type
included: ``True`` stays a bool, ``1`` an int, ``"3"`` a str. A column whose values do
not share one Arrow type that round-trips them exactly (``1`` then ``{"a": 1}``; ``true``
then ``2``; an int in one file and a str in another; structs with different keys) is
stored as the JSON text of each value (null stays null) and reported by the reader.

Input columns whose names the pipeline uses itself are renamed ``source_<name>`` (the
same rule as ``ct import``) and reported, never dropped.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import polars as pl

from ct_assets.core.schema import RAW_SCHEMA, REQUIRED_COLUMNS

CLASH_PREFIX = "source_"
# Names the reader writes (_line, _source_file, _type_errors, _raw_*) or the quality stage
# adds (reason, reasons, __ct_* temporaries).
RESERVED_NAMES = frozenset({*RAW_SCHEMA, "reason", "reasons"}) - frozenset(REQUIRED_COLUMNS)
RESERVED_PREFIXES = ("_raw_", "__ct_")


def is_reserved(name: str) -> bool:
    return name in RESERVED_NAMES or name.startswith(RESERVED_PREFIXES)


def clash_renames(columns) -> dict[str, str]:
    """{input name: stored name} for the input columns that clash with internal names."""
    used = set(columns)
    renames: dict[str, str] = {}
    for name in filter(is_reserved, columns):
        stored = CLASH_PREFIX + name
        # A file that already has source__line as well as _line: prefix once more.
        while stored in used:
            stored = CLASH_PREFIX + stored
        renames[name] = stored
        used.add(stored)
    return renames


def _same(a: object, b: object) -> bool:
    """Equal and of the same type, recursively (True != 1 here; NaN equals NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _storable(dtype: pl.DataType) -> bool:
    # Object cannot be written to Parquet; 128-bit ints are not portable Parquet either.
    if dtype in (pl.Object, pl.Int128) or str(dtype).startswith("UInt128"):
        return False
    if isinstance(dtype, (pl.List, pl.Array)):
        return _storable(dtype.inner)
    if isinstance(dtype, pl.Struct):
        return all(_storable(f.dtype) for f in dtype.fields)
    return True


def _json_default(value: object) -> str:
    # Parquet extras may hold dates, times, durations or decimals: their text.
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (Decimal, dt.timedelta, bytes)):
        return str(value)
    raise TypeError(f"a {type(value).__name__} value has no JSON text")


def to_json_text(value: object) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=_json_default)


def _type_names(values: list) -> str:
    return ", ".join(sorted({type(v).__name__ for v in values if v is not None}))


def exact_column(name: str, values: list) -> tuple[pl.Series, str | None]:
    """(the column, None) when one type round-trips every value, else (JSON text, why)."""
    kinds = {type(v) for v in values if v is not None}
    series = None
    if len(kinds) <= 1:
        try:
            series = pl.Series(name, values, strict=True)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            series = None  # e.g. an int past 64 bits, or nested values of clashing types
    if series is not None and _storable(series.dtype):
        if all(_same(a, b) for a, b in zip(series.to_list(), values) if a is not None or b is not None):
            return series, None
    texts = [to_json_text(v) for v in values]
    why = f"mixed types ({_type_names(values)})" if len(kinds) > 1 else f"no exact type for {_type_names(values)}"
    return pl.Series(name, texts, dtype=pl.Utf8), why
