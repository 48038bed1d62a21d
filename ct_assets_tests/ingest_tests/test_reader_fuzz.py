"""Issue 10 item 8: the reader plus split_rows over arbitrary input.

Invariant: ``read_landing_day`` either raises a ``LandingFileError`` that names the file,
or returns rows for which clean + quarantined = read, and every extra value round-trips
unchanged (in its own type, or as its JSON text where the column is listed in
``json_text_columns``). ``derandomize=True`` keeps CI deterministic; ``max_examples`` keeps
the whole file well under a minute.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ct_assets.core.schema import REQUIRED_COLUMNS
from ct_assets.ingest.contract import LandingFileError, read_landing_day
from ct_assets.ingest.extras import _same, clash_renames
from ct_assets.ingest.quality import split_rows

DAY = dt.date(2026, 9, 1)
FUZZ = settings(max_examples=150, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Names a feed might use: contract, reserved internal ones, and anything at all.
NAMES = st.one_of(
    st.sampled_from(["channel", "x", "_line", "_source_file", "_type_errors", "_raw_event_ts",
                     "reason", "reasons", "__ct_text", "source__line", "meta"]),
    st.text(min_size=1, max_size=6),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
)
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)), max_leaves=6)
CONTRACT_VALUES = st.one_of(st.just("2026-09-01T10:00:00Z"), st.just("shipping"), JSON_VALUES)
RECORDS = st.lists(
    st.tuples(st.fixed_dictionaries({c: CONTRACT_VALUES for c in REQUIRED_COLUMNS}),
              st.dictionaries(NAMES, JSON_VALUES, max_size=3)).map(lambda t: {**t[1], **t[0]}),
    min_size=1, max_size=6,
)


def _read_and_split(landing: Path):
    """(day, result) or raises LandingFileError; the split always holds clean + quarantine = raw."""
    day = read_landing_day(landing, DAY)
    result = split_rows(day.frame, day=DAY, labels=["shipping"], max_text_chars=500, reject_text_chars=5000,
                        mask_emails=False, mask_phones=False)
    assert result.clean.height + result.quarantine.height == day.frame.height == result.rows_read
    return day, result


def _landing(files: dict[str, bytes]) -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    folder = Path(tmp.name) / f"dt={DAY.isoformat()}"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return tmp, Path(tmp.name)


@pytest.mark.parametrize(
    "name",
    [
        "a.jsonl",  # arbitrary bytes read as JSON Lines
        "a.csv",  # arbitrary bytes read as CSV
        "a.parquet",  # arbitrary bytes read as Parquet
    ],
)
@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8"))))
def test_arbitrary_bytes_raise_naming_the_file_or_split_cleanly(name, data):
    tmp, landing = _landing({name: data})
    with tmp:
        try:
            _read_and_split(landing)
        except LandingFileError as err:
            assert name in str(err)


@FUZZ
@given(records=RECORDS, bom=st.booleans(), ascii_only=st.booleans(), crlf=st.booleans(), split=st.integers(0, 6))
def test_json_values_round_trip_or_raise_naming_the_file(records, bom, ascii_only, crlf, split):
    # The records over two files (so types can conflict across files), with or without a BOM.
    end = "\r\n" if crlf else "\n"
    texts = [json.dumps(r, ensure_ascii=ascii_only) + end for r in records]
    files = {"a.jsonl": ("\ufeff" if bom else "") + "".join(texts[:split]), "b.ndjson": "".join(texts[split:])}
    tmp, landing = _landing({k: v.encode("utf-8") for k, v in files.items()})
    with tmp:
        try:
            day, _ = _read_and_split(landing)
        except LandingFileError as err:
            assert "a.jsonl" in str(err) or "b.ndjson" in str(err)
            return
        frame = day.frame
        assert frame.height == len(records)
        # The reader renames clashing names once per day, over every file's columns.
        renames = clash_renames(list(dict.fromkeys(k for rec in records for k in rec)))
        for i, rec in enumerate(records):
            for key, value in rec.items():
                if key in REQUIRED_COLUMNS:
                    continue
                stored = frame[renames.get(key, key)].to_list()[i]  # [i] of a List column is a Series
                if renames.get(key, key) in day.json_text_columns:
                    stored = None if stored is None else json.loads(stored)
                assert _same(stored, value) or (stored is None and value is None), (key, value, stored)


@FUZZ
@given(header=st.lists(NAMES, min_size=0, max_size=3, unique=True),
       cells=st.lists(st.lists(st.text(max_size=6), min_size=8, max_size=8), min_size=0, max_size=4),
       bom=st.booleans())
def test_csv_columns_round_trip_or_raise_naming_the_file(header, cells, bom):
    import csv
    import io

    columns = [*REQUIRED_COLUMNS, *[h for h in header if h not in REQUIRED_COLUMNS]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in cells:
        writer.writerow(row[: len(columns)])
    tmp, landing = _landing({"a.csv": (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8")})
    with tmp:
        try:
            day, _ = _read_and_split(landing)
        except LandingFileError as err:
            assert "a.csv" in str(err)
            return
        renames = clash_renames(columns)
        for i, row in enumerate(cells):
            for name, value in zip(columns[len(REQUIRED_COLUMNS):], row[len(REQUIRED_COLUMNS):]):
                # An empty CSV field is null (docs/CONTRACTS.md).
                assert day.frame[renames.get(name, name)][i] == (value or None)


def test_extra_columns_named_like_a_wildcard_or_a_regex_are_kept_as_named():
    # Found by the fuzz test above: polars reads select("*") as every column and "^...$" as a
    # regex, so a user's extra called "*" duplicated the whole row in the quarantine split.
    rows = [{"event_id": "a", "event_ts": "2026-09-01T10:00:00Z", "text": "where is my parcel", "label": "shipping",
             "label_ts": "2026-09-01T10:00:00Z", "*": 1, "^text$": "x"},
            {"event_id": "b", "event_ts": "not a time", "text": "late", "label": "shipping",
             "label_ts": "2026-09-01T10:00:00Z", "*": 2, "^text$": "y"}]
    tmp, landing = _landing({"d.jsonl": "".join(json.dumps(r) + "\n" for r in rows).encode()})
    with tmp:
        _, result = _read_and_split(landing)
    assert result.clean["*"].to_list() == [1] and result.clean["^text$"].to_list() == ["x"]
    assert result.quarantine["*"].to_list() == [2] and result.quarantine["^text$"].to_list() == ["y"]
