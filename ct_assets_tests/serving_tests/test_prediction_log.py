"""The prediction log writes served rows and their feedback as landing-zone contract rows.

Why: `ct serve` closes the loop through these files. A served row that is lost, half
written, or unreadable by the production reader is training data and canary evidence gone;
feedback written as a second row would be quarantined as a duplicate. So every case here
reads back through the real reader (`read_landing_day`) or the real `raw_window` asset.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math

import polars as pl
import pytest
from dagster import instance_for_test

from ct_assets.core.schema import CONTRACT_SCHEMA
from ct_assets.core.time import labels_as_of
from ct_assets.definitions import build_definitions
from ct_assets.ingest.contract import read_landing_day
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.serving.prediction_log import (
    INDEX_DAYS,
    SERVED_COLUMNS,
    PredictionLog,
    ServedRowError,
    UnknownEventError,
)
from ct_assets_tests.helpers import START, make_home, small_settings

UTC = dt.UTC
NOON = dt.datetime.combine(START, dt.time(12), UTC)


def served(event_id: str, ts: dt.datetime, **over) -> dict:
    """A row as the server passes it: the champion answered, the challenger shadowed."""
    return {"event_id": event_id, "event_ts": ts, "text": f"my invoice {event_id}", "served_version": 1,
            "arm": "champion", "prediction": "billing", "confidence": 0.9, "latency_ms": 4.5,
            "shadow_version": 2, "shadow_prediction": "refund", "shadow_confidence": 0.6, **over}


def new_log(landing, **kw) -> PredictionLog:
    return PredictionLog(landing, flush_rows=kw.pop("flush_rows", 1000), flush_seconds=kw.pop("flush_seconds", 60.0))


def visible_files(landing) -> list:
    return sorted(p for p in landing.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_flushed_rows_are_contract_rows_the_reader_reads(tmp_path):
    log = new_log(tmp_path)
    log.append([served("a", NOON), served("b", NOON + dt.timedelta(minutes=1), arm="canary", served_version=2,
                                          shadow_version=None, shadow_prediction=None, shadow_confidence=None)])
    assert visible_files(tmp_path) == []  # buffered, not written yet
    (path,) = log.flush()
    assert path.parent == tmp_path / f"dt={START}" / "served" and path.name.startswith("part-")
    assert path.name.endswith(".jsonl") and not list(path.parent.glob(".*"))  # no temp file left
    day = read_landing_day(tmp_path, START)
    assert day.skipped == () and day.json_text_columns == {}
    frame = day.frame
    assert {k: frame.schema[k] for k in CONTRACT_SCHEMA} == CONTRACT_SCHEMA
    assert frame["_type_errors"].null_count() == frame.height  # no row-level finding
    assert frame.select("event_id", "event_ts", "label", "label_ts", "arm", "served_version").rows() == [
        ("a", NOON, None, None, "champion", 1), ("b", NOON + dt.timedelta(minutes=1), None, None, "canary", 2)]
    assert set(SERVED_COLUMNS) <= set(frame.columns)
    assert frame.schema["confidence"] == pl.Float64 and frame.schema["served_version"] == pl.Int64
    assert frame["latency_ms"].to_list() == [4.5, 4.5] and frame["shadow_version"].to_list() == [2, None]
    assert log.flush() == []  # nothing new: no empty file
    log.close()


def test_feedback_after_flush_reaches_raw_window_as_a_late_label(tmp_path):
    landing = tmp_path / "landing"
    log = new_log(landing)
    log.append([served("late", NOON), served("same", NOON + dt.timedelta(hours=1)), served("none", NOON)])
    log.flush()
    next_day = NOON + dt.timedelta(days=1)
    log.record_feedback("late", "refund", next_day)  # the day after: a late label
    log.record_feedback("same", "billing", NOON + dt.timedelta(hours=2))
    (rewritten,) = log.flush()  # both rows live in one file: rewritten once
    assert rewritten.parent.name == "served" and len(visible_files(landing)) == 1
    log.close()

    settings = small_settings(**{"source.kind": "landing_zone", "source.path": str(landing)})
    home = make_home(tmp_path)
    with instance_for_test() as instance:
        defs = build_definitions(settings, home)
        assert materialize_range(defs, instance, ("raw_window",), START.isoformat(), START.isoformat()).success
    raw = Lake(base_path=str(home.lake)).read("raw_window", START.isoformat())
    got = {r["event_id"]: (r["label"], r["label_ts"]) for r in raw.to_dicts()}
    assert got == {"late": ("refund", next_day), "same": ("billing", NOON + dt.timedelta(hours=2)),
                   "none": (None, None)}
    # Point in time: as of its own day the late label does not exist yet; as of the next day it does.
    as_of_day = {r["event_id"]: r["label"] for r in labels_as_of(raw, START).to_dicts()}
    assert as_of_day == {"late": None, "same": "billing", "none": None}
    assert labels_as_of(raw, START + dt.timedelta(days=1)).filter(pl.col("event_id") == "late")["label"][0] == "refund"


def test_feedback_before_flush_is_written_with_the_row_and_the_later_one_wins(tmp_path):
    log = new_log(tmp_path)
    log.append([served("a", NOON)])
    log.record_feedback("a", "refund", NOON + dt.timedelta(minutes=5))
    log.record_feedback("a", "shipping", NOON + dt.timedelta(minutes=9))  # corrected: the later wins
    log.flush()
    log.record_feedback("a", "billing", NOON + dt.timedelta(minutes=20))  # and again, after the flush
    log.record_feedback("a", "cancellation", NOON + dt.timedelta(minutes=30))
    log.close()
    frame = read_landing_day(tmp_path, START).frame
    assert frame.select("event_id", "label", "label_ts").rows() == [
        ("a", "cancellation", NOON + dt.timedelta(minutes=30))]


def test_unknown_event_raises_naming_it(tmp_path):
    log = new_log(tmp_path)
    log.append([served("known", NOON)])
    with pytest.raises(UnknownEventError, match="'nope-42'") as err:
        log.record_feedback("nope-42", "refund", NOON)
    assert isinstance(err.value, KeyError) and err.value.event_id == "nope-42"
    assert str(tmp_path) in str(err.value)
    log.close()


@pytest.mark.parametrize("bad, message", [
    ({"confidence": math.nan}, "confidence: nan is not finite"),  # JSON has no NaN: the reader would refuse the file
    ({"event_ts": dt.datetime(2026, 9, 1, 12)}, "event_ts: expected an aware datetime"),  # naive: not UTC
    ({"arm": "blue"}, "arm: 'blue' is not one of"),
    ({"served_version": True}, "served_version: expected int"),  # a bool is not a version
    ({"text": "bad \ud800 surrogate"}, "not encodable as UTF-8"),  # would make the whole file unreadable
])
def test_a_bad_row_refuses_its_whole_batch_naming_event_and_column(tmp_path, bad, message):
    log = new_log(tmp_path)
    with pytest.raises(ServedRowError, match=message) as err:
        log.append([served("fine", NOON), served("broken", NOON, **bad)])
    assert "'broken'" in str(err.value)
    assert log.pending_rows == 0 and log.flush() == []  # all or none: the good row was not half-accepted


def test_a_duplicate_event_id_is_refused(tmp_path):
    log = new_log(tmp_path)
    log.append([served("x", NOON)])
    log.flush()
    # A second row with the same id would be quarantined as duplicate_event_id downstream.
    with pytest.raises(ServedRowError, match="'x': event_id already logged"):
        log.append([served("x", NOON)])
    with pytest.raises(ServedRowError, match="'y': event_id already logged"):
        log.append([served("y", NOON), served("y", NOON)])
    log.close()


def test_a_temp_file_left_by_a_crash_is_skipped_and_the_old_file_is_intact(tmp_path):
    log = new_log(tmp_path)
    log.append([served("a", NOON), served("b", NOON)])
    (path,) = log.flush()
    before = path.read_bytes()
    # A writer killed between its temp write and os.replace leaves exactly this behind: a
    # hidden, half-written temp file beside the file it was rewriting.
    tmp = path.with_name(f".{path.name}.0123abcd.tmp")
    tmp.write_bytes(before[: len(before) // 2])
    day = read_landing_day(tmp_path, START)
    assert day.frame["event_id"].to_list() == ["a", "b"] and path.read_bytes() == before
    assert day.skipped == ((str(tmp.relative_to(tmp_path)),
                            "hidden name (starts with '.'): staging or in-progress files are not data"),)


def test_a_failed_write_keeps_the_rows_and_logs_the_path(tmp_path, caplog):
    log = new_log(tmp_path)
    blocker = tmp_path / f"dt={START}" / "served"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")  # the day's served folder cannot be created
    log.append([served("a", NOON), served("b", NOON + dt.timedelta(days=1))])
    with caplog.at_level(logging.ERROR, logger="ct_assets.serving.prediction_log"):
        written = log.flush()
    # The other day was written; this day's row stays buffered, and the error names its file.
    assert [p.parent.parent.name for p in written] == [f"dt={START + dt.timedelta(days=1)}"]
    assert log.pending_rows == 1 and str(blocker) in caplog.text
    log.record_feedback("a", "refund", NOON)  # still buffered: feedback lands on the row
    with pytest.raises(OSError, match="1 row"):
        log.close()  # closing with unwritten rows is never silent
    blocker.unlink()
    (path,) = log.flush()
    assert json.loads(path.read_text())["label"] == "refund"


def test_rows_across_midnight_go_to_their_own_day_folders(tmp_path):
    log = new_log(tmp_path, flush_rows=2)
    midnight = dt.datetime.combine(START + dt.timedelta(days=1), dt.time(), UTC)
    # flush_rows=2 and no thread: the append that fills the buffer flushes inline.
    log.append([served("before", midnight - dt.timedelta(seconds=1)), served("after", midnight)])
    assert log.pending_rows == 0
    assert read_landing_day(tmp_path, START).frame["event_id"].to_list() == ["before"]
    assert read_landing_day(tmp_path, START + dt.timedelta(days=1)).frame["event_id"].to_list() == ["after"]
    log.close()


def test_a_restarted_log_takes_feedback_for_rows_of_the_last_index_days(tmp_path):
    now = dt.datetime.now(UTC)
    recent, old = now - dt.timedelta(days=3), now - dt.timedelta(days=INDEX_DAYS + 2)
    first = new_log(tmp_path)
    first.append([served("recent", recent), served("recent-2", recent), served("old", old)])
    first.close()
    second = new_log(tmp_path)  # a new process: it knows the rows only from the files
    second.record_feedback("recent", "refund", now)
    with pytest.raises(UnknownEventError, match="'old'"):
        second.record_feedback("old", "refund", now)  # older than the index reaches
    # A third process (another worker) labels another row of the same file: both labels stay,
    # because each rewrite re-reads the file under the lock.
    third = new_log(tmp_path)
    third.record_feedback("recent-2", "shipping", now)
    third.close()
    second.close()
    frame = read_landing_day(tmp_path, recent.date()).frame
    assert dict(frame.select("event_id", "label").rows()) == {"recent": "refund", "recent-2": "shipping"}
    with pytest.raises(ServedRowError, match="already logged"):
        new_log(tmp_path).append([served("recent", now)])  # the index also guards uniqueness


def test_the_flusher_thread_is_stopped_and_flushed_by_close(tmp_path):
    log = new_log(tmp_path, flush_seconds=3600.0)  # the timer never fires within this test
    log.start()
    log.append([served("a", NOON)])
    log.close()
    assert read_landing_day(tmp_path, START).frame["event_id"].to_list() == ["a"]
