"""Edges of the quality rules that mutation testing found unpinned (docs/mutation.md): the
contract check. A frame off the raw contract must fail loudly, naming its partition, every
problem, and the reserved column names (``reason``, ``reasons``, the ``__ct_`` prefix) that
would collide with the quarantine's own columns, with the files they came from."""

from __future__ import annotations

import polars as pl
import pytest

from ct_assets.ingest.quality import _check_schema
from ct_assets_tests.ingest_tests.test_quality import raw_frame, row, split

CONTRACT = "raw frame does not follow the raw contract: "
# Files in first-seen order (not sorted), a null and a repeat among them, 7 distinct.
FILES = ["f7", None, "f3", "f7", "f5", "f1", "f6", "f2", "f4"]


def reserved(name: str, files: str) -> str:
    return f"column {name!r}: extra column name is reserved (file(s) {files})"


@pytest.mark.parametrize(
    ("mutate", "problems"),
    [
        (lambda f: f.drop("_type_errors"), "_type_errors: expected String, got missing"),
        # every problem, in contract order, joined by "; "
        (lambda f: f.drop("_type_errors").with_columns(pl.col("_line").cast(pl.Int32)),
         "_line: expected Int64, got Int32; _type_errors: expected String, got missing"),
        # the reserved names; the first five distinct non-null files, in frame order
        (lambda f: f.with_columns(reasons=pl.lit("x")), reserved("reasons", "['f7', 'f3', 'f5', 'f1', 'f6']")),
        (lambda f: f.with_columns(__ct_text=pl.lit("x")), reserved("__ct_text", "['f7', 'f3', 'f5', 'f1', 'f6']")),
        (lambda f: f.with_columns(__ct_flag_mine=pl.lit(1), reason=pl.lit("r")),
         reserved("__ct_flag_mine", "['f7', 'f3', 'f5', 'f1', 'f6']") + "; "
         + reserved("reason", "['f7', 'f3', 'f5', 'f1', 'f6']")),
        # without _source_file there are no files to name (and that is a problem of its own)
        (lambda f: f.drop("_source_file").with_columns(reason=pl.lit("r")),
         "_source_file: expected String, got missing; " + reserved("reason", "[]")),
    ],
)
def test_contract_violations_name_the_partition_and_every_problem(mutate, problems):
    raw = raw_frame([row(i, _source_file=file) for i, file in enumerate(FILES)])
    with pytest.raises(ValueError) as err:
        split(mutate(raw))
    assert str(err.value) == "partition 2024-03-10: " + CONTRACT + problems


def test_names_that_look_reserved_but_are_not_are_carried_through():
    extras = {"Reasons": ["x"], "__CT_text": ["y"], "_ct_x": ["z"], "reason_note": ["w"]}
    result = split(raw_frame([row(1)], extras=extras))
    assert result.clean.columns[-4:] == list(extras)


def test_without_a_day_the_message_names_no_partition():
    with pytest.raises(ValueError) as err:
        _check_schema(raw_frame([row(1)]).drop("_line"))
    assert str(err.value) == CONTRACT + "_line: expected Int64, got missing"
