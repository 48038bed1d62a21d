"""ct_assets.core.time at its edges: the partition day, its exclusive end, day ranges, and
the point-in-time cut one microsecond either side of the end of the day."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ct_assets.core.time import day_of, days_between, end_of_day, labels_as_of

D = dt.date(2026, 9, 21)
UTC = dt.UTC
END = dt.datetime(2026, 9, 22, tzinfo=UTC)
US = dt.timedelta(microseconds=1)


def test_day_of_parses_the_partition_key():
    assert day_of("2026-09-21") == D
    with pytest.raises(ValueError):
        day_of("21/09/2026")


def test_end_of_day_is_the_next_midnight_utc():
    end = end_of_day(D)
    assert end == END and end.tzinfo is UTC and (end.hour, end.minute, end.second, end.microsecond) == (0, 0, 0, 0)
    assert end_of_day(dt.date(2026, 12, 31)) == dt.datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "end", "days"),
    [
        (D, D, [D]),
        (D, dt.date(2026, 9, 23), [D, dt.date(2026, 9, 22), dt.date(2026, 9, 23)]),
        (dt.date(2026, 2, 27), dt.date(2026, 3, 1), [dt.date(2026, 2, 27), dt.date(2026, 2, 28), dt.date(2026, 3, 1)]),
        (D, dt.date(2026, 9, 20), []),
        (D, dt.date(2026, 9, 1), []),
    ],
)
def test_days_between_is_inclusive_and_empty_when_reversed(start, end, days):
    assert days_between(start, end) == days


def test_labels_as_of_keeps_only_labels_known_before_the_end_of_the_day():
    ts = pl.Datetime("us", "UTC")
    frame = pl.DataFrame(
        {
            "event_id": ["before", "last_us", "at_end", "after", "no_ts"],
            "label": ["a", "b", "c", "d", "e"],
            "label_ts": [END - dt.timedelta(hours=5), END - US, END, END + US, None],
            "text": ["t1", "t2", "t3", "t4", "t5"],
        },
        schema_overrides={"label_ts": ts},
    )
    out = labels_as_of(frame, D)
    assert out.columns == frame.columns
    assert out.get_column("event_id").to_list() == ["before", "last_us", "at_end", "after", "no_ts"]
    assert out.get_column("label").to_list() == ["a", "b", None, None, None]
    assert out.get_column("label_ts").to_list() == [END - dt.timedelta(hours=5), END - US, None, None, None]
    assert out.get_column("text").to_list() == ["t1", "t2", "t3", "t4", "t5"]
