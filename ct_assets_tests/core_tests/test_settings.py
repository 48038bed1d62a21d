"""ct.yaml is validated at load, and every error names the key and the bad value."""

from __future__ import annotations

import pytest
import yaml

from ct_assets.core.settings import (
    SettingsError,
    default_config_text,
    load_settings,
    parse_settings,
)


def _raw():
    return yaml.safe_load(default_config_text())


def test_embedded_default_loads():
    s = parse_settings(_raw())
    assert s.source.kind == "simulator" and len(s.labels) == 6


@pytest.mark.parametrize(
    "path, value, expected",
    [
        # an unknown source kind
        (("source", "kind"), "kafka", "source.kind"),
        # a fraction out of range
        (("quality", "max_bad_fraction"), 1.5, "quality.max_bad_fraction"),
        # a typo in a key is an error, not silently ignored
        (("drift", "thresholds", "label_jss"), 0.1, "drift.thresholds.label_jss"),
        # a date that is not a date
        (("partitions", "start_date"), "yesterday", "partitions.start_date"),
        # k of n with k > n
        (("triggers", "drift_k"), 5, "drift_k 5 > drift_n 3"),
        # holdout as long as the window
        (("training", "holdout_days"), 14, "holdout_days 14 >= window_days 14"),
    ],
)
def test_errors_name_key_and_value(path, value, expected):
    raw = _raw()
    node = raw
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    with pytest.raises(SettingsError) as err:
        parse_settings(raw, "ct.yaml")
    assert expected in str(err.value)
    assert repr(value) in str(err.value) or str(value) in str(err.value)


def test_ct_config_overrides_the_path(tmp_path, monkeypatch):
    raw = _raw()
    raw["labels"] = ["a", "b"]
    raw.pop("golden")  # the demo's golden set is for the demo's labels
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_CONFIG", str(path))
    assert load_settings().labels == ("a", "b")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="settings file not found: .*nope.yaml"):
        load_settings(tmp_path / "nope.yaml")


# -- golden set -------------------------------------------------------------------------


def _golden_file(tmp_path, rows, name="golden.jsonl"):
    import json

    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _golden_settings(tmp_path, rows=None, **golden):
    raw = _raw()
    raw["labels"] = ["pos", "neg"]
    raw["golden"] = {"min_per_label": 2, **golden}
    if rows is not None:
        raw["golden"]["path"] = str(_golden_file(tmp_path, rows))
    return parse_settings(raw, "test.yaml", home_root=tmp_path)


GOOD = [{"text": f"fine {i}", "label": "pos"} for i in range(2)] + [{"text": f"bad {i}", "label": "neg"} for i in range(2)]


@pytest.mark.parametrize(
    ("rows", "golden", "message"),
    [
        # a label the classifier does not have: named with its row
        (GOOD + [{"text": "x", "label": "billing"}], {}, "row 5 has label 'billing'"),
        # too few rows for a label, with the count and the setting to change
        (GOOD[:3], {}, "too few rows for 'neg': 1 .*golden.min_per_label"),
        # a row without text
        ([*GOOD, {"label": "pos"}], {}, "row 5 has no text"),
        # unsupported_labels must be configured labels
        (GOOD, {"unsupported_labels": ["other"]}, r"unsupported_labels: \['other'\]"),
    ],
)
def test_golden_set_is_checked_when_settings_load(tmp_path, rows, golden, message):
    with pytest.raises(SettingsError, match=message) as err:
        _golden_settings(tmp_path, rows, **golden)
    assert "golden" in str(err.value)
    if "unsupported_labels" not in golden:  # a problem with the file names the file
        assert str(tmp_path) in str(err.value)


def test_a_label_listed_unsupported_may_have_few_golden_rows(tmp_path):
    settings = _golden_settings(tmp_path, GOOD[:3], unsupported_labels=["neg"])
    assert settings.golden.unsupported_labels == ("neg",)


def test_missing_golden_file_names_the_path_and_the_way_out(tmp_path):
    raw = _raw()
    raw["golden"] = {"path": "nowhere/golden.jsonl"}
    with pytest.raises(SettingsError, match=r"(?s)nowhere/golden.jsonl.*ct golden carve"):
        parse_settings(raw, "test.yaml", home_root=tmp_path)


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_golden_formats_read_the_same_rows_with_slices(tmp_path, fmt):
    import polars as pl

    from ct_assets.evaluation.golden import load_golden

    rows = [{"text": "a b", "label": "pos", "slice": "web"}, {"text": "c d", "label": "neg", "slice": "app"}]
    path = tmp_path / f"g.{fmt}"
    frame = pl.DataFrame(rows)
    {"jsonl": frame.write_ndjson, "csv": frame.write_csv, "parquet": frame.write_parquet}[fmt](path)
    golden = load_golden(path)
    assert golden.texts == ["a b", "c d"] and golden.labels == ["pos", "neg"] and golden.slices == ["web", "app"]
    assert len(golden.sha256) == 64 and golden.version["rows"] == 2


def test_relative_golden_path_is_under_ct_home_and_package_paths_resolve(tmp_path):
    from ct_assets.core.home import CtHome

    _golden_file(tmp_path, GOOD)
    raw = _raw()
    raw["labels"] = ["pos", "neg"]
    raw["golden"] = {"path": "golden.jsonl", "min_per_label": 2}
    assert parse_settings(raw, "test.yaml", home_root=tmp_path).golden.path == "golden.jsonl"
    demo = CtHome(tmp_path).resolve("package://ct_assets.sim/golden/golden_v1.jsonl")
    assert demo.is_file() and demo.name == "golden_v1.jsonl"


def test_without_a_golden_set_the_model_half_refuses_in_one_line():
    from ct_assets.evaluation.golden import GoldenSetError
    from ct_assets.evaluation.resources import GoldenSetResource

    with pytest.raises(GoldenSetError, match="no golden set configured.*golden.path.*ct golden carve"):
        GoldenSetResource(path=None, labels=["a", "b"], min_per_label=1).load()
