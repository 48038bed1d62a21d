"""Tests for ct_assets.training.window.build_training_set and golden_overlap.

A training set that is silently wrong still trains, so each rule is pinned with a small
synthetic window built here (not the simulator) where the right answer is obvious:
point in time (a label is usable only once its label_ts has passed), loud failure on a
future frame, the stratified and reproducible replay sample, golden-set leakage, the
holdout being the last days, and a row never hopping between train and val as the
window slides. Boundary cases are tables with one comment per row.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest

from ct_assets.training.window import (
    OUTPUT_COLUMNS,
    _allocate,
    build_training_set,
    golden_overlap,
)

UTC = dt.timezone.utc
AS_OF = dt.date(2026, 9, 20)
LABELS = ("billing", "refund", "shipping")


def at(day: dt.date, hour: int = 12, second: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, 0, second), tzinfo=UTC)


def frame(rows: list[dict]) -> pl.DataFrame:
    """Clean-schema frame; extra columns (_source_file, _line) must be ignored downstream."""
    base = {"event_id": [], "event_ts": [], "text": [], "label": [], "label_ts": []}
    for r in rows:
        for k in base:
            base[k].append(r.get(k))
    return pl.DataFrame(
        {**base, "_source_file": ["f.jsonl"] * len(rows), "_line": list(range(1, len(rows) + 1))},
        schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "label_ts": pl.Datetime("us", "UTC"),
                          "text": pl.String, "label": pl.String, "event_id": pl.String},
    )


def day_frame(day: dt.date, n: int = 30, *, delay_hours: int = 1) -> pl.DataFrame:
    return frame([
        {"event_id": f"{day.isoformat()}-{i:03d}", "event_ts": at(day, 8),
         "text": f"text {i} from {day}", "label": LABELS[i % 3], "label_ts": at(day, 8 + delay_hours)}
        for i in range(n)
    ])


def window(as_of: dt.date = AS_OF, days: int = 14) -> dict[dt.date, pl.DataFrame]:
    return {as_of - dt.timedelta(days=k): day_frame(as_of - dt.timedelta(days=k)) for k in range(days)}


def pool(labels_counts: dict[str, int], day: dt.date = dt.date(2026, 8, 1)) -> pl.DataFrame:
    rows, i = [], 0
    for label, count in labels_counts.items():
        for _ in range(count):
            rows.append({"event_id": f"pool-{i:04d}", "event_ts": at(day), "text": f"old text {i}",
                         "label": label, "label_ts": at(day, 13)})
            i += 1
    return frame(rows)


def build(frames=None, **overrides):
    kwargs = dict(as_of=AS_OF, window_days=14, replay_pool=pool({}), replay_fraction=0.1,
                  val_fraction=0.1, holdout_days=2, golden_ids=set(), golden_texts=set(), seed=13)
    kwargs.update(overrides)
    return build_training_set(window() if frames is None else frames, **kwargs)


def all_ids(ts) -> set[str]:
    return set(pl.concat([ts.train, ts.val, ts.holdout]).get_column("event_id").to_list())


PIT = [
    # Label arrives during as_of: known.
    (at(AS_OF, 23, 59), AS_OF, True),
    # Label at exactly the next midnight: end of day is exclusive, not yet known.
    (at(AS_OF + dt.timedelta(days=1), 0), AS_OF, False),
    # Same label a day later: as_of has passed it, now usable.
    (at(AS_OF + dt.timedelta(days=1), 0), AS_OF + dt.timedelta(days=1), True),
    # Label three days late: still pending two days on.
    (at(AS_OF + dt.timedelta(days=3), 5), AS_OF + dt.timedelta(days=2), False),
    # No label_ts at all: never usable.
    (None, AS_OF + dt.timedelta(days=5), False),
]


@pytest.mark.parametrize(("label_ts", "as_of", "included"), PIT)
def test_point_in_time_label_cut(label_ts, as_of, included):
    late = frame([{"event_id": "late", "event_ts": at(AS_OF, 9), "text": "late label",
                   "label": "refund", "label_ts": label_ts}])
    frames = window(as_of)
    frames[AS_OF] = pl.concat([frames[AS_OF], late])
    ts = build(frames, as_of=as_of)
    assert ("late" in all_ids(ts)) is included
    assert ts.stats["dropped"]["label_after_as_of"] == (0 if included or label_ts is None else 1)


def test_unlabelled_and_future_events_are_dropped_and_counted():
    extra = frame([
        {"event_id": "nolabel", "event_ts": at(AS_OF), "text": "x", "label": None, "label_ts": None},
        # event_ts tomorrow inside today's frame: not yet happened as of AS_OF.
        {"event_id": "future", "event_ts": at(AS_OF + dt.timedelta(days=1), 1), "text": "y",
         "label": "billing", "label_ts": at(AS_OF, 1)},
    ])
    frames = window()
    frames[AS_OF] = pl.concat([frames[AS_OF], extra])
    ts = build(frames)
    assert not {"nolabel", "future"} & all_ids(ts)
    assert ts.stats["dropped"] == {"unlabelled": 1, "label_after_as_of": 0, "event_after_as_of": 1}


BAD_DAYS = [
    # A frame for tomorrow: upstream handed us the future.
    AS_OF + dt.timedelta(days=1),
    # A frame from before the window start: the partition mapping is wrong.
    AS_OF - dt.timedelta(days=14),
]


@pytest.mark.parametrize("bad_day", BAD_DAYS)
def test_frame_outside_window_raises_naming_the_day(bad_day):
    frames = window()
    frames[bad_day] = day_frame(bad_day)
    with pytest.raises(ValueError, match=bad_day.isoformat()):
        build(frames)


def test_missing_empty_and_string_keyed_days():
    frames = {d.isoformat(): f for d, f in window().items()}  # Dagster passes partition keys
    del frames[(AS_OF - dt.timedelta(days=3)).isoformat()]
    frames[(AS_OF - dt.timedelta(days=4)).isoformat()] = pl.DataFrame()  # empty, no columns
    ts = build(frames)
    per_day = ts.stats["rows_per_day"]
    assert len(per_day) == 14 and per_day[(AS_OF - dt.timedelta(days=3)).isoformat()] == 0
    assert per_day[(AS_OF - dt.timedelta(days=4)).isoformat()] == 0
    assert sum(per_day.values()) == 12 * 30
    for part in (ts.train, ts.val, ts.holdout):
        assert part.columns == list(OUTPUT_COLUMNS)


def test_nothing_at_all_gives_empty_frames_with_schema():
    ts = build({})
    assert ts.train.height == ts.val.height == ts.holdout.height == 0
    assert ts.train.schema["_day"] == pl.Date and ts.stats["replay_share"] == 0.0


ALLOCATE = [
    # Exactly proportional.
    ({"a": 60, "b": 30, "c": 10}, 10, {"a": 6, "b": 3, "c": 1}),
    # A rare label still gets one row when the size allows it.
    ({"a": 97, "b": 2, "c": 1}, 5, {"a": 3, "b": 1, "c": 1}),
    # Size below the label count: the biggest labels win, one each.
    ({"a": 50, "b": 30, "c": 20}, 2, {"a": 1, "b": 1, "c": 0}),
    # Largest remainder: 7 * (0.5, 0.3, 0.2) = 3.5, 2.1, 1.4 -> 4, 2, 1.
    ({"a": 50, "b": 30, "c": 20}, 7, {"a": 4, "b": 2, "c": 1}),
    # Size equal to the pool: everything.
    ({"a": 3, "b": 1}, 4, {"a": 3, "b": 1}),
]


@pytest.mark.parametrize(("counts", "size", "expected"), ALLOCATE)
def test_allocate(counts, size, expected):
    assert _allocate(counts, size) == expected


def test_replay_size_stratified_and_marked():
    ts = build(replay_pool=pool({"billing": 600, "refund": 300, "shipping": 100}))
    window_rows = ts.stats["window_rows"]
    assert window_rows == 14 * 30
    replay = pl.concat([ts.train, ts.val]).filter(pl.col("_origin") == "replay")
    assert replay.height == ts.stats["replay_rows"] == 42  # round(0.1 * 420)
    counts = dict(replay.group_by("label").len().iter_rows())
    assert counts == {"billing": 25, "refund": 13, "shipping": 4}  # 25.2, 12.6, 4.2
    assert ts.holdout.filter(pl.col("_origin") == "replay").height == 0
    assert ts.stats["replay_share"] == pytest.approx(42 / (ts.train.height + ts.val.height))


def test_replay_deterministic_and_order_independent():
    p = pool({"billing": 200, "refund": 100, "shipping": 50})
    frames = window()
    a = build(frames, replay_pool=p)
    shuffled = {d: f.sample(fraction=1.0, shuffle=True, seed=1) for d, f in reversed(frames.items())}
    b = build(shuffled, replay_pool=p.sample(fraction=1.0, shuffle=True, seed=2))
    for x, y in ((a.train, b.train), (a.val, b.val), (a.holdout, b.holdout)):
        assert x.equals(y)
    # A different day draws a different (still reproducible) replay sample.
    c = build(window(AS_OF + dt.timedelta(days=1)), replay_pool=p, as_of=AS_OF + dt.timedelta(days=1))
    def replay_ids(ts) -> set[str]:
        return set(ts.train.filter(pl.col("_origin") == "replay")["event_id"])

    assert replay_ids(a) != replay_ids(c)


def test_replay_pool_gets_the_point_in_time_cut():
    p = pool({"billing": 100}).with_columns(label_ts=pl.lit(at(AS_OF + dt.timedelta(days=1))))
    assert build(replay_pool=p).stats["replay_rows"] == 0


def test_golden_rows_removed_by_id_and_normalised_text():
    frames = window()
    day = AS_OF - dt.timedelta(days=5)
    copy = frame([{"event_id": "copy", "event_ts": at(day), "text": "  My Parcel\tnever   ARRIVED ",
                   "label": "shipping", "label_ts": at(day, 13)}])
    frames[day] = pl.concat([frames[day], copy])
    golden_ids = {f"{AS_OF.isoformat()}-000", "pool-0001"}
    golden_texts = {"my parcel never arrived"}
    ts = build(frames, replay_pool=pool({"billing": 5, "refund": 5}), replay_fraction=1.0,
               golden_ids=golden_ids, golden_texts=golden_texts)
    assert ts.stats["leaked_removed"] == 3  # one window id, one window text, one pool id
    assert not {f"{AS_OF.isoformat()}-000", "copy", "pool-0001"} & all_ids(ts)
    for part in (ts.train, ts.val, ts.holdout):
        assert golden_overlap(part, golden_ids, golden_texts) == 0
    assert golden_overlap(frames[day], golden_ids, {"MY PARCEL never arrived"}) == 1
    assert golden_overlap(frames[AS_OF], golden_ids, golden_texts) == 1


@pytest.mark.parametrize("holdout_days", [1, 2, 5])
def test_holdout_is_the_last_days_and_window_only(holdout_days):
    ts = build(replay_pool=pool({"billing": 50}), holdout_days=holdout_days)
    first_holdout_day = AS_OF - dt.timedelta(days=holdout_days - 1)
    assert set(ts.holdout["_day"]) == {first_holdout_day + dt.timedelta(days=k) for k in range(holdout_days)}
    assert set(ts.holdout["_origin"]) == {"window"}
    assert max(pl.concat([ts.train, ts.val])["_day"]) < first_holdout_day
    assert ts.holdout.height == 30 * holdout_days


def test_val_membership_is_stable_as_the_window_slides():
    frames = {AS_OF + dt.timedelta(days=k): day_frame(AS_OF + dt.timedelta(days=k), 200)
              for k in range(-20, 6)}
    splits = []
    for shift in range(6):
        as_of = AS_OF + dt.timedelta(days=shift)
        in_window = {d: f for d, f in frames.items() if as_of - dt.timedelta(days=13) <= d <= as_of}
        ts = build(in_window, as_of=as_of)
        splits.append((set(ts.train["event_id"]), set(ts.val["event_id"])))
    for (train_a, val_a), (train_b, val_b) in zip(splits, splits[1:]):
        assert not train_a & val_b and not val_a & train_b
    val_share = len(splits[0][1]) / (len(splits[0][0]) + len(splits[0][1]))
    assert 0.07 < val_share < 0.13


def test_duplicate_event_across_days_is_kept_once():
    frames = window()
    redelivered = day_frame(AS_OF - dt.timedelta(days=6), 1)  # event_id ...-000 of day -6
    frames[AS_OF] = pl.concat([frames[AS_OF], redelivered])
    ts = build(frames)
    assert ts.stats["duplicates_removed"] == 1
    assert pl.concat([ts.train, ts.val, ts.holdout])["event_id"].is_unique().all()


@pytest.mark.parametrize(("holdout_days", "window_days"), [(14, 14), (0, 14)])
def test_bad_holdout_config_raises(holdout_days, window_days):
    with pytest.raises(ValueError, match="holdout_days"):
        build(holdout_days=holdout_days, window_days=window_days)


def test_metadata_is_plain():
    ts = build(replay_pool=pool({"billing": 10, "refund": 10}))
    meta = ts.to_metadata()
    assert json.loads(json.dumps(meta)) == meta
    assert meta["window"] == {"mode": "fixed", "start": "2026-09-07", "end": "2026-09-20"}
    assert set(meta["rows_per_label"]) == set(LABELS)
