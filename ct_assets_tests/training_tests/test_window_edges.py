"""Edges of the training window that mutation testing found unpinned (docs/mutation.md):
the replay allocation when the >= 1 minimum overshoots, the leakage count on tiny frames,
the combined frame training_dataset stores, a small set pinned whole (stats, splits, the
half-open val and event cuts), redelivery, the replay size and seed, and the errors."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ct_assets.training.window import (
    _VAL_SALT,
    OUTPUT_COLUMNS,
    SPLIT,
    TrainingSet,
    _allocate,
    _unit_hash,
    golden_overlap,
)
from ct_assets_tests.training_tests.test_window import AS_OF, at, build, frame, pool, window

ROW = {"event_id": "e1", "event_ts": at(dt.date(2026, 9, 20)), "text": "Where is  my REFUND?", "label": "refund",
       "label_ts": at(dt.date(2026, 9, 20), 13)}


def test_golden_overlap_on_empty_and_one_row_frames():
    assert golden_overlap(frame([]), {"e1"}, {"where is my refund?"}) == 0
    assert golden_overlap(frame([ROW]), {"e1"}, set()) == 1
    assert golden_overlap(frame([ROW]), set(), {"  where IS my refund? "}) == 1
    assert golden_overlap(frame([ROW]), {"e2"}, {"where is my refund"}) == 0


def test_combined_holds_the_three_splits_told_apart_by_the_split_column():
    ts = build()
    combined = ts.combined()
    assert combined.columns == [*OUTPUT_COLUMNS, SPLIT]
    assert combined.height == ts.train.height + ts.val.height + ts.holdout.height
    for name, part in (("train", ts.train), ("val", ts.val), ("holdout", ts.holdout)):
        assert part.height > 0
        assert combined.filter(pl.col(SPLIT) == name).drop(SPLIT).equals(part)
    assert combined.get_column(SPLIT).to_list() == (
        ["train"] * ts.train.height + ["val"] * ts.val.height + ["holdout"] * ts.holdout.height)


def test_combined_keeps_an_empty_split_and_metadata_is_a_copy_of_the_stats():
    ts = build()
    empty_val = TrainingSet(train=ts.train, val=ts.val.clear(), holdout=ts.holdout, stats=ts.stats)
    assert set(empty_val.combined().get_column(SPLIT).unique().to_list()) == {"train", "holdout"}
    meta = ts.to_metadata()
    assert meta == ts.stats and meta is not ts.stats


@pytest.mark.parametrize(
    ("counts", "size", "alloc"),
    [
        # size == number of labels still gives every label one (the >= 1 minimum applies).
        ({"a": 98, "b": 1, "c": 1}, 3, {"a": 1, "b": 1, "c": 1}),
        # Overshoot: trim the label whose allocation sits closest above its quota (a: 2 vs 2.28),
        # not the last by name nor the largest (b: 3 vs 3.6).
        ({"b": 60, "a": 38, "c": 1, "d": 1}, 6, {"b": 3, "a": 1, "c": 1, "d": 1}),
        # An allocation that already sums to size is left alone (b keeps the tie-break on name).
        ({"a": 9, "b": 56, "c": 2, "d": 56, "e": 12}, 6, {"a": 1, "b": 2, "c": 1, "d": 1, "e": 1}),
        # Trimming takes one row at a time.
        ({"a": 55, "b": 1, "c": 2, "d": 51, "e": 1}, 26, {"a": 12, "b": 1, "c": 1, "d": 11, "e": 1}),
    ],
)
def test_allocate_when_the_minimum_of_one_overshoots(counts, size, alloc):
    assert _allocate(counts, size) == alloc


def test_golden_overlap_does_not_count_a_row_without_id_or_text():
    blank = {**ROW, "event_id": None, "text": None}
    assert golden_overlap(frame([blank]), {"e1"}, {"where is my refund?"}) == 0


def test_a_small_set_whole_stats_splits_and_the_half_open_cuts():
    y, d = AS_OF - dt.timedelta(days=1), AS_OF
    rows = {y: [("a", "billing"), ("b", "refund")], d: [("c", "shipping")]}
    frames = {day: frame([{"event_id": i, "event_ts": at(day, 8), "text": f"text {i}", "label": lb,
                           "label_ts": at(day, 9)} for i, lb in pairs]) for day, pairs in rows.items()}
    # Happened exactly at the end of as_of (labelled before it): not yet happened.
    late = {"event_id": "z", "event_ts": at(d + dt.timedelta(days=1), 0), "text": "z", "label": "billing",
            "label_ts": at(d, 13)}
    frames[d] = pl.concat([frames[d], frame([late])])
    # val is _h < val_fraction: p1's hash itself is train. Pinned hashes: a .169, b .411, p1 .603, p2 .895.
    val_fraction = _unit_hash(_VAL_SALT, ["p1"])[0]
    ts = build(frames, window_days=2, holdout_days=1, replay_pool=pool({"billing": 2}).with_columns(
        event_id=pl.Series(["p1", "p2"])), replay_fraction=1.0, val_fraction=val_fraction)
    assert val_fraction == 0.6030482719881434
    assert [ts.train["event_id"].to_list(), ts.val["event_id"].to_list(), ts.holdout["event_id"].to_list()] == [
        ["p1", "p2"], ["a", "b"], ["c"]]
    assert ts.stats == {
        "window": {"mode": "fixed", "start": "2026-09-19", "end": "2026-09-20"},
        "rows_per_day": {"2026-09-19": 2, "2026-09-20": 1},
        "rows_per_label": {"billing": 3, "refund": 1, "shipping": 1},
        "train_rows_per_label": {"billing": 2},
        "split_rows": {"train": 2, "val": 2, "holdout": 1},
        "window_rows": 3, "replay_rows": 2, "replay_pool_rows": 2,
        "replay_share": 0.5,  # train and val the same size
        "leaked_removed": 0, "duplicates_removed": 0,
        "dropped": {"unlabelled": 0, "label_after_as_of": 0, "event_after_as_of": 1},
    }


def test_a_redelivered_event_keeps_its_newest_version_only():
    frames = window()
    old = frames[AS_OF - dt.timedelta(days=6)].head(1)
    frames[AS_OF] = pl.concat([frames[AS_OF], old.with_columns(label=pl.lit("refund"),
                                                                label_ts=pl.col("label_ts") + dt.timedelta(hours=3))])
    ts = build(frames)
    kept = pl.concat([ts.train, ts.val, ts.holdout]).filter(pl.col("event_id") == old["event_id"].item())
    assert ts.stats["duplicates_removed"] == 1
    assert kept.select("label", "label_ts").rows() == [("refund", old["label_ts"].item() + dt.timedelta(hours=3))]


@pytest.mark.parametrize(("replay_fraction", "replay_rows"), [(0.0, 0), (1 / 420, 1), (1.0, 100)])
def test_replay_size_at_its_edges(replay_fraction, replay_rows):
    ts = build(replay_pool=pool({"billing": 50, "refund": 50}), replay_fraction=replay_fraction)
    assert ts.stats["replay_rows"] == replay_rows


def test_replay_sample_depends_on_the_seed_and_an_empty_pool_may_have_no_columns():
    p = pool({"billing": 200, "refund": 100})
    ids = [set(build(replay_pool=p, seed=s).train.filter(pl.col("_origin") == "replay")["event_id"]) for s in (1, 2)]
    assert ids[0] != ids[1]
    empty = build(replay_pool=pl.DataFrame())  # what training_dataset passes with no history
    assert (empty.stats["replay_rows"], empty.stats["replay_pool_rows"]) == (0, 0)


@pytest.mark.parametrize(("val_fraction", "replay_fraction"), [(0.0, 0.1), (1.0, 0.1), (1.5, 0.1), (0.1, -0.1),
                                                                (0.1, 1.5)])
def test_fractions_out_of_range_raise_naming_both(val_fraction, replay_fraction):
    with pytest.raises(ValueError) as err:
        build(val_fraction=val_fraction, replay_fraction=replay_fraction)
    assert str(err.value) == f"val_fraction {val_fraction} / replay_fraction {replay_fraction} out of range"


@pytest.mark.parametrize("where", ["frame 2026-09-18", "replay_pool"])
def test_a_null_event_id_raises_naming_where(where):
    frames, bad = window(), frame([{**ROW, "event_id": None}])
    if where == "replay_pool":
        kwargs = {"replay_pool": bad}
    else:
        frames[AS_OF - dt.timedelta(days=2)] = bad
        kwargs = {}
    with pytest.raises(ValueError) as err:
        build(frames, **kwargs)
    assert str(err.value) == f"{where}: clean frame has null event_id values (validation should reject them)"
