"""Drift on a user's own data: the US airline tweets of February 2015 (real, labelled by
people; ct_assets_tests/fixtures/airline_tweets_2015, 200 tweets a day, Feb 17-24).

The issue this answers: thresholds tuned on the simulator fire on every ordinary day of
real text (names, flight numbers, the day's events make many words new). The premise is
checked first (the old fixed numbers do fire on the ordinary days Feb 20 and 21 against a
Feb 17-19 reference: OOV 0.13 against 0.08 on both days, and concept_shift 0.42 against
0.18 on Feb 20), then that the calibrated verdict does not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from ct_assets.core.schema import CLEAN_COLUMNS, TS
from ct_assets.core.settings import DriftSettings
from ct_assets.core.time import labels_as_of
from ct_assets.drift.daily import drift_of_day
from ct_assets.drift.scores import METRICS

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "airline_tweets_2015" / "tweets_sample.csv"
LABELS = ("negative", "neutral", "positive")
OLD_FIXED = {"label_js": 0.15, "label_psi": 0.25, "length_ks": 0.2, "oov_rate": 0.08, "text_auc": 0.75,
             "concept_shift": 0.18}
REFERENCE = [dt.date(2015, 2, d) for d in (17, 18, 19)]
ORDINARY = [dt.date(2015, 2, 20), dt.date(2015, 2, 21)]
NO_QUARANTINE = pl.DataFrame(schema={"label": pl.Utf8, "label_ts": TS, "reasons": pl.Utf8})


@pytest.fixture(scope="module")
def tweets() -> pl.DataFrame:
    """The fixture as clean rows (the label is known when the tweet is posted)."""
    raw = pl.read_csv(FIXTURE, infer_schema=False)
    ts = pl.col("tweet_created").str.to_datetime("%m/%d/%Y %H:%M", time_zone="UTC").dt.cast_time_unit("us")
    return raw.select(
        pl.col("tweet_id").alias("event_id"), ts.alias("event_ts"), "text",
        pl.col("airline_sentiment").alias("label"), ts.alias("label_ts"),
        pl.lit(FIXTURE.name).alias("_source_file"), (pl.int_range(pl.len()) + 2).cast(pl.Int64).alias("_line"),
    ).select(CLEAN_COLUMNS)


def _on(frame: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    return frame.filter(pl.col("event_ts").dt.date().is_in(days))


def _judge(tweets: pl.DataFrame, day: dt.date, drift: DriftSettings, cache: Path):
    return drift_of_day(labels_as_of(_on(tweets, REFERENCE), day), labels_as_of(_on(tweets, [day]), day),
                        quarantine=NO_QUARANTINE, day=day, labels=LABELS, drift=drift, k=2, n=3, cache_dir=cache)


def test_the_fixture_is_what_the_test_assumes(tweets):
    per_day = tweets.group_by(pl.col("event_ts").dt.date().alias("day")).len().sort("day")
    assert per_day["len"].to_list() == [200] * 8 and per_day["day"][0] == dt.date(2015, 2, 17)
    assert set(tweets["label"].unique()) == set(LABELS)


def test_old_fixed_thresholds_fire_on_ordinary_days_and_calibrated_ones_do_not(tweets, tmp_path):
    fixed = DriftSettings(thresholds=OLD_FIXED)
    auto = DriftSettings()  # every threshold "auto", 1 false trigger per 60 stable days
    for day in ORDINARY:
        old = _judge(tweets, day, fixed, tmp_path)
        # The premise: real text has many words unseen in three days of reference.
        assert old.verdict == "drift" and "oov_rate" in old.drifted_metrics, old.to_markdown()
        assert old.scores["oov_rate"] > 0.12
        new = _judge(tweets, day, auto, tmp_path)
        assert new.scores == old.scores  # same scores, judged by other thresholds
        assert new.verdict == "stable", new.to_markdown()
        assert all(new.threshold_sources[m] == "calibrated" for m in METRICS), new.threshold_sources
        # The reference's own days show that much OOV too: the threshold sits above it.
        assert new.thresholds["oov_rate"] > old.scores["oov_rate"]
        assert all(p is not None for p in new.p_values.values())
        assert "3 leave-one-day-out" in new.calibration
    # One calibration for both days: the reference did not change (labels known at once).
    assert len(list(tmp_path.glob("*.json"))) == 1
