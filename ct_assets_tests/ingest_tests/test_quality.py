"""Per-row quality rule tests.

They exist because the quarantine is the only thing standing between a bad landing file
and the training set: every reason code must fire on exactly the rows it names, a row
must never be lost or duplicated between clean and quarantine (clean + quarantine = raw),
and the clean frame must follow the contract the downstream assets rely on.
"""

from __future__ import annotations

import datetime as dt
import random

import polars as pl
import pytest

from ct_assets.ingest.quality import REASON_CODES, QualityResult, split_rows

UTC = dt.timezone.utc
DAY = dt.date(2024, 3, 10)
T0 = dt.datetime(2024, 3, 10, 12, 0, tzinfo=UTC)
LABELS = ("positive", "negative", "neutral")
TS = pl.Datetime("us", "UTC")
# Copied from docs/CONTRACTS.md on purpose (not imported from contract.py): the tests
# pin the documented contract, not whatever the reader currently emits.
RAW_COLUMNS: dict[str, pl.DataType] = {
    "event_id": pl.Utf8(),
    "event_ts": TS,
    "text": pl.Utf8(),
    "label": pl.Utf8(),
    "label_ts": TS,
    "_raw_event_ts": pl.Utf8(),
    "_raw_label_ts": pl.Utf8(),
    "_source_file": pl.Utf8(),
    "_line": pl.Int64(),
    "_type_errors": pl.Utf8(),
}
CLEAN_COLUMNS = ["event_id", "event_ts", "text", "label", "label_ts", "_source_file", "_line"]


def row(i: int = 1, **overrides) -> dict:
    """A row that passes every rule; tests override one field at a time."""
    base = {
        "event_id": f"e{i}",
        "event_ts": T0,
        "text": f"good text {i}",
        "label": "positive",
        "label_ts": T0 + dt.timedelta(hours=1),
        "_raw_event_ts": T0.isoformat(),
        "_raw_label_ts": (T0 + dt.timedelta(hours=1)).isoformat(),
        "_source_file": "dt=2024-03-10/a.jsonl",
        "_line": i,
        "_type_errors": None,
    }
    base.update(overrides)
    return base


def raw_frame(rows: list[dict], extras: dict[str, list] | None = None) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=RAW_COLUMNS) if rows else pl.DataFrame(schema=RAW_COLUMNS)
    return frame.with_columns(pl.Series(k, v) for k, v in (extras or {}).items())


def split(raw: pl.DataFrame, **kw) -> QualityResult:
    args = dict(
        day=DAY, labels=LABELS, max_text_chars=50, reject_text_chars=200, mask_emails=True, mask_phones=True
    )
    args.update(kw)
    return split_rows(raw, **args)


def reasons_of(result: QualityResult) -> dict[int, str]:
    return dict(zip(result.quarantine["_line"].to_list(), result.quarantine["reasons"].to_list()))


