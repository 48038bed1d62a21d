"""A single-run backfill shows each day its own truth: metadata and check results per
partition, one bad day blocking only itself, and verdicts that say when nothing was judged.

Why: users backfill from the UI, and the Partitions tab shows each day's materialization
metadata and check. Metadata on the range's Output, or one check result per run, would
show the last day's figures on every day and let one bad day stop the whole range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import polars as pl
from dagster import AssetCheckKey, AssetKey, AssetRecordsFilter, Definitions, instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.ingest.resources import LandingZoneSource
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets_tests.helpers import day, incident_settings, make_home, small_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")


def _materializations(instance, asset: str) -> dict[str, dict]:
    records = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey(asset)), limit=100).records
    latest: dict[str, dict] = {}
    for r in sorted(records, key=lambda r: r.storage_id):
        mat = r.asset_materialization
        latest[mat.partition] = {k: v.value for k, v in mat.metadata.items()}
    return latest


def _checks(instance, asset: str, name: str) -> dict[str, tuple[str, dict]]:
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), name), limit=100)
    out: dict[str, tuple[str, dict]] = {}
    for r in reversed(history):  # oldest first: the newest per day wins
        evaluation = r.event.dagster_event.event_specific_data if r.event else None
        metadata = {k: v.value for k, v in evaluation.metadata.items()} if evaluation else {}
        out[r.partition] = (r.status.value, metadata)
    return out


def test_a_backfilled_week_shows_each_days_own_drift_report_and_one_bad_day_blocks_only_itself(tmp_path):
    settings = incident_settings(reference_end=day(1))
    home = make_home(tmp_path)
    defs = build_definitions(settings, home)
    lake = Lake(base_path=str(home.lake))
    with instance_for_test() as instance:
        # One run over the whole week (single-run backfill), the bad day inside it.
        assert materialize_range(defs, instance, DATA, day(0), day(6)).success
        drift = _materializations(instance, "drift_report")
        assert sorted(drift) == [day(i) for i in range(7)]
        for i in range(7):
            row = lake.read("drift_report", day(i)).to_dicts()[0]
            shown = drift[day(i)]
            assert shown["verdict"] == row["verdict"], day(i)
            if row["verdict"] not in ("blocked", "insufficient_reference"):
                assert shown["label_js"] == row["score_label_js"] and shown["text_auc"] == row["score_text_auc"]
                assert f"current rows: {lake.read('validated_window', day(i)).height}" in shown["report"]
        judged = [day(i) for i in (2, 3, 5, 6)]
        assert len({drift[d]["label_js"] for d in judged}) == len(judged)  # seven days, not one day seven times

        # The quality incident fails its own day's check, and only that day's.
        fraction = _checks(instance, "validated_window", "rejected_fraction_within_limit")
        assert {d: status for d, (status, _) in fraction.items()} == {
            day(i): ("FAILED" if i == 4 else "SUCCEEDED") for i in range(7)}
        assert fraction[day(4)][1]["bad_fraction"] > settings.quality.max_bad_fraction
        # Each day's rows and reasons are that day's: the incident's reasons only on day 4.
        clean_md, quarantine_md = (_materializations(instance, a) for a in ("validated_window", "quarantined_rows"))
        for i in range(7):
            assert clean_md[day(i)]["rows_clean"] == lake.read("validated_window", day(i)).height
            assert quarantine_md[day(i)]["rows_quarantined"] == lake.read("quarantined_rows", day(i)).height
        assert "mojibake" in quarantine_md[day(4)]["reason_counts"]
        assert "mojibake" not in quarantine_md[day(3)]["reason_counts"]
        assert clean_md[day(4)]["data_docs"].startswith("file://")

        # Its drift report says it was blocked and why; the days around it were judged.
        blocked = lake.read("drift_report", day(4)).to_dicts()[0]
        assert blocked["verdict"] == "blocked"
        assert blocked["verdict_reason"].startswith(f"validated_window failed rejected_fraction_within_limit for {day(4)}")
        policy = _checks(instance, "drift_report", "drift_within_policy")
        assert policy[day(4)][0] == "FAILED" and policy[day(4)][1]["verdict"] == "blocked"
        assert {drift[day(i)]["verdict"] for i in (3, 5)} <= {"stable", "drift"}

        # Day 0 has no reference day before it: insufficient_reference, named, and the check warns.
        assert drift[day(0)]["verdict"] == "insufficient_reference"
        assert f"no reference day before {day(0)}" in drift[day(0)]["verdict_reason"]
        assert policy[day(0)][0] == "FAILED"


def test_a_day_below_min_rows_is_insufficient_data_not_stable(tmp_path):
    settings = small_settings(**{"source.kind": "landing_zone", "reference.end": day(0)})
    home = make_home(tmp_path)
    for i, rows in ((0, 60), (1, 5)):
        folder = home.landing / f"dt={day(i)}"
        folder.mkdir(parents=True)
        lines = [{"event_id": f"{i}-{k}", "event_ts": f"{day(i)}T10:{k:02d}:00Z",
                  "text": f"my parcel {k} never arrived, where is it", "label": "shipping",
                  "label_ts": f"{day(i)}T11:00:00Z"} for k in range(rows)]
        (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    defs = build_definitions(settings, home)
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(1)).success
        row = Lake(base_path=str(home.lake)).read("drift_report", day(1)).to_dicts()[0]
        assert row["verdict"] == "insufficient_data"
        assert row["verdict_reason"] == "the day has 5 clean rows (< min_rows 20), so nothing was judged"
        assert _checks(instance, "drift_report", "drift_within_policy")[day(1)][0] == "FAILED"
        assert pl.Series([row["score_text_auc"]]).is_null().all()


DAY_2 = day(2)


class _SourceThatBreaksTheContractOnDay2(LandingZoneSource):
    """A user's own source with a bug on one day: event_id comes back as integers."""

    def fetch_day(self, day):
        read = super().fetch_day(day)
        if day.isoformat() != DAY_2:
            return read
        return dataclasses.replace(read, frame=read.frame.with_columns(pl.col("_line").alias("event_id")))


