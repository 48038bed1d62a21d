"""Great Expectations suite tests, run against real GX (no mocks).

They exist because GX is a second, independent line of defence behind the quality rules:
it must really fail on what the rules should have removed (duplicate ids, unknown
labels, over-long text), it must be callable once per partition in one process without
name clashes, and it must write its Data Docs only where it is told (a `gx/` folder in
someone's working directory, or wiped pages of earlier partitions, are real failures).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import polars as pl
import pytest

from ct_assets.ingest import expectations
from ct_assets.ingest.expectations import GxExecutionError, validate_clean

UTC = dt.timezone.utc
TS = pl.Datetime("us", "UTC")
LABELS = ("positive", "negative")
T0 = dt.datetime(2024, 3, 10, 8, tzinfo=UTC)


def clean_frame(n: int = 300) -> pl.DataFrame:
    """A contract-conforming clean frame with an extra column and some unlabelled rows."""
    ts = [T0 + dt.timedelta(seconds=60 * i) for i in range(n)]
    return pl.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "event_ts": ts,
            "text": [f"review number {i}" for i in range(n)],
            "label": [None if i % 5 == 0 else LABELS[i % 2] for i in range(n)],
            "label_ts": [None if i % 5 == 0 else t + dt.timedelta(hours=1) for i, t in enumerate(ts)],
            "_source_file": ["dt=2024-03-10/a.jsonl"] * n,
            "_line": list(range(1, n + 1)),
            "extra": [{"k": i} for i in range(n)],  # a struct: extras are not sent to GX
        },
        schema_overrides={"event_ts": TS, "label_ts": TS},
    )


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty cwd: anything GX writes relative to it shows up here."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def run(frame: pl.DataFrame, docs: Path, run_name: str = "2024-03-10", **kw):
    args = dict(labels=LABELS, max_text_chars=100, docs_dir=docs, run_name=run_name)
    args.update(kw)
    return validate_clean(frame, **args)


def failed(summary) -> dict[tuple[str, str | None], dict]:
    return {(r["expectation"], r["column"]): r for r in summary.results if not r["success"]}


def test_clean_frame_passes_and_docs_are_written(tmp_path, workdir):
    docs = tmp_path / "reports" / "data_docs"
    summary = run(clean_frame(), docs)
    assert summary.success, failed(summary)
    assert summary.evaluated == summary.successful == len(summary.results) >= 13
    assert summary.docs_index == docs / "index.html" and summary.docs_index.is_file()
    assert list(docs.glob("validations/**/*.html")), "no validation page was rendered"
    assert list(workdir.iterdir()) == [], "GX wrote into the working directory"
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


@pytest.mark.parametrize(
    ("mutate", "expected_failures"),
    [
        # two rows share an id
        (
            lambda f: f.with_columns(
                pl.when(pl.col("_line") == 2).then(pl.lit("e0")).otherwise(pl.col("event_id")).alias("event_id")
            ),
            {("expect_column_values_to_be_unique", "event_id")},
        ),
        # a label outside the configured set (null labels elsewhere stay allowed)
        (
            lambda f: f.with_columns(
                pl.when(pl.col("_line") == 2).then(pl.lit("angry")).otherwise(pl.col("label")).alias("label")
            ),
            {("expect_column_values_to_be_in_set", "label")},
        ),
        # text longer than max_text_chars and an empty text
        (
            lambda f: f.with_columns(
                pl.when(pl.col("_line") == 2)
                .then(pl.lit("x" * 101))
                .when(pl.col("_line") == 3)
                .then(pl.lit(""))
                .otherwise(pl.col("text"))
                .alias("text")
            ),
            {("expect_column_value_lengths_to_be_between", "text")},
        ),
        # null ids and null timestamps
        (
            lambda f: f.with_columns(
                pl.when(pl.col("_line") == 2).then(None).otherwise(pl.col("event_id")).alias("event_id"),
                pl.when(pl.col("_line") == 2).then(None).otherwise(pl.col("event_ts")).alias("event_ts"),
            ),
            {
                ("expect_column_values_to_not_be_null", "event_id"),
                ("expect_column_values_to_not_be_null", "event_ts"),
            },
        ),
        # a label recorded before its event
        (
            lambda f: f.with_columns(
                pl.when(pl.col("_line") == 2)
                .then(pl.col("event_ts") - pl.duration(hours=1))
                .otherwise(pl.col("label_ts"))
                .alias("label_ts")
            ),
            {("expect_column_pair_values_a_to_be_greater_than_b", "label_ts,event_ts")},
        ),
    ],
)
def test_suite_fails_on_bad_frames(tmp_path, workdir, mutate, expected_failures):
    summary = run(mutate(clean_frame()), tmp_path / "docs")
    assert not summary.success
    got = failed(summary)
    assert set(got) == expected_failures
    assert summary.successful == summary.evaluated - len(expected_failures)
    assert all(r["unexpected_count"] >= 1 for r in got.values())


def test_failure_details_name_the_bad_values(tmp_path, workdir):
    frame = clean_frame().with_columns(
        pl.when(pl.col("_line") <= 3).then(pl.lit("dup")).otherwise(pl.col("event_id")).alias("event_id"),
        pl.when(pl.col("_line") == 4).then(pl.lit("angry")).otherwise(pl.col("label")).alias("label"),
    )
    got = failed(run(frame, tmp_path / "docs"))
    assert got[("expect_column_values_to_be_unique", "event_id")]["unexpected_examples"] == ["dup"] * 3
    assert got[("expect_column_values_to_be_in_set", "label")]["unexpected_examples"] == ["angry"]


def test_many_partitions_in_one_process(tmp_path, workdir):
    docs = tmp_path / "docs"
    for day in ("2024-03-10", "2024-03-11", "2024-03-10"):  # a re-run of the same partition too
        assert run(clean_frame(50), docs, run_name=day).success
    # Changed parameters redeclare the suite under the same names without clashing.
    assert not run(clean_frame(50), docs, run_name="2024-03-12", labels=("other", "labels")).success
    assert run(clean_frame(50), docs, run_name="2024-03-13").success
    runs = {p.parent.parent.name for p in docs.glob("validations/clean_window/*/*/*.html")}
    assert runs == {"2024-03-10", "2024-03-11", "2024-03-12", "2024-03-13"}
    assert list(workdir.iterdir()) == []


def test_new_process_keeps_earlier_partitions_pages(tmp_path, workdir, monkeypatch):
    # A Dagster step subprocess starts with no cached context; building the docs there
    # must not delete the pages of partitions validated by earlier processes.
    docs = tmp_path / "docs"
    run(clean_frame(20), docs, run_name="2024-03-10")
    monkeypatch.setattr(expectations, "_RUNNERS", {})  # what a fresh process looks like
    run(clean_frame(20), docs, run_name="2024-03-11")
    runs = {p.parent.parent.name for p in docs.glob("validations/clean_window/*/*/*.html")}
    assert runs == {"2024-03-10", "2024-03-11"}
    index = (docs / "index.html").read_text(encoding="utf-8")
    assert "2024-03-10" in index and "2024-03-11" in index


def test_empty_partition_passes(tmp_path, workdir):
    assert run(clean_frame(0), tmp_path / "docs").success


def test_missing_contract_column_raises(tmp_path, workdir):
    # GX records "column does not exist" as an exception inside the result; it must not
    # come back looking like an ordinary data failure.
    with pytest.raises(GxExecutionError, match="label"):
        run(clean_frame(10).drop("label"), tmp_path / "docs")


@pytest.mark.parametrize(
    "run_name",
    [
        "",  # nothing to name the docs folder
        "../escape",  # would write outside docs_dir
        "a/b",  # nested folders would break GX's identifier parsing
    ],
)
def test_bad_run_name(tmp_path, workdir, run_name):
    with pytest.raises(ValueError, match="run_name"):
        run(clean_frame(5), tmp_path / "docs", run_name=run_name)
