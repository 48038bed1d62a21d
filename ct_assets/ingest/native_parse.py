"""One landing file read with polars' native readers, where that provably equals the
strict reader of formats.py (pure).

polars resolves duplicate keys silently, turns a lone surrogate escape into U+0000,
coerces mixed types in a column, and accepts some JSON that Python refuses. So a JSONL
line goes to polars only when a cheap vectorised check proves it is a flat object of
strict JSON, with unique plain keys, no surrogate escape, and contract columns holding
strings or null; every other line is read by ``formats.parse_json_line`` (which raises
the file-level errors with their exact messages). A CSV or Parquet file the checks cannot
clear is read wholly by the strict reader. Conservative on purpose: a false "unsafe"
costs speed only.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from ct_assets.core.schema import STRING_COLUMNS, TIMESTAMP_COLUMNS
from ct_assets.ingest.formats import (
    READERS, Record, check_columns, decode, parquet_frame, parse_json_line,
)

# The skeleton of a line: each value of a flat object replaced, after its colon, by \x01
# and a letter naming its JSON type (passes in this order, no capture groups, so the regex
# engine's fast path runs). A line holding a raw \x01 (never valid JSON) is unsafe first,
# so every \x01 in a skeleton was written here; any other raw control character stays in
# the skeleton (a valid string holds none, so the string pass leaves it) and fails it.
_WS = r"[ \t\r]*"
_STR_BODY = r'(?:[^"\\\x00-\x1f]+|\\["\\/bfnrt]|\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2}))*'
_INT = r"-?(?:0|[1-9][0-9]{0,17})"  # at most 18 digits: always an Int64
_PASSES = (
    (":" + _WS + '"' + _STR_BODY + '"', ":\x01s"),  # string, no surrogate escape (\ud800-\udfff)
    (":" + _WS + _INT + r"(?:\.[0-9]{1,20}(?:[eE][+-]?[0-9]{1,2})?|[eE][+-]?[0-9]{1,2})", ":\x01f"),  # float
    (":" + _WS + _INT, ":\x01i"),
    (":" + _WS + "true", ":\x01b"),
    (":" + _WS + "false", ":\x01b"),
    (":" + _WS + "null", ":\x01n"),
)
# Python's re and polars' regex agree on these patterns (leftmost-first, no look-around).
_LATER_PASSES = tuple((re.compile(p), m) for p, m in _PASSES[1:])
# A safe skeleton is exactly "{", plain keys (no escapes) each with one marker, "}".
_UNIT_BODY = r'"[^"\\\x00-\x1f]*"' + _WS + r":\x01[sfibn]" + _WS
_SKELETON = re.compile(_WS + r"\{" + _WS + r"(?:\}|(?:" + _UNIT_BODY + "," + _WS + r")*" + _UNIT_BODY + r"\})" + _WS)
_UNITS = re.compile(r'"([^"\\\x00-\x1f]*)"' + _WS + r":\x01([sfibn])")
_KIND = {"s": str, "f": float, "i": int, "b": bool, "n": None}
_CONTRACT = frozenset((*STRING_COLUMNS, *TIMESTAMP_COLUMNS))
# Polars' dtype for each JSON kind, as pl.Series(values, strict=True) would infer it.
CANONICAL = {str: pl.String, int: pl.Int64, float: pl.Float64, bool: pl.Boolean}
# More distinct skeletons than this: checking them in Python would cost what we save.
_MAX_SKELETONS = 20_000


@dataclass
class Part:
    """One file's rows: ``frame`` (the file's columns) for the rows polars read, at file
    lines ``lines``; ``records`` for the rows the strict reader read; ``keys`` in first-seen
    order (``lines`` is apart from ``frame``: a file may have a column named ``_line``).
    ``kinds[col]``: the Python types of the frame column's non-null values, or None when
    the column is no simple type (its values then go through extras.exact_column)."""

    keys: list[str]
    records: list[Record] = field(default_factory=list)
    frame: pl.DataFrame | None = None
    kinds: dict[str, frozenset | None] = field(default_factory=dict)
    lines: pl.Series | None = None


def strict_part(path: Path, partition: str) -> Part:
    records = READERS[path.suffixes[-1].lower()](path, partition)
    return Part(keys=list(dict.fromkeys(k for _, rec, _ in records for k in rec)), records=records)


def _lines(path: Path, partition: str) -> tuple[bytes, pl.Series]:
    """(the file's bytes without a BOM, its lines as text), or the strict decode's own
    error for bad bytes."""
    try:
        data = path.read_bytes()
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise ValueError
        # The BOM off the bytes, not the text: str.strip_prefix copies the whole file.
        data = data.removeprefix(b"\xef\xbb\xbf")
        text = pl.Series([data], dtype=pl.Binary).cast(pl.String)
    except (OSError, ValueError, pl.exceptions.PolarsError):
        # The strict decode raises the file-level error with its own message; should it
        # accept what polars refused, its text is the truth.
        decoded = decode(path, partition)
        data, text = decoded.encode("utf-8"), pl.Series([decoded], dtype=pl.String)
    return data, text.str.split("\n").explode().alias("line")


def _skeleton(first_pass: str) -> str:
    for pattern, marker in _LATER_PASSES:
        first_pass = pattern.sub(marker, first_pass)
    return first_pass


def _skeleton_facts(skeleton: str) -> tuple[bool, list[str], list[str]]:
    """(safe, keys, markers) of one distinct skeleton."""
    if not _SKELETON.fullmatch(skeleton):
        return False, [], []
    units = _UNITS.findall(skeleton)
    keys = [k for k, _ in units]
    markers = {k: m for k, m in units}
    ok = len(markers) == len(keys) and all(markers[c] in ("s", "n") for c in _CONTRACT if c in markers)
    return ok, keys, [m for _, m in units]


def jsonl_part(path: Path, partition: str) -> Part:
    data, lines = _lines(path, partition)
    frame = pl.DataFrame({"line": lines}).with_row_index("_line", offset=1).with_columns(
        pl.col("_line").cast(pl.Int64))
    frame = frame.filter(~pl.col("line").str.contains(r"^[ \t\r\n]*$"))
    # The string pass over the whole text; the rest over the distinct outcomes only (lines of
    # one shape share one outcome, so this is a handful of short strings, not 200k).
    pattern, marker = _PASSES[0]
    frame = frame.with_columns(
        pl.when(pl.col("line").str.contains("\x01", literal=True)).then(pl.lit(""))
        .otherwise(pl.col("line").str.replace_all(pattern, marker)).alias("skeleton"))
    firsts = frame.group_by("skeleton", maintain_order=True).agg(pl.col("_line").first())
    if firsts.height > _MAX_SKELETONS:
        return strict_part(path, partition)
    facts = {s: _skeleton_facts(_skeleton(s)) for s in firsts["skeleton"].to_list()}
    safe_skeletons = [s for s, f in facts.items() if f[0]]
    is_safe = pl.col("skeleton").is_in(pl.Series(safe_skeletons, dtype=pl.String))
    unsafe = frame.filter(~is_safe)
    records = [parse_json_line(line, n, path, partition) for n, line in unsafe.select("_line", "line").iter_rows()]
    # Key order: each key where it first appears, over native and strict rows alike.
    events = [(n, facts[s][1]) for s, n in firsts.iter_rows() if facts[s][0]]
    events += [(n, list(rec)) for n, rec, _ in records]
    keys = list(dict.fromkeys(k for _, ks in sorted(events, key=lambda e: e[0]) for k in ks))
    if frame.height:  # as the strict reader: any record at all (even "{}") needs the contract columns
        check_columns(keys, path, partition)
    kinds: dict[str, set] = {}
    for s in safe_skeletons:
        for key, marker in zip(facts[s][1], facts[s][2]):
            kind = _KIND[marker]
            kinds.setdefault(key, set()).update([kind] if kind else [])
    safe = frame.filter(is_safe)
    if safe.height == 0:
        return Part(keys=keys, records=records)
    if any(len(k) > 1 for k in kinds.values()):
        return strict_part(path, partition)  # mixed types inside the file: polars would coerce them
    # Every line safe: polars reads the bytes as they are (the height check below holds it
    # to one row per non-blank line); else only the safe lines, joined.
    # The skeletons proved every column's type, so polars is told it (no inference pass).
    schema = {k: CANONICAL[next(iter(v))] if v else pl.Null for k, v in kinds.items()}
    native = _read_ndjson(data if not records else safe["line"].str.join("\n").item().encode("utf-8"), schema)
    if native is None or native.height != safe.height or set(native.columns) != set(kinds):
        return strict_part(path, partition)
    cols = []
    for name, kind in kinds.items():
        if not kind:
            cols.append(pl.Series(name, [None] * safe.height, dtype=pl.Null))
        elif native.schema[name] != CANONICAL[next(iter(kind))]:
            return strict_part(path, partition)
        else:
            cols.append(native[name])
    return Part(keys=keys, records=records, frame=pl.DataFrame(cols),
                kinds={k: frozenset(v) for k, v in kinds.items()}, lines=safe["_line"])


def _read_ndjson(data: bytes, schema: dict) -> pl.DataFrame | None:
    try:
        return pl.read_ndjson(data, schema=schema)
    except (pl.exceptions.PolarsError, ValueError, OverflowError):
        return None  # never an error of ours: the strict reader decides


# One CSV record on one line: unquoted fields without quotes, quoted fields closed on
# the same line. Anything else (multi-line fields, stray quotes) goes to the strict reader.
_CSV_FIELD = r'(?:[^",]*|"(?:[^"]|"")*")'
_CSV_LINE = f"^{_CSV_FIELD}(?:,{_CSV_FIELD})*$"
_CSV_QUOTED = r'"(?:[^"]|"")*"'
# Python's csv refuses fields longer than this; such files go to the strict reader.
_CSV_FIELD_LIMIT = csv.field_size_limit()


def csv_part(path: Path, partition: str) -> Part:
    _, lines = _lines(path, partition)
    frame = pl.DataFrame({"line": lines}).with_row_index("_line", offset=1).with_columns(
        pl.col("_line").cast(pl.Int64)).filter(pl.col("line") != "")
    text_ok = frame.select(
        (pl.col("line").str.contains(r"[\r\x00]").any()
         | (pl.col("line").str.len_chars() >= _CSV_FIELD_LIMIT).any()
         | ~pl.col("line").str.contains(_CSV_LINE).all())).item()
    if frame.height < 2 or text_ok:
        return strict_part(path, partition)
    header = next(csv.reader([frame["line"][0]]))
    fields = frame.select(pl.col("line").str.replace_all(_CSV_QUOTED, "").str.count_matches(",", literal=True) + 1)
    if len(set(header)) != len(header) or "" in header or (fields.to_series() != len(header)).any():
        return strict_part(path, partition)
    try:
        native = pl.read_csv(frame["line"].str.join("\n").item().encode("utf-8"), has_header=True,
                             infer_schema=False, quote_char='"', comment_prefix=None, raise_if_empty=True)
    except (pl.exceptions.PolarsError, ValueError):
        return strict_part(path, partition)
    if native.columns != header or native.height != frame.height - 1:
        return strict_part(path, partition)
    check_columns(header, path, partition)
    # An empty field is null, quoted or not, as the strict reader makes it.
    native = native.with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in header)
    kinds = {c: frozenset([str]) if native[c].null_count() < native.height else frozenset() for c in header}
    out = pl.DataFrame([native[c] if kinds[c] else native[c].cast(pl.Null) for c in header])
    return Part(keys=header, frame=out, kinds=kinds, lines=frame["_line"][1:])


# Parquet dtypes whose values keep one Python type that polars re-infers exactly.
_PARQUET_KINDS = {**{t: int for t in (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)},
                  pl.Float32: float, pl.Float64: float, pl.Boolean: bool, pl.String: str}


def parquet_part(path: Path, partition: str) -> Part:
    frame = parquet_frame(path, partition)
    if frame.height == 0:
        return Part(keys=[])  # as the strict reader: no rows, so no columns either
    kinds: dict[str, frozenset | None] = {}
    cols = []
    for name, dtype in frame.schema.items():
        kind = _PARQUET_KINDS.get(dtype.base_type()) if name not in _CONTRACT else None
        series = frame[name]
        if frame.height and series.null_count() == frame.height and name not in _CONTRACT:
            kinds[name], series = frozenset(), pl.Series(name, [None] * frame.height, dtype=pl.Null)
        elif kind is not None:
            kinds[name], series = frozenset([kind]), series.cast(CANONICAL[kind])
        else:
            kinds[name] = None
        cols.append(series)
    lines = pl.Series("_line", range(1, frame.height + 1), dtype=pl.Int64)
    return Part(keys=list(frame.columns), frame=pl.DataFrame(cols), kinds=kinds, lines=lines)


PARTS = {".jsonl": jsonl_part, ".ndjson": jsonl_part, ".json": jsonl_part, ".csv": csv_part, ".parquet": parquet_part}
