"""`ct golden carve` and the `ct` entry points for a user's own data.

It exists because the golden set is what every promotion is judged on: it must be
stratified, the same every time it is carved from the same rows, free of repeated texts,
cut at the point in time it claims, loadable by ``load_golden``, and kept out of training.
The validated days come from the real airline-tweets fixture, imported and validated.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest
import yaml
from upath import UPath

from ct_assets.cli import main
from ct_assets.core.settings import get_settings, load_settings
from ct_assets.core.time import days_between
from ct_assets.evaluation.carve import CarveError, carve_golden, select_golden
from ct_assets.evaluation.golden import check_golden, load_golden
from ct_assets.ingest.importer import import_files
from ct_assets.lake.parquet import partition_path, write_parquet_atomic
from ct_assets.training.window import build_training_set, golden_overlap, matching_key
from ct_assets_tests.ingest_tests.test_importer import DAYS, FIXTURE, LABELS, TWEETS, validate_day

UTC = dt.timezone.utc
D1, D3, LAST = DAYS[0], DAYS[2], DAYS[-1]


def write_validated(landing: Path, lake: Path, days) -> dict[dt.date, pl.DataFrame]:
    """validated_window partitions of imported days, as the asset stores them."""
    out = {}
    for day in days:
        out[day] = validate_day(landing, day)[1].clean
        write_parquet_atomic(out[day], partition_path(UPath(lake), ["validated_window"], day.isoformat()))
    return out


@pytest.fixture(scope="module")
def tweets_lake(tmp_path_factory) -> tuple[Path, dict[dt.date, pl.DataFrame]]:
    root = tmp_path_factory.mktemp("tweets")
    import_files([FIXTURE], root / "landing", TWEETS)
    return root / "lake", write_validated(root / "landing", root / "lake", DAYS)


def _label_counts(path: Path) -> dict[str, int]:
    return dict(pl.DataFrame(list(load_golden(path).rows)).group_by("label").len().sort("label").iter_rows())


@pytest.mark.parametrize(
    "start, end, per_label, expected",
    [
        # three ordinary days, 600 rows: every label has 100 distinct texts
        (D1, D3, 100, {"negative": 100, "neutral": 100, "positive": 100}),
        # one day asked for more than it has: neutral and positive give all they have
        (D1, D1, 80, {"negative": 80, "neutral": 43, "positive": 38}),
    ],
)
def test_carve_is_stratified_and_loads(tweets_lake, tmp_path, start, end, per_label, expected):
    lake, _ = tweets_lake
    result = carve_golden(lake, start=start, end=end, per_label=per_label, out=tmp_path / "g.jsonl", labels=LABELS)
    assert result.counts == expected == _label_counts(tmp_path / "g.jsonl")
    golden = load_golden(tmp_path / "g.jsonl")
    # the printed ct.yaml lines are accepted by the same check settings run at load
    check_golden(golden, LABELS, min_per_label=result.min_per_label)
    assert result.min_per_label == min(expected.values())
    assert set(golden.rows[0]) == {"event_id", "text", "label"}
    report = result.report()
    for label, n in expected.items():
        assert f"{label:<20}{n:>6}" in report
        assert (f"WARNING: label {label!r} has only {n} row(s)" in report) == (n < per_label)
    assert f'golden:\n  path: "{tmp_path / "g.jsonl"}"\n  min_per_label: {result.min_per_label}' in report


def test_carve_is_deterministic_whatever_the_row_order_ids_or_files(tweets_lake, tmp_path):
    lake, frames = tweets_lake
    shuffled = tmp_path / "shuffled_lake"
    for day, frame in frames.items():
        # Same rows, reversed, in another lake: the selection follows the texts, not positions.
        write_parquet_atomic(frame.reverse(), partition_path(UPath(shuffled), ["validated_window"], day.isoformat()))
    a = carve_golden(lake, start=D1, end=LAST, per_label=60, out=tmp_path / "a.jsonl", labels=LABELS)
    b = carve_golden(lake, start=D1, end=LAST, per_label=60, out=tmp_path / "b.jsonl", labels=LABELS)
    c = carve_golden(shuffled, start=D1, end=LAST, per_label=60, out=tmp_path / "c.jsonl", labels=LABELS)
    assert a.path.read_bytes() == b.path.read_bytes() == c.path.read_bytes()
    keys = [matching_key(r["text"]) for r in load_golden(a.path).rows]
    assert len(keys) == len(set(keys)) == 180
    # the real data repeats texts (retweets, exact duplicate rows on Feb 24, a few with two labels)
    assert a.duplicates_removed > 0 and a.conflicting_removed > 0


def _frame(rows: list[tuple]) -> pl.DataFrame:
    """Validated rows (event_id, text, label, label_ts hour on Feb 17, or a day offset)."""
    out = []
    for event_id, text, label, label_day in rows:
        ts = dt.datetime(2015, 2, 17, 9, tzinfo=UTC)
        out.append({"event_id": event_id, "event_ts": ts, "text": text, "label": label,
                    "label_ts": None if label is None else ts + dt.timedelta(days=label_day)})
    return pl.DataFrame(out, schema={"event_id": pl.Utf8, "event_ts": pl.Datetime("us", "UTC"), "text": pl.Utf8,
                                     "label": pl.Utf8, "label_ts": pl.Datetime("us", "UTC")})


@pytest.mark.parametrize(
    "rows, expected",
    [
        # the same text up to case and whitespace is one golden row
        ([("a", "Late  flight", "negative", 0), ("b", "late flight ", "negative", 0)], {"negative": 1}),
        # a text carrying two labels has no single answer: left out entirely
        ([("a", "ok I guess", "neutral", 0), ("b", "OK i guess", "positive", 0), ("c", "great", "positive", 0)],
         {"positive": 1}),
        # a label that arrives after the end of the range is unknown as of it
        ([("a", "great", "positive", 0), ("b", "awful", "negative", 1)], {"positive": 1}),
        # unlabelled rows are never golden
        ([("a", "great", "positive", 0), ("b", "hmm", None, 0)], {"positive": 1}),
        # a label ct.yaml does not list is not carved
        ([("a", "great", "positive", 0), ("b", "meh", "mixed", 0)], {"positive": 1}),
    ],
)
def test_select_golden_rules(rows, expected):
    chosen, _ = select_golden(_frame(rows), as_of=D1, per_label=5, labels=LABELS)
    assert dict(chosen.group_by("label").len().iter_rows()) == expected


def test_a_slice_column_is_carried(tmp_path):
    frame = _frame([("a", "great", "positive", 0), ("b", "awful", "negative", 0)]).with_columns(
        slice=pl.Series(["United", "Delta"]))
    write_parquet_atomic(frame, partition_path(UPath(tmp_path / "lake"), ["validated_window"], D1.isoformat()))
    result = carve_golden(tmp_path / "lake", start=D1, end=D1, per_label=5, out=tmp_path / "g.jsonl", labels=LABELS)
    assert sorted(load_golden(result.path).slices) == ["Delta", "United"]
    assert "WARNING: label 'neutral' has no rows" in result.report()
    assert "unsupported_labels: [neutral]" in result.settings_yaml()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        # nothing validated in the range: name the range and the lake folder, say what to run
        ({"start": dt.date(2016, 1, 1), "end": dt.date(2016, 1, 3)},
         (r"no validated_window partitions for 2016-01-01..2016-01-03 in .*lake/validated_window; "
          r"materialize validated_window")),
        # a backwards range
        ({"start": D3, "end": D1}, "--end 2015-02-17 is before --start 2015-02-19"),
        # load_golden picks the format by suffix, so JSONL must be named .jsonl
        ({"out_name": "g.csv"}, "must end in .jsonl"),
        # zero rows per label is no golden set
        ({"per_label": 0}, "--per-label must be at least 1"),
    ],
)
def test_carve_errors_are_clear(tweets_lake, tmp_path, kwargs, message):
    lake, _ = tweets_lake
    args = {"start": D1, "end": D3, "per_label": 10, **kwargs}
    out = tmp_path / args.pop("out_name", "g.jsonl")
    with pytest.raises(CarveError, match=message):
        carve_golden(lake, out=out, labels=LABELS, **args)
    assert not out.exists()


def test_carved_rows_never_enter_training(tweets_lake, tmp_path):
    lake, frames = tweets_lake
    carve_golden(lake, start=D1, end=D3, per_label=50, out=tmp_path / "g.jsonl", labels=LABELS)
    golden = load_golden(tmp_path / "g.jsonl")
    kwargs = {"as_of": LAST, "window_days": 8, "replay_pool": frames[D1].clear(), "replay_fraction": 0.0,
              "val_fraction": 0.1, "holdout_days": 2, "seed": 13}
    with_golden = build_training_set(frames, golden_ids=golden.ids, golden_texts=set(golden.texts), **kwargs)
    without = build_training_set(frames, golden_ids=set(), golden_texts=set(), **kwargs)
    for split in (with_golden.train, with_golden.val, with_golden.holdout):
        assert golden_overlap(split, golden.ids, set(golden.texts)) == 0
    # the carved rows (and their repeated texts elsewhere in the window) were really removed
    assert golden_overlap(pl.concat([without.train, without.val, without.holdout]), golden.ids,
                          set(golden.texts)) == with_golden.stats["leaked_removed"] >= len(golden.rows) == 150


FIXTURE_CONFIG = {
    "labels": list(LABELS),
    "source": {"kind": "landing_zone", "path": "landing"},
    "partitions": {"start_date": "2015-02-17"},
    "reference": {"start": "2015-02-17", "end": "2015-02-19"},
}


@pytest.fixture
def ct_env(tmp_path, monkeypatch):
    """CT_HOME and CT_CONFIG for `ct` on the fixture; settings reloaded on both sides."""
    home, config = tmp_path / "ct_home", tmp_path / "ct.yaml"
    config.write_text(yaml.safe_dump(FIXTURE_CONFIG))
    monkeypatch.setenv("CT_HOME", str(home))
    monkeypatch.setenv("CT_CONFIG", str(config))
    get_settings.cache_clear()
    yield home, config
    get_settings.cache_clear()


def test_ct_import_and_ct_golden_carve_end_to_end(ct_env, tmp_path, capsys):
    home, config = ct_env
    assert main(["golden", "carve", "--start", "2015-02-17", "--end", "2015-02-19", "--per-label", "20",
                 "--out", str(tmp_path / "golden.jsonl")]) == 2
    assert "materialize validated_window" in capsys.readouterr().err

    assert main(["import", str(FIXTURE), "--text", "text", "--label", "airline_sentiment",
                 "--time", "tweet_created", "--id", "tweet_id"]) == 0
    out = capsys.readouterr().out
    assert "1600 rows read, 1600 placed in 8 day(s), 0 not placed" in out
    assert "2015-02-24      200  dt=2015-02-24/import-tweets_sample.jsonl" in out
    assert "labels are treated as known at event time" in out
    # validated_window over the imported days, as the asset would store them
    write_validated(home / "landing", home / "lake", days_between(D1, D3))

    assert main(["golden", "carve", "--start", "2015-02-17", "--end", "2015-02-19", "--per-label", "20",
                 "--out", str(tmp_path / "golden.jsonl")]) == 0
    out = capsys.readouterr().out
    assert _label_counts(tmp_path / "golden.jsonl") == {"negative": 20, "neutral": 20, "positive": 20}
    # the printed lines, pasted into ct.yaml, give settings that load (the golden set is checked at load)
    lines = out[out.index("golden:\n"):]
    config.write_text(yaml.safe_dump(FIXTURE_CONFIG) + lines)
    settings = load_settings(config)
    assert (settings.golden.path, settings.golden.min_per_label) == (str(tmp_path / "golden.jsonl"), 20)


def test_ct_import_returns_non_zero_when_nothing_is_placed(ct_env, tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_text("text,airline_sentiment,tweet_created\nhello,positive,not a time\n", encoding="utf-8")
    assert main(["import", str(src), "--text", "text", "--label", "airline_sentiment",
                 "--time", "tweet_created"]) == 1
    captured = capsys.readouterr()
    assert "bad.csv" in captured.out and "unparseable_time" in captured.out
    assert "no row could be placed" in captured.err
    assert main(["import", str(tmp_path / "missing.csv"), "--text", "t", "--label", "l", "--time", "w"]) == 2
    assert "missing.csv: cannot read" in capsys.readouterr().err
