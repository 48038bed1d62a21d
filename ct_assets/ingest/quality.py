"""Per-row quality rules: split one day's raw frame into clean and quarantine.

Every rule is a boolean polars expression; all rules are evaluated for every row so a
quarantined row lists *all* its problems (``reasons``), while ``reason`` is the first one
in ``REASON_CODES`` order (most fundamental first: a row with a wrong type is not worth
diagnosing as "too long"). Codes are stable strings: dashboards and asset checks key on
them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ct_assets.core.schema import CLEAN_COLUMNS, RAW_SCHEMA
from ct_assets.ingest.preprocess import normalize_text

REASON_CODES: tuple[str, ...] = (
    "wrong_type",
    "missing_event_id",
    "duplicate_event_id",
    "bad_event_ts",
    "event_ts_outside_partition",
    "missing_text",
    "empty_text",
    "text_too_long",
    "mojibake",
    "unknown_label",
    "bad_label_ts",
)


# UTF-8 bytes decoded as latin-1/cp1252. "Ã" + a continuation-byte char covers é è ü ...
# (C3 xx); "Â" + NBSP/© /£ ... covers C2 xx; "â€" is the prefix of ’ “ ” – — … (E2 80 xx).
# Legit text practically never has these pairs ("SÃO" has Ã followed by a letter).
_CP1252_HIGH = "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122"
MOJIBAKE_PATTERN = f"Ã[\u0080-\u00bf{_CP1252_HIGH}]|Â[\u00a0-\u00bf ]|â€|\ufffd"

_TEXT = "__ct_text"  # temporary columns; the prefix is reserved (checked below)
_FLAG = "__ct_flag_"


@dataclass(frozen=True)
class QualityResult:
    clean: pl.DataFrame
    quarantine: pl.DataFrame
    reason_counts: dict[str, int]  # rows per first `reason`, REASON_CODES order; zeros omitted
    rows_read: int

    @property
    def rejected_fraction(self) -> float:
        return self.quarantine.height / self.rows_read if self.rows_read else 0.0

    @property
    def unknown_label_rows(self) -> int:
        """Quarantined rows whose only problem is a label not in ``labels``: a new class
        emerging is a signal for drift_report, not a broken feed."""
        return self.quarantine.filter(pl.col("reasons") == "unknown_label").height

    @property
    def bad_fraction(self) -> float:
        """The share of broken rows, the one quality.max_bad_fraction limits."""
        bad = self.quarantine.height - self.unknown_label_rows
        return bad / self.rows_read if self.rows_read else 0.0


def _check_schema(raw: pl.DataFrame) -> None:
    # A contract drift (e.g. naive timestamps) would make every comparison below silently
    # wrong, so it is an error here rather than a quarantined day.
    problems = [
        f"{name}: expected {dtype}, got {raw.schema.get(name, 'missing')}"
        for name, dtype in RAW_SCHEMA.items()
        if raw.schema.get(name) != dtype
    ]
    # Extras are carried through untouched, so they must not collide with what we add.
    problems += [
        f"{name}: extra column name is reserved"
        for name in raw.columns
        if name in ("reason", "reasons") or name.startswith("__ct_")
    ]
    if problems:
        raise ValueError("raw frame does not follow the raw contract: " + "; ".join(problems))


def _rules(*, day: dt.date, labels: Sequence[str], reject_text_chars: int) -> dict[str, pl.Expr]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=1)
    ts_type = RAW_SCHEMA["event_ts"]
    event_id, event_ts, label_ts = pl.col("event_id"), pl.col("event_ts"), pl.col("label_ts")
    blank_id = event_id.is_null() | (event_id.str.strip_chars() == "")
    raw_label_ts = pl.col("_raw_label_ts")
    rules = {
        "wrong_type": pl.col("_type_errors").is_not_null(),
        "missing_event_id": blank_id,
        # Frame order defines "first": the reader emits rows in file/line order.
        "duplicate_event_id": ~blank_id & ~event_id.is_first_distinct(),
        "bad_event_ts": event_ts.is_null(),
        "event_ts_outside_partition": (event_ts < pl.lit(start, dtype=ts_type))
        | (event_ts >= pl.lit(end, dtype=ts_type)),
        "missing_text": pl.col("text").is_null(),
        "empty_text": pl.col(_TEXT) == "",
        "text_too_long": pl.col("text").str.len_chars() > reject_text_chars,
        "mojibake": pl.col("text").str.contains(MOJIBAKE_PATTERN),
        "unknown_label": pl.col("label").is_not_null()
        & ~pl.col("label").is_in(pl.Series(list(labels), dtype=pl.Utf8)),
        "bad_label_ts": (pl.col("label").is_not_null() & (label_ts.is_null() | (label_ts < event_ts)))
        | (raw_label_ts.is_not_null() & (raw_label_ts.str.strip_chars() != "") & label_ts.is_null()),
    }
    assert tuple(rules) == REASON_CODES, "rule order must match REASON_CODES"
    # Comparisons with null are null; a null flag means "this rule cannot say", i.e. False.
    return {code: expr.fill_null(False) for code, expr in rules.items()}


def split_rows(
    raw: pl.DataFrame,
    *,
    day: dt.date,
    labels: Sequence[str],
    max_text_chars: int,
    reject_text_chars: int,
    mask_emails: bool,
    mask_phones: bool,
) -> QualityResult:
    """Apply the quality rules to one day's raw frame (schema: docs/CONTRACTS.md)."""
    _check_schema(raw)
    raw_columns = raw.columns
    extras = [c for c in raw_columns if c not in RAW_SCHEMA]
    rules = _rules(day=day, labels=labels, reject_text_chars=reject_text_chars)

    flagged = raw.with_columns(
        normalize_text(
            pl.col("text"), max_chars=max_text_chars, mask_emails=mask_emails, mask_phones=mask_phones
        ).alias(_TEXT)
    ).with_columns([expr.alias(_FLAG + code) for code, expr in rules.items()])
    hits = [pl.when(pl.col(_FLAG + c)).then(pl.lit(c)) for c in REASON_CODES]
    flagged = flagged.with_columns(
        pl.coalesce(hits).alias("reason"),
        pl.concat_str(hits, separator=",", ignore_nulls=True).alias("reasons"),
    )

    bad = pl.col("reason").is_not_null()
    quarantine = flagged.filter(bad).select([*raw_columns, "reason", "reasons"])
    clean = (
        flagged.filter(~bad)
        .drop("text")
        .rename({_TEXT: "text"})
        .select([*CLEAN_COLUMNS, *extras])
    )

    if clean.height + quarantine.height != raw.height:
        raise AssertionError(
            f"quality split lost rows: clean {clean.height} + quarantine {quarantine.height}"
            f" != raw {raw.height}"
        )
    counts = quarantine.get_column("reason").value_counts()
    reason_counts = {
        code: int(n) for code, n in zip(counts.get_column("reason"), counts.get_column("count"))
    }
    # Stable order (REASON_CODES order) makes metadata and logs diff-friendly.
    reason_counts = {c: reason_counts[c] for c in REASON_CODES if c in reason_counts}
    return QualityResult(clean=clean, quarantine=quarantine, reason_counts=reason_counts, rows_read=raw.height)
