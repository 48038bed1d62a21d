"""concept_change and label_shift strength (ct_assets.sim.scenario_rules).

Why: the benchmark needs these scenarios to cost a static model >= 10 points at
strength 1 (bench/scenario_cost.py), and every drift test needs strength 0 to be the
stable world byte for byte and a scenario to touch only what it is about.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pytest

from ct_assets.sim import scenario_rules as rules
from ct_assets.sim.simulator import DEFAULT_LABELS, Scenario, SimulatorConfig, dumps_rows, generate_day, \
    generate_day_annotated

START = date(2026, 9, 1)
PLAIN = SimulatorConfig(labels=DEFAULT_LABELS)
OUTAGE = ("technical_issue", "account_access")


def cfg(name: str, strength: float, start: int = 3) -> SimulatorConfig:
    return SimulatorConfig(labels=DEFAULT_LABELS, scenarios=(Scenario(name, start, None, strength),))


def rows(config, days):
    return [p for i in days for p in generate_day_annotated(config, START, START + timedelta(days=i))]


@pytest.mark.parametrize("name", ["concept_change", "label_shift"])
def test_strength_zero_is_the_stable_world_and_days_before_are_untouched(name):
    for i in (0, 2, 3, 5):
        d = START + timedelta(days=i)
        assert dumps_rows(generate_day(cfg(name, 0.0), START, d)) == dumps_rows(generate_day(PLAIN, START, d))
    for s in (0.5, 1.0):
        d = START + timedelta(days=2)  # before the start day
        assert dumps_rows(generate_day(cfg(name, s), START, d)) == dumps_rows(generate_day(PLAIN, START, d))


def relabel_share(strength: float) -> float:
    cancel = [i for _, i in rows(cfg("concept_change", strength, 0), range(6)) if i.intent == "cancellation"]
    return float(np.mean([i.true_label == "refund" for i in cancel]))


def test_concept_change_relabel_share_scales_with_strength():
    full = relabel_share(1.0)
    assert relabel_share(0.0) == 0.0
    assert full == pytest.approx(0.87, abs=0.06)  # every money-returning cancellation
    assert relabel_share(0.5) == pytest.approx(full / 2, abs=0.08)
    # Account closures stay cancellation; only P(label | text) moves, never the texts.
    moved = rows(cfg("concept_change", 1.0, 0), range(6))
    assert all(i.true_label == "cancellation" for _, i in moved
               if i.intent == "cancellation" and i.sub_intent not in rules.CONCEPT_SUBINTENTS)
    assert [r["text"] for r, _ in moved] == [r["text"] for r, _ in rows(PLAIN, range(6))]


def outage_share(strength: float) -> float:
    hit = [i for _, i in rows(cfg("label_shift", strength, 0), range(6)) if i.intent in OUTAGE]
    return float(np.mean([i.outage for i in hit]))


def test_label_shift_ambiguity_share_scales_and_its_label_follows_the_prior():
    assert outage_share(0.0) == 0.0
    full = outage_share(1.0)
    assert full == pytest.approx(rules.OUTAGE_TEXT_SHARE, abs=0.06)
    assert outage_share(0.5) == pytest.approx(full / 2, abs=0.06)
    ambiguous = [i for _, i in rows(cfg("label_shift", 1.0, 0), range(6)) if i.outage]
    assert {i.intent for i in ambiguous} == set(OUTAGE)  # the same wording in both classes
    assert np.mean([i.intent == "technical_issue" for i in ambiguous]) == pytest.approx(2 / 3, abs=0.08)
    # Other classes' rows keep their texts where their intent did not move.
    assert not any(i.outage for _, i in rows(PLAIN, range(6)))


@pytest.mark.parametrize("name", ["concept_change", "label_shift"])
def test_deterministic_in_any_order(name):
    d = START + timedelta(days=5)
    first = dumps_rows(generate_day(cfg(name, 1.0), START, d))
    generate_day(cfg(name, 1.0), START, START + timedelta(days=9))
    assert dumps_rows(generate_day(cfg(name, 1.0), START, d)) == first
