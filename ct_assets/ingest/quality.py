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
from ct_assets.ingest.formats import DUPLICATE_KEY_PREFIX
from ct_assets.ingest.preprocess import normalize_text

REASON_CODES: tuple[str, ...] = (
    # First: with two values for one key the row's content is ambiguous, so nothing else
    # about it can be judged.
    "duplicate_key",
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
_CP1252 = f"Ã[\u0080-\u00bf{_CP1252_HIGH}]|Â[\u00a0-\u00bf ]|â€"
# Latin-1 reads continuation bytes 80-9F as C1 controls, which no typed text holds: a lead
# byte's letter (C2-F4: Â..ô) followed by one is UTF-8 read as latin-1 ("donâ\x80\x99t",
# CJK "æ\x97¥"). U+0085 (NEL) is spared: EBCDIC-converted text uses it as a line break.
_LATIN1 = "[\u00c2-\u00f4][\u0080-\u0084\u0086-\u009f]"
# Cyrillic UTF-8 is D0/D1 + a continuation byte: read as cp1251 that is Р/С + one of the
# chars below ("Привет" -> "РџСЂРёРІРµС‚"), read as latin-1/cp1252 Ð/Ñ + one ("ÐŸÑ€Ð¸").
# Two pairs in a row are required, because one pair is legit Ukrainian ("Ріка", "Січень":
# Р/С + і) and "»" or "’" can follow a capital; NBSP and soft hyphen are left out of the
# sets because typeset text puts them after a one-letter word ("У\u00a0Січні").
_CP1251_CONT = "".join(
    bytes([b]).decode("cp1251", errors="ignore") for b in range(0x80, 0xC0) if b not in (0xA0, 0xAD)
) + "\u0098"  # 0x98 is unassigned in cp1251; WHATWG decoders give U+0098
_CYRILLIC = (f"(?:[РС][{_CP1251_CONT}]){{2}}"
             f"|(?:[ÐÑ][\u0080-\u009f\u00a1-\u00ac\u00ae-\u00bf{_CP1252_HIGH}]){{2}}")
# "вЂ" is cp1251 for the E2 80 prefix of ’ “ ” – — … (Ђ after a lowercase в is never Serbian).
MOJIBAKE_PATTERN = f"{_CP1252}|{_LATIN1}|{_CYRILLIC}|вЂ|\ufffd"

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


def _check_schema(raw: pl.DataFrame, day: dt.date | None = None) -> None:
    # A contract drift (e.g. naive timestamps) would make every comparison below silently
    # wrong, so it is an error here rather than a quarantined day.
    problems = [
        f"{name}: expected {dtype}, got {raw.schema.get(name, 'missing')}"
        for name, dtype in RAW_SCHEMA.items()
        if raw.schema.get(name) != dtype
    ]
    # Extras are carried through untouched, so they must not collide with what we add. The
    # reader renames such input columns (ct_assets.ingest.extras), so this is a frame
    # built elsewhere: say which files it came from.
    reserved = [n for n in raw.columns if n in ("reason", "reasons") or n.startswith("__ct_")]
    if reserved and "_source_file" in raw.columns:
        files = raw.get_column("_source_file").drop_nulls().unique(maintain_order=True).head(5).to_list()
    else:
        files = []
    problems += [f"column {name!r}: extra column name is reserved (file(s) {files})" for name in reserved]
    if problems:
        where = f"partition {day.isoformat()}: " if day else ""
        raise ValueError(where + "raw frame does not follow the raw contract: " + "; ".join(problems))


def _rules(*, day: dt.date, labels: Sequence[str], reject_text_chars: int) -> dict[str, pl.Expr]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=1)
    ts_type = RAW_SCHEMA["event_ts"]
    event_id, event_ts, label_ts = pl.col("event_id"), pl.col("event_ts"), pl.col("label_ts")
    blank_id = event_id.is_null() | (event_id.str.strip_chars() == "")
    raw_label_ts = pl.col("_raw_label_ts")
    rules = {
        # The reader writes "duplicate key 'k' (values ...)" into _type_errors (formats.py).
        "duplicate_key": pl.col("_type_errors").str.contains(f"(^|; ){DUPLICATE_KEY_PREFIX}", literal=False),
        # Only the reader's type findings ("text: expected string, got int"): a row whose one
        # finding is a duplicate key is duplicate_key alone, not wrong_type too.
        "wrong_type": pl.col("_type_errors").str.contains(r"(^|; )\w+: expected "),
        "missing_event_id": blank_id,
        # Frame order defines "first": the reader emits rows in file/line order.
        "duplicate_event_id": ~blank_id & ~event_id.is_first_distinct(),
        "bad_event_ts": event_ts.is_null(),
        "event_ts_outside_partition": (event_ts < pl.lit(start, dtype=ts_type))
        | (event_ts >= pl.lit(end, dtype=ts_type)),
        "missing_text": pl.col("text").is_null(),
        # No visible character: whitespace and format characters (Cf: zero-width, bidi
        # controls, BOM, tag characters) alone carry no content, whatever is left of them.
        # "has no character but whitespace/format ones", asked without rewriting the text.
        "empty_text": (~pl.col(_TEXT).str.contains(r"[^\s\p{Cf}]")).fill_null(False),
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


def _select_exactly(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """The named columns, in order, by position: ``select("*")`` or ``select("^a.*$")`` would be
    a wildcard or a regex, and a user's extra column may be called exactly that."""
    return frame.select(pl.nth(*[frame.columns.index(name) for name in names]))


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
    _check_schema(raw, day)
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
    quarantine = _select_exactly(flagged.filter(bad), [*raw_columns, "reason", "reasons"])
    clean = _select_exactly(flagged.filter(~bad).drop("text").rename({_TEXT: "text"}), [*CLEAN_COLUMNS, *extras])

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
