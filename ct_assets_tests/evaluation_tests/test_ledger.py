"""The forgetting ledger (evaluation/ledger.py): per-label and per-slice golden accuracy per
version, its file, its pivot across versions and the timeline table."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ct_assets.demo.timeline import render_timeline_html
from ct_assets.evaluation.challenger import slice_accuracy
from ct_assets.evaluation.ledger import (
    LEDGER_FILE,
    build_ledger,
    ledger_by_version,
    ledger_drops,
    ledger_markdown,
    replay_contrast,
    trained_rows_by_label,
    write_ledger,
)
from ct_assets.evaluation.metrics import classification_metrics

LABELS = ["a", "b", "c"]
TRUTH = ["a", "a", "b", "b", "b", "c", "a", "b"]
SLICES = ["x", "x", "y", "y", "x", "y", "x", "y"]


def _entries(version: int, predicted: list[str], partition: str, champion: list[str] | None = None,
             changed=(), trained_rows=None) -> list[dict]:
    ch = classification_metrics(TRUTH, predicted, None, LABELS)
    cp = classification_metrics(TRUTH, champion, None, LABELS) if champion is not None else None
    return build_ledger(version=version, partition=partition, golden_sha256="sha", challenger_golden=ch,
                        champion_golden=cp, slices=slice_accuracy(TRUTH, predicted, champion, SLICES),
                        changed_classes=changed, trained_rows=trained_rows)


def test_entries_are_per_label_recall_and_per_slice_accuracy_with_the_champion_beside():
    predicted = ["a", "b", "b", "b", "a", "c", "a", "b"]
    entries = _entries(2, predicted, "2026-09-10", champion=TRUTH, changed=["b"])
    by = {(e["kind"], e["group"]): e for e in entries}
    assert by[("overall", "(all)")]["accuracy"] == pytest.approx(6 / 8)
    assert by[("overall", "(all)")]["champion"] == pytest.approx(1.0)
    # a: rows 0,1,6 -> 2 right; b: rows 2,3,4,7 -> 3 right; c: row 5 right.
    assert (by[("label", "a")]["accuracy"], by[("label", "a")]["rows"]) == (pytest.approx(2 / 3), 3)
    assert by[("label", "b")]["accuracy"] == pytest.approx(3 / 4) and by[("label", "b")]["changed"] is True
    assert by[("label", "a")]["changed"] is False and by[("label", "c")]["accuracy"] == 1.0
    # x: rows 0,1,4,6 -> 0,6 right (1: b for a, 4: a for b); y: rows 2,3,5,7 all right.
    assert by[("slice", "x")]["accuracy"] == pytest.approx(2 / 4) and by[("slice", "y")]["accuracy"] == 1.0
    assert all(e["version"] == 2 and e["partition"] == "2026-09-10" and e["golden_sha256"] == "sha" for e in entries)


def test_a_label_without_golden_rows_is_kept_as_unmeasured():
    ch = classification_metrics(["a", "a"], ["a", "b"], None, ["a", "b", "zz"])
    entries = build_ledger(version=1, partition="d", golden_sha256="s", challenger_golden=ch, champion_golden=None)
    zz = next(e for e in entries if e["group"] == "zz")
    assert (zz["rows"], zz["accuracy"], zz["champion"]) == (0, None, None)
    assert "| label | zz | 0 | — | — |  |" in ledger_markdown(entries)


def test_the_file_round_trips(tmp_path):
    entries = _entries(1, TRUTH, "d")
    path = write_ledger(entries, tmp_path)
    assert path.name == LEDGER_FILE and json.loads(path.read_text()) == entries


def test_versions_pivot_and_the_drop_of_a_forgotten_class_shows():
    v1 = _entries(1, TRUTH, "2026-09-05")
    forgets_c = ["a", "a", "b", "b", "b", "b", "a", "b"]  # c's only row now wrong
    v2 = _entries(2, forgets_c, "2026-09-08")
    v3 = _entries(3, TRUTH, "2026-09-12")
    rerun_of_v2 = _entries(2, TRUTH, "2026-09-09")  # a later evaluation of v2 replaces the earlier one
    rows = ledger_by_version(v1 + v2 + v3)
    assert [r["version"] for r in rows] == [1, 2, 3]
    assert rows[1]["label:c"] == 0.0 and rows[2]["label:c"] == 1.0 and rows[0]["overall"] == 1.0
    drops = ledger_drops(rows)
    assert drops["label:c"] == 1.0 and drops["label:a"] == 0.0 and drops["overall"] == pytest.approx(1 / 8)
    assert ledger_by_version(v2 + rerun_of_v2)[0]["label:c"] == 1.0
    assert ledger_by_version(rerun_of_v2 + v2)[0]["partition"] == "2026-09-09"
    assert ledger_drops([]) == {}


def test_the_timeline_page_has_the_ledger_table(tmp_path):
    records = [{"day": "2026-09-01", "champion_version": 1, "champion_accuracy": 0.9, "static_accuracy": 0.9}]
    ledger = _entries(1, TRUTH, "2026-09-05") + _entries(2, ["a", "a", "b", "b", "b", "b", "a", "b"], "2026-09-08")
    page = render_timeline_html(records, tmp_path / "t.html", "t", "t.png", [{"a": 1}], ledger=ledger).read_text()
    assert "<h2>Forgetting ledger</h2>" in page
    table = page.split("<h2>Forgetting ledger</h2>", 1)[1]
    assert "<th>label:c</th>" in table and "<th>slice:x</th>" in table and "largest drop" in table
    page_without = render_timeline_html(records, tmp_path / "u.html", "t", "t.png", [{"a": 1}]).read_text()
    assert "Forgetting ledger" not in page_without


def test_trained_rows_count_window_and_replay_of_train_and_val_only():
    frame = pl.DataFrame({"label": ["a", "a", "b", "c", "c", None], "_origin": ["window", "replay", "replay", "window",
                                                                             "window", "window"],
                          "_split": ["train", "val", "train", "holdout", "train", "train"]})
    assert trained_rows_by_label(frame) == {"a": (1, 1), "b": (0, 1), "c": (1, 0)}


def test_replay_contrast_lists_the_versions_that_saw_a_class_only_through_replay(tmp_path):
    """c leaves the window in v2 (replay still has 3 of its rows) and v3 (none at all): its
    rows appear with the golden recall beside v1's; a and b (never absent) do not; a class
    whose window keeps a few noise rows (4 of 90) still counts as gone."""
    v1 = _entries(1, TRUTH, "2026-09-05", trained_rows={"a": (90, 0), "b": (90, 0), "c": (40, 0)})
    v2 = _entries(2, TRUTH, "2026-09-08", trained_rows={"a": (90, 1), "b": (90, 1), "c": (0, 3)})
    v3 = _entries(3, ["a", "a", "b", "b", "b", "b", "a", "b"], "2026-09-12", trained_rows={"a": (90, 0), "b": (90, 0)})
    rows = replay_contrast(v1 + v2 + v3)
    assert [(r["class"], r["version"], r["window rows"], r["replay rows"], r["left the window"]) for r in rows] == [
        ("c", 1, 40, 0, False), ("c", 2, 0, 3, True), ("c", 3, 0, 0, True)]
    assert [r["golden recall"] for r in rows] == [1.0, 1.0, 0.0] and {r["first version's recall"] for r in rows} == {1.0}
    assert replay_contrast(v1) == [] and replay_contrast(_entries(1, TRUTH, "d")) == []
    records = [{"day": "2026-09-01", "champion_version": 1, "champion_accuracy": 0.9, "static_accuracy": 0.9}]
    page = render_timeline_html(records, tmp_path / "t.html", "t", "t.png", [{"a": 1}], ledger=v1 + v2 + v3).read_text()
    assert "<h2>Replay vs forgetting</h2>" in page and "<th>replay rows</th>" in page.split("Replay vs forgetting", 1)[1]


def test_a_handful_of_noise_rows_still_counts_as_having_left_the_window():
    v1 = _entries(1, TRUTH, "d1", trained_rows={"a": (150, 0), "b": (150, 0), "c": (150, 0)})
    v2 = _entries(2, TRUTH, "d2", trained_rows={"a": (150, 9), "b": (150, 9), "c": (4, 19)})
    assert [(r["version"], r["left the window"]) for r in replay_contrast(v1 + v2)] == [(1, False), (2, True)]
