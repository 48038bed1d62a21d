"""Which days the drift of day d is measured against (pure)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence

from ct_assets.core.time import days_between


def reference_days(
    as_of: dt.date,
    champion_window: tuple[dt.date, dt.date] | None,
    configured: Sequence[dt.date],
) -> tuple[list[dt.date], str]:
    """The drift reference for ``as_of``: the champion's training window once a champion
    exists, else the configured reference range. Days on or after ``as_of`` are dropped
    so a report never reads its own day or the future."""
    if champion_window is not None:
        start, end = champion_window
        days = days_between(start, end)
        source = f"champion training window {start}..{end}"
    else:
        days = list(configured)
        source = f"configured reference {days[0]}..{days[-1]}" if days else "configured reference (empty)"
    return [d for d in days if d < as_of], source


def reference_gap(as_of: dt.date, expected: Sequence[dt.date], present: Collection[dt.date], source: str) -> str:
    """The reference days the report of ``as_of`` expected but could not read, in words
    ("" when none is missing): a report on a partial reference says so."""
    if not expected:
        return f"no reference day before {as_of} ({source})"
    missing = [d.isoformat() for d in expected if d not in present]
    return f"missing reference days (not materialized): {', '.join(missing)}" if missing else ""
