"""The native reader (native.py, native_parse.py) equals the strict reader, frame for frame.

The strict reader (``read_landing_day(..., native=False)``) is the reference: every case
here, and the fuzz below, reads one landing zone both ways and asserts the same frame
(values, dtypes, column order), the same json_text_columns and renamed_columns, or the
same LandingFileError message.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ct_assets.core.schema import REQUIRED_COLUMNS
from ct_assets.ingest.contract import LandingFileError, read_landing_day
from ct_assets.ingest.native_parse import jsonl_part

DAY = dt.date(2026, 9, 1)
ROW = {"event_id": "e1", "event_ts": "2026-09-01T10:00:00Z", "text": "my parcel is late",
       "label": "shipping", "label_ts": "2026-09-01T12:00:00+00:00"}


def _line(i: int, **extra) -> str:
    return json.dumps({**ROW, "event_id": f"e{i}", **extra}, ensure_ascii=False)


def _write(root: Path, files: dict[str, bytes | str | pl.DataFrame]) -> Path:
    folder = root / f"dt={DAY.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if isinstance(data, pl.DataFrame):
            data.write_parquet(folder / name)
        else:
            (folder / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return root


def assert_same(landing: Path) -> None:
    try:
        strict = read_landing_day(landing, DAY, native=False)
    except LandingFileError as err:
        with pytest.raises(LandingFileError) as native_err:
            read_landing_day(landing, DAY)
        assert str(native_err.value) == str(err)
        return
    native = read_landing_day(landing, DAY)
    assert native.frame.columns == strict.frame.columns
    assert native.frame.schema == strict.frame.schema
    assert native.frame.equals(strict.frame), (native.frame, strict.frame)
    assert native.json_text_columns == strict.json_text_columns
    assert native.renamed_columns == strict.renamed_columns
    assert (native.files, native.skipped, native.bytes_read) == (strict.files, strict.skipped, strict.bytes_read)


JSONL_CASES = {
    "plain": "".join(_line(i, channel="chat", n=i, f=i / 3, ok=i % 2 == 0) + "\n" for i in range(5)),
    "duplicate key": '{"event_id":"e1","event_ts":"2026-09-01T10:00:00Z","text":"a","text":"b","label":null,"label_ts":null}\n',
    "nested duplicate": _line(1) + "\n" + _line(2, m={"a": 1})[:-1] + ', "m2": {"a": 1, "a": 2}}\n',
    "lone surrogate": _line(1) + "\n" + '{"event_id": "e2", "text": "\\ud800"}\n',
    "surrogate pair": _line(1, text="\\ud83d\\ude00") + "\n" + json.dumps({**ROW, "text": "😀"}) + "\n",
    "number in text": _line(1, text=12345) + "\n" + _line(2, label=True) + "\n" + _line(3, event_ts=5) + "\n",
    "mixed in file": _line(1, x="a") + "\n" + _line(2, x=1) + "\n",
    "int and float": _line(1, x=1) + "\n" + _line(2, x=1.5) + "\n",
    "big int": _line(1, x=2**70) + "\n" + _line(2, x=2**63) + "\n" + _line(3, y=10**17) + "\n",
    "nested": _line(1, x=[1, {"c": 2}]) + "\n" + _line(2, x=[3]) + "\n" + _line(3, s={"a": 1}) + "\n",
    "nan": _line(1) + "\n" + '{"event_id": "e1", "x": NaN}\n',
    "trailing junk": _line(1) + "x\n",
    # Every line native and none with a contract column: still "missing required column(s)"
    # (the fuzz test found the native path reading it as one empty row).
    "only empty objects": "{}\n\n{}\n",
    "two objects": _line(1) + " " + _line(2) + "\n",
    "not an object": "[1, 2]\n",
    "trailing comma": '{"event_id":"e1","event_ts":null,"text":"t","label":null,"label_ts":null,}\n',
    "raw tab in string": _line(1, text="a\tb").replace("\\t", "\t") + "\n",
    "escaped key": '{"event_id":"e1","event_ts":null,"te\\u0078t":"t","label":null,"label_ts":null}\n',
    "U+2028 and NEL": _line(1, text="a\u2028b\u0085c") + "\n",
    "BOM": "\ufeff" + _line(1) + "\n",
    "CRLF and blank lines": _line(1) + "\r\n\r\n  \t\n" + _line(2) + "\r\n",
    "line of U+2028": _line(1) + "\n\u2028\n",
    "missing column": json.dumps({k: v for k, v in ROW.items() if k != "text"}) + "\n",
    "clashing names": _line(1, _line="a", reason="r", __ct_x=1, _raw_event_ts="z") + "\n",
    "timestamps": "".join(_line(i, event_ts=t, label_ts=t) + "\n" for i, t in enumerate(
        ["2026-09-01 10:00:00", "2026-09-01T10:00:00.123+05:30", "2023-02-29T00:00:00", "2026-13-45T99:00:00Z",
         " 2026-09-01T10:00:00Z", "2026-09-01", "bad", "2026-09-01T10:00:60Z", "2026-09-01T10:00:00+24:00", None])),
    "all null extra": _line(1, x=None) + "\n" + _line(2, x=None) + "\n",
    "empty object line": _line(1) + "\n{}\n",
    "empty file": "",
    "control char outside strings": _line(1) + "\n" + _line(2).replace(", ", ",\x01", 1) + "\n",
    "escapes": _line(1, text='q"\\/\b\f\n\r\t\u0000\u00e9', x="\\/") + "\n",
    "float forms": _line(1, x=1e5) + "\n" + _line(2, x=-0.0) + "\n" + _line(3, x=1.2345678901234567e-300) + "\n",
}


@pytest.mark.parametrize("case", list(JSONL_CASES))
def test_jsonl_cases_read_the_same_both_ways(tmp_path, case):
    assert_same(_write(tmp_path, {"a.jsonl": JSONL_CASES[case]}))


@pytest.mark.parametrize(
    "files",
    [
        {"a.jsonl": _line(1, x=3) + "\n", "b.jsonl": _line(2, x="3") + "\n"},  # int in one file, str in another
        {"a.jsonl": _line(1, _line="from a") + "\n", "b.jsonl": _line(2, source__line="from b") + "\n"},
        {"a.jsonl": _line(1, x=1) + "\n", "b.csv": "event_id,event_ts,text,label,label_ts,x\ne2,,t,,,1\n"},
        {"a.jsonl": _line(1, x=1.5) + "\n" + _line(3, x=[1]) + "\n", "b.jsonl": _line(2, x=2.5) + "\n"},
        {"a.jsonl": "\xff", "b.jsonl": _line(1) + "\n"},
        {"a.jsonl": b'{"event_id": "\xff"}\n'},
        {"a.jsonl": "\ufeff" + _line(1)},  # written as UTF-16 below
    ],
)
def test_days_of_several_files_read_the_same_both_ways(tmp_path, files):
    if list(files.values()) == ["\ufeff" + _line(1)]:
        files = {"a.jsonl": ("\ufeff" + _line(1)).encode("utf-16")}
    files = {k: (v.encode("latin-1") if v == "\xff" else v) for k, v in files.items()}
    assert_same(_write(tmp_path, files))


CSV_HEADER = "event_id,event_ts,text,label,label_ts"
CSV_CASES = [
    CSV_HEADER + ",x\ne1,2026-09-01T10:00:00Z,hi,shipping,,1\ne2,,,,,\n",
    CSV_HEADER + '\ne1,2026-09-01T10:00:00Z,"a, ""quoted"" text",,\n',
    CSV_HEADER + '\ne1,2026-09-01T10:00:00Z,"a\nb",,\ne2,2026-09-01T10:00:00Z,c,,\n',  # multi-line field
    CSV_HEADER + "\n\ne1,2026-09-01T10:00:00Z,hi,,\n\n",  # blank lines count
    "\ufeff" + CSV_HEADER + "\ne1,2026-09-01T10:00:00Z,hi,,\n",
    CSV_HEADER + "\r\ne1,2026-09-01T10:00:00Z,hi,,\r\n",
    CSV_HEADER + ",text\n",  # duplicate header
    CSV_HEADER + ",\ne1,a,b,c,d,e\n",  # empty header name
    CSV_HEADER + "\ne1,x\n",  # ragged
    CSV_HEADER + '\ne1,2026-09-01T10:00:00Z,a"b,,\n',  # quote inside an unquoted field
    CSV_HEADER + '\ne1,2026-09-01T10:00:00Z,"a"b,,\n',  # text after a closing quote
    "event_id,event_ts,text,label\ne1,x,y,z\n",  # missing column
    CSV_HEADER + "\n",  # header only
    CSV_HEADER + ',"_line"\ne1,,t,,,"7"\n',
    "",
]


@pytest.mark.parametrize("content", CSV_CASES)
def test_csv_cases_read_the_same_both_ways(tmp_path, content):
    assert_same(_write(tmp_path, {"a.csv": content}))


PARQUET_CASES = [
    pl.DataFrame([ROW, {**ROW, "event_id": "e2", "label": None, "label_ts": None}]),
    pl.DataFrame({**{k: [v] for k, v in ROW.items()}, "i32": pl.Series([1], dtype=pl.Int32),
                  "f32": pl.Series([0.1], dtype=pl.Float32), "u64": pl.Series([2**63], dtype=pl.UInt64),
                  "s": [{"a": 1}], "l": [[1, 2]], "n": pl.Series([None], dtype=pl.Int64), "d": [dt.date(2026, 1, 1)]}),
    pl.DataFrame({**{k: [v] for k, v in ROW.items() if "ts" not in k},
                  "event_ts": [dt.datetime(2026, 9, 1, 10, 0, 0, 123456)],
                  "label_ts": pl.Series([dt.datetime(2026, 9, 1, 12)]).dt.replace_time_zone("Europe/Berlin")}),
    pl.DataFrame(schema={k: pl.String for k in ROW}),  # no rows
    pl.DataFrame({**{k: [v] for k, v in ROW.items()}, "_line": [5], "text": [None]}),
]


@pytest.mark.parametrize("frame", PARQUET_CASES)
def test_parquet_cases_read_the_same_both_ways(tmp_path, frame):
    assert_same(_write(tmp_path, {"a.parquet": frame}))


def test_clean_lines_take_the_native_path(tmp_path):
    # Guards the speed: a clean file must not fall back to the strict reader line by line.
    _write(tmp_path, {"a.jsonl": JSONL_CASES["plain"] + '{"event_id":"e9","text":5,"event_ts":null,"label":null,"label_ts":null}\n'})
    part = jsonl_part(tmp_path / f"dt={DAY.isoformat()}" / "a.jsonl", DAY.isoformat())
    assert part.frame is not None and part.frame.height == 5
    assert [line for line, _, _ in part.records] == [6]  # only the text-is-a-number row


NAMES = st.one_of(st.sampled_from(["channel", "x", "_line", "reason", "source__line", *REQUIRED_COLUMNS]),
                  st.text(min_size=1, max_size=4))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**65), max_value=2**65),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=2),
                                                       st.dictionaries(st.text(max_size=2), inner, max_size=2)),
                      max_leaves=3)
CONTRACT = st.one_of(st.sampled_from(["2026-09-01T10:00:00Z", "2026-09-01 10:00:00.123456-02:00", "shipping", None]),
                     SCALARS)
RECORD = st.tuples(st.fixed_dictionaries({c: CONTRACT for c in REQUIRED_COLUMNS}),
                   st.dictionaries(NAMES, st.one_of(SCALARS, VALUES), max_size=3)).map(lambda t: {**t[1], **t[0]})
JUNK = st.sampled_from(["", "  ", "\r", "{", "[1]", '{"a":1,"a":2}', '{"x":"\\ud800"}', "\u2028", "{}", "null"])
LINE = st.one_of(RECORD.map(lambda r: json.dumps(r)), RECORD.map(lambda r: json.dumps(r, ensure_ascii=False)),
                 JUNK, RECORD.map(lambda r: json.dumps(r, separators=(",", ":"))))


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(a=st.lists(LINE, max_size=5), b=st.lists(RECORD, max_size=3), crlf=st.booleans(), bom=st.booleans())
def test_fuzzed_days_read_the_same_both_ways(a, b, crlf, bom):
    end = "\r\n" if crlf else "\n"
    with tempfile.TemporaryDirectory() as tmp:
        files = {"a.jsonl": ("\ufeff" if bom else "") + "".join(line + end for line in a),
                 "b.ndjson": "".join(json.dumps(r) + end for r in b)}
        assert_same(_write(Path(tmp), files))


CELL = st.one_of(st.sampled_from(["", '"', '""', ",", "a,b", "x\ny", "\r", " ", "2026-09-01T10:00:00Z"]), st.text(max_size=4))


@settings(max_examples=100, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(header=st.lists(NAMES, max_size=2, unique=True), rows=st.lists(st.lists(CELL, min_size=7, max_size=7), max_size=4),
       quote_all=st.booleans(), ragged=st.booleans())
def test_fuzzed_csv_reads_the_same_both_ways(header, rows, quote_all, ragged):
    import csv
    import io

    columns = [*REQUIRED_COLUMNS, *[h for h in header if h not in REQUIRED_COLUMNS]]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(row[: len(columns) - (1 if ragged else 0)])
    with tempfile.TemporaryDirectory() as tmp:
        assert_same(_write(Path(tmp), {"a.csv": out.getvalue()}))
