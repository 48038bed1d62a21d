"""A strict 5-field cron validator, so `triggers.schedule_cron` fails when settings load.

Written here rather than borrowed: core may not import Dagster (whose cron parser is
private), and no other cron library is installed. It accepts a subset of what Dagster's
schedules accept (checked in the tests against `dagster.ScheduleDefinition`), so a string
that passes here never fails later when the Definitions are built:

    minute hour day-of-month month day-of-week
    each field: `*`, `N`, `A-B`, `*/S`, `A-B/S`, or a comma list of those;
    months and weekdays also by 3-letter English name (`jan`, `mon`), weekday 7 = Sunday.

Refused on purpose: macros (`@weekly`), seconds or year fields, `?`, `L`, `W`, `#`, `H`,
a bare `N/S`, and a day of month that no listed month has (`0 0 31 2 *` would never run).
"""

from __future__ import annotations

import re

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names for lowest..)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),
)
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 exists in leap years
_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<a>[0-9a-z]+)(?:-(?P<b>[0-9a-z]+))?)(?:/(?P<step>[0-9]+))?$")


def _value(token: str, field: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if token.isdigit():
        n = int(token)
    elif token in names:
        n = low + names.index(token)
    else:
        raise ValueError(f"{field}: {token!r} is not a number" + (f" or one of {', '.join(names)}" if names else ""))
    if not low <= n <= high:
        raise ValueError(f"{field}: {n} is outside {low}-{high}")
    return n


def _field(text: str, field: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        m = _ITEM.match(item)
        # A bare "N/S" is croniter's extension, not cron: refused so the meaning is never guessed.
        if m is None or (m["step"] is not None and m["a"] is not None and m["b"] is None):
            raise ValueError(f"{field}: {item!r} is not *, N, A-B, */S or A-B/S")
        if m["star"]:
            a, b = low, high
        else:
            a = _value(m["a"], field, low, high, names)
            b = _value(m["b"], field, low, high, names) if m["b"] is not None else a
        if b < a:
            raise ValueError(f"{field}: range {item!r} runs backwards")
        step = int(m["step"]) if m["step"] is not None else 1
        if not 1 <= step <= high:
            raise ValueError(f"{field}: step {step} is outside 1-{high}")
        values.update(range(a, b + 1, step))
    return values


def validate_cron(text: str) -> str:
    """Return ``text`` if it is a strict 5-field cron string; else raise ValueError saying why."""
    parts = text.split()
    if len(parts) != 5:
        raise ValueError(
            f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(parts)}")
    fields = [_field(part, *spec) for part, spec in zip(parts, _FIELDS)]
    days, months = fields[2], fields[3]
    # With a restricted weekday cron runs on either match, so only day-of-month alone can be void.
    if parts[4] == "*" and not any(d <= _DAYS_IN_MONTH[m - 1] for d in days for m in months):
        raise ValueError(f"day of month {sorted(days)} never occurs in month {sorted(months)}")
    return text
