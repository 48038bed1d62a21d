"""The data half through real Dagster: instance_for_test, real GX, real Parquet lake.

Why: the UI and automation only ever see these assets through Dagster, so this is
where partition handling, the IO manager, blocking checks and backfills are proven.
"""

from __future__ import annotations

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance, instance_for_test

from ct_assets.definitions import build_definitions
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets_tests.helpers import day, incident_settings, make_home, small_settings

DATA = ("raw_window", "validated_window", "quarantined_rows", "drift_report")


@pytest.fixture
def env(tmp_path):
    settings = incident_settings(reference_end=day(2))
    home = make_home(tmp_path)
    defs = build_definitions(settings, home)
    with instance_for_test() as instance:
        yield settings, home, defs, instance, Lake(base_path=str(home.lake))


def _check(instance: DagsterInstance, asset: str, name: str):
    from dagster import AssetCheckKey

    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), name), limit=1
    )
    return records[0] if records else None


def test_one_day_materializes_all_three_assets_with_checks(env):
    settings, home, defs, instance, lake = env
    result = materialize_range(defs, instance, DATA, day(0), day(0))
    assert result.success
    raw = lake.read("raw_window", day(0))
    clean = lake.read("validated_window", day(0))
    bad = lake.read("quarantined_rows", day(0))
    assert raw.height == 120
    assert clean.height + bad.height == raw.height  # no row is lost
    assert lake.read("drift_report", day(0)) is not None
    mat = instance.get_latest_materialization_event(AssetKey("raw_window")).asset_materialization
    assert mat.partition == day(0)
    assert {"row_count", "labelled_share", "label_counts", "bytes", "preview"} <= set(mat.metadata)
    drift_md = instance.get_latest_materialization_event(AssetKey("drift_report")).asset_materialization.metadata
    # Day 0 is the first configured reference day: nothing before it to compare with, and it says so.
    assert drift_md["verdict"].value == "insufficient_reference"
    assert drift_md["verdict_reason"].value == (
        f"the reference has 0 rows (< min_rows 20), so nothing was judged: no reference day before {day(0)} "
        f"(configured reference {day(0)}..{day(2)})")
    assert "**Verdict: insufficient_reference**" in drift_md["report"].value
    docs = list((home.reports / "data_docs").rglob("index.html"))
    assert docs, "Great Expectations Data Docs are written under CT_HOME/reports"


def test_quality_incident_is_quarantined_and_blocks_downstream(env):
    settings, home, defs, instance, lake = env
    result = materialize_range(defs, instance, DATA, day(4), day(4), raise_on_error=False)
    bad = lake.read("quarantined_rows", day(4))
    reasons = set(bad["reason"].to_list())
    assert {"duplicate_event_id", "unknown_label", "empty_text", "text_too_long", "bad_event_ts", "mojibake"} <= reasons
    assert bad.filter(pl.col("reason").is_null()).height == 0
    check = _check(instance, "validated_window", "rejected_fraction_within_limit")
    assert check is not None and check.status.value == "FAILED"
    # The blocking check stopped drift_report in the same run.
    assert lake.read("drift_report", day(4)) is None
    assert not result.success


def test_rematerializing_replaces_the_partition_exactly(env):
    settings, home, defs, instance, lake = env
    materialize_range(defs, instance, ("raw_window",), day(1), day(1))
    first = lake.read("raw_window", day(1))
    materialize_range(defs, instance, ("raw_window",), day(1), day(1))
    second = lake.read("raw_window", day(1))
    assert second.equals(first)  # same rows, no duplicates appended
    assert second["event_id"].n_unique() == second.height
    leftovers = [p for p in (home.lake / "raw_window").iterdir() if p.suffix != ".parquet"]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_a_single_run_backfill_equals_day_by_day_runs(env, tmp_path):
    settings, home, defs, instance, lake = env
    materialize_range(defs, instance, DATA, day(0), day(3))
    backfilled = {a: [lake.read(a, day(i)) for i in range(4)] for a in ("validated_window", "drift_report")}

    other_home = make_home(tmp_path / "other")
    other_defs = build_definitions(settings, other_home)
    other_lake = Lake(base_path=str(other_home.lake))
    with instance_for_test() as other_instance:
        for i in range(4):
            assert materialize_range(other_defs, other_instance, DATA, day(i), day(i)).success
    for asset, frames in backfilled.items():
        for i, frame in enumerate(frames):
            daily = other_lake.read(asset, day(i))
            assert frame.equals(daily), f"{asset}[{day(i)}] differs between backfill and daily run"


