"""`ct import`: a user's own export (CSV, JSONL/JSON, Parquet) into the landing zone (pure).

Each source file becomes one ``dt=YYYY-MM-DD/import-<stem>.jsonl`` per UTC day, in the
row contract (README "Row contract"), rows ordered by (event_ts, source row), written
atomically, so ``read_landing_day`` reads them back and a re-run is byte-identical.

Decisions, each stated once here:
- times: ISO-8601 first; then ``time_format`` (strptime) when given, else ``FALLBACK_FORMATS``.
  A naive time is wall-clock time in ``tz`` (zoneinfo; around a DST change zoneinfo's
  fold=0 applies), converted to UTC. Numbers are refused: epoch seconds or milliseconds
  cannot be told apart safely.
- point in time: without a label-time column a labelled row's label_ts is its event time,
  i.e. labels are treated as known when the event happened. Backtests on such data see
  every label at once, so they are optimistic about how fast feedback arrives.
- ids: the id column when given; otherwise blake2b(file name, row number, row content),
  deterministic but not stable across a re-export that inserts rows: pass an id column.
- a landing file is named after its source file's stem, so importing another export of
  the same name replaces the earlier one's files.
- every row is placed or listed with a reason; the columns mapped onto the contract are
  not repeated, the others pass through, renamed ``source_<name>`` where they clash with
  a contract or reserved name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from ct_assets.core.schema import RAW_SCHEMA, REQUIRED_COLUMNS
from ct_assets.ingest.contract import day_dir

SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")
OUTPUT_PREFIX = "import-"
CLASH_PREFIX = "source_"
# Common export shapes that are not ISO-8601. US month-first order (spreadsheet and
# Twitter/Figure Eight exports, e.g. "2/24/2015 11:35"); a day-first export needs
# --time-format "%d/%m/%Y %H:%M", because "3/2/2015" cannot be told apart from the value.
FALLBACK_FORMATS: tuple[str, ...] = (
    "%m/%d/%Y %H:%M", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y",
    "%Y/%m/%d %H:%M", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d",  # ISO-8601 already covers 2015-02-24 11:35
    "%a %b %d %H:%M:%S %z %Y",  # Twitter API created_at: "Tue Feb 24 11:35:52 +0000 2015"
    "%a, %d %b %Y %H:%M:%S %z",  # RFC 2822 (mail, RSS)
)
# Reason codes of a row that could not be placed, in the order they are checked.
REASONS: tuple[str, ...] = ("missing_time", "unparseable_time", "missing_text", "bad_text", "missing_id", "bad_id",
                            "bad_label", "missing_label_time", "unparseable_label_time", "label_time_before_time")


class ImporterError(ValueError):
    """The import cannot run: a bad argument, or a file that cannot be read."""


class ImportFileError(ImporterError):
    def __init__(self, path: Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path, self.problem = path, problem


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the export holds each contract field."""

    text: str
    label: str
    time: str
    label_time: str | None = None
    id: str | None = None

    def check(self) -> None:
        roles = [self.text, self.label, self.time, *([self.id] if self.id else [])]
        if len(set(roles)) != len(roles):
            raise ImporterError(f"--text, --label, --time and --id must name different columns, got {roles}")


@dataclass(frozen=True)
class Rejected:
    file: str
    row: int  # 1-based: the line of a JSONL file, the data row of a CSV/Parquet/JSON array
    column: str
    reason: str
    value: str


