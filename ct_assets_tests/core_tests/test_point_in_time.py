"""The one point-in-time rule, at its boundary, through every consumer: a label exists as
of day D only if its label_ts is before the end of D (D+1 00:00 UTC, exclusive;
docs/CONTRACTS.md "Point in time").

One table of labels around the end of D is defined here and run through
``labels_as_of`` and each consumer that cuts with it: the volume trigger's count, the
shadow's accuracy rows, raw_window's label metadata and drift_report's labelled rows.
Each consumer must keep the two labels known by the end of D and drop the rest, so each
fails if the cut is skipped, or moved by a microsecond either way.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl
import pytest
from dagster import AssetKey, AssetRecordsFilter, instance_for_test
from upath import UPath

from ct_assets.core.time import labels_as_of
from ct_assets.definitions import build_definitions
from ct_assets.evaluation.shadow import shadow_traffic
from ct_assets.lake.parquet import partition_path, write_parquet_atomic
from ct_assets.lake.resources import Lake
from ct_assets.orchestration.runner import materialize_range
from ct_assets.sim.simulator import SimulatorConfig, write_day
from ct_assets.triggers.observations import labelled_rows_since
from ct_assets_tests.helpers import START, make_home, small_settings

DAY = START + dt.timedelta(days=3)
START_OF_DAY = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
END_OF_DAY = START_OF_DAY + dt.timedelta(days=1)  # written out, not end_of_day(): the rule under test
MICROSECOND = dt.timedelta(microseconds=1)

# (case, label, label_ts): every row's event is at the start of DAY; one label per case,
# so the labels a consumer kept name the cases it counted.
BOUNDARY = [
    ("well before the end", "billing", START_OF_DAY + dt.timedelta(hours=8)),
    ("the last microsecond of the day", "refund", END_OF_DAY - MICROSECOND),
    ("exactly at the end (exclusive)", "shipping", END_OF_DAY),
    ("one microsecond after the end", "account_access", END_OF_DAY + MICROSECOND),
    ("a day after the end", "technical_issue", END_OF_DAY + dt.timedelta(days=1)),
    ("no label yet", None, None),
]
KNOWN = ["billing", "refund"]  # the labels that exist as of DAY
AS_OF_DAY = [label if label in KNOWN else None for _, label, _ in BOUNDARY]


def boundary_frame(texts: list[str] | None = None) -> pl.DataFrame:
    """The table as clean rows of DAY (the validated_window schema's core columns)."""
    n = len(BOUNDARY)
    return pl.DataFrame({
        "event_id": [f"boundary-{i}" for i in range(n)],
        "event_ts": [START_OF_DAY] * n,
        "text": texts or [case for case, _, _ in BOUNDARY],
        "label": [label for _, label, _ in BOUNDARY],
        "label_ts": [ts for _, _, ts in BOUNDARY],
    }, schema_overrides={"event_ts": pl.Datetime("us", "UTC"), "label_ts": pl.Datetime("us", "UTC")})


def test_the_rule_keeps_exactly_the_labels_known_by_the_end_of_the_day():
    cut = labels_as_of(boundary_frame(), DAY)
    assert cut["label"].to_list() == AS_OF_DAY
    # The label time goes with the label: a consumer cannot see when an unknown one arrives.
    assert cut["label_ts"].to_list() == [ts if label in KNOWN else None for _, label, ts in BOUNDARY]
    assert cut.height == len(BOUNDARY)  # rows are kept; only what is not yet known is nulled


def test_the_volume_trigger_counts_only_the_labels_known_by_the_end_of_the_day(tmp_path):
    lake = Lake(base_path=str(tmp_path / "lake"))
    write_parquet_atomic(boundary_frame(), partition_path(UPath(str(tmp_path / "lake")), ["validated_window"],
                                                          DAY.isoformat()))
    day_before = DAY - dt.timedelta(days=1)
    assert labelled_rows_since(lake, day_before, DAY, START) == len(KNOWN)


def test_the_shadow_measures_accuracy_on_the_labels_known_by_the_end_of_the_day():
    texts, truth = shadow_traffic(boundary_frame(), DAY)
    assert texts == [case for case, _, _ in BOUNDARY]  # every text is shadowed
    assert truth == AS_OF_DAY  # only these are scored


@pytest.fixture
def landing_with_the_boundary_table(tmp_path):
    """Simulator days 0..DAY in a landing zone with every label removed, then the table's
    labels put on DAY's first rows: the only labels in the data are the table's."""
    landing = tmp_path / "landing"
    settings = small_settings(**{"source.kind": "landing_zone", "source.path": str(landing),
                                 "source.simulator.scenarios": [], "reference.end": (DAY - dt.timedelta(days=1))
                                 .isoformat()})
    config = SimulatorConfig(labels=settings.labels, rows_per_day=settings.source.simulator.rows_per_day)
    for i in range((DAY - START).days + 1):
        path = write_day(config, START, START + dt.timedelta(days=i), landing)
        rows = [json.loads(line) | {"label": None, "label_ts": None}
                for line in path.read_text(encoding="utf-8").splitlines()]
        if START + dt.timedelta(days=i) == DAY:
            for row, (_, label, ts) in zip(rows, BOUNDARY):
                row.update(event_ts=START_OF_DAY.isoformat(), label=label, label_ts=ts.isoformat() if ts else None)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return settings, len(rows)


def test_raw_window_and_drift_report_count_only_the_labels_known_by_the_end_of_the_day(
        tmp_path, landing_with_the_boundary_table):
    settings, rows_of_day = landing_with_the_boundary_table
    home = make_home(tmp_path)
    defs = build_definitions(settings, home)
    with instance_for_test() as instance:
        assets = ("raw_window", "validated_window", "quarantined_rows", "drift_report")
        assert materialize_range(defs, instance, assets, START.isoformat(), DAY.isoformat()).success
        day_mat = instance.fetch_materializations(
            AssetRecordsFilter(asset_key=AssetKey("raw_window"), asset_partitions=[DAY.isoformat()]),
            limit=1).records[0].asset_materialization
    raw = day_mat.metadata  # the day's own materialization in the range run
    lake = Lake(base_path=str(home.lake))
    assert lake.read("validated_window", DAY.isoformat())["label"].drop_nulls().len() == len(BOUNDARY) - 1  # all kept
    # One comparison, so a failure shows every consumer that counted wrong. raw_window:
    # the day's labels as of its end, and its labelled share;
    # drift_report: the clean frame it measures (the one the champion is scored on, and
    # whose labels the label-prior scores use).
    observed = {
        "raw_window label_counts": raw["label_counts"].value,
        "raw_window labelled_share of the day": raw["labelled_share"].value,
        "drift_report clean_labelled_rows": lake.read("drift_report", DAY.isoformat())["clean_labelled_rows"][0],
    }
    assert observed == {
        "raw_window label_counts": {label: 1 for label in KNOWN},
        "raw_window labelled_share of the day": round(len(KNOWN) / rows_of_day, 3),
        "drift_report clean_labelled_rows": len(KNOWN),
    }
