"""The day's raw frame from native_parse's parts, built column by column (pure).

Equal, frame for frame, to the strict reader (contract._read_strict): same row order,
columns, dtypes, ``_type_errors``, extras and their JSON-text fallbacks. Rows the strict
reader read (native_parse.Part.records) are built by records.core_frame, the reference,
and slotted in by ``_line``; an extra column whose types are not one simple type across
the day goes through extras.exact_column, the reference, on its Python values.
"""

from __future__ import annotations

import polars as pl

from ct_assets.core.schema import RAW_SCHEMA, STRING_COLUMNS, TIMESTAMP_COLUMNS, TS
from ct_assets.ingest.extras import clash_renames, exact_column
from ct_assets.ingest.native_parse import CANONICAL, PARTS, Part
from ct_assets.ingest.records import core_frame, parse_timestamp, raw_string

# The ISO-8601 shape parsed in polars: fixed positions, so fields are slices. Any other
# value, or one whose fields are out of range, is parsed by records.parse_timestamp
# (datetime.fromisoformat), value by value.
_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d{3}|\.\d{6})?(?:Z|[+-]\d{2}:\d{2})?$"
_FIELDS = {"y": (0, 4), "mo": (5, 2), "d": (8, 2), "h": (11, 2), "mi": (14, 2), "sec": (17, 2)}
_INT64 = (-(2**63), 2**63 - 1)


def _int(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Int64, strict=False)


def parse_timestamps(raw: pl.Series) -> pl.Series:
    """records.parse_timestamp over a String column, vectorised where provably equal."""
    s = pl.col("s")
    # Staged, so each field is sliced once (one expression tree would recompute them).
    f = pl.DataFrame({"s": raw.cast(pl.String)}).with_columns(
        s.str.contains(_ISO).fill_null(False).alias("shape"), s.str.slice(19).alias("rest"),
        *(_int(s.str.slice(a, n)).alias(k) for k, (a, n) in _FIELDS.items()))
    rest = pl.col("rest")
    f = f.with_columns(pl.when(rest.str.ends_with("Z")).then(pl.lit("Z"))
                       .when(rest.str.slice(-6, 1).is_in(["+", "-"])).then(rest.str.slice(-6))
                       .otherwise(pl.lit("")).alias("tz"))
    tz, y, mo = pl.col("tz"), pl.col("y"), pl.col("mo")
    f = f.with_columns(rest.str.slice(1, rest.str.len_chars() - tz.str.len_chars() - 1).alias("frac"),
                       _int(tz.str.slice(1, 2)).fill_null(0).alias("oh"), _int(tz.str.slice(4, 2)).fill_null(0).alias("om"))
    leap = ((y % 4 == 0) & (y % 100 != 0)) | (y % 400 == 0)
    dim = pl.when(mo == 2).then(28 + leap.cast(pl.Int64)).when(mo.is_in([4, 6, 9, 11])).then(30).otherwise(31)
    ok = (pl.col("shape") & y.is_between(1900, 2200) & mo.is_between(1, 12) & pl.col("d").is_between(1, dim)
          & (pl.col("h") <= 23) & (pl.col("mi") <= 59) & (pl.col("sec") <= 59) & (pl.col("oh") <= 23) & (pl.col("om") <= 59))
    f = f.with_columns(ok.fill_null(False).alias("ok"))
    safe = {k: pl.when(pl.col("ok")).then(pl.col(k)).otherwise(1) for k in _FIELDS}
    days = pl.date(safe["y"], safe["mo"], safe["d"]).cast(pl.Int64)
    sign = pl.when(tz.str.starts_with("-")).then(-1).otherwise(1)
    frac = pl.col("frac")
    micros = pl.when(frac.str.len_chars() == 3).then(_int(frac) * 1000).otherwise(_int(frac)).fill_null(0)
    epoch = ((days * 86_400 + safe["h"] * 3600 + safe["mi"] * 60 + safe["sec"]
              - sign * (pl.col("oh") * 3600 + pl.col("om") * 60)) * 1_000_000 + micros)
    f = f.with_columns(pl.when(pl.col("ok")).then(epoch).cast(pl.Datetime("us")).dt.replace_time_zone("UTC").alias("ts"))
    out = f["ts"].alias(raw.name)
    slow = f.select(pl.arg_where(pl.col("s").is_not_null() & ~pl.col("ok"))).to_series()
    if slow.len():
        values = [parse_timestamp(v) for v in raw.gather(slow).to_list()]
        out = out.scatter(slow, pl.Series(values, dtype=TS))
    return out