@dataclass(frozen=True)
class ImportResult:
    landing: Path
    rows_read: dict[str, int]  # per source file
    rows_per_file_day: dict[tuple[str, str], int]  # (day, written file relative to landing) -> rows
    rejected: tuple[Rejected, ...]
    renamed: dict[str, dict[str, str]]  # source file -> {export name: landing name}
    removed: tuple[str, ...]  # stale files of an earlier run of the same source files
    warnings: tuple[str, ...]
    label_time_from_event: bool

    @property
    def placed(self) -> int:
        return sum(self.rows_per_file_day.values())

    def report(self) -> str:
        read = sum(self.rows_read.values())
        days = sorted({d for d, _ in self.rows_per_file_day})
        lines = [(f"imported {len(self.rows_read)} file(s) into {self.landing}: {read} rows read, {self.placed} "
                  f"placed in {len(days)} day(s), {len(self.rejected)} not placed"), "", f"{'day':<12}{'rows':>7}  file"]
        lines += [f"{d:<12}{n:>7}  {f}" for (d, f), n in sorted(self.rows_per_file_day.items())]
        lines.append(f"{'total':<12}{self.placed:>7}")
        for source, names in self.renamed.items():
            lines.append(f"renamed in {source} (clash with the row contract): "
                         + ", ".join(f"{a} -> {b}" for a, b in names.items()))
        lines += [f"removed stale {f} (from an earlier import of the same file)" for f in self.removed]
        if self.rejected:
            width = max(len(r.file) for r in self.rejected)
            lines += ["", f"not placed: {len(self.rejected)} row(s) "
                      + ", ".join(f"{k} {v}" for k, v in Counter(r.reason for r in self.rejected).items()),
                      f"{'file':<{width}}  {'row':>6}  {'column':<16}{'reason':<24}value"]
            lines += [f"{r.file:<{width}}  {r.row:>6}  {r.column:<16}{r.reason:<24}{r.value}" for r in self.rejected]
        lines += [f"warning: {w}" for w in self.warnings]
        if self.label_time_from_event:
            lines.append("note: no --label-time, so label_ts = event_ts: labels are treated as known at event time")
        return "\n".join(lines)


def parse_time(value: object, *, zone: ZoneInfo, time_format: str | None) -> dt.datetime | None:
    """An aware UTC datetime, or None when the value is not a time this importer accepts."""
    if isinstance(value, str):
        value = _parse_text(value.strip(), time_format)
    elif isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time())
    if not isinstance(value, dt.datetime):
        return None
    return (value.replace(tzinfo=zone) if value.tzinfo is None else value).astimezone(dt.timezone.utc)


def _parse_text(text: str, time_format: str | None) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        pass  # not ISO-8601: the explicit format, or the fallback shapes, below
    for fmt in (time_format,) if time_format else FALLBACK_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def _is_blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_id(value: object) -> str | None:
    # An integer id is kept exactly; a float id has usually lost digits on the way (pandas).
    if isinstance(value, str):
        return value.strip()
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")  # -sig: spreadsheet exports often start with a BOM
    except UnicodeDecodeError as err:
        raise ImportFileError(path, f"not UTF-8 (byte 0x{data[err.start]:02x} at offset {err.start}); re-export as "
                                    "UTF-8, e.g. iconv -f latin1 -t utf-8") from None


