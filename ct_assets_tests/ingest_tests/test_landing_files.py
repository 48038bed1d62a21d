"""Issue 10, items 1-3: every landing file is read or reported, extras stay exact, JSON
is strict. Each case here failed on the reader before the fix."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import polars as pl
import pytest

from ct_assets.ingest.contract import LandingFileError, read_landing_day
from ct_assets.ingest.quality import REASON_CODES, split_rows

DAY = dt.date(2026, 9, 1)
ROW = {"event_id": "e1", "event_ts": "2026-09-01T10:00:00Z", "text": "my parcel is late",
       "label": "shipping", "label_ts": "2026-09-01T12:00:00+00:00"}


def _dir(tmp_path: Path) -> Path:
    d = tmp_path / "landing" / f"dt={DAY.isoformat()}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def _line(i: int, **extra) -> str:
    # ensure_ascii=False: U+2028 and friends must be in the file as themselves, not escaped.
    return json.dumps({**ROW, "event_id": f"e{i}", **extra}, ensure_ascii=False)


def _split(frame: pl.DataFrame):
    return split_rows(frame, day=DAY, labels=["shipping"], max_text_chars=500, reject_text_chars=5000,
                      mask_emails=False, mask_phones=False)


@pytest.mark.parametrize(
    "name",
    [
        "a.JSONL",  # upper-case suffix: was never read
        "a.json",  # .json is JSON Lines
        "a.ndjson",  # .ndjson is JSON Lines
        "sub/a.jsonl",  # a subfolder of dt=D: was ignored
        "x.jsonl/part-0.jsonl",  # a folder named like a file: was ignored
    ],
)
def test_every_data_file_is_read(tmp_path, name):
    path = _dir(tmp_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_line(1) + "\n")
    day = read_landing_day(tmp_path / "landing", DAY)
    assert day.frame.height == 1 and day.skipped == ()
    assert day.frame["_source_file"][0] == f"dt={DAY.isoformat()}/{name}"


def test_upper_case_csv_is_read(tmp_path):
    # .CSV was never read
    pl.DataFrame([ROW]).write_csv(_dir(tmp_path) / "b.CSV")
    assert read_landing_day(tmp_path / "landing", DAY).frame.height == 1


@pytest.mark.parametrize(
    "name, reason",
    [
        ("README.txt", "suffix '.txt'"),  # not a data suffix: listed, not read
        ("_SUCCESS", "suffix '(none)'"),  # a marker file of Spark-like writers
        (".a.jsonl.1234.tmp", "hidden name"),  # ct import's staging file
    ],
)
def test_files_not_read_are_listed_with_the_reason(tmp_path, name, reason):
    d = _dir(tmp_path)
    (d / name).write_text(_line(1) + "\n")
    (d / "ok.jsonl").write_text(_line(2) + "\n")
    day = read_landing_day(tmp_path / "landing", DAY)
    assert day.frame.height == 1
    assert [(f, why[: len(reason)]) for f, why in day.skipped] == [(f"dt={DAY.isoformat()}/{name}", reason)]


@pytest.mark.parametrize(
    "setup, problem",
    [
        # a symlink to a file outside the landing zone: an error, not followed
        (lambda d, out: os.symlink(out, d / "link.jsonl"), "symlink resolves outside the landing zone"),
        # a symlinked folder outside the landing zone
        (lambda d, out: os.symlink(out.parent, d / "linkdir"), "symlink resolves outside the landing zone"),
        # a dangling symlink
        (lambda d, out: os.symlink(d / "gone.jsonl", d / "dangling.jsonl"), "broken symlink"),
        # compressed data the reader cannot read: an error, not noise
        (lambda d, out: (d / "a.jsonl.gz").write_bytes(b"\x1f\x8b"), "compressed data file"),
    ],
)
def test_unreadable_entries_are_errors_naming_the_file(tmp_path, setup, problem):
    out = tmp_path / "outside" / "secret.jsonl"
    out.parent.mkdir()
    out.write_text(_line(1) + "\n")
    setup(_dir(tmp_path), out)
    with pytest.raises(LandingFileError) as err:
        read_landing_day(tmp_path / "landing", DAY)
    assert problem in str(err.value) and "partition 2026-09-01" in str(err.value)


def test_a_symlink_inside_the_landing_zone_is_followed(tmp_path):
    d = _dir(tmp_path)
    (d.parent / "shared.jsonl").write_text(_line(1) + "\n")
    os.symlink(d.parent / "shared.jsonl", d / "link.jsonl")
    assert read_landing_day(tmp_path / "landing", DAY).frame.height == 1


@pytest.mark.parametrize(
    "files, column, expected, why",
    [
        # 1 then {"a":1}: the struct became null
        ({"a.jsonl": [1, {"a": 1}]}, "x", ["1", '{"a": 1}'], "mixed types (dict, int)"),
        # true then 2: 2 became 1 (a bool)
        ({"a.jsonl": [True, 2]}, "x", ["true", "2"], "mixed types (bool, int)"),
        # an int in one file and a str in another: 3 became "3"
        ({"a.jsonl": [3], "b.jsonl": ["3"]}, "x", ["3", '"3"'], "mixed types (int, str)"),
        # a struct and a list: crashed with "cannot write 'Object' datatype"
        ({"a.jsonl": [{"a": 1}, [1]]}, "x", ['{"a": 1}', "[1]"], "mixed types (dict, list)"),
        # structs with different keys: missing keys were filled with null
        ({"a.jsonl": [{"a": 1}, {"b": 2}]}, "x", ['{"a": 1}', '{"b": 2}'], "no exact type for dict"),
        # one type throughout: kept in its own type
        ({"a.jsonl": [{"a": 1}, {"a": None}]}, "x", [{"a": 1}, {"a": None}], None),
        # an int past 64 bits
        ({"a.jsonl": [2**70, 1]}, "x", [str(2**70), "1"], "no exact type for int"),
    ],
)
def test_extras_keep_their_values_or_become_json_text(tmp_path, files, column, expected, why):
    d = _dir(tmp_path)
    i = 0
    for name, values in files.items():
        lines = []
        for v in values:
            i += 1
            lines.append(_line(i, **{column: v}))
        (d / name).write_text("\n".join(lines) + "\n")
    day = read_landing_day(tmp_path / "landing", DAY)
    assert day.frame[column].to_list() == expected
    assert day.json_text_columns == ({column: why} if why else {})
    day.frame.write_parquet(tmp_path / "out.parquet")  # storable, no Object dtype
    assert _split(day.frame).clean.height == len(expected)


@pytest.mark.parametrize(
    "column, stored",
    [
        ("_line", "source__line"),  # was dropped silently
        ("_source_file", "source__source_file"),  # was dropped silently
        ("_type_errors", "source__type_errors"),  # was dropped silently
        ("_raw_event_ts", "source__raw_event_ts"),  # a reader column
        ("reason", "source_reason"),  # crashed validated_window without naming file or partition
        ("reasons", "source_reasons"),  # likewise
        ("__ct_text", "source___ct_text"),  # the quality stage's temporaries
    ],
)
def test_input_columns_clashing_with_internal_names_are_renamed(tmp_path, column, stored):
    (_dir(tmp_path) / "a.jsonl").write_text(_line(1, **{column: "kept"}) + "\n")
    day = read_landing_day(tmp_path / "landing", DAY)
    assert day.frame[stored].to_list() == ["kept"]
    assert day.renamed_columns == {f"dt={DAY.isoformat()}/a.jsonl": {column: stored}}
    assert _split(day.frame).clean[stored].to_list() == ["kept"]


def test_a_renamed_column_never_lands_on_another_files_column(tmp_path):
    # Found by the fuzz test: renamed per file, a.jsonl's `_line` became `source__line`, the
    # very name b.jsonl uses for a column of its own, and the two merged into one column.
    (_dir(tmp_path) / "a.jsonl").write_text(_line(1, _line="from a") + "\n")
    (_dir(tmp_path) / "b.jsonl").write_text(_line(2, source__line="from b") + "\n")
    day = read_landing_day(tmp_path / "landing", DAY)
    assert day.frame["source_source__line"].to_list() == ["from a", None]
    assert day.frame["source__line"].to_list() == [None, "from b"]
    assert day.renamed_columns == {f"dt={DAY.isoformat()}/a.jsonl": {"_line": "source_source__line"}}


def test_a_reserved_column_in_a_hand_built_frame_names_partition_and_file(tmp_path):
    (_dir(tmp_path) / "a.jsonl").write_text(_line(1) + "\n")
    frame = read_landing_day(tmp_path / "landing", DAY).frame.with_columns(pl.lit("x").alias("reason"))
    with pytest.raises(ValueError, match=r"partition 2026-09-01.*'reason'.*dt=2026-09-01/a.jsonl"):
        _split(frame)


@pytest.mark.parametrize(
    "content, texts, lines",
    [
        # U+2028 inside a string is valid JSON: the whole day failed with "Unterminated string"
        (_line(1, text="a\u2028b") + "\n", ["a\u2028b"], [1]),
        # U+0085 (NEL) inside a string
        (_line(1, text="a\u0085b") + "\n", ["a\u0085b"], [1]),
        # a BOM at the start of a JSONL file: failed, while a CSV with one passed
        ("\ufeff" + _line(1) + "\n", [ROW["text"]], [1]),
        # CRLF line ends, and blank lines count as lines for _line
        (_line(1) + "\r\n\r\n" + _line(2) + "\r\n", [ROW["text"]] * 2, [1, 3]),
    ],
)
def test_jsonl_is_split_on_newline_only(tmp_path, content, texts, lines):
    (_dir(tmp_path) / "a.jsonl").write_bytes(content.encode("utf-8"))
    frame = read_landing_day(tmp_path / "landing", DAY).frame
    assert frame["text"].to_list() == texts and frame["_line"].to_list() == lines


@pytest.mark.parametrize(
    "content, lines",
    [
        # the header is line 1, so the first data row is line 2
        ("event_id,event_ts,text,label,label_ts\ne1,2026-09-01T10:00:00Z,hi,shipping,\n", [2]),
        # a quoted field spanning two lines: the next row starts on line 4 (was: record 2)
        ('event_id,event_ts,text,label,label_ts\ne1,2026-09-01T10:00:00Z,"a\nb",,\ne2,2026-09-01T10:00:00Z,c,,\n', [2, 4]),
        # a BOM before the header
        ("\ufeffevent_id,event_ts,text,label,label_ts\ne1,2026-09-01T10:00:00Z,hi,,\n", [2]),
    ],
)
def test_csv_line_counts_file_lines(tmp_path, content, lines):
    (_dir(tmp_path) / "a.csv").write_text(content, newline="")
    assert read_landing_day(tmp_path / "landing", DAY).frame["_line"].to_list() == lines


@pytest.mark.parametrize(
    "content, problem",
    [
        # a duplicate header was silently renamed text_duplicated_0
        ("event_id,event_ts,text,label,label_ts,text\n", "duplicate column 'text' in the header"),
        # a header with an empty name
        ("event_id,event_ts,text,label,label_ts,\n", "header column 6 has no name"),
        # a ragged row
        ("event_id,event_ts,text,label,label_ts\ne1,x\n", "line 2 has 2 field(s), the header has 5"),
    ],
)
def test_csv_header_problems_name_file_and_column(tmp_path, content, problem):
    (_dir(tmp_path) / "bad.csv").write_text(content)
    with pytest.raises(LandingFileError, match="bad.csv") as err:
        read_landing_day(tmp_path / "landing", DAY)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    "content, problem",
    [
        # NaN / Infinity are Python's extension, not JSON
        ('{"event_id": "e1", "x": NaN}\n', "line 1 is not valid JSON: NaN is not JSON"),
        # a line made only of U+2028 is not JSON whitespace
        (_line(1) + "\n\u2028\n", "line 2 is not valid JSON"),
        # an unpaired surrogate escape cannot be stored as UTF-8
        ('{"event_id": "e1", "text": "\\ud800"}\n', "line 1 holds an unpaired surrogate"),
        # UTF-16 is not the contract's encoding
        ("\ufeff" + _line(1), "UTF-16 byte-order mark"),
    ],
)
def test_strict_json_rejects_what_is_not_json(tmp_path, content, problem):
    data = content.encode("utf-16") if "UTF-16" in problem else content.encode("utf-8")
    (_dir(tmp_path) / "bad.jsonl").write_bytes(data)
    with pytest.raises(LandingFileError, match="bad.jsonl") as err:
        read_landing_day(tmp_path / "landing", DAY)
    assert problem in str(err.value)


@pytest.mark.parametrize(
    "line, first_text",
    [
        # a duplicate top-level key: the second value was kept silently
        ('{"event_id":"e1","event_ts":"2026-09-01T10:00:00Z","text":"first","text":"second","label":null,"label_ts":null}', "first"),
        # a duplicate key inside a nested extra
        ('{"event_id":"e1","event_ts":"2026-09-01T10:00:00Z","text":"t","label":null,"label_ts":null,"m":{"a":1,"a":2}}', "t"),
    ],
)
def test_duplicate_keys_are_quarantined_with_both_values_kept(tmp_path, line, first_text):
    (_dir(tmp_path) / "a.jsonl").write_text(line + "\n")
    frame = read_landing_day(tmp_path / "landing", DAY).frame
    result = _split(frame)
    assert result.clean.height == 0 and result.quarantine["reason"].to_list() == ["duplicate_key"]
    assert frame["text"].to_list() == [first_text]
    assert "duplicate key" in frame["_type_errors"][0] and "the first is kept" in frame["_type_errors"][0]
    assert REASON_CODES[0] == "duplicate_key"
