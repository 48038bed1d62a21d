"""The landing row contract: every bad input gets a clear error or an honest result.

Two outcomes only (issue 2, item 8): a file-level problem raises LandingFileError
naming the file, the partition and the problem; a row-level problem keeps the row with
its original value, for the quality rules to quarantine.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from ct_assets.ingest.contract import (
    RAW_SCHEMA,
    EmptyDayError,
    LandingFileError,
    read_landing_day,
)

DAY = dt.date(2026, 9, 1)
ROW = {
    "event_id": "e1",
    "event_ts": "2026-09-01T10:00:00Z",
    "text": "my parcel is late",
    "label": "shipping",
    "label_ts": "2026-09-01T12:00:00+00:00",
}


def _day_dir(tmp_path: Path) -> Path:
    d = tmp_path / f"dt={DAY.isoformat()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def test_jsonl_csv_parquet_read_to_the_same_raw_frame(tmp_path):
    rows = [ROW, {**ROW, "event_id": "e2", "label": None, "label_ts": None}]
    d = _day_dir(tmp_path)
    _write_jsonl(d / "a.jsonl", rows)
    pl.DataFrame(rows).write_csv(d / "b.csv")
    pl.DataFrame(rows).write_parquet(d / "c.parquet")
    frame = read_landing_day(tmp_path, DAY).frame
    assert frame.schema == pl.Schema(RAW_SCHEMA)
    assert frame.height == 6
    per_file = frame.partition_by("_source_file", as_dict=True)
    contract = ["event_id", "event_ts", "text", "label", "label_ts"]
    firsts = [f.select(contract).to_dicts() for f in per_file.values()]
    assert firsts[0] == firsts[1] == firsts[2]
    assert frame["event_ts"][0] == dt.datetime(2026, 9, 1, 10, tzinfo=dt.timezone.utc)


def test_extra_columns_are_carried_through_untouched(tmp_path):
    _write_jsonl(_day_dir(tmp_path) / "a.jsonl", [{**ROW, "channel": "chat", "priority": 3}])
    frame = read_landing_day(tmp_path, DAY).frame
    assert frame["channel"].to_list() == ["chat"]
    assert frame["priority"].to_list() == [3]


@pytest.mark.parametrize(
    "writer, problem",
    [
        # invalid bytes for UTF-8: named with the offending byte
        (lambda d: (d / "bad.jsonl").write_bytes(b'{"event_id": "\xff"}\n'), "not UTF-8"),
        # a broken JSON line: named with its line number
        (lambda d: (d / "bad.jsonl").write_text(json.dumps(ROW) + "\n{oops\n"), "line 2 is not valid JSON"),
        # a JSON array instead of an object
        (lambda d: (d / "bad.jsonl").write_text("[1, 2]\n"), "line 1 is a list"),
        # a required column missing
        (lambda d: _write_jsonl(d / "bad.jsonl", [{k: v for k, v in ROW.items() if k != "text"}]), "missing required column(s) ['text']"),
        # CSV without the label column
        (lambda d: pl.DataFrame([ROW]).drop("label").write_csv(d / "bad.csv"), "missing required column(s) ['label']"),
        # Parquet with a number where text belongs: a file-level type error
        (lambda d: pl.DataFrame([{**ROW, "text": 5}]).write_parquet(d / "bad.parquet"), "column 'text' has type Int64"),
        # a file that is not Parquet at all
        (lambda d: (d / "bad.parquet").write_bytes(b"not parquet"), "cannot read Parquet"),
    ],
)
def test_file_level_problems_name_file_partition_and_problem(tmp_path, writer, problem):
    writer(_day_dir(tmp_path))
    with pytest.raises(LandingFileError) as err:
        read_landing_day(tmp_path, DAY)
    message = str(err.value)
    assert "bad." in message and "partition 2026-09-01" in message and problem in message


@pytest.mark.parametrize(
    "row, column, raw_column, raw_value",
    [
        # unparseable event time: kept, parsed value null, original preserved
        ({**ROW, "event_ts": "not-a-date"}, "event_ts", "_raw_event_ts", "not-a-date"),
        # impossible date
        ({**ROW, "label_ts": "2026-13-45T99:00:00Z"}, "label_ts", "_raw_label_ts", "2026-13-45T99:00:00Z"),
    ],
)
def test_bad_timestamps_keep_the_row_and_the_original_value(tmp_path, row, column, raw_column, raw_value):
    _write_jsonl(_day_dir(tmp_path) / "a.jsonl", [row])
    frame = read_landing_day(tmp_path, DAY).frame
    assert frame.height == 1
    assert frame[column][0] is None
    assert frame[raw_column][0] == raw_value


def test_a_number_where_text_belongs_is_kept_and_flagged(tmp_path):
    _write_jsonl(_day_dir(tmp_path) / "a.jsonl", [{**ROW, "text": 12345}])
    frame = read_landing_day(tmp_path, DAY).frame
    assert frame["text"][0] == "12345"
    assert frame["_type_errors"][0] == "text: expected string, got int"


@pytest.mark.parametrize("fail_on_empty", [False, True])
def test_empty_day_is_empty_unless_settings_say_otherwise(tmp_path, fail_on_empty):
    (_day_dir(tmp_path) / "empty.jsonl").write_text("")
    if fail_on_empty:
        with pytest.raises(EmptyDayError, match="2026-09-01"):
            read_landing_day(tmp_path, DAY, fail_on_empty=True)
    else:
        day = read_landing_day(tmp_path, DAY)
        assert day.frame.height == 0 and day.frame.schema == pl.Schema(RAW_SCHEMA)


def test_missing_day_folder_is_an_empty_day(tmp_path):
    assert read_landing_day(tmp_path, DAY).frame.height == 0