# One-row cases; duplicate_event_id needs two rows and has its own tests below.
SINGLE_ROW_CASES = [
    # the reader found a key twice in the row's JSON object (the first value is kept)
    ({"_type_errors": "duplicate key 'text' (values \"a\" and \"b\"; the first is kept)"}, "duplicate_key"),
    # reader recorded a type problem (e.g. a number in `text`)
    ({"_type_errors": "text: expected string, got int"}, "wrong_type"),
    # null id
    ({"event_id": None}, "missing_event_id"),
    # blank id counts as missing
    ({"event_id": "   "}, "missing_event_id"),
    # event_ts missing entirely
    ({"event_ts": None, "_raw_event_ts": None}, "bad_event_ts"),
    # event_ts present but unparseable (reader left it null)
    ({"event_ts": None, "_raw_event_ts": "yesterday-ish"}, "bad_event_ts"),
    # one microsecond before the partition
    ({"event_ts": dt.datetime(2024, 3, 9, 23, 59, 59, 999999, tzinfo=UTC)}, "event_ts_outside_partition"),
    # exactly the next midnight is outside ([day, day+1) is half-open)
    ({"event_ts": dt.datetime(2024, 3, 11, tzinfo=UTC), "label": None}, "event_ts_outside_partition"),
    # null text
    ({"text": None}, "missing_text"),
    # whitespace only
    ({"text": " \t\n "}, "empty_text"),
    # only control characters: blank after preprocessing
    ({"text": "\x00\x07"}, "empty_text"),
    # zero-width space, joiner and non-joiner only: nothing visible (issue 10)
    ({"text": "\u200b\u200d\u200c"}, "empty_text"),
    # a lone BOM, as a file's first cell carries it
    ({"text": "\ufeff"}, "empty_text"),
    # bidi controls (LRM, RLM, embeddings, isolates) with spaces
    ({"text": " \u200e\u200f \u202a\u202e\u2066\u2069 "}, "empty_text"),
    # tag characters only (a flag's tail with no flag): Cf, so still nothing visible
    ({"text": "\U000e0067\U000e0062\U000e007f"}, "empty_text"),
    ({"text": "x" * 201}, "text_too_long"),
    # "é" encoded UTF-8, decoded latin-1
    ({"text": "caf\u00c3\u00a9 au lait"}, "mojibake"),
    # "è"
    ({"text": "tr\u00c3\u00a8s bien"}, "mojibake"),
    # right single quote via cp1252
    ({"text": "don\u00e2\u20ac\u2122t"}, "mojibake"),
    # left double quote via cp1252
    ({"text": "\u00e2\u20ac\u0153quoted"}, "mojibake"),
    # NBSP decoded as latin-1 ("Â" + space-like)
    ({"text": "price\u00c2\u00a0100"}, "mojibake"),
    # Russian UTF-8 read as cp1251 ("Привет")
    ({"text": "Привет".encode().decode("cp1251")}, "mojibake"),
    # a Russian sentence read as cp1251, with spaces between the words
    ({"text": "Доброе утро, друзья".encode().decode("cp1251")}, "mojibake"),
    # Ukrainian with ї and ґ read as cp1251
    ({"text": "Їжак і ґанок".encode().decode("cp1251")}, "mojibake"),
    # Russian UTF-8 read as latin-1: Ð/Ñ + C1 controls
    ({"text": "Привет".encode().decode("latin-1")}, "mojibake"),
    # Russian UTF-8 read as cp1252: "ÐŸÑ€Ð¸Ð²ÐµÑ‚"
    ({"text": "Привет".encode().decode("cp1252")}, "mojibake"),
    # right single quote read as cp1251: "вЂ™"
    ({"text": "don’t".encode().decode("cp1251")}, "mojibake"),
    # right single quote read as latin-1: "â" + C1 controls, no "€"
    ({"text": "don’t".encode().decode("latin-1")}, "mojibake"),
    # Japanese read as latin-1
    ({"text": "日本語です".encode().decode("latin-1")}, "mojibake"),
    # U+FFFD replacement character
    ({"text": "broken \ufffd char"}, "mojibake"),
    # label outside the configured set
    ({"label": "angry"}, "unknown_label"),
    # case matters: labels are ids, not prose
    ({"label": "Positive"}, "unknown_label"),
    # label without label_ts
    ({"label_ts": None, "_raw_label_ts": None}, "bad_label_ts"),
    # label before the event it labels
    ({"label_ts": T0 - dt.timedelta(seconds=1)}, "bad_label_ts"),
    # unparseable label_ts even without a label
    ({"label": None, "label_ts": None, "_raw_label_ts": "soon"}, "bad_label_ts"),
]


@pytest.mark.parametrize(("overrides", "expected"), SINGLE_ROW_CASES)
def test_each_reason_code(overrides, expected):
    result = split(raw_frame([row(1, **overrides)]))
    assert result.clean.height == 0
    assert result.quarantine["reason"].to_list() == [expected]
    assert result.quarantine["reasons"].to_list() == [expected]
    assert result.reason_counts == {expected: 1}


def test_every_code_is_covered_by_the_table():
    # Guards against adding a code to REASON_CODES without a test case above.
    covered = {expected for _, expected in SINGLE_ROW_CASES} | {"duplicate_event_id"}
    assert covered == set(REASON_CODES)


