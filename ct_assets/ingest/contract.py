"""The landing-zone row contract: read one day's files into the raw frame.

Layout: ``<landing>/dt=YYYY-MM-DD/`` and its subfolders (or, on an object store such as
``s3://bucket/landing``, every key under that prefix), files ``*.jsonl | *.ndjson |
*.json | *.csv | *.parquet`` (suffixes case-insensitive). The raw frame schema is in
docs/CONTRACTS.md. Three outcomes only, for every kind of bad input:
- a file-level problem (undecodable bytes, unparseable line, missing column, duplicate
  CSV header, a symlink out of the landing zone, a compressed data file) raises
  ``LandingFileError`` naming file, partition, problem;
- a row-level problem (bad timestamp, a number where text belongs, a duplicate JSON key)
  keeps the row, with the original value preserved, for the quality rules to quarantine;
- a file or folder that is not data (hidden, unknown suffix, not a regular file) is not
  read and is listed in ``LandingDay.skipped`` with the reason.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from upath import UPath

from ct_assets.core.schema import RAW_SCHEMA
from ct_assets.ingest.extras import clash_renames, exact_column
from ct_assets.ingest.formats import READERS, LandingFileError, Record
from ct_assets.ingest.native import read_native
from ct_assets.ingest.records import core_frame, parse_timestamp

SUFFIXES = tuple(READERS)
# "a.jsonl.gz": data the reader cannot read; an error, so it is not mistaken for noise.
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip", ".7z", ".lz4", ".snappy")

__all__ = ["RAW_SCHEMA", "EmptyDayError", "LandingDay", "LandingFileError", "parse_timestamp", "read_landing_day"]


class EmptyDayError(ValueError):
    """No data for a day, raised only when settings say an empty day is an error."""


@dataclass(frozen=True)
class LandingDay:
    frame: pl.DataFrame
    files: tuple[Path, ...]
    bytes_read: int
    # (path relative to the landing zone, why it was not read)
    skipped: tuple[tuple[str, str], ...] = ()
    # extra column -> why it is stored as JSON text (docs/CONTRACTS.md)
    json_text_columns: dict[str, str] = field(default_factory=dict)
    # file relative to the landing zone -> {input column: stored column}
    renamed_columns: dict[str, dict[str, str]] = field(default_factory=dict)


def landing_root(location: str) -> Path | UPath:
    """The landing zone a ``source.path``/``CT_LANDING_URL`` names: a folder, or an
    object-store URL (credentials and endpoint from the environment, as boto reads them)."""
    return UPath(location) if "://" in location and not location.startswith("file://") else Path(location)


def is_remote(path: Path | UPath) -> bool:
    return isinstance(path, UPath) and path.protocol not in ("", "file", "local")


def relative_name(path: Path | UPath, landing: Path | UPath) -> str:
    if is_remote(landing):
        return str(path)[len(str(landing).rstrip("/")) + 1:]
    return str(path.relative_to(landing))


def day_dir(landing: Path, day: dt.date) -> Path:
    return landing / f"dt={day.isoformat()}"


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def _coerce(rows: list[tuple[str, Record]]) -> tuple[pl.DataFrame, dict[str, str]]:
    """The day's records as the raw frame; extras typed exactly (ct_assets.ingest.extras)."""
    frame = core_frame(rows)
    extra_names = list(dict.fromkeys(k for _, (_, rec, _) in rows for k in rec if k not in RAW_SCHEMA))
    json_text: dict[str, str] = {}
    extras = []
    for name in extra_names:
        series, why = exact_column(name, [rec.get(name) for _, (_, rec, _) in rows])
        extras.append(series)
        if why:
            json_text[name] = why
    return (frame.hstack(extras) if extras else frame), json_text


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _walk(folder: Path, ctx: dict, files: list[Path], skipped: list[tuple[str, str]]) -> None:
    """Every file under ``folder``, recursively, in name order; the rest into ``skipped``."""
    landing, root, partition, seen = ctx["landing"], ctx["root"], ctx["partition"], ctx["seen"]
    # Sorted: the same files always give the same row order, so a re-run is identical.
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        rel = str(path.relative_to(landing))
        if path.name.startswith("."):
            # Writers stage there (ct import writes ".<name>.<uuid>.tmp" then renames).
            skipped.append((rel, "hidden name (starts with '.'): staging or in-progress files are not data"))
            continue
        if path.is_symlink():
            target = path.resolve()
            if not target.exists():
                raise LandingFileError(path, partition, f"broken symlink (to {target})")
            if not _inside(target, root):
                raise LandingFileError(path, partition, f"symlink resolves outside the landing zone, to {target}; not followed")
        if path.is_dir():
            real = path.resolve()
            if real in seen:
                skipped.append((rel, "folder already read (a symlink to it, or a symlink loop)"))
                continue
            seen.add(real)
            # A subfolder, or a folder named like a file ("x.parquet/" of part files), is read.
            _walk(path, ctx, files, skipped)
        elif path.is_file():
            _classify(path, rel, partition, files, skipped)
        else:
            skipped.append((rel, "not a regular file or folder (a FIFO, socket or device)"))