def test_a_day_that_breaks_the_raw_contract_inside_a_range_blocks_only_itself(tmp_path):
    settings = small_settings(**{"reference.end": day(0)})
    home = make_home(tmp_path)
    base = build_definitions(settings, home)
    source = _SourceThatBreaksTheContractOnDay2(path=base.resources["source"].path)
    defs = Definitions(assets=list(base.assets), resources={**base.resources, "source": source})
    for i in range(4):  # the landing files the user's source reads (written by the demo's simulator)
        base.resources["source"].simulate_day(dt.date.fromisoformat(day(i)))
    lake = Lake(base_path=str(home.lake))
    with instance_for_test() as instance:
        assert materialize_range(defs, instance, DATA, day(0), day(3)).success
        schema = _checks(instance, "raw_window", "raw_schema")
        assert {d: status for d, (status, _) in schema.items()} == {
            day(i): ("FAILED" if i == 2 else "SUCCEEDED") for i in range(4)}
        assert schema[day(2)][1]["problems"] == ["event_id: Int64 (expected String)"]
        fraction = _checks(instance, "validated_window", "rejected_fraction_within_limit")
        assert fraction[day(2)] == ("FAILED", {"blocked": f"raw_window failed raw_schema for {day(2)}"})
        # The day's raw rows stay in raw_window; it has nothing clean (with the clean schema);
        # its drift report says why; the days around it are split and judged as usual.
        assert lake.read("raw_window", day(2)).height == settings.source.simulator.rows_per_day
        empty, usual = lake.read("validated_window", day(2)), lake.read("validated_window", day(1))
        assert empty.height == 0 and {"event_id", "event_ts", "text", "label", "label_ts"} <= set(empty.columns)
        assert dict(empty.schema) == {c: usual.schema[c] for c in empty.columns}  # the clean schema, not raw
        assert lake.read("drift_report", day(2))["verdict"][0] == "blocked"
        assert {lake.read("drift_report", day(i))["verdict"][0] for i in (1, 3)} <= {"stable", "drift"}
