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
    path = tmp_path / "custom.yaml"
    path.write_text(yaml.safe_dump(raw))
    monkeypatch.setenv("CT_CONFIG", str(path))
    assert load_settings().labels == ("a", "b")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(SettingsError, match="settings file not found: .*nope.yaml"):
        load_settings(tmp_path / "nope.yaml")
