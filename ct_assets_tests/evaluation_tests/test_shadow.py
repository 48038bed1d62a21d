"""Shadow from served pairs (pure): which rows are pairs, and the same verdict as offline.

Why: when ct serve mirrors champion traffic to the challenger, shadow_report judges on those
pairs instead of re-scoring offline; a wrong filter (the canary's rows, another version's
shadow) would judge the challenger on someone else's answers.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from ct_assets.evaluation.shadow import served_shadow_pairs, shadow_compare_served
from ct_assets_tests.evaluation_tests.test_canary import DAY, arm_rows, frame


def test_only_champion_rows_with_the_challengers_shadow_are_pairs():
    f = frame(
        arm_rows("champion", 1, 40, 40, shadow=(2, 20)),  # the pairs
        arm_rows("champion", 1, 5, 5, shadow=(7, 5)),  # another version's shadow
        arm_rows("canary", 2, 5, 5, shadow=(1, 5)),  # the canary arm: canary_report's, not shadow's
        arm_rows("champion", 9, 5, 5, shadow=(2, 5)),  # served by a former champion
    )
    pairs = served_shadow_pairs(f, DAY, champion=1, challenger=2)
    assert pairs.height == 40 and set(pairs["shadow_version"]) == {2} and set(pairs["served_version"]) == {1}


def test_served_pairs_give_agreement_and_accuracy_where_feedback_arrived():
    # The champion (prediction "billing") is right on 30 of 40; the shadow agrees on 10 and
    # otherwise says "shipping", which is never right.
    f = frame(arm_rows("champion", 1, 40, 30, shadow=(2, 10)))
    report = shadow_compare_served(served_shadow_pairs(f, DAY, champion=1, challenger=2), min_agreement=0.5)
    assert (report["source"], report["served_pairs"], report["rows"]) == ("served", 40, 40)
    assert (report["agreement"], report["champion_accuracy"], report["challenger_accuracy"]) == (0.25, 0.75, 0.25)
    assert report["reasons"] == ["agreement 0.250 < min_shadow_agreement 0.5",
                                 "challenger accuracy 0.250 < champion 0.750 - 0.02 on 40 labelled rows"]
    assert not report["passed"] and report["champion_latency_p50_ms"] == 24.5


def test_late_feedback_is_cut_as_of_the_day():
    f = frame(arm_rows("champion", 1, 40, 0, shadow=(2, 40), label_delay=dt.timedelta(days=2)))
    report = shadow_compare_served(served_shadow_pairs(f, DAY, champion=1, challenger=2), min_agreement=0.5)
    assert report["labelled_rows"] == 0 and report["passed"] and report["challenger_accuracy"] is None


def test_a_day_without_served_columns_has_no_pairs():
    assert served_shadow_pairs(pl.DataFrame({"text": ["a"]}), DAY, champion=1, challenger=2).height == 0
    with pytest.raises(ValueError, match="no served shadow pairs"):
        shadow_compare_served(frame(arm_rows("champion", 1, 1, 1)).head(0), min_agreement=0.5)