def test_cli_partition_range_backfill(tmp_path):
    """`dagster asset materialize --partition-range` works: every data asset is single-run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from ct_assets.core.home import CtHome

    home = CtHome(tmp_path / "cli_home").ensure()
    env = {**os.environ, "CT_HOME": str(home.root), "DAGSTER_HOME": str(home.dagster)}
    env.pop("CT_CONFIG", None)
    cmd = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "ct_assets.definitions",
           "--select", ",".join(DATA), "--partition-range", f"{day(0)}...{day(1)}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # One run over the range (single-run backfill), and each asset materialized once per day.
    instance = DagsterInstance.from_config(str(home.dagster))
    (run,) = instance.get_runs()
    assert run.status.value == "SUCCESS"
    assert (run.tags["dagster/asset_partition_range_start"], run.tags["dagster/asset_partition_range_end"]) == (
        day(0), day(1))
    for asset in DATA:
        partitions = instance.get_materialized_partitions(AssetKey(asset))
        assert partitions == {day(0), day(1)}, (asset, partitions)
    lake = Lake(base_path=str(home.lake))
    for i in range(2):
        raw, clean, bad = (lake.read(a, day(i)) for a in ("raw_window", "validated_window", "quarantined_rows"))
        # Each day's own rows, none lost: clean and quarantined partition the raw rows by event_id.
        assert sorted(clean["event_id"].to_list() + bad["event_id"].to_list()) == sorted(raw["event_id"].to_list())
        assert set(clean["event_ts"].dt.date().cast(pl.Utf8).to_list()) == {day(i)}
        (report,) = lake.read("drift_report", day(i)).to_dicts()
        assert report["partition"] == day(i)
    instance.dispose()


def test_a_new_class_does_not_stop_the_data_half(tmp_path):
    """A stream that starts carrying a label nobody configured: its rows are quarantined as
    unknown_label, the rejected-fraction check still passes, and drift_report runs."""
    import json

    settings = small_settings(**{"source.kind": "landing_zone", "reference.end": day(0),
                                 "quality.max_bad_fraction": 0.2})
    home = make_home(tmp_path)
    for i in range(2):
        folder = home.landing / f"dt={day(i)}"
        folder.mkdir(parents=True)
        labels = [settings.labels[k % 3] for k in range(60)] + ["loyalty_program"] * (20 if i else 0)
        rows = [{"event_id": f"{i}-{k}", "event_ts": f"{day(i)}T10:{k % 60:02d}:00Z",
                 "text": f"ticket number {k} about {label.replace('_', ' ')} please help",
                 "label": label, "label_ts": f"{day(i)}T11:00:00Z"} for k, label in enumerate(labels)]
        (folder / "part.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    defs = build_definitions(settings, home)
    with instance_for_test() as instance:
        for i in range(2):
            assert materialize_range(defs, instance, DATA, day(i), day(i)).success
        check = _check(instance, "validated_window", "rejected_fraction_within_limit")
        assert check.status.value == "SUCCEEDED"
        lake = Lake(base_path=str(home.lake))
        quarantined = lake.read("quarantined_rows", day(1))
        assert quarantined.height == 20 and set(quarantined["reason"]) == {"unknown_label"}
        assert lake.read("drift_report", day(1)) is not None  # the data half went on
