"""training.window_mode since_change (training/change_window.py): the change point from the
drift verdicts, the clamp, the replay contradiction filter, and the window it builds."""

from __future__ import annotations

import datetime as dt
from functools import partial

import polars as pl

from ct_assets.training.change_window import contradicted_replay, find_change_point
from ct_assets.training.window import build_training_set, dataset_window

AS_OF = dt.date(2026, 9, 20)


def _verdicts(changed_from: int | None, days: int = 14, missing: tuple[int, ...] = ()) -> dict:
    """Window of ``days`` ending AS_OF; days with index >= changed_from drift."""
    start = AS_OF - dt.timedelta(days=days - 1)
    out = {}
    for i in range(days):
        if i in missing:
            continue
        out[(start + dt.timedelta(days=i)).isoformat()] = (
            "drift" if changed_from is not None and i >= changed_from else "stable")
    return out


def test_change_point_is_the_onset_of_the_latest_drift_episode():
    cp = find_change_point(_verdicts(9), as_of=AS_OF, window_days=14, holdout_days=2)
    assert cp.day == AS_OF - dt.timedelta(days=4) and cp.start == cp.day and not cp.clamped
    # Two episodes: the latest onset counts.
    v = _verdicts(3)
    v[(AS_OF - dt.timedelta(days=7)).isoformat()] = "stable"
    assert find_change_point(v, as_of=AS_OF, window_days=14, holdout_days=2).day == AS_OF - dt.timedelta(days=6)
    stats = cp.to_stats("since_change")
    assert stats == {"mode": "since_change", "change_point": cp.day.isoformat(), "start": cp.day.isoformat(),
                     "clamped": False, "missing_drift_days": []}


def test_no_change_inside_the_window_trains_as_fixed():
    start = AS_OF - dt.timedelta(days=13)
    for verdicts in (_verdicts(None), _verdicts(0)):  # never changed / changed before the window
        cp = find_change_point(verdicts, as_of=AS_OF, window_days=14, holdout_days=2)
        assert (cp.day, cp.start, cp.clamped) == (None, start, False)


def test_a_late_change_is_clamped_to_leave_a_training_day_before_the_holdout():
    cp = find_change_point(_verdicts(13), as_of=AS_OF, window_days=14, holdout_days=2)
    assert cp.day == AS_OF and cp.start == AS_OF - dt.timedelta(days=2) and cp.clamped


def test_missing_reports_are_listed_and_count_as_not_changed():
    cp = find_change_point(_verdicts(9, missing=(8, 2)), as_of=AS_OF, window_days=14, holdout_days=2)
    start = AS_OF - dt.timedelta(days=13)
    assert cp.missing_days == ((start + dt.timedelta(days=2)).isoformat(), (start + dt.timedelta(days=8)).isoformat())
    assert cp.day == start + dt.timedelta(days=9)


def _rows(texts_labels: list[tuple[str, str]], prefix: str) -> pl.DataFrame:
    return pl.DataFrame({"event_id": [f"{prefix}{i}" for i in range(len(texts_labels))],
                         "text": [t for t, _ in texts_labels], "label": [y for _, y in texts_labels]})


POST = _rows([("please cancel my subscription now", "refund")] * 3
             + [("cancel my subscription please today", "refund"), ("cancel the subscription please", "refund"),
                ("my parcel is late again", "shipping")], "post")


def test_filter_drops_same_text_and_neighbour_contradictions_and_keeps_the_rest():
    pool = _rows([("Please  CANCEL my subscription now", "cancellation"),  # same text, other label
                  ("please cancel my subscription", "cancellation"),  # close neighbours say refund
                  ("please cancel my subscription now", "refund"),  # agrees with the new meaning
                  ("my parcel is late again", "shipping"),  # same text, same label
                  ("the app crashes on login", "technical_issue")], "old")  # nothing close after the change
    kept, counts = contradicted_replay(pool, POST, seed=1)
    assert kept["event_id"].to_list() == ["old2", "old3", "old4"]
    assert (counts["same_text"], counts["neighbours"], counts["kept"], counts["neighbour_rows"]) == (1, 1, 3, 6)
    assert kept.columns == pool.columns
    again, _ = contradicted_replay(pool.reverse(), POST, seed=1)
    assert sorted(again["event_id"].to_list()) == ["old2", "old3", "old4"]


def test_filter_is_a_no_op_without_rows_on_either_side():
    pool = _rows([("x y z", "a")], "old")
    assert contradicted_replay(pool, POST.clear(), seed=1)[0].equals(pool)
    assert contradicted_replay(pool.clear(), POST, seed=1)[1]["kept"] == 0


def _day_frame(day: dt.date, rows: list[tuple[str, str]], prefix: str) -> pl.DataFrame:
    ts = dt.datetime.combine(day, dt.time(12), tzinfo=dt.timezone.utc)
    return pl.DataFrame({
        "event_id": [f"{prefix}{i}" for i in range(len(rows))], "event_ts": [ts] * len(rows),
        "text": [t for t, _ in rows], "label": [y for _, y in rows], "label_ts": [ts] * len(rows),
    })


