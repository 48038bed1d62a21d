"""`ct import`: a user's own export becomes landing files the pipeline reads back cleanly.

It exists because this is the door for real data: a row placed on the wrong day, a label
made known too early, a silently dropped row or a file the reader cannot parse would
poison every later stage. The real fixture (1,600 airline tweets, Feb 17-24 2015, times
as "M/D/YYYY HH:MM") is imported as a user would, and every kind of bad input is checked
for its reported reason.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from ct_assets.ingest.contract import read_landing_day
from ct_assets.ingest.importer import (
    ColumnMap,
    ImporterError,
    ImportFileError,
    import_files,
    parse_time,
)
from ct_assets.ingest.quality import split_rows

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "airline_tweets_2015" / "tweets_sample.csv"
LABELS = ("negative", "neutral", "positive")
DAYS = [dt.date(2015, 2, 17) + dt.timedelta(days=i) for i in range(8)]
TWEETS = ColumnMap(text="text", label="airline_sentiment", time="tweet_created")
UTC = dt.timezone.utc


def validate_day(landing: Path, day: dt.date):
    """The raw frame of a landing day through the quality rules, as validated_window does."""
    raw = read_landing_day(landing, day).frame
    return raw, split_rows(raw, day=day, labels=LABELS, max_text_chars=1000, reject_text_chars=10_000,
                           mask_emails=True, mask_phones=True)


def landing_bytes(landing: Path) -> dict[str, bytes]:
    return {str(p.relative_to(landing)): p.read_bytes() for p in sorted(landing.rglob("*")) if p.is_file()}


def write_csv(path: Path, rows: list[dict]) -> Path:
    pl.DataFrame(rows).write_csv(path)
    return path


@pytest.mark.parametrize(
    "id_column, clean_on_24th, duplicates",
    [
        # derived ids (file, row, content) are unique: every one of the 1,600 rows is clean
        (None, 200, 0),
        # the export's own ids: the source data repeats 16 tweet_ids on Feb 24 (some with two
        # different labels); they are placed, warned about, and quarantined as duplicates
        ("tweet_id", 184, 16),
    ],
)
def test_the_fixture_imports_one_file_per_day_and_reads_back_clean(tmp_path, id_column, clean_on_24th, duplicates):
    cols = ColumnMap(text="text", label="airline_sentiment", time="tweet_created", id=id_column)
    result = import_files([FIXTURE], tmp_path, cols, labels=LABELS, start_date=DAYS[0])
    assert result.rows_per_file_day == {(d.isoformat(), f"dt={d}/import-tweets_sample.jsonl"): 200 for d in DAYS}
    assert result.placed == 1600 and result.rejected == () and result.renamed == {}
    assert ("reuse the id" in " ".join(result.warnings)) == bool(duplicates)
    for day in DAYS:
        raw, q = validate_day(tmp_path, day)
        expected_clean = clean_on_24th if day == DAYS[-1] else 200
        assert (raw.height, q.clean.height) == (200, expected_clean), day
        assert q.reason_counts == ({"duplicate_event_id": duplicates} if day == DAYS[-1] and duplicates else {})
        # point in time: no label time in the export, so a label is known at its event time
        assert (q.clean["label_ts"] == q.clean["event_ts"]).all()
    columns = read_landing_day(tmp_path, DAYS[0]).frame.columns
    assert {"negativereason", "airline"} <= set(columns) and ("tweet_id" in columns) == (id_column is None)


def test_a_rerun_is_byte_identical_and_replaces_only_its_own_files(tmp_path):
    landing = tmp_path / "landing"
    import_files([FIXTURE], landing, TWEETS)
    first = landing_bytes(landing)
    foreign = landing / "dt=2015-02-17" / "other-drop.jsonl"
    foreign.write_text("{}\n")
    import_files([FIXTURE], landing, TWEETS)
    assert {k: v for k, v in landing_bytes(landing).items() if "other-drop" not in k} == first
    # The same file name with only Feb 17 left: its other seven days go, the foreign file stays.
    short = tmp_path / FIXTURE.name
    short.write_text("\n".join(FIXTURE.read_text(encoding="utf-8").splitlines()[:11]) + "\n", encoding="utf-8")
    result = import_files([short], landing, TWEETS)
    assert result.removed == tuple(f"dt={d}/import-tweets_sample.jsonl" for d in DAYS[1:])
    assert sorted(landing_bytes(landing)) == ["dt=2015-02-17/import-tweets_sample.jsonl",
                                              "dt=2015-02-17/other-drop.jsonl"]
    assert "removed stale dt=2015-02-18/import-tweets_sample.jsonl" in result.report()


BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    "value, zone, time_format, expected",
    [
        # ISO-8601 with Z: already UTC
        ("2015-02-24T11:35:00Z", UTC, None, dt.datetime(2015, 2, 24, 11, 35, tzinfo=UTC)),
        # ISO-8601 with an offset: converted, the zone is not used
        ("2015-02-24T11:35:00+01:00", NEW_YORK, None, dt.datetime(2015, 2, 24, 10, 35, tzinfo=UTC)),
        # naive ISO-8601 is wall-clock time in the zone (Berlin is UTC+1 in February)
        ("2015-02-24 11:35", BERLIN, None, dt.datetime(2015, 2, 24, 10, 35, tzinfo=UTC)),
        # the fixture's shape, M/D/YYYY H:MM, through the fallback
        ("2/24/2015 11:35", UTC, None, dt.datetime(2015, 2, 24, 11, 35, tzinfo=UTC)),
        # the same in New York (UTC-5 in February) lands five hours later in UTC
        ("2/24/2015 21:35", NEW_YORK, None, dt.datetime(2015, 2, 25, 2, 35, tzinfo=UTC)),
        # 12-hour clock with AM/PM
        ("2/24/2015 9:05 PM", UTC, None, dt.datetime(2015, 2, 24, 21, 5, tzinfo=UTC)),
        # Twitter API created_at
        ("Tue Feb 24 11:35:52 +0000 2015", UTC, None, dt.datetime(2015, 2, 24, 11, 35, 52, tzinfo=UTC)),
        # day-first needs --time-format ...
        ("24.02.2015 11:35", UTC, "%d.%m.%Y %H:%M", dt.datetime(2015, 2, 24, 11, 35, tzinfo=UTC)),
        # ... and is not guessed: 13 is no month
        ("13/2/2015 10:00", UTC, None, None),
        # with --time-format given, only it is tried after ISO-8601
        ("2/24/2015 11:35", UTC, "%d.%m.%Y %H:%M", None),
        # a Parquet timestamp without zone is in the zone too
        (dt.datetime(2015, 2, 24, 11, 35), BERLIN, None, dt.datetime(2015, 2, 24, 10, 35, tzinfo=UTC)),
        # epoch numbers are refused: seconds and milliseconds cannot be told apart
        (1424777700, UTC, None, None),
        # not a time at all
        ("yesterday", UTC, None, None),
    ],
)
def test_parse_time(value, zone, time_format, expected):
    assert parse_time(value, zone=zone, time_format=time_format) == expected


GOOD = {"id": "g", "body": "a fine row", "sentiment": "positive", "when": "2015-02-17T10:00:00Z",
        "labelled": "2015-02-17T12:00:00Z"}


@pytest.mark.parametrize(
    "row, column, reason",
    [
        # no event time: no day to put it on
        ({"when": ""}, "when", "missing_time"),
        # a time in no shape the importer knows
        ({"when": "17th of Feb"}, "when", "unparseable_time"),
        # no text
        ({"body": ""}, "body", "missing_text"),
        # only whitespace is no text either
        ({"body": "   "}, "body", "missing_text"),
        # --id given but the cell is empty
        ({"id": ""}, "id", "missing_id"),
        # a label with an empty label-time cell: when it became known is unknown
        ({"labelled": ""}, "labelled", "missing_label_time"),
        # a label time that is not a time
        ({"labelled": "soon"}, "labelled", "unparseable_label_time"),
        # a label known before its event happened breaks the contract
        ({"labelled": "2015-02-17T09:00:00Z"}, "labelled", "label_time_before_time"),
    ],
)
def test_rows_that_cannot_be_placed_are_reported_with_their_reason(tmp_path, row, column, reason):
    rows = [GOOD, {**GOOD, "id": "bad", **row}, {**GOOD, "id": "unlabelled", "sentiment": "", "labelled": ""}]
    src = write_csv(tmp_path / "export.csv", rows)
    cols = ColumnMap(text="body", label="sentiment", time="when", label_time="labelled", id="id")
    result = import_files([src], tmp_path / "landing", cols)
    assert [(r.file, r.row, r.column, r.reason) for r in result.rejected] == [("export.csv", 2, column, reason)]
    assert result.placed == 2
    report = result.report()
    assert "1 not placed" in report and f"export.csv       2  {column:<16}{reason}" in report
    _, q = validate_day(tmp_path / "landing", dt.date(2015, 2, 17))
    # an empty label cell is an unlabelled row: label and label_ts null, and still clean
    assert q.clean.sort("event_id").select("event_id", "label", "label_ts").rows() == [
        ("g", "positive", dt.datetime(2015, 2, 17, 12, tzinfo=UTC)), ("unlabelled", None, None)]


def test_clashing_column_names_are_renamed_and_reported(tmp_path):
    # Every name here is one the landing reader or the quality stage reserves.
    row = {**GOOD, "event_id": "theirs", "text": "their text", "_secret": "x", "reason": "r", "reasons": "rs",
           "source_text": "already taken"}
    src = write_csv(tmp_path / "export.csv", [row])
    result = import_files([src], tmp_path / "landing", ColumnMap(text="body", label="sentiment", time="when"))
    # text -> source_text is taken by the export itself, so the prefix is applied twice
    assert result.renamed == {"export.csv": {
        "event_id": "source_event_id", "text": "source_source_text", "_secret": "source__secret",
        "reason": "source_reason", "reasons": "source_reasons"}}
    assert "event_id -> source_event_id" in result.report()
    _, q = validate_day(tmp_path / "landing", dt.date(2015, 2, 17))
    clean = q.clean.row(0, named=True)
    assert (clean["text"], clean["source_event_id"], clean["source_source_text"], clean["source_text"]) == (
        "a fine row", "theirs", "their text", "already taken")


@pytest.mark.parametrize(
    "name, content, problem",
    [
        # latin-1 bytes in a CSV
        ("export.csv", "body,sentiment,when\ncaf\xe9,positive,2015-02-17\n".encode("latin-1"), "not UTF-8"),
        # a JSONL line that is not JSON
        ("export.jsonl", b'{"body": "ok"}\n{"body": \n', "line 2 is not valid JSON"),
        # a JSON array holding a non-object
        ("export.json", b'[{"body": "ok"}, 3]', "row 2 is a int"),
        # bytes that are not Parquet
        ("export.parquet", b"not parquet at all", "cannot parse parquet"),
        # a spreadsheet
        ("export.xlsx", b"PK", "unsupported file type '.xlsx'"),
        # a mapped column the file does not have
        ("export.csv", b"body,sentiment\nhello,positive\n", "no column(s) ['when']"),
    ],
)
def test_a_file_that_cannot_be_read_stops_the_import_before_anything_is_written(tmp_path, name, content, problem):
    good = write_csv(tmp_path / "good.csv", [GOOD])
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(ImportFileError) as err:
        import_files([good, bad], tmp_path / "landing", ColumnMap(text="body", label="sentiment", time="when"))
    assert str(bad) in str(err.value) and problem in str(err.value)
    assert not (tmp_path / "landing").exists()


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ImportFileError, match=r"nope\.csv: cannot read"):
        import_files([tmp_path / "nope.csv"], tmp_path / "landing", TWEETS)


@pytest.mark.parametrize("suffix", [".csv", ".CSV", ".jsonl", ".ndjson", ".json", ".parquet"])
def test_every_format_gives_the_same_landing_rows(tmp_path, suffix):
    rows = [GOOD, {**GOOD, "id": "h", "body": "ünïcode text", "sentiment": None}]
    src = tmp_path / f"export{suffix}"
    if suffix.lower() == ".csv":
        write_csv(src, rows)
    elif suffix == ".json":  # a JSON array, the other common shape of a .json export
        src.write_text(json.dumps(rows), encoding="utf-8")
    elif suffix == ".parquet":
        pl.DataFrame(rows).write_parquet(src)
    else:
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    import_files([src], tmp_path / "landing", ColumnMap(text="body", label="sentiment", time="when", id="id"))
    assert (tmp_path / "landing" / "dt=2015-02-17" / "import-export.jsonl").read_text(encoding="utf-8") == (
        '{"event_id": "g", "event_ts": "2015-02-17T10:00:00+00:00", "text": "a fine row", "label": "positive", '
        '"label_ts": "2015-02-17T10:00:00+00:00", "labelled": "2015-02-17T12:00:00Z"}\n'
        '{"event_id": "h", "event_ts": "2015-02-17T10:00:00+00:00", "text": "ünïcode text", "label": null, '
        '"label_ts": null, "labelled": "2015-02-17T12:00:00Z"}\n')


@pytest.mark.parametrize(
    "kwargs, paths, message",
    [
        # a time zone that does not exist
        ({"tz": "Mars/Olympus"}, ["a.csv"], "--tz 'Mars/Olympus' is not a time zone"),
        # one column cannot be both text and label
        ({"cols": ColumnMap(text="x", label="x", time="t")}, ["a.csv"], "must name different columns"),
        # two files that would write the same landing file
        ({}, ["a/export.csv", "b/export.jsonl"], "would both write import-export.jsonl"),
    ],
)
def test_bad_arguments_are_refused(tmp_path, kwargs, paths, message):
    cols = kwargs.pop("cols", TWEETS)
    with pytest.raises(ImporterError, match=message):
        import_files([tmp_path / p for p in paths], tmp_path / "landing", cols, **kwargs)


def test_labels_and_days_the_pipeline_would_not_use_are_warned_about(tmp_path):
    rows = [GOOD, {**GOOD, "id": "x", "sentiment": "Positive"}, {**GOOD, "id": "y", "when": "2015-02-10T08:00:00Z"}]
    src = write_csv(tmp_path / "export.csv", rows)
    result = import_files([src], tmp_path / "landing", ColumnMap(text="body", label="sentiment", time="when"),
                          labels=LABELS, start_date=dt.date(2015, 2, 17))
    warnings = " | ".join(result.warnings)
    assert "unknown_label: 'Positive' x1" in warnings
    assert "1 row(s) on 2015-02-10..2015-02-10 fall before partitions.start_date 2015-02-17" in warnings


def test_parquet_timestamps_and_dates_are_written_as_iso_text_and_binary_is_refused(tmp_path):
    frame = pl.DataFrame({"body": ["hello"], "sentiment": ["neutral"],
                          "when": [dt.datetime(2015, 2, 17, 23, 30, tzinfo=UTC)], "day": [dt.date(2015, 2, 17)]})
    frame.write_parquet(tmp_path / "typed.parquet")
    import_files([tmp_path / "typed.parquet"], tmp_path / "landing",
                 ColumnMap(text="body", label="sentiment", time="when"), tz="Europe/Berlin")
    _, q = validate_day(tmp_path / "landing", dt.date(2015, 2, 17))
    # an aware timestamp ignores --tz; the Date extra arrives as its ISO text
    assert q.clean.select("event_ts", "day").row(0) == (dt.datetime(2015, 2, 17, 23, 30, tzinfo=UTC), "2015-02-17")
    frame.with_columns(blob=pl.Series([b"\x00\x01"])).write_parquet(tmp_path / "blob.parquet")
    with pytest.raises(ImportFileError, match=r"blob\.parquet: row 1: a bytes value cannot be written as JSON"):
        import_files([tmp_path / "blob.parquet"], tmp_path / "other", ColumnMap(text="body", label="sentiment",
                                                                                 time="when"))
    assert not (tmp_path / "other").exists()