def _json_records(path: Path, text: str) -> list[tuple[int, dict]]:
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise ImportFileError(path, f"not valid JSON: {err.msg} at line {err.lineno}") from None
        numbered = list(enumerate(items, start=1))
    else:
        numbered = []
        for line_no, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    numbered.append((line_no, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ImportFileError(path, f"line {line_no} is not valid JSON: {err.msg}") from None
    for n, item in numbered:
        if not isinstance(item, dict):
            raise ImportFileError(path, f"row {n} is a {type(item).__name__}, not an object")
    return numbered


def read_export(path: Path) -> tuple[list[tuple[int, dict]], list[str]]:
    """((row number, record) pairs, columns in file order) of one export."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ImportFileError(path, f"unsupported file type {path.suffix!r}; use one of {list(SUFFIXES)}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ImportFileError(path, f"cannot read: {err.strerror or err}") from None
    try:
        if suffix == ".parquet":
            frame = pl.read_parquet(io.BytesIO(data))
        elif suffix == ".csv":
            # Every column as text: ids keep their digits, and times are parsed here, once.
            text = _decode(path, data)
            frame = pl.read_csv(io.BytesIO(text.encode("utf-8")), infer_schema=False) if text.strip() else pl.DataFrame()
        else:
            records = _json_records(path, _decode(path, data))
            columns = list(dict.fromkeys(k for _, r in records for k in r))
            return records, columns
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ImportFileError(path, f"cannot parse {suffix[1:]}: {err}") from None
    return list(enumerate(frame.to_dicts(), start=1)), frame.columns


def _clash_names(columns: Sequence[str], mapped: set[str]) -> dict[str, str]:
    """Extras whose names the landing files or the quality stage reserve, renamed."""
    reserved = {*REQUIRED_COLUMNS, *RAW_SCHEMA, "reason", "reasons"}
    taken = set(columns)
    out = {}
    for name in columns:
        if name in mapped or not (name in reserved or name.startswith("_")):
            continue
        new = CLASH_PREFIX + name
        while new in taken:  # an export that already has source_text as well as text
            new = CLASH_PREFIX + new
        taken.add(new)
        out[name] = new
    return out


def _convert(rec: dict, n: int, source: str, cols: ColumnMap, zone: ZoneInfo,
             time_format: str | None) -> dict | tuple[str, str, object]:
    """The contract row of one record, or (column, reason, value) of why it cannot be placed."""
    raw_ts, text = rec.get(cols.time), rec.get(cols.text)
    event_ts = parse_time(raw_ts, zone=zone, time_format=time_format)
    if event_ts is None:
        return cols.time, "missing_time" if _is_blank(raw_ts) else "unparseable_time", raw_ts
    if _is_blank(text) or not isinstance(text, str):
        return cols.text, "missing_text" if _is_blank(text) else "bad_text", text
    if cols.id:
        raw_id = rec.get(cols.id)
        event_id = _as_id(raw_id)
        if _is_blank(raw_id) or event_id is None:
            return cols.id, "missing_id" if _is_blank(raw_id) else "bad_id", raw_id
    else:
        content = json.dumps(rec, sort_keys=True, ensure_ascii=False, default=str)
        event_id = hashlib.blake2b(f"{source}\0{n}\0{content}".encode(), digest_size=12).hexdigest()
    label, label_ts = rec.get(cols.label), None
    if _is_blank(label):
        label = None  # an empty label cell: no feedback (yet), so no label time either
    elif _as_id(label) is None:
        return cols.label, "bad_label", label
    elif cols.label_time is None:
        label, label_ts = _as_id(label), event_ts
    else:
        raw_lt = rec.get(cols.label_time)
        label, label_ts = _as_id(label), parse_time(raw_lt, zone=zone, time_format=time_format)
        if label_ts is None:
            return cols.label_time, "missing_label_time" if _is_blank(raw_lt) else "unparseable_label_time", raw_lt
        if label_ts < event_ts:  # the contract: a label cannot be known before its event
            return cols.label_time, "label_time_before_time", raw_lt
    return {"event_id": event_id, "event_ts": event_ts.isoformat(), "text": text, "label": label,
            "label_ts": label_ts.isoformat() if label_ts else None}


def _place(path: Path, records: list[tuple[int, dict]], columns: list[str], cols: ColumnMap, zone: ZoneInfo,
           time_format: str | None) -> tuple[dict[str, list], list[Rejected], dict[str, str]]:
    """(rows per UTC day as (event_ts, row number, row), rejected rows, renamed columns) of one file."""
    mapped = {cols.text, cols.label, cols.time, *(c for c in (cols.label_time, cols.id) if c)}
    missing = [c for c in (cols.text, cols.label, cols.time, cols.label_time, cols.id) if c and c not in columns]
    if missing:
        raise ImportFileError(path, f"no column(s) {missing}; the file has {columns}")
    renamed = _clash_names(columns, mapped)
    extras = [c for c in columns if c not in mapped]
    by_day, rejected = defaultdict(list), []
    for n, rec in records:
        row = _convert(rec, n, path.name, cols, zone, time_format)
        if isinstance(row, tuple):
            column, reason, value = row
            rejected.append(Rejected(path.name, n, column, reason, _shown(value)))
            continue
        row.update({renamed.get(c, c): rec.get(c) for c in extras})
        ts = dt.datetime.fromisoformat(row["event_ts"])
        by_day[ts.date().isoformat()].append((ts, n, row))
    return by_day, rejected, renamed


def _json_value(value: object) -> str:
    # Parquet extras may hold dates, times, durations or decimals: written as their text.
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (Decimal, dt.timedelta)):
        return str(value)
    raise TypeError(f"a {type(value).__name__} value cannot be written as JSON")


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # A ".tmp" suffix is not one the landing reader lists, so a reader never sees half a file.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _warnings(rows: list[tuple[str, int, dict]], labels: Sequence[str] | None,
              start_date: dt.date | None) -> list[str]:
    """What validated_window will do with rows that were placed but are not clean."""
    out, first, repeats = [], {}, []
    for source, n, row in rows:
        if row["event_id"] in first:
            repeats.append(f"{source} row {n} (id {row['event_id']}, first at {first[row['event_id']]})")
        first.setdefault(row["event_id"], f"{source} row {n}")
    if repeats:
        more = f"; and {len(repeats) - 10} more" if len(repeats) > 10 else ""
        out.append(f"{len(repeats)} row(s) reuse the id of an earlier row; validated_window quarantines them as "
                   f"duplicate_event_id when on the same day: " + "; ".join(repeats[:10]) + more)
    unknown = Counter(r["label"] for _, _, r in rows if labels is not None and r["label"] not in (None, *labels))
    if unknown:
        out.append(f"labels not in ct.yaml labels {list(labels)}; validated_window quarantines them as "
                   f"unknown_label: " + ", ".join(f"{k!r} x{v}" for k, v in sorted(unknown.items())))
    early = sorted(r["event_ts"][:10] for _, _, r in rows if start_date and r["event_ts"][:10] < str(start_date))
    if early:
        out.append(f"{len(early)} row(s) on {early[0]}..{early[-1]} fall before partitions.start_date "
                   f"{start_date}: no partition reads them")
    return out


def import_files(paths: Sequence[str | Path], landing: Path, cols: ColumnMap, *, tz: str = "UTC",
                 time_format: str | None = None, labels: Sequence[str] | None = None,
                 start_date: dt.date | None = None) -> ImportResult:
    """Read every file first (any unreadable file stops the import before a byte is written),
    then write one landing file per (UTC day, source file) and drop that file's stale ones."""
    cols.check()
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImporterError(f"--tz {tz!r} is not a time zone name (e.g. UTC, Europe/Berlin)") from None
    paths = [Path(p) for p in paths]
    if not paths:
        raise ImporterError("no files given")
    stems: dict[str, Path] = {}
    for path in paths:
        other = stems.setdefault(path.stem, path)
        if other != path:
            raise ImporterError(f"{other} and {path} would both write {OUTPUT_PREFIX}{path.stem}.jsonl; rename one")
    placed, rejected, renamed, read = {}, {}, {}, {}
    for path in stems.values():
        records, columns = read_export(path)
        placed[path.name], rejected[path.name], names = _place(path, records, columns, cols, zone, time_format)
        read[path.name] = len(records)
        if names:
            renamed[path.name] = names
    # Serialized before anything is written: a value JSON cannot hold stops the import whole.
    outputs, placed_rows = [], []
    for path in stems.values():
        for day, rows in sorted(placed[path.name].items()):
            lines = []
            for _, n, row in sorted(rows, key=lambda t: t[:2]):
                try:
                    lines.append(json.dumps(row, ensure_ascii=False, default=_json_value) + "\n")
                except (TypeError, ValueError) as err:
                    raise ImportFileError(path, f"row {n}: {err}") from None
                placed_rows.append((path.name, n, row))
            target = day_dir(landing, dt.date.fromisoformat(day)) / f"{OUTPUT_PREFIX}{path.stem}.jsonl"
            outputs.append((day, target, "".join(lines).encode("utf-8"), len(rows)))
    per_file_day = {}
    for day, target, data, n_rows in outputs:
        _write_atomic(target, data)
        per_file_day[(day, str(target.relative_to(landing)))] = n_rows
    written, removed = {target for _, target, _, _ in outputs}, []
    for path in stems.values():
        # Not glob(f"dt=*/{name}"): a stem like "export[1]" would be read as a pattern.
        for stale in sorted(folder / f"{OUTPUT_PREFIX}{path.stem}.jsonl" for folder in landing.glob("dt=*")):
            if stale.is_file() and stale not in written:
                stale.unlink()
                removed.append(str(stale.relative_to(landing)))
    return ImportResult(
        landing=landing, rows_read=read, rows_per_file_day=per_file_day,
        rejected=tuple(r for rows in rejected.values() for r in rows), renamed=renamed, removed=tuple(removed),
        warnings=tuple(_warnings(placed_rows, labels, start_date)), label_time_from_event=cols.label_time is None)
