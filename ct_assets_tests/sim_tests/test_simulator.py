"""Tests for the drifting-data simulator (ct_assets.sim.simulator).

Why they exist: every downstream test and the demo trust the simulator to be
- deterministic (a re-materialised partition must see byte-identical input, or
  idempotency and point-in-time tests mean nothing);
- on the landing row contract, with labels that arrive late the way docs/CONTRACTS.md
  says consumers must handle;
- drifting exactly where a scenario says and nowhere else, so drift detectors, triggers
  and the promotion gate can be tested against a known truth;
- backed by a golden file that is really what ``golden_rows()`` produces.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pytest

from ct_assets.sim import cli as sim_cli
from ct_assets.sim import simulator as sim
from ct_assets.sim import vocabulary as txt
from ct_assets.sim.simulator import (
    BAD_KINDS,
    CONCEPT_CHANGE_SUBINTENT,
    DEFAULT_LABELS,
    GOLDEN_PATH,
    Scenario,
    SimulatorConfig,
    active_scenarios,
    dumps_rows,
    generate_day,
    generate_day_annotated,
    golden_rows,
    golden_rows_annotated,
    load_golden,
    write_day,
)

START = date(2026, 9, 1)
DEMO_SCENARIOS = (  # the embedded ct.yaml's scenarios
    Scenario("product_launch", 18),
    Scenario("quality_incident", 24, 24),
    Scenario("slang_shift", 28),
    Scenario("concept_change", 36),
    Scenario("label_shift", 46, 50),
)
DEMO = SimulatorConfig(labels=DEFAULT_LABELS, scenarios=DEMO_SCENARIOS)
PLAIN = SimulatorConfig(labels=DEFAULT_LABELS)
SLANG_RE = re.compile(r"(?<!\w)(?:%s)(?!\w)" % "|".join(map(re.escape, txt.SLANG_MARKERS)), re.IGNORECASE)
OUTAGE = ("technical_issue", "account_access")


def day(i: int) -> date:
    return START + timedelta(days=i)


def rows_for(config: SimulatorConfig, days: range) -> list[tuple[dict, sim.RowInfo]]:
    return [pair for i in days for pair in generate_day_annotated(config, START, day(i))]


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


# --- determinism -------------------------------------------------------------------


@pytest.mark.parametrize(
    "day_index",
    [
        0,  # plain old-world day
        24,  # quality incident day: corruption must be deterministic too
        40,  # launch + slang + concept change stacked
        48,  # label shift on top of everything
    ],
)
def test_same_seed_and_day_give_identical_bytes_in_any_order(day_index):
    first = dumps_rows(generate_day(DEMO, START, day(day_index)))
    # Generate other days (later and earlier) in between: output must not depend on it.
    for other in (day_index + 3, max(day_index - 5, 0), 60):
        generate_day(DEMO, START, day(other))
    assert dumps_rows(generate_day(DEMO, START, day(day_index))) == first


@pytest.mark.parametrize(
    "a, b",
    [
        ((7, 0), (7, 1)),  # same seed, next day
        ((7, 0), (8, 0)),  # other seed, same day
    ],
)
def test_seed_and_day_change_the_output(a, b):
    def gen(seed, i):
        return generate_day(SimulatorConfig(labels=DEFAULT_LABELS, seed=seed), START, day(i))

    texts_a = [r["text"] for r in gen(*a)]
    texts_b = [r["text"] for r in gen(*b)]
    assert texts_a != texts_b


@pytest.mark.parametrize(
    "day_index",
    [
        0,  # before every scenario
        17,  # the last day before the first scenario (product_launch at 18)
    ],
)
def test_scenarios_do_not_touch_days_before_they_start(day_index):
    assert dumps_rows(generate_day(DEMO, START, day(day_index))) == dumps_rows(
        generate_day(PLAIN, START, day(day_index))
    )


# --- row contract ------------------------------------------------------------------


@pytest.mark.parametrize(
    "day_index",
    [
        0,  # old world
        30,  # launch + slang texts (emoji, new names) must still be plain str rows
    ],
)
def test_rows_follow_the_landing_contract(day_index):
    rows = generate_day(DEMO, START, day(day_index))
    assert len(rows) == DEMO.rows_per_day
    d = day(day_index)
    lo = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    for r in rows:
        assert list(r) == ["event_id", "event_ts", "text", "label", "label_ts", "channel"]
        assert re.fullmatch(rf"{d:%Y%m%d}-\d{{5}}", r["event_id"])
        assert lo <= parse_ts(r["event_ts"]) < lo + timedelta(days=1)
        assert isinstance(r["text"], str) and r["text"].strip()
        assert r["label"] is None or r["label"] in DEFAULT_LABELS
        assert (r["label"] is None) == (r["label_ts"] is None)
        assert r["channel"] in sim.CHANNELS
    assert len({r["event_id"] for r in rows}) == len(rows)


@pytest.mark.parametrize(
    "same_day, max_delay, never",
    [
        (0.6, 3, 0.1),  # defaults
        (1.0, 3, 0.0),  # everything labelled the same day
        (0.3, 0, 0.2),  # no delay allowed: the delayed share becomes same-day
        (0.0, 5, 0.5),  # half never labelled, the rest days later
    ],
)
def test_labels_arrive_late_after_the_event(same_day, max_delay, never):
    config = SimulatorConfig(labels=DEFAULT_LABELS, same_day_label_share=same_day,
                             max_label_delay_days=max_delay, never_labelled_share=never)
    rows = [r for i in range(5) for r in generate_day(config, START, day(i))]
    n = len(rows)
    unlabelled = sum(r["label_ts"] is None for r in rows)
    assert unlabelled / n == pytest.approx(never, abs=0.04)
    delays = []
    for r in rows:
        if r["label_ts"] is None:
            continue
        event, label = parse_ts(r["event_ts"]), parse_ts(r["label_ts"])
        assert label > event
        delays.append((label.date() - event.date()).days)
    assert max(delays) <= max_delay
    expected_same = 1.0 - never if max_delay == 0 else min(same_day, 1.0 - never)
    assert sum(d == 0 for d in delays) / n == pytest.approx(expected_same, abs=0.05)


def test_label_noise_and_vague_texts_make_the_task_imperfect():
    pairs = rows_for(PLAIN, range(10))
    labelled = [(r, i) for r, i in pairs if r["label"] is not None]
    noisy = sum(r["label"] != i.true_label for r, i in labelled) / len(labelled)
    assert noisy == pytest.approx(sim.LABEL_NOISE, abs=0.015)
    assert sum(i.sub_intent == txt.VAGUE_SUBINTENT for _, i in pairs) / len(pairs) == pytest.approx(
        sim.VAGUE_SHARE, abs=0.02)


# --- scenarios ---------------------------------------------------------------------


def test_active_scenarios_respects_inclusive_window():
    names = lambda i: sorted(s.name for s in active_scenarios(DEMO, i))  # noqa: E731
    assert names(17) == []
    assert names(24) == ["product_launch", "quality_incident"]
    assert names(25) == ["product_launch"]
    assert names(50) == ["concept_change", "label_shift", "product_launch", "slang_shift"]
    assert "label_shift" not in names(51)


@pytest.mark.parametrize(
    "strength, low, high",
    [
        (1.0, 0.40, 0.65),  # full launch: about half the texts name a new product
        (0.5, 0.18, 0.38),  # half strength: about a quarter
    ],
)
def test_product_launch_brings_unseen_product_names(strength, low, high):
    config = SimulatorConfig(labels=DEFAULT_LABELS,
                             scenarios=(Scenario("product_launch", 3, None, strength),))
    has_new = lambda r: any(name in r["text"] for name in txt.LAUNCH_NAMES)  # noqa: E731
    before = [r for r, _ in rows_for(config, range(0, 3))]
    after = [r for r, _ in rows_for(config, range(3, 6))]
    assert not any(has_new(r) for r in before)
    assert low <= np.mean([has_new(r) for r in after]) <= high


@pytest.mark.parametrize(
    "strength, low, high",
    [
        (1.0, 0.5, 0.75),  # most phrasing replaced by slang
        (0.5, 0.22, 0.42),  # half as much
    ],
)
def test_slang_shift_brings_slang_tokens(strength, low, high):
    config = SimulatorConfig(labels=DEFAULT_LABELS, scenarios=(Scenario("slang_shift", 3, None, strength),))
    before = [r["text"] for r, _ in rows_for(config, range(0, 3))]
    after = [r["text"] for r, _ in rows_for(config, range(3, 6))]
    assert not any(SLANG_RE.search(t) for t in before)
    assert low <= np.mean([bool(SLANG_RE.search(t)) for t in after]) <= high


def test_label_shift_is_an_outage_spike_that_ends():
    config = SimulatorConfig(labels=DEFAULT_LABELS, scenarios=(Scenario("label_shift", 3, 5),))
    share = lambda days: np.mean([i.intent in OUTAGE for _, i in rows_for(config, days)])  # noqa: E731
    assert share(range(0, 3)) == pytest.approx(0.31, abs=0.05)
    assert share(range(3, 6)) == pytest.approx(0.60, abs=0.05)
    assert share(range(6, 9)) == pytest.approx(0.31, abs=0.05)
    # Only the prior moves: the label-arrival stream is untouched.
    plain = generate_day(PLAIN, START, day(4))
    shifted = generate_day(config, START, day(4))
    assert [r["label_ts"] is None for r in plain] == [r["label_ts"] is None for r in shifted]


def test_concept_change_moves_subscription_refunds_from_cancellation_to_refund():
    config = SimulatorConfig(labels=DEFAULT_LABELS, scenarios=(Scenario("concept_change", 4),))
    before = [i for _, i in rows_for(config, range(0, 4)) if i.sub_intent == CONCEPT_CHANGE_SUBINTENT]
    after = [i for _, i in rows_for(config, range(4, 8)) if i.sub_intent == CONCEPT_CHANGE_SUBINTENT]
    assert len(before) >= 20 and len(after) >= 20
    assert {i.true_label for i in before} == {"cancellation"}
    assert {i.true_label for i in after} == {"refund"}
    # Same texts before and after: only the truth changed (the file's label follows it).
    assert config_rows_text(config, 5) == config_rows_text(PLAIN, 5)


def config_rows_text(config: SimulatorConfig, i: int) -> list[str]:
    return [r["text"] for r in generate_day(config, START, day(i))]


def test_quality_incident_has_every_kind_of_bad_row():
    config = SimulatorConfig(labels=DEFAULT_LABELS, scenarios=(Scenario("quality_incident", 2, 2),))
    pairs = generate_day_annotated(config, START, day(2))
    rows = [r for r, _ in pairs]
    kinds = Counter(i.bad_kind for _, i in pairs if i.bad_kind)
    assert set(kinds) == set(BAD_KINDS)
    assert sum(kinds.values()) / len(rows) == pytest.approx(0.3, abs=0.01)
    texts = [r["text"] for r in rows]
    assert None in texts and "" in texts
    assert any(isinstance(t, str) and len(t) >= 100_000 for t in texts)
    assert any(isinstance(t, int) for t in texts)
    assert any(isinstance(t, str) and ("Ã©" in t or "â€" in t) for t in texts)
    assert {"billling", "other"} <= {r["label"] for r in rows}
    assert {"not-a-date", "2026-13-45T99:00:00Z", None} <= {r["event_ts"] for r in rows}
    by_id: dict[str, list[dict]] = {}
    for r in rows:
        by_id.setdefault(r["event_id"], []).append(r)
    dupes = [group for group in by_id.values() if len(group) > 1]
    assert dupes and all(g[0] == g[1] for g in dupes)  # exact copies
    # Still one valid UTF-8 JSON object per line, and the next day is clean again.
    data = dumps_rows(rows)
    assert [json.loads(line) for line in data.decode("utf-8").splitlines()] == rows
    assert not any(i.bad_kind for _, i in generate_day_annotated(config, START, day(3)))


# --- writing -----------------------------------------------------------------------


def test_write_day_replaces_the_file_atomically(tmp_path):
    config = SimulatorConfig(labels=DEFAULT_LABELS, rows_per_day=50)
    path = write_day(config, START, day(2), tmp_path)
    assert path == tmp_path / "dt=2026-09-03" / "events.jsonl"
    again = write_day(config, START, day(2), tmp_path)
    assert again == path
    assert [p.name for p in path.parent.iterdir()] == ["events.jsonl"]  # no temp files left
    assert path.read_bytes() == dumps_rows(generate_day(config, START, day(2)))
    assert len(path.read_text(encoding="utf-8").splitlines()) == 50


def test_write_day_failure_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    config = SimulatorConfig(labels=DEFAULT_LABELS, rows_per_day=20)
    path = write_day(config, START, day(0), tmp_path)
    old = path.read_bytes()

    def boom(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(sim.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_day(SimulatorConfig(labels=DEFAULT_LABELS, rows_per_day=30), START, day(0), tmp_path)
    assert path.read_bytes() == old
    assert [p.name for p in path.parent.iterdir()] == ["events.jsonl"]


# --- golden set --------------------------------------------------------------------


def test_golden_file_is_up_to_date():
    # If this fails: python -m ct_assets.sim.simulator golden > ct_assets/data/golden/golden_v1.jsonl
    assert GOLDEN_PATH.read_bytes() == dumps_rows(golden_rows())
    assert load_golden() == golden_rows()


def test_golden_covers_every_label_in_the_old_world_only():
    pairs = golden_rows_annotated()
    assert Counter(r["label"] for r, _ in pairs) == {label: sim.GOLDEN_PER_LABEL for label in DEFAULT_LABELS}
    assert all(r["event_id"].startswith("golden-") for r, _ in pairs)
    assert len({r["event_id"] for r, _ in pairs}) == len(pairs)
    assert not any(i.sub_intent in (CONCEPT_CHANGE_SUBINTENT, txt.VAGUE_SUBINTENT) for _, i in pairs)
    texts = [r["text"] for r, _ in pairs]
    assert not any(SLANG_RE.search(t) or any(n in t for n in txt.LAUNCH_NAMES) for t in texts)
    # A separate seed: the golden set is not a copy of the stream a model trains on.
    stream = {r["text"] for i in range(14) for r in generate_day(PLAIN, START, day(i))}
    assert np.mean([t in stream for t in texts]) < 0.15


# --- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Scenario("meteor_strike", 0), "scenario name"),  # unknown scenario
        (lambda: Scenario("label_shift", 5, 4), "end_day"),  # window ends before it starts
        (lambda: Scenario("label_shift", 5, None, 1.5), "strength"),  # strength outside [0, 1]
        (lambda: SimulatorConfig(labels=("billing",)), "labels"),  # a single label
        (lambda: SimulatorConfig(labels=("billing", "billing")), "labels"),  # duplicates
        (lambda: SimulatorConfig(labels=DEFAULT_LABELS, never_labelled_share=1.2), "never_labelled_share"),
        # concept_change relabels cancellation -> refund: both labels must exist
        (lambda: SimulatorConfig(labels=("billing", "cancellation"),
                                 scenarios=(Scenario("concept_change", 0),)), "concept_change"),
        # label_shift has nothing to shift to without an outage label
        (lambda: SimulatorConfig(labels=("billing", "refund"), scenarios=(Scenario("label_shift", 0),)),
         "label_shift"),
    ],
)
def test_invalid_configuration_is_rejected(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_day_before_start_is_rejected():
    with pytest.raises(ValueError, match="before start_date"):
        generate_day(PLAIN, START, START - timedelta(days=1))


def test_custom_labels_get_their_own_texts():
    config = SimulatorConfig(labels=("billing", "warranty_claim"))
    pairs = rows_for(config, range(2))
    warranty = [r["text"] for r, i in pairs
                if i.intent == "warranty_claim" and i.sub_intent != txt.VAGUE_SUBINTENT]
    assert warranty and all("warranty claim" in t.lower() for t in warranty)
    assert Counter(r["label"] for r, _ in golden_rows_annotated(config.labels)) == {
        "billing": sim.GOLDEN_PER_LABEL, "warranty_claim": sim.GOLDEN_PER_LABEL}


def test_cli_golden_prints_the_golden_file(capsysbinary):
    assert sim_cli.main(["golden"]) == 0
    assert capsysbinary.readouterr().out == GOLDEN_PATH.read_bytes()


def test_cli_write_creates_partitions(tmp_path):
    assert sim_cli.main(["write", "--start", "2026-09-01", "--days", "2", "--landing", str(tmp_path),
                     "--rows", "10", "--scenario", "quality_incident:1:1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dt=2026-09-01", "dt=2026-09-02"]


# --- difficulty --------------------------------------------------------------------


def test_a_small_classifier_lands_near_ninety_percent_before_drift():
    # The demo needs room both ways: a model that is not perfect on day one (label noise,
    # vague and mixed-intent texts), and drift that measurably hurts it. TF-IDF + naive
    # Bayes is the "small classifier" (fast; logistic regression scores the same).
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import make_pipeline

    def labelled(config, days):
        rows = [r for r, _ in rows_for(config, days) if r["label"] is not None]
        return [r["text"] for r in rows], [r["label"] for r in rows]

    drifted = SimulatorConfig(labels=DEFAULT_LABELS, scenarios=(Scenario("slang_shift", 10),))
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), ComplementNB())
    model.fit(*labelled(drifted, range(0, 5)))
    pre = model.score(*labelled(drifted, range(7, 9)))
    post = model.score(*labelled(drifted, range(10, 12)))
    assert 0.85 <= pre <= 0.96
    assert post < pre - 0.07
