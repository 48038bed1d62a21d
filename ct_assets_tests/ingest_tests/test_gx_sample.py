"""Great Expectations on a sample of a large day, and the per-process warm-up.

GX is the declarative second opinion behind the per-row quality rules (which check every
row), so a large clean frame is validated on a seeded sample: these tests pin that the
sample is taken only above ``sample_rows``, is deterministic, still catches bad data, and
says so in the summary, the inline markdown and the Data Docs; and that ``warm_up``
prepares the context without writing a validation into the docs.
"""

from __future__ import annotations

import polars as pl
import pytest
from pydantic import ValidationError

from ct_assets.core.settings import QualitySettings
from ct_assets.ingest import expectations
from ct_assets.ingest.expectations import expectations_markdown, sample_for_gx, validate_clean, warm_up
from ct_assets_tests.ingest_tests.test_expectations import LABELS, clean_frame, workdir  # noqa: F401


def _validate(frame: pl.DataFrame, docs, run_name: str = "2024-03-10", **kw):
    return validate_clean(frame, labels=LABELS, max_text_chars=100, docs_dir=docs, run_name=run_name, **kw)


def _results(docs) -> list:
    return [p for p in (docs / expectations.RESULTS_SUBDIR).rglob("*.json")]


def test_warm_up_then_validate_whole_small_frame(tmp_path, workdir):  # noqa: F811
    docs = tmp_path / "docs"
    warm_up(docs, labels=LABELS, max_text_chars=100)
    # Warming runs no checkpoint: no stored result, no docs page, nothing in the cwd.
    assert _results(docs) == [] and not (docs / "index.html").exists()
    assert list(workdir.iterdir()) == []
    assert warm_up(docs, labels=LABELS, max_text_chars=100) < 0.5  # once warm, nearly free
    summary = _validate(clean_frame(120), docs, sample_rows=120)
    assert summary.success and not summary.sampled
    assert (summary.sampled_rows, summary.total_rows) == (120, 120)
    assert "sample" not in expectations_markdown(summary)
    assert len(_results(docs)) == 1 and ".sample-" not in (docs / "index.html").read_text(encoding="utf-8")


def test_large_frame_is_validated_on_a_labelled_sample(tmp_path, workdir):  # noqa: F811
    docs = tmp_path / "docs"
    summary = _validate(clean_frame(300), docs, sample_rows=100)
    assert summary.success and summary.sampled
    assert (summary.sampled_rows, summary.total_rows) == (100, 300)
    assert "sample of 100 of 300 rows" in expectations_markdown(summary)
    assert "2024-03-10.sample-100-of-300" in (docs / "index.html").read_text(encoding="utf-8")
    # Clean rows: no expectation finds a bad row in the sample either.
    assert all(r["unexpected_count"] in (None, 0) for r in summary.results)


def test_sample_still_fails_bad_data(tmp_path, workdir):  # noqa: F811
    frame = clean_frame(300).with_columns(pl.lit("not_a_label").alias("label"))
    summary = _validate(frame, tmp_path / "docs", sample_rows=100)
    assert not summary.success and summary.sampled
    (in_set,) = [r for r in summary.results if r["expectation"] == "expect_column_values_to_be_in_set"]
    assert not in_set["success"] and in_set["unexpected_count"] == 100  # every sampled row


def test_sample_is_seeded_and_in_frame_order():
    frame = clean_frame(300)
    a, b, c = (sample_for_gx(frame, 50, seed) for seed in (1, 1, 2))
    assert a.height == 50 and a.equals(b) and not a.equals(c)
    ids = [int(i[1:]) for i in a.get_column("event_id")]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert sample_for_gx(frame, 300, 1) is frame  # at the cap: the frame itself


def test_gx_sample_rows_setting():
    assert QualitySettings().gx_sample_rows == 50_000
    with pytest.raises(ValidationError, match="gx_sample_rows"):
        QualitySettings(gx_sample_rows=999)


_RACE = """
import datetime as dt, sys
from pathlib import Path
import polars as pl
from ct_assets.core.schema import CLEAN_COLUMNS, RAW_SCHEMA
from ct_assets.ingest.expectations import validate_clean, warm_up_in_background
docs = Path(sys.argv[1])
warm_up_in_background(docs, labels=["a", "b"], max_text_chars=100)
row = {"event_id": ["x"], "event_ts": [dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)], "text": ["hi"],
       "label": ["a"], "label_ts": [None], "_source_file": ["f"], "_line": [1]}
frame = pl.DataFrame(row, schema={c: RAW_SCHEMA[c] for c in CLEAN_COLUMNS})
assert validate_clean(frame, labels=["a", "b"], max_text_chars=100, docs_dir=docs, run_name="r1").success
"""


def test_background_warm_up_and_first_validation_import_gx_together(tmp_path):
    """A fresh process: the warm-up thread and the main thread's first validation both import
    GX at once. Without the import lock this failed every time with "cannot import name
    'ExpectationSuite' from partially initialized module" (found by the bench smoke)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _RACE, str(tmp_path / "docs")], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