@pytest.mark.parametrize(
    "overrides",
    [
        # unlabelled row: no label_ts needed
        {"label": None, "label_ts": None, "_raw_label_ts": None},
        # label at exactly the event time is allowed (>=)
        {"label_ts": T0},
        # label arriving days later is fine for the quality rules (point-in-time is separate)
        {"label_ts": T0 + dt.timedelta(days=5)},
        # blank raw label_ts string (e.g. empty CSV cell) is "absent", not "unparseable"
        {"label": None, "label_ts": None, "_raw_label_ts": ""},
        # first instant of the day is inside the partition
        {"event_ts": dt.datetime(2024, 3, 10, tzinfo=UTC), "label_ts": dt.datetime(2024, 3, 10, tzinfo=UTC)},
        # raw length exactly reject_text_chars is kept (and truncated to max_text_chars)
        {"text": "y" * 200},
        # Portuguese capital Ã followed by a letter is not mojibake
        {"text": "S\u00c3O PAULO"},
        # Russian, with ё, all caps and a capital Р/С before a letter
        {"text": "Съешь же ещё этих мягких булок. РОССИЯ, Сёма"},
        # Ukrainian: Р/С + і is one cp1251-looking pair, NBSP after a one-letter word, apostrophes
        {"text": "Ріка, Січень, У\u00a0Січні, СІЧЕНЬ, м’ясо, ПІР’Я, «Літера В»"},
        # French: guillemets with NBSP, œ, â/ê/ô, apostrophe
        {"text": "« Déjà vu » au château, l’hôtel, œuvre, fête, côte"},
        # German: ß before », umlauts
        {"text": "»Viel Spaß« in Größe XL, Äpfel, Übermut"},
        # Turkish dotted/dotless i and the rest
        {"text": "İstanbul’da ığdır, şoför, güneş, çiçek, Ğ"},
        # Vietnamese stacked diacritics
        {"text": "Tiếng Việt: người được những ở đâu, Đà Nẵng"},
        # emoji ZWJ sequences and a skin tone: U+200D inside visible content stays
        {"text": "team 👨\u200d👩\u200d👧\u200d👦 and 👩🏽\u200d💻 🏳️\u200d🌈"},
        # a subdivision flag (tag characters) as the last character
        {"text": "go 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"},
        # Persian: ZWNJ is spelling; a text with a leading BOM is clean once stripped
        {"text": "\ufeffمی\u200cخواهم"},
    ],
)
def test_clean_edge_cases(overrides):
    result = split(raw_frame([row(1, **overrides)]))
    assert result.quarantine.height == 0, result.quarantine["reasons"].to_list()
    assert result.clean.height == 1


def test_multi_reason_rows_list_all_codes_in_priority_order():
    raw = raw_frame(
        [
            row(1),
            # duplicate of e1, no timestamp, unknown label: reason is the highest priority
            row(2, event_id="e1", event_ts=None, label="angry", label_ts=None),
            # type error + empty text + mojibake cannot coexist in one text, so:
            row(3, _type_errors="label: expected string, got int", text="  ", label="x"),
            row(4, event_id=None, text="\u00c3\u00a9" + "z" * 300),
        ]
    )
    result = split(raw)
    assert reasons_of(result) == {
        2: "duplicate_event_id,bad_event_ts,unknown_label,bad_label_ts",
        3: "wrong_type,empty_text,unknown_label",
        4: "missing_event_id,text_too_long,mojibake",
    }
    first = dict(zip(result.quarantine["_line"].to_list(), result.quarantine["reason"].to_list()))
    assert first == {2: "duplicate_event_id", 3: "wrong_type", 4: "missing_event_id"}
    assert result.reason_counts == {"wrong_type": 1, "missing_event_id": 1, "duplicate_event_id": 1}


def test_duplicates_keep_the_first_occurrence():
    raw = raw_frame([row(1, text="first"), row(2), row(3, event_id="e1", text="second"), row(4, event_id="e1")])
    result = split(raw)
    assert result.clean["event_id"].to_list() == ["e1", "e2"]
    assert result.clean.filter(pl.col("event_id") == "e1")["text"].item() == "first"
    assert reasons_of(result) == {3: "duplicate_event_id", 4: "duplicate_event_id"}


def test_duplicate_of_a_bad_first_row_is_still_a_duplicate():
    # "First" is positional: if the first copy is bad, later copies do not replace it
    # (a replay of a broken event should be investigated, not silently accepted).
    raw = raw_frame([row(1, event_ts=None), row(2, event_id="e1")])
    result = split(raw)
    assert result.clean.height == 0
    assert reasons_of(result) == {1: "bad_event_ts", 2: "duplicate_event_id"}


def test_null_and_blank_ids_are_missing_not_duplicates():
    raw = raw_frame([row(1, event_id=None), row(2, event_id=None), row(3, event_id=""), row(4, event_id="")])
    assert set(reasons_of(split(raw)).values()) == {"missing_event_id"}


def test_clean_frame_schema_text_and_extras():
    raw = raw_frame(
        [row(1, text="  Mail a@b.io\tor call (555) 123 4567  "), row(2, label="bad")],
        extras={"zeta": [1, 2], "alpha": ["x", "y"]},
    )
    result = split(raw, max_text_chars=30)
    assert result.clean.columns == [*CLEAN_COLUMNS, "zeta", "alpha"]
    assert result.clean.schema["event_ts"] == TS and result.clean.schema["label_ts"] == TS
    assert result.clean["text"].to_list() == ["Mail <EMAIL> or call <PHONE>"]
    assert result.clean["zeta"].to_list() == [1]


def test_quarantine_keeps_raw_content():
    text = "  \u00c3\u00a9  raw\tspacing kept a@b.io "
    raw = raw_frame([row(1, text=text, _raw_event_ts="whatever")], extras={"extra": [42]})
    result = split(raw)
    assert result.quarantine.columns == [*RAW_COLUMNS, "extra", "reason", "reasons"]
    got = result.quarantine.drop("reason", "reasons")
    assert got.equals(raw)  # byte-for-byte the raw row, incl. unmasked text and extras