def test_since_change_window_trains_on_post_change_rows_with_filtered_replay():
    """What training_dataset does with a change point: post-change days are the window,
    pre-change days join the pool, and the contradicted old meaning stays out of replay."""
    change = AS_OF - dt.timedelta(days=4)
    frames = {}
    for i in range(14):
        day = AS_OF - dt.timedelta(days=13 - i)
        old = day < change
        label = "cancellation" if old else "refund"
        frames[day] = _day_frame(day, [(f"please cancel my subscription {n}", label) for n in range(6)]
                                 + [(f"my parcel {n} is late", "shipping") for n in range(6)], f"d{i}-")
    cp = find_change_point(_verdicts(9), as_of=AS_OF, window_days=14, holdout_days=2)
    assert cp.day == change
    pool = pl.concat([f for d, f in frames.items() if d < cp.start])
    window = {d: f for d, f in frames.items() if d >= cp.start}
    ts = build_training_set(window, as_of=AS_OF, window_days=(AS_OF - cp.start).days + 1, replay_pool=pool,
                            replay_fraction=0.5, val_fraction=0.1, holdout_days=2, golden_ids=set(),
                            golden_texts=set(), seed=3, replay_filter=partial(contradicted_replay, seed=3),
                            window_info=cp.to_stats("since_change"))
    everything = pl.concat([ts.train, ts.val, ts.holdout])
    assert everything.filter(pl.col("_origin") == "window")["_day"].min() == change
    replayed = everything.filter(pl.col("_origin") == "replay")
    assert replayed.height > 0 and set(replayed["label"]) == {"shipping"}, replayed
    assert ts.stats["window"]["mode"] == "since_change" and ts.stats["window"]["start"] == change.isoformat()
    # The 9 pre-change days' 6 "cancel" rows each: the same texts are "refund" after the change.
    assert ts.stats["replay_contradicted"]["same_text"] == 9 * 6
    frame = ts.combined().with_columns(_window_mode=pl.lit("since_change"), _window_start=pl.lit(change.isoformat()))
    assert dataset_window(frame, "x") == ("since_change", change.isoformat())
    assert dataset_window(ts.combined(), "2026-09-07") == ("fixed", "2026-09-07")


def test_fixed_mode_stats_say_fixed():
    day = AS_OF - dt.timedelta(days=1)
    ts = build_training_set({day: _day_frame(day, [("a b c", "x")] * 3, "e")}, as_of=AS_OF, window_days=3,
                            replay_pool=pl.DataFrame(), replay_fraction=0.1, val_fraction=0.1, holdout_days=1,
                            golden_ids=set(), golden_texts=set(), seed=1)
    assert ts.stats["window"]["mode"] == "fixed" and "replay_contradicted" not in ts.stats


def test_holdout_labels_do_not_filter_the_replay():
    """Only a holdout day says the old text means something else now: the replay keeps it."""
    train_day, holdout_day = AS_OF - dt.timedelta(days=1), AS_OF
    window = {train_day: _day_frame(train_day, [(f"my parcel {n} is late", "shipping") for n in range(4)], "t"),
              holdout_day: _day_frame(holdout_day, [("please cancel my subscription now", "refund")], "h")}
    old_day = AS_OF - dt.timedelta(days=5)
    pool = _day_frame(old_day, [("please cancel my subscription now", "cancellation")], "old")
    ts = build_training_set(window, as_of=AS_OF, window_days=2, replay_pool=pool, replay_fraction=1.0,
                            val_fraction=0.1, holdout_days=1, golden_ids=set(), golden_texts=set(), seed=3,
                            replay_filter=partial(contradicted_replay, seed=3))
    assert ts.stats["replay_contradicted"]["same_text"] == 0 and ts.stats["replay_rows"] == 1


def test_neighbour_cap_is_a_seeded_sample_independent_of_row_order(monkeypatch):
    """A big post-change day is capped to MAX_NEIGHBOUR_ROWS neighbours; the same seed picks
    the same ones whatever order the window's dedup left the rows in."""
    import ct_assets.training.change_window as cw

    monkeypatch.setattr(cw, "MAX_NEIGHBOUR_ROWS", 4)
    post = _rows([(f"please cancel my subscription {n}", "refund") for n in range(8)], "post")
    pool = _rows([("please cancel my subscription", "cancellation"), ("my parcel is late", "shipping")], "old")
    kept, counts = contradicted_replay(pool, post, seed=7)
    again, counts_again = contradicted_replay(pool, post.reverse(), seed=7)
    assert counts["neighbour_rows"] == 4 and counts == counts_again
    assert kept.equals(again) and kept["event_id"].to_list() == ["old1"]


def test_neighbour_rule_that_cannot_judge_says_so():
    """Post-change texts with no character n-grams (here empty) give the vectorizer no
    vocabulary: the same-text rule still runs, nothing is dropped by neighbours, and the
    counts say why."""
    post = _rows([("", "refund"), ("", "refund")], "post")
    pool = _rows([("please cancel my subscription", "cancellation"), ("", "shipping")], "old")
    kept, counts = contradicted_replay(pool, post, seed=0)
    assert counts["same_text"] == 1 and counts["neighbours"] == 0
    assert counts["neighbours_skipped"].startswith("no comparable post-change text")
    assert kept["event_id"].to_list() == ["old0"]
