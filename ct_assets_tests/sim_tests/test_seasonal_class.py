"""Tests for the ``seasonal_class`` scenario (ct_assets.sim.seasonal).

Why they exist: the scenario is the known truth behind the forgetting experiment (a
sliding window loses a class that is away, replay keeps it), so it must remove exactly
the class it names, exactly on its days, by exactly ``strength``, and leave everything
else (row count, the other labels' mix, every other day's bytes, the other random
streams) as it was; otherwise a forgetting result could come from the simulator.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import pytest
from pydantic import ValidationError

from ct_assets.core.settings import ScenarioSettings, SettingsError, parse_settings
from ct_assets.sim import seasonal
from ct_assets.sim.simulator import (
    DEFAULT_LABELS,
    LABEL_NOISE,
    Scenario,
    SimulatorConfig,
    dumps_rows,
    generate_day,
    generate_day_annotated,
    label_prior,
)

START = date(2026, 9, 1)
N = 2000  # rows per day: sampling sd of a ~0.15 share is ~0.008
AWAY = "refund"
FIRST, LAST = 3, 6  # the absence, inclusive


def config(*scenarios: Scenario, rows: int = N) -> SimulatorConfig:
    return SimulatorConfig(labels=DEFAULT_LABELS, rows_per_day=rows, scenarios=scenarios)


PLAIN = config()
GONE = config(Scenario("seasonal_class", FIRST, LAST, 1.0, AWAY))
HALF = config(Scenario("seasonal_class", FIRST, LAST, 0.5, AWAY))
BASE = dict(zip(DEFAULT_LABELS, label_prior(DEFAULT_LABELS)))


@lru_cache(maxsize=None)
def annotated(cfg: SimulatorConfig, i: int):
    return generate_day_annotated(cfg, START, START + timedelta(days=i))


def intent_share(cfg: SimulatorConfig, i: int) -> dict[str, float]:
    rows = annotated(cfg, i)
    counts = Counter(info.intent for _, info in rows)
    return {label: counts[label] / len(rows) for label in DEFAULT_LABELS}


def tol(p: float, n: int = N) -> float:
    return 4.5 * np.sqrt(p * (1 - p) / n)  # deterministic seed: a generous but real bound


def test_strength_one_removes_the_class_and_keeps_the_row_count():
    rows = annotated(GONE, FIRST)
    assert len(rows) == N
    assert intent_share(GONE, FIRST)[AWAY] == 0.0
    # Annotated labels still show it at the label-noise rate only (annotator mistakes).
    labelled = [r["label"] for r, _ in rows if r["label"] is not None]
    noise_share = LABEL_NOISE / (len(DEFAULT_LABELS) - 1)
    assert labelled.count(AWAY) / len(labelled) < noise_share + tol(noise_share, len(labelled))


def test_strength_half_halves_the_share_exactly_in_the_prior_and_about_in_the_rows():
    away = {AWAY: 0.5}
    prior = seasonal.without_absent(label_prior(DEFAULT_LABELS), DEFAULT_LABELS, away, FIRST)
    i = DEFAULT_LABELS.index(AWAY)
    assert prior[i] == pytest.approx(BASE[AWAY] / 2)
    assert prior.sum() == pytest.approx(1.0)
    share = intent_share(HALF, FIRST + 1)[AWAY]
    assert abs(share - BASE[AWAY] / 2) < tol(BASE[AWAY] / 2)


@pytest.mark.parametrize("cfg", [GONE, HALF], ids=["strength1", "strength0.5"])
def test_other_labels_keep_their_relative_sizes(cfg):
    s = 1.0 if cfg is GONE else 0.5
    prior = seasonal.without_absent(label_prior(DEFAULT_LABELS), DEFAULT_LABELS, {AWAY: s}, FIRST)
    others = [l for l in DEFAULT_LABELS if l != AWAY]
    base_rest = 1 - BASE[AWAY]
    got_rest = 1 - BASE[AWAY] * (1 - s)
    for label in others:  # the prior: exactly in proportion
        assert prior[DEFAULT_LABELS.index(label)] / got_rest == pytest.approx(BASE[label] / base_rest)
    share = intent_share(cfg, LAST)
    for label in others:  # the rows: within sampling error
        expected = BASE[label] / base_rest * got_rest
        assert abs(share[label] - expected) < tol(expected), label


@pytest.mark.parametrize("i", [FIRST - 1, LAST + 1])
def test_before_and_after_the_share_is_the_base_prior(i):
    assert abs(intent_share(GONE, i)[AWAY] - BASE[AWAY]) < tol(BASE[AWAY])


@pytest.mark.parametrize("i", [0, FIRST - 1, LAST + 1, LAST + 5])
def test_days_outside_the_absence_are_byte_identical_to_a_run_without_it(i):
    d = START + timedelta(days=i)
    small = (Scenario("seasonal_class", FIRST, LAST, 1.0, AWAY),)
    assert dumps_rows(generate_day(config(*small, rows=300), START, d)) == \
        dumps_rows(generate_day(config(rows=300), START, d))


def test_inside_the_absence_only_the_intents_move():
    # The other streams (event times, label arrival, channel) draw exactly as without the
    # scenario: the absence reshapes the prior and nothing else.
    with_it, without = annotated(GONE, FIRST), annotated(PLAIN, FIRST)
    key = lambda r: (r["event_id"], r["event_ts"], r["label_ts"], r["channel"])  # noqa: E731
    assert [key(r) for r, _ in with_it] == [key(r) for r, _ in without]
    moved = sum(a.intent != b.intent for (_, a), (_, b) in zip(with_it, without))
    was_away = sum(b.intent == AWAY for _, b in without)
    assert moved == was_away  # exactly the class's rows changed intent, no others
    # Rows that were another label's keep that label.
    assert all(a.intent == b.intent for (_, a), (_, b) in zip(with_it, without) if b.intent != AWAY)


def test_deterministic_by_seed_and_independent_of_generation_order():
    small = config(Scenario("seasonal_class", 1, 2, 1.0, AWAY), rows=200)
    days = [START + timedelta(days=i) for i in range(4)]
    forward = [dumps_rows(generate_day(small, START, d)) for d in days]
    backward = [dumps_rows(generate_day(small, START, d)) for d in reversed(days)][::-1]
    assert forward == backward
    other_seed = SimulatorConfig(labels=DEFAULT_LABELS, rows_per_day=200, seed=8, scenarios=small.scenarios)
    assert dumps_rows(generate_day(other_seed, START, days[1])) != forward[1]


def test_never_returns_when_end_day_is_unset():
    forever = config(Scenario("seasonal_class", 1, None, 1.0, AWAY), rows=300)
    for i in (1, 30, 400):
        rows = generate_day_annotated(forever, START, START + timedelta(days=i))
        assert not any(info.intent == AWAY for _, info in rows)


def test_combines_with_label_shift_on_the_same_day():
    # The absence applies on top of the outage: technical_issue (an outage label) is gone,
    # account_access keeps its outage share, scaled up by what technical_issue left.
    both = config(Scenario("label_shift", 0, None, 1.0),
                  Scenario("seasonal_class", 0, None, 1.0, "technical_issue"))
    outage = dict(zip(DEFAULT_LABELS, label_prior(DEFAULT_LABELS, 1.0)))
    share = intent_share(both, 2)
    assert share["technical_issue"] == 0.0
    expected = outage["account_access"] / (1 - outage["technical_issue"])
    assert expected == pytest.approx(0.2 / 0.6)
    assert abs(share["account_access"] - expected) < tol(expected)
    # A non-outage class leaving during an outage: outage labels keep their ratio.
    other = config(Scenario("label_shift", 0, None, 1.0), Scenario("seasonal_class", 0, None, 1.0, "billing"))
    share = intent_share(other, 2)
    assert share["billing"] == 0.0
    assert abs(share["technical_issue"] - 0.40 / (1 - outage["billing"])) < tol(0.45)


def test_two_absences_on_one_day_do_not_depend_on_scenario_order():
    a = Scenario("seasonal_class", 0, 5, 0.5, "refund")
    b = Scenario("seasonal_class", 2, 9, 0.7, "billing")
    d = START + timedelta(days=3)
    assert dumps_rows(generate_day(config(a, b, rows=300), START, d)) == \
        dumps_rows(generate_day(config(b, a, rows=300), START, d))


def test_every_label_absent_is_an_error_naming_the_scenario():
    two = SimulatorConfig(labels=("billing", "refund"), rows_per_day=10,
                          scenarios=(Scenario("seasonal_class", 0, 0, 1.0, "billing"),
                                     Scenario("seasonal_class", 0, 0, 1.0, "refund")))
    with pytest.raises(ValueError, match="seasonal_class: on day 0 every label is absent"):
        generate_day(two, START, START)
    generate_day(two, START, START + timedelta(days=1))  # the next day is fine


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Scenario("seasonal_class", 3, 6), r"seasonal_class: label None: .*needs a label"),
        (lambda: Scenario("label_shift", 3, 6, 1.0, "refund"), r"label_shift: label 'refund': .*takes no label"),
        (lambda: Scenario("seasonal_class", 3, 6, 1.5, "refund"), "strength"),
        (lambda: config(Scenario("seasonal_class", 3, 6, 1.0, "refunds")),
         r"scenario seasonal_class: label 'refunds' is not one of labels"),
    ],
    ids=["missing_label", "label_on_other_scenario", "strength", "unknown_label"],
)
def test_invalid_scenarios_are_rejected_naming_scenario_and_label(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_settings_accept_seasonal_class_with_a_label():
    s = ScenarioSettings(name="seasonal_class", start_day=3, end_day=9, strength=0.5, label="refund")
    assert s.model_dump() == {"name": "seasonal_class", "start_day": 3, "end_day": 9, "strength": 0.5,
                              "label": "refund"}
    # What the resource wiring does with it: the dump builds the simulator's Scenario.
    assert Scenario(**s.model_dump()).label == "refund"
    with pytest.raises(ValidationError, match="label None: seasonal_class needs a label"):
        ScenarioSettings(name="seasonal_class", start_day=3)
    with pytest.raises(ValidationError, match="label 'refund': label_shift takes no label"):
        ScenarioSettings(name="label_shift", start_day=3, label="refund")


def test_settings_errors_name_the_dotted_scenario_key():
    raw = {"labels": list(DEFAULT_LABELS), "partitions": {"start_date": "2026-09-01"},
           "reference": {"start": "2026-09-01", "end": "2026-09-07"},
           "source": {"simulator": {"scenarios": [{"name": "seasonal_class", "start_day": 2}]}}}
    with pytest.raises(SettingsError, match=r"source\.simulator\.scenarios\.0: .*label None"):
        parse_settings(raw)
    raw["source"]["simulator"]["scenarios"][0]["label"] = "refund"
    settings = parse_settings(raw)
    assert settings.source.simulator.scenarios[0].label == "refund"


def test_reassign_reaches_the_target_mix_moving_only_rows_that_must_move():
    # Two absences and an outage prior at once, on many synthetic rows: the coupling's
    # result follows the target, and no row of a label that gains traffic moves.
    prior = label_prior(DEFAULT_LABELS, 0.6)
    away = {"refund": 1.0, "technical_issue": 0.3}
    target = seasonal.without_absent(prior, DEFAULT_LABELS, away, 0)
    rng = np.random.default_rng(0)
    before = rng.choice(len(prior), size=200_000, p=prior)
    after = seasonal.reassign(before, prior, target, np.random.default_rng(1))
    got = np.bincount(after, minlength=len(prior)) / len(after)
    assert np.abs(got - target).max() < 0.005
    gaining = np.flatnonzero(target >= prior)
    assert np.array_equal(after[np.isin(before, gaining)], before[np.isin(before, gaining)])


def test_a_seasonal_class_in_ct_yaml_reaches_the_simulated_landing_zone(tmp_path):
    """The settings -> resource -> simulator wiring carries the label (it used to drop it)."""
    import polars as pl

    from ct_assets.orchestration.resources import build_source
    from ct_assets_tests.helpers import make_home, small_settings

    settings = small_settings(**{"source.simulator.scenarios": [
        {"name": "seasonal_class", "start_day": 1, "end_day": 1, "label": "refund"}]})
    source = build_source(settings, make_home(tmp_path))
    (scenario,) = source.simulator_config().scenarios
    assert (scenario.name, scenario.label) == ("seasonal_class", "refund")
    start = settings.partitions.start_date
    by_day = [pl.read_ndjson(source.simulate_day(start + timedelta(days=i))) for i in range(2)]
    share = [(f.get_column("label") == "refund").mean() for f in by_day]
    assert share[0] > 0.08 and share[1] < 0.02  # annotation noise can still tag a few rows


def test_a_scenario_label_outside_labels_fails_when_settings_load():
    from ct_assets_tests.helpers import small_settings

    with pytest.raises(SettingsError, match=r"source.simulator.scenarios.0.label: 'refunds' is not one of"):
        small_settings(**{"source.simulator.scenarios": [
            {"name": "seasonal_class", "start_day": 1, "end_day": 2, "label": "refunds"}]})