def test_masking_follows_flags():
    raw = raw_frame([row(1, text="a@b.io 555-123-4567")])
    assert split(raw, mask_emails=False, mask_phones=False).clean["text"].item() == "a@b.io 555-123-4567"


@pytest.mark.parametrize("extras", [None, {"note": pl.Series("note", [], dtype=pl.Utf8)}])
def test_empty_day(extras):
    raw = raw_frame([], extras=extras)
    result = split(raw)
    assert result.rows_read == 0 and result.rejected_fraction == 0.0 and result.reason_counts == {}
    assert result.clean.height == 0 and result.quarantine.height == 0
    extra_cols = list(extras or {})
    assert result.clean.columns == [*CLEAN_COLUMNS, *extra_cols]
    assert result.clean.schema["event_ts"] == TS
    assert result.quarantine.columns == [*RAW_COLUMNS, *extra_cols, "reason", "reasons"]
    assert result.quarantine.schema["reason"] == pl.Utf8


def test_rejected_fraction():
    result = split(raw_frame([row(1), row(2), row(3, text=None), row(4, label="nope")]))
    assert result.rejected_fraction == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        # naive timestamps: comparisons against the UTC partition would be meaningless
        (lambda f: f.with_columns(pl.col("event_ts").dt.replace_time_zone(None)), "event_ts"),
        # a contract column missing altogether
        (lambda f: f.drop("_type_errors"), "_type_errors"),
        # an extra column that would collide with the quarantine's own columns
        (lambda f: f.with_columns(reason=pl.lit("mine")), "reason"),
    ],
)
def test_contract_violations_raise(mutate, match):
    with pytest.raises(ValueError, match=match):
        split(mutate(raw_frame([row(1)])))


def _random_row(rng: random.Random, i: int) -> dict:
    """A row with each field independently good or broken in one of the known ways."""
    choice = rng.choice
    ts = choice([T0, T0 + dt.timedelta(hours=11), None, T0 - dt.timedelta(days=1), T0 + dt.timedelta(days=1)])
    return row(
        i,
        event_id=choice([f"e{i}", f"e{rng.randrange(5)}", None, " "]),
        event_ts=ts,
        text=choice(["fine", None, "   ", "x" * 250, "caf\u00c3\u00a9", "call 555-123-4567", "\x00"]),
        label=choice([*LABELS, None, "other"]),
        label_ts=choice([T0 + dt.timedelta(hours=2), None, T0 - dt.timedelta(hours=1)]),
        _raw_label_ts=choice(["2024-03-10T14:00:00+00:00", None, "garbage"]),
        _type_errors=choice([None, None, None, "label: expected string, got int"]),
    )


@pytest.mark.parametrize("seed", range(6))
def test_invariant_clean_plus_quarantine_is_raw(seed):
    rng = random.Random(seed)
    rows = [_random_row(rng, i) for i in range(rng.randrange(0, 120))]
    raw = raw_frame(rows, extras={"extra": list(range(len(rows)))})
    result = split(raw)
    assert result.clean.height + result.quarantine.height == raw.height == result.rows_read
    # Each raw row lands exactly once (extra is a unique row id here).
    seen = sorted(result.clean["extra"].to_list() + result.quarantine["extra"].to_list())
    assert seen == list(range(raw.height))
    assert result.clean["event_id"].is_duplicated().sum() == 0
    assert sum(result.reason_counts.values()) == result.quarantine.height
    for reason, reasons in result.quarantine.select("reason", "reasons").iter_rows():
        codes = reasons.split(",")
        assert reason == codes[0]
        assert codes == [c for c in REASON_CODES if c in codes]  # priority order, no repeats


def test_a_new_class_is_quarantined_but_not_counted_as_broken():
    rows = [row(1), row(2), row(3, label="brand_new_topic"), row(4, label="brand_new_topic"),
            # broken and unknown at once: it counts as broken (its first reason is wrong_type)
            row(5, label="brand_new_topic", _type_errors="text: expected string, got int")]
    result = split(raw_frame(rows))
    assert result.quarantine.height == 3  # kept, with reasons, never dropped
    assert reasons_of(result) == {3: "unknown_label", 4: "unknown_label", 5: "wrong_type,unknown_label"}
    assert result.unknown_label_rows == 2
    assert result.rejected_fraction == pytest.approx(3 / 5)
    assert result.bad_fraction == pytest.approx(1 / 5)  # what quality.max_bad_fraction limits