def _classify(path, rel: str, partition: str, files: list, skipped: list) -> None:
    suffixes = [x.lower() for x in path.suffixes]
    if suffixes and suffixes[-1] in READERS:
        files.append(path)
    elif suffixes and suffixes[-1] in COMPRESSED and any(x in READERS for x in suffixes):
        raise LandingFileError(path, partition, "compressed data file: the reader reads uncompressed files only")
    else:
        skipped.append((rel, f"suffix {path.suffix or '(none)'!r} is not one of {list(SUFFIXES)}"))


def _list_object_store(landing: UPath, day: dt.date) -> tuple[list[UPath], list[tuple[str, str]]]:
    """An object store has keys, not folders or links: every key under the day's prefix, in
    key order, classified by the same rules (a hidden segment is staging, not data)."""
    folder = day_dir(landing, day)
    # A fresh listing: s3fs caches listings per process, and a long-lived code server would
    # otherwise miss files that landed after its first look at the day.
    folder.fs.invalidate_cache(folder.path)
    try:
        keys = sorted(folder.fs.find(folder.path))
    except FileNotFoundError:
        return [], []
    files: list[UPath] = []
    skipped: list[tuple[str, str]] = []
    base = folder.path.rstrip("/") + "/"
    for key in keys:
        if not key.startswith(base):
            continue
        rel_day = key[len(base):]
        path = folder.joinpath(*rel_day.split("/"))
        rel = relative_name(path, landing)
        if any(part.startswith(".") for part in rel_day.split("/")):
            skipped.append((rel, "hidden name (starts with '.'): staging or in-progress files are not data"))
            continue
        _classify(path, rel, day.isoformat(), files, skipped)
    return files, skipped


def list_day_files(landing: Path, day: dt.date) -> tuple[list[Path], list[tuple[str, str]]]:
    """(files to read, [(path relative to landing, why not read)]) of one day."""
    if is_remote(landing):
        return _list_object_store(landing, day)
    folder = day_dir(landing, day)
    partition = day.isoformat()
    if not folder.exists() and not folder.is_symlink():
        return [], []
    root = landing.resolve()
    if not _inside(folder.resolve(), root):
        raise LandingFileError(folder, partition, f"the day folder resolves outside the landing zone, to {folder.resolve()}")
    if not folder.is_dir():
        raise LandingFileError(folder, partition, "the day's path is not a folder")
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    ctx = {"landing": landing, "root": root, "partition": partition, "seen": {folder.resolve()}}
    _walk(folder, ctx, files, skipped)
    return files, skipped


def read_landing_day(landing: Path, day: dt.date, *, fail_on_empty: bool = False, native: bool = True) -> LandingDay:
    """All of one day's landing files as the raw frame (docs/CONTRACTS.md).

    ``native=False`` reads every row in Python (``_read_strict``): the reference the native
    reader (native.py) must equal, frame for frame; it stays callable so tests can compare.
    """
    partition = day.isoformat()
    files, skipped = list_day_files(landing, day)
    rels = [relative_name(path, landing) for path in files]
    if native:
        frame, json_text, renamed = read_native(files, rels, partition)
    else:
        frame, json_text, renamed = _read_strict(files, rels, partition)
    if frame.height == 0 and fail_on_empty:
        raise EmptyDayError(f"partition {partition}: no rows in {day_dir(landing, day)} (fail_on_empty_day is on)")
    return LandingDay(
        frame=frame,
        files=tuple(files),
        bytes_read=sum(p.stat().st_size for p in files),
        skipped=tuple(skipped),
        json_text_columns=json_text,
        renamed_columns=renamed,
    )


def _read_strict(files: list, rels: list[str], partition: str):
    read = [(rel, READERS[path.suffixes[-1].lower()](path, partition)) for path, rel in zip(files, rels)]
    # One rename map for the whole day: per file, `_line` of a file without `source__line`
    # and the genuine `source__line` of another file would land in one column.
    clashes = clash_renames(dict.fromkeys(k for _, records in read for _, rec, _ in records for k in rec))
    rows: list[tuple[str, Record]] = []
    renamed: dict[str, dict[str, str]] = {}
    for rel, records in read:
        used = {k: v for k, v in clashes.items() if any(k in rec for _, rec, _ in records)}
        if used:
            renamed[rel] = used
            records = [(n, {clashes.get(k, k): v for k, v in rec.items()}, f) for n, rec, f in records]
        rows += [(rel, r) for r in records]
    frame, json_text = _coerce(rows) if rows else (empty_raw_frame(), {})
    return frame, json_text, renamed
