"""`ct demo --serve` end to end on the tiny base: the loop closes through a real `ct serve`.

Why: this is the whole of serving at once. Each simulated day's traffic goes through a
`ct serve` subprocess (canary share to the gated challenger), its predictions and the
simulator's labels (posted as feedback) land in the landing zone through the server, the
next raw_window reads them through the production reader, canary_report judges the canary
arm, and the champion moves only after a passing canary day, after which the server
answers with the new champion without a restart.
"""

from __future__ import annotations

import polars as pl

from ct_assets.demo.main import served_settings
from ct_assets.demo.replay import run_replay
from ct_assets.demo.served_traffic import ServedTraffic
from ct_assets.ingest.contract import read_landing_day
from ct_assets_tests.helpers import day, make_home, model_settings

# Bootstrap on day 3, the first retrain after the cooldown (day 6), its canary day (7), and days after.
DAYS = 9


def test_served_days_reach_raw_window_and_a_canary_day_gates_the_promotion(tmp_path, sim_base_dir):
    settings = served_settings(model_settings(sim_base_dir, **{
        "source.simulator.rows_per_day": 200,
        # The last day's corrupt rows (bad times, duplicate ids, non-text) cannot be sent to a
        # server: they must land as written, for validation to quarantine.
        "source.simulator.scenarios": [{"name": "quality_incident", "start_day": DAYS - 1, "end_day": DAYS - 1}],
        "serving.canary_percent": 50.0,
        "promotion.canary_days": 1,
        # The tiny model learns nothing on simulator text: the gate and the canary verdict
        # are opened so the path, not the model's quality, is under test (both are tested
        # with real thresholds in evaluation_tests/test_canary.py and the promotion tests).
        "promotion.max_canary_accuracy_drop": 1.0,
        "gate.min_improvement": -1.0,
        "gate.require_ci_above_zero": False,
        "gate.max_forgetting": 1.0,
        "gate.max_class_forgetting": 1.0,
        "triggers.policy": "combined",
        # Not 1: a retrain every day would replace each challenger before its canary day.
        "triggers.cooldown_days": 3,
        "triggers.min_accuracy": 0.99,
    }))
    home = make_home(tmp_path)
    with ServedTraffic(settings, home) as served:
        result = run_replay(settings, home, DAYS, served=served)
        landing = served.landing
    records = {r["day"].isoformat(): r for r in result.records}

    # Before the first model nothing can be served: those days land directly, nothing lost.
    first = records[day(0)]["served"]
    assert first["served"] == 0 and first["direct"] == 200, first
    served_days = [r for r in result.records if r["served"]["served"]]
    assert served_days, [r["served"] for r in result.records]
    for r in served_days:
        k = r["day"]
        frame = read_landing_day(landing, k).frame
        # Every row the server answered is a contract row of that day, with its served columns.
        served_rows = frame.filter(pl.col("arm").is_not_null())
        assert served_rows.height == r["served"]["served"], (k, served_rows.height, r["served"])
        assert served_rows["served_version"].null_count() == 0 and served_rows["prediction"].null_count() == 0
        # The simulator's labels came back as feedback through the server, as late labels.
        labelled = served_rows.filter(pl.col("label").is_not_null())
        assert labelled.height == r["served"]["feedback"] > 0, (k, labelled.height, r["served"])
        assert (labelled["label_ts"] >= labelled["event_ts"]).all()

    canary_days = [r for r in served_days if r["served"].get("arm_canary")]
    assert canary_days, "no day sent traffic to a canary"
    first_canary = canary_days[0]
    challenger = first_canary["served"]["version_canary"]
    assert first_canary["served"]["version_champion"] != challenger
    assert first_canary.get("canary_verdict") == "passed", first_canary
    # The promotion waited for that canary day: the challenger became champion on it, not before.
    promoted = [(r["day"], r["promoted_version"]) for r in result.records if r["promoted"]]
    assert (first_canary["day"], challenger) in promoted, promoted
    earlier = [r for r in result.records if r["day"] < first_canary["day"] and r["promoted_version"] == challenger]
    assert not earlier, earlier
    incident = records[day(DAYS - 1)]["served"]
    assert incident["direct"] > 0 and incident["served"] + incident["direct"] == 200, incident
    quarantined = read_landing_day(landing, result.records[-1]["day"]).frame
    assert quarantined.filter(pl.col("arm").is_null()).height == incident["direct"]
    # The server picked the new champion up without a restart: later days are answered by it.
    later = [r for r in served_days if r["day"] > first_canary["day"]]
    assert later and all(r["served"]["version_champion"] == challenger for r in later), [r["served"] for r in later]
