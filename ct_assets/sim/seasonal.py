"""The ``seasonal_class`` scenario: one class leaves the traffic for a while, then returns.

This is the stream where a sliding training window forgets the class (no fresh rows
while it is away) and replay should not. Kept apart from ``simulator.py`` so that module
stays small. It only moves rows of the absent class to other labels, drawing from its own
stream, so the simulator's other streams (times, label arrival, channels) draw exactly as
without the scenario and a row of any other label keeps its intent.

Semantics, per absent label with share ``p`` in the day's prior (after label_shift, so an
outage and an absence combine): its share becomes ``p * (1 - strength)`` and the removed
``p * strength`` goes to the other labels in proportion to their shares, so rows_per_day
and the other labels' relative sizes stay as they were.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import numpy as np

NAME = "seasonal_class"


class _Absence(Protocol):  # simulator.Scenario; a Protocol so this module never imports it
    name: str
    label: str | None
    strength: float

    def active(self, day_index: int) -> bool: ...


def absences(scenarios: Iterable[_Absence], day_index: int) -> dict[str, float]:
    """Label -> share of its traffic that leaves on this day. Overlapping absences of
    one label: the strongest wins (as ``_strengths`` does for the other scenarios)."""
    out: dict[str, float] = {}
    for s in scenarios:
        if s.name == NAME and s.active(day_index) and s.strength > 0:
            assert s.label is not None  # Scenario validation requires it
            out[s.label] = max(out.get(s.label, 0.0), s.strength)
    return out


def without_absent(prior: np.ndarray, labels: tuple[str, ...], away: dict[str, float],
                   day_index: int) -> np.ndarray:
    """``prior`` with each absent label's share moved to the others in proportion.

    Labels are handled in ``labels`` order (not scenario order), so two absences on one
    day give the same prior however the scenarios are listed.
    """
    if not away:
        return prior  # the same array: days outside an absence are untouched
    out = prior.astype(float).copy()
    for i, label in enumerate(labels):
        s = away.get(label, 0.0)
        if s <= 0:
            continue
        moved = out[i] * s
        rest = out.sum() - out[i]
        if rest <= 0:  # only this label has traffic left: the day would have no rows to draw
            raise ValueError(f"{NAME}: on day {day_index} every label is absent ({sorted(away)})")
        others = np.arange(len(out)) != i
        out[others] += moved * out[others] / rest
        out[i] -= moved
    if out.sum() <= 0 or out.max() <= 0:
        raise ValueError(f"{NAME}: on day {day_index} every label is absent ({sorted(away)})")
    return out / out.sum()  # float error only; the sum is already 1


def reassign(intent_idx: np.ndarray, prior: np.ndarray, target: np.ndarray,
             rng: np.random.Generator) -> np.ndarray:
    """Move rows so their intents follow ``target`` instead of ``prior``, changing as few
    as possible (a maximal coupling): a row of label j stays with probability
    min(1, target_j / prior_j); a moved row goes where target exceeds prior, in proportion.

    Redrawing every intent from ``target`` by inverse CDF would also give the right mix,
    but it shifts the CDF's boundaries and so relabels rows of classes that never left.
    """
    w = rng.random((len(intent_idx), 2))  # fixed two uniforms a row, whatever moves
    with np.errstate(divide="ignore", invalid="ignore"):
        keep = np.where(prior > 0, np.minimum(1.0, target / prior), 1.0)
    gain = np.maximum(target - prior, 0.0)
    move = w[:, 0] >= keep[intent_idx]
    if not move.any() or gain.sum() <= 0:
        return intent_idx
    cum = np.cumsum(gain / gain.sum())
    out = intent_idx.copy()
    out[move] = np.minimum(np.searchsorted(cum, w[move, 1], side="right"), len(prior) - 1)
    return out