def _native_core(frame: pl.DataFrame, lines: pl.Series, rel: str) -> pl.DataFrame:
    """The raw frame's own columns of the rows polars read (strings proven to be strings)."""
    cols: dict[str, pl.Series] = {}
    n = len(lines)
    for name in STRING_COLUMNS:
        cols[name] = frame[name].cast(pl.String) if name in frame.columns else pl.Series(name, [None] * n, pl.String)
    for name in TIMESTAMP_COLUMNS:
        value = frame[name] if name in frame.columns else pl.Series(name, [None] * n, pl.String)
        if isinstance(value.dtype, pl.Datetime):  # Parquet timestamps: as the strict reader does, value by value
            values = value.to_list()
            cols[name] = pl.Series(name, [parse_timestamp(v) for v in values], dtype=TS)
            cols[f"_raw_{name}"] = pl.Series(f"_raw_{name}", [raw_string(v) for v in values], dtype=pl.String)
        else:
            cols[name] = parse_timestamps(value.cast(pl.String))
            cols[f"_raw_{name}"] = value.cast(pl.String).alias(f"_raw_{name}")
    cols["_source_file"] = pl.Series("_source_file", [rel] * n, pl.String)
    cols["_line"] = lines.alias("_line")
    cols["_type_errors"] = pl.Series("_type_errors", [None] * n, pl.String)
    return pl.DataFrame([cols[c] for c in RAW_SCHEMA]).cast(RAW_SCHEMA)


def _file_core(part: Part, rel: str) -> tuple[pl.DataFrame, pl.Series | None]:
    """(core rows in line order, the permutation from native-then-strict order, or None)."""
    pieces = []
    if part.frame is not None:
        pieces.append(_native_core(part.frame, part.lines, rel))
    if part.records:
        pieces.append(core_frame([(rel, r) for r in part.records]))
    core = pl.concat(pieces) if pieces else pl.DataFrame(schema=RAW_SCHEMA)
    if part.frame is None or not part.records:
        return core, None
    perm = core["_line"].arg_sort()
    return core[perm], perm


def _extra(name: str, files: list[tuple[Part, pl.Series | None]]) -> tuple[pl.Series, str | None]:
    kinds: set = set()
    simple = True
    for part, _ in files:
        if part.frame is not None and name in part.frame.columns:
            k = part.kinds.get(name)
            simple = simple and k is not None
            kinds |= k or set()
        strict = {type(rec[name]) for _, rec, _ in part.records if rec.get(name) is not None}
        kinds |= strict
        if int in strict and any(not _INT64[0] <= rec[name] <= _INT64[1]
                                 for _, rec, _ in part.records if type(rec.get(name)) is int):
            simple = False
    if simple and len(kinds) <= 1 and kinds <= set(CANONICAL):
        dtype = CANONICAL[next(iter(kinds))] if kinds else pl.Null
        out = []
        for part, perm in files:
            n = len(part.lines) if part.lines is not None else 0
            native = (part.frame[name].cast(dtype) if part.frame is not None and name in part.frame.columns
                      else pl.Series(name, [None] * n, dtype))
            strict = pl.Series(name, [rec.get(name) for _, rec, _ in part.records], dtype=dtype, strict=True)
            both = pl.concat([native.alias(name), strict]) if len(strict) else native.alias(name)
            out.append(both if perm is None else both.gather(perm))
        return pl.concat(out) if out else pl.Series(name, [], dtype), None
    values: list = []
    for part, perm in files:
        n = len(part.lines) if part.lines is not None else 0
        native = part.frame[name].to_list() if part.frame is not None and name in part.frame.columns else [None] * n
        both = native + [rec.get(name) for _, rec, _ in part.records]
        values += both if perm is None else [both[i] for i in perm.to_list()]
    return exact_column(name, values)


def read_native(files: list, rels: list[str], partition: str):
    """(frame, json_text_columns, renamed_columns) of the day, as contract._read_strict."""
    parts = [PARTS[path.suffixes[-1].lower()](path, partition) for path in files]
    clashes = clash_renames(dict.fromkeys(k for part in parts for k in part.keys))
    renamed: dict[str, dict[str, str]] = {}
    cores, files_perm = [], []
    for rel, part in zip(rels, parts):
        present = set(part.keys)
        used = {k: v for k, v in clashes.items() if k in present}
        if used:
            renamed[rel] = used
            part.keys = [clashes.get(k, k) for k in part.keys]
            part.records = [(n, {clashes.get(k, k): v for k, v in rec.items()}, f) for n, rec, f in part.records]
            if part.frame is not None:
                part.frame = part.frame.rename({k: v for k, v in used.items() if k in part.frame.columns})
                part.kinds = {clashes.get(k, k): v for k, v in part.kinds.items()}
        core, perm = _file_core(part, rel)
        cores.append(core)
        files_perm.append((part, perm))
    frame = pl.concat(cores) if cores else pl.DataFrame(schema=RAW_SCHEMA)
    json_text: dict[str, str] = {}
    extras = []
    for name in dict.fromkeys(k for part in parts for k in part.keys if k not in RAW_SCHEMA):
        series, why = _extra(name, files_perm)
        extras.append(series)
        if why:
            json_text[name] = why
    return (frame.hstack(extras) if extras else frame), json_text, renamed
